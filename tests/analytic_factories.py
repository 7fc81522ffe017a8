"""A continuous-time cosine level chain in float64 for tests on the exact Gaussian denoiser."""

from __future__ import annotations

import math

import torch

from invertkit.diffusion import DiffusionGrid

D = torch.float64


def cosine_alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """alpha_bar of a cosine schedule on t in [0, 1] (kept inside (0, 1) at both ends)."""
    return torch.cos(math.pi / 2 * (0.02 + 0.96 * t)) ** 2


def cosine_grid(steps: int) -> DiffusionGrid:
    """``steps`` uniform steps in t from 1 to 0; the model's time input is t itself."""
    t = torch.linspace(1, 0, steps + 1, dtype=D)
    return DiffusionGrid(timesteps=t[:-1], alpha_bar=cosine_alpha_bar(t))
