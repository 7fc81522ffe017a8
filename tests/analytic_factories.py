"""Small float64 fixtures for the diffusion maths tests: a continuous-time cosine level chain for the
exact Gaussian denoiser, and a fixed random conv net that is nothing like an exact denoiser."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from invertkit.diffusion import DiffusionGrid

D = torch.float64


def cosine_alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """alpha_bar of a cosine schedule on t in [0, 1] (kept inside (0, 1) at both ends)."""
    return torch.cos(math.pi / 2 * (0.02 + 0.96 * t)) ** 2


def cosine_grid(steps: int) -> DiffusionGrid:
    """``steps`` uniform steps in t from 1 to 0; the model's time input is t itself."""
    t = torch.linspace(1, 0, steps + 1, dtype=D)
    return DiffusionGrid(timesteps=t[:-1], alpha_bar=cosine_alpha_bar(t))


class TinyNet:
    """A fixed random conv net of (x, t, cond): smooth, nonlinear, nothing like an exact denoiser.

    ``x [N, channels, H, W]``, ``t [N]`` (any real value: it enters through ``sin(0.01 t)``), ``cond``
    None or ``[N]`` (one scalar per image).
    """

    def __init__(self, channels: int = 1, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w1 = 0.5 * torch.randn(8, channels, 3, 3, generator=g, dtype=D)
        self.w2 = 0.3 * torch.randn(channels, 8, 3, 3, generator=g, dtype=D)
        self.tw, self.cw = torch.randn(8, generator=g, dtype=D), torch.randn(8, generator=g, dtype=D)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = F.conv2d(x, self.w1.to(x), padding=1) + torch.sin(0.01 * t).view(-1, 1, 1, 1) * self.tw.to(x).view(1, -1, 1, 1)
        if cond is not None:
            h = h + cond.to(x).view(-1, 1, 1, 1) * self.cw.to(x).view(1, -1, 1, 1)
        return F.conv2d(torch.tanh(h), self.w2.to(x), padding=1) + 0.1 * x
