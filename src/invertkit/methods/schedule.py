"""NVIDIA projector's schedules: learning-rate ramp up/down and decaying latent noise."""

from __future__ import annotations

import math


def projector_lr(t: float, base_lr: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """Learning rate at progress ``t`` in [0, 1]: linear ramp-up over ``rampup``, cosine ramp-down over
    the last ``rampdown`` (Karras et al. 2020, projector.py)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return base_lr * ramp


def latent_noise_scale(t: float, initial: float, ramp: float = 0.75) -> float:
    """Multiplier of the latent noise at progress ``t``: ``initial * max(0, 1 - t / ramp)^2``."""
    if initial <= 0 or ramp <= 0:
        return 0.0
    return initial * max(0.0, 1.0 - t / ramp) ** 2
