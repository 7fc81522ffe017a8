"""Model-output parameterisations: epsilon, v and sample predictions, and flow velocity.

A **denoiser** is any callable ``denoiser(x_t, t, cond=None) -> output`` with ``x_t`` of shape
``[N, ...]`` and ``t`` a tensor ``[N]`` (the model time input) whose output has ``x_t``'s shape.

Diffusion (Ho et al. 2020): ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps``. The model predicts one of
``eps`` ("epsilon"), ``x0`` ("sample") or ``v = sqrt(ab) eps - sqrt(1 - ab) x0`` ("v_prediction",
Salimans & Ho 2022, "Progressive Distillation"). All three are affine in the output given x_t, so
classifier-free guidance on the raw output equals guidance on eps.

Rectified flow (Liu et al. 2023): ``x_t = (1 - t) x0 + t noise`` with t in [0, 1] (t = 1 pure
noise) and velocity ``v = dx_t/dt = noise - x0``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from invertkit.diffusion.schedules import PREDICTION_TYPES
from invertkit.errors import ConfigError


class Denoiser(Protocol):
    """``(x_t [N, ...], t [N], cond=None) -> output [N, ...]`` in x_t's dtype."""

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor: ...


def _bcast(a: Tensor | float, like: Tensor) -> Tensor:
    """alpha_bar as a tensor broadcastable against ``like`` ([N] -> [N, 1, 1, ...])."""
    a = torch.as_tensor(a, dtype=like.dtype, device=like.device)
    if a.ndim == 1 and like.ndim > 1:
        a = a.reshape(-1, *([1] * (like.ndim - 1)))
    return a


def _check_kind(kind: str) -> None:
    if kind not in PREDICTION_TYPES:
        raise ConfigError(f"prediction_type={kind!r} is not supported; use one of {', '.join(PREDICTION_TYPES)}")


def output_to_eps_x0(output: Tensor, x_t: Tensor, alpha_bar: Tensor | float, kind: str) -> tuple[Tensor, Tensor]:
    """Convert a model output to ``(eps, x0)``, both shaped like ``x_t``.

    ``alpha_bar``: scalar or ``[N]`` in (0, 1) (the level the model was told it is at; for "sample"
    predictions alpha_bar must be < 1, for "epsilon" > 0).
    """
    _check_kind(kind)
    ab = _bcast(alpha_bar, x_t)
    sa, sb = ab.sqrt(), (1 - ab).sqrt()
    if kind == "epsilon":
        return output, (x_t - sb * output) / sa
    if kind == "sample":
        return (x_t - sa * output) / sb, output
    # v = sa*eps - sb*x0 and x = sa*x0 + sb*eps form a rotation, so its inverse is its transpose.
    return sb * x_t + sa * output, sa * x_t - sb * output


def eps_x0_to_output(eps: Tensor, x0: Tensor, alpha_bar: Tensor | float, kind: str) -> Tensor:
    """The model output of kind ``kind`` for a given ``(eps, x0)`` pair at level ``alpha_bar`` (inverse of above)."""
    _check_kind(kind)
    if kind == "epsilon":
        return eps
    if kind == "sample":
        return x0
    ab = _bcast(alpha_bar, eps)
    return ab.sqrt() * eps - (1 - ab).sqrt() * x0


def diffuse(x0: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """Forward process ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps`` (shapes like x0)."""
    ab = _bcast(alpha_bar, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def flow_interpolate(x0: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
    """Rectified-flow path ``x_t = (1 - t) x0 + t noise``, t scalar or ``[N]`` in [0, 1]."""
    t = _bcast(t, x0)
    return (1 - t) * x0 + t * noise


def flow_velocity(x0: Tensor, noise: Tensor) -> Tensor:
    """Target velocity ``noise - x0`` of the rectified-flow path."""
    return noise - x0


def velocity_to_x0_noise(velocity: Tensor, x_t: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
    """Recover ``(x0, noise)`` from a velocity at ``x_t``: ``x0 = x_t - t v``, ``noise = x_t + (1 - t) v``."""
    t = _bcast(t, x_t)
    return x_t - t * velocity, x_t + (1 - t) * velocity
