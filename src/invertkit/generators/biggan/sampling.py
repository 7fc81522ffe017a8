"""Truncated-normal z for BigGAN, without scipy.

pytorch-pretrained-biggan's ``truncated_noise_sample`` draws ``truncation * truncnorm(-2, 2)``
(scipy's standard normal restricted to [-2, 2]); the truncation value also selects the batch-norm
statistics the generator uses. We draw the same distribution by inverting the normal CDF on a
uniform sample of ``[Phi(-2), Phi(2)]`` (one draw per value, so a seed fixes every bit; computed in
float64 so the tails are exact). The values differ from scipy's for the same seed: only the law matches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BOUND = 2.0  # the package's truncnorm(-2, 2)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def truncated_normal(shape: tuple[int, ...], *, generator: torch.Generator | None = None, bound: float = BOUND) -> Tensor:
    """Standard normal values restricted to ``[-bound, bound]``, float32 ``shape``, on CPU.

    Args:
        shape: the output shape.
        generator: a seeded CPU ``torch.Generator`` (None: the global one).
        bound: the truncation bound (positive).
    """
    lo, hi = _phi(-bound), _phi(bound)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    p = lo + (hi - lo) * u
    x = math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)
    return x.clamp(-bound, bound).to(torch.float32)
