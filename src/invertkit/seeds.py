"""Seeds for per-image random draws, derived from the run seed and integer keys.

A low module (numpy only) so that operators below ``methods`` (the degradations) derive seeds the
same way the methods do (``methods.init.derive_seed`` computes the same function).
"""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed from the run seed and integer keys (image id, candidate, purpose)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFF for k in keys]]).generate_state(1)[0] & 0x7FFFFFFF)
