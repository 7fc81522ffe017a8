"""Which images of a result are not finite, and why: the one check behind "a NaN is never a score".

A diverged optimisation (finite inputs, a NaN or inf result) leaves a latent, a reconstruction or a
metric that is not finite. The run writer records such an image as failed (``metrics.json`` holds
``null`` and the reason, no latent file), the dataset layout as an ``error`` row, and the bench shows
the method as diverged: all of them ask :func:`nonfinite_images`.
"""

from __future__ import annotations

import math

import torch

from ..generators.tuning import MAX_ABS_DELTA, largest_changes
from .base import InversionResult
from .tuned import TunedInversion

DIVERGED_HINT = "lower the learning rate or change the method"


def nonfinite_images(result: InversionResult) -> dict[int, str]:
    """Image index -> what is not finite (``"non-finite latent"``, ``"non-finite reconstruction"``,
    ``"non-finite metric psnr"``), for every image of ``result`` that has a NaN or inf; the others
    are absent."""
    def bad_rows(x: torch.Tensor | None) -> list[bool]:
        if x is None or not x.is_floating_point() or x.shape[0] != result.n:
            return [False] * result.n
        return (~torch.isfinite(x.detach()).reshape(result.n, -1).all(dim=1)).cpu().tolist()

    latent, recon = bad_rows(result.latents), bad_rows(result.reconstructions)
    out: dict[int, str] = {}
    for i in range(result.n):
        metrics = result.metrics[i] if i < len(result.metrics) else {}
        bad = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not math.isfinite(v)]
        delta = result.deltas[i] if isinstance(result, TunedInversion) and i < len(result.deltas) else {}
        if latent[i]:
            out[i] = "non-finite latent"
        elif any(not bool(torch.isfinite(d).all()) or (d.numel() and float(d.abs().max()) > MAX_ABS_DELTA) for d in delta.values()) \
                or any(v > MAX_ABS_DELTA for v in largest_changes(delta).values()):  # factors multiplied out too
            out[i] = "non-finite tuned weights"
        elif recon[i]:
            out[i] = "non-finite reconstruction"
        elif bad:
            out[i] = f"non-finite metric {bad[0]}"
    return out


def diverged_message(source: str, what: str) -> str:
    """The one line of an image whose inversion diverged."""
    return f"{source}: the inversion diverged ({what}); {DIVERGED_HINT}"
