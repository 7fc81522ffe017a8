"""Exact (Bayes-optimal) denoisers for Gaussian data: a ground truth for sampler tests.

Data ``x0 ~ N(mu, s^2 I)`` (``mu`` a tensor of the image shape, ``s > 0`` a scalar), independent
noise ``eps ~ N(0, I)``. Everything is per pixel, so scalar Gaussian conditioning suffices.

**Diffusion** ``x_t = a x0 + b eps`` with ``a = sqrt(ab)``, ``b = sqrt(1 - ab)``. Then
``x_t ~ N(a mu, D)`` with ``D = ab s^2 + 1 - ab``; ``Cov(eps, x_t) = b``, ``Cov(x0, x_t) = a s^2``, so

    E[eps | x_t] = b (x_t - a mu) / D,          E[x0 | x_t] = mu + a s^2 (x_t - a mu) / D,
    E[v | x_t]   = a E[eps | x_t] - b E[x0 | x_t]            (v-prediction).

The first equals ``-b * grad log p_t(x_t)`` (Tweedie). In ``y = x / a``, ``sigma = b / a`` the
probability-flow ODE is ``dy/dsigma = E[eps | x]`` = ``sigma (y - mu) / (s^2 + sigma^2)`` (Song et al.
2021, DDIM sec. 4.3), solved by ``(y - mu) / sqrt(s^2 + sigma^2) = const``, i.e.
``(x_t - a mu) / sqrt(D)`` is constant along the ODE: :meth:`diffusion_ode_map`.

**Rectified flow** ``x_t = (1 - t) x0 + t n``: ``x_t ~ N((1 - t) mu, F)`` with
``F = (1 - t)^2 s^2 + t^2``; ``Cov(n, x_t) = t``, ``Cov(x0, x_t) = (1 - t) s^2``, so with
``r = (x_t - (1 - t) mu) / F``

    E[n - x0 | x_t] = (t - (1 - t) s^2) r - mu.

Along ``dx/dt = v`` the quantity ``(x_t - (1 - t) mu) / sqrt(F)`` is constant (differentiate:
``d/dt (x - (1-t) mu) = v + mu = (t - (1-t) s^2) r`` and ``d/dt log sqrt(F) = (t - (1-t) s^2) / F``):
:meth:`flow_ode_map`.

**Condition**: with ``direction`` given, ``mu(cond) = mu + cond * direction`` for ``cond [N]``
(None or 0 = unconditional mean), so classifier-free guidance can be tested exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from invertkit.diffusion.parameterisation import _bcast, eps_x0_to_output
from invertkit.errors import ConfigError


class AnalyticGaussian:
    """Exact denoisers for data ``N(mu + cond * direction, s^2 I)``.

    ``mu``: ``[C, H, W]`` (any image shape); ``s``: scalar > 0; ``direction``: optional tensor like mu.
    Inputs ``x`` are ``[N, *mu.shape]``; levels ``alpha_bar`` / times ``t`` are scalars or ``[N]``.
    """

    def __init__(self, mu: Tensor, s: float, direction: Tensor | None = None) -> None:
        if not s > 0:
            raise ConfigError(f"AnalyticGaussian: s={s} must be positive")
        if direction is not None and direction.shape != mu.shape:
            raise ConfigError(f"AnalyticGaussian: direction shape {tuple(direction.shape)} != mu shape {tuple(mu.shape)}")
        self.mu, self.s, self.direction = mu, float(s), direction

    def mean(self, cond: Any, like: Tensor) -> Tensor:
        """Data mean ``[N or 1, *mu.shape]`` for condition ``cond`` (None, scalar or ``[N]``), in like's dtype."""
        mu = self.mu.to(like)[None]
        if cond is None or self.direction is None:
            return mu
        return mu + _bcast(torch.as_tensor(cond, dtype=like.dtype), like) * self.direction.to(like)[None]

    # ---- diffusion ---------------------------------------------------------------------------
    def eps(self, x: Tensor, alpha_bar: Tensor | float, cond: Any = None) -> Tensor:
        """``E[eps | x_t]`` for ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps``; ab in (0, 1]."""
        ab = _bcast(alpha_bar, x)
        mu = self.mean(cond, x)
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * self.s**2 + 1 - ab)

    def x0(self, x: Tensor, alpha_bar: Tensor | float, cond: Any = None) -> Tensor:
        """``E[x0 | x_t]`` (the optimal "sample" prediction)."""
        ab = _bcast(alpha_bar, x)
        mu = self.mean(cond, x)
        return mu + ab.sqrt() * self.s**2 * (x - ab.sqrt() * mu) / (ab * self.s**2 + 1 - ab)

    def v(self, x: Tensor, alpha_bar: Tensor | float, cond: Any = None) -> Tensor:
        """``E[sqrt(ab) eps - sqrt(1 - ab) x0 | x_t]`` (the optimal v-prediction)."""
        return eps_x0_to_output(self.eps(x, alpha_bar, cond), self.x0(x, alpha_bar, cond), alpha_bar, "v_prediction")

    def diffusion_ode_map(self, x: Tensor, ab_from: float, ab_to: float, cond: Any = None) -> Tensor:
        """Exact probability-flow ODE solution: the point at level ``ab_to`` on the trajectory through ``x`` at ``ab_from``."""
        mu = self.mean(cond, x)
        d_from, d_to = ab_from * self.s**2 + 1 - ab_from, ab_to * self.s**2 + 1 - ab_to
        return ab_to**0.5 * mu + (d_to / d_from) ** 0.5 * (x - ab_from**0.5 * mu)

    def diffusion_denoiser(
        self, alpha_bar_fn: Callable[[Tensor], Tensor], prediction_type: str = "epsilon"
    ) -> Callable[[Tensor, Tensor, Any], Tensor]:
        """A denoiser ``(x, t, cond) -> output`` whose time input maps to a level by ``alpha_bar_fn(t [N]) -> [N]``."""
        def denoiser(x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
            ab = alpha_bar_fn(t).to(x)
            return eps_x0_to_output(self.eps(x, ab, cond), self.x0(x, ab, cond), ab, prediction_type)

        return denoiser

    # ---- rectified flow ----------------------------------------------------------------------
    def velocity(self, x: Tensor, t: Tensor | float, cond: Any = None) -> Tensor:
        """``E[noise - x0 | x_t]`` for ``x_t = (1 - t) x0 + t noise``, t in [0, 1]."""
        t = _bcast(t, x)
        mu = self.mean(cond, x)
        f = (1 - t) ** 2 * self.s**2 + t**2
        return (t - (1 - t) * self.s**2) * (x - (1 - t) * mu) / f - mu

    def flow_ode_map(self, x: Tensor, t_from: float, t_to: float, cond: Any = None) -> Tensor:
        """Exact flow-ODE solution: the point at time ``t_to`` on the trajectory through ``x`` at ``t_from``."""
        mu = self.mean(cond, x)
        f_from = (1 - t_from) ** 2 * self.s**2 + t_from**2
        f_to = (1 - t_to) ** 2 * self.s**2 + t_to**2
        return (1 - t_to) * mu + (f_to / f_from) ** 0.5 * (x - (1 - t_from) * mu)

    def flow_denoiser(self, time_scale: float = 1.0) -> Callable[[Tensor, Tensor, Any], Tensor]:
        """A velocity model ``(x, t * time_scale, cond) -> velocity``."""
        def denoiser(x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
            return self.velocity(x, t.to(x) / time_scale, cond)

        return denoiser


def discrete_alpha_bar_fn(alphas_cumprod: Tensor, final: float = 1.0) -> Callable[[Tensor], Tensor]:
    """Map integer-valued timesteps ``[N]`` to ``alphas_cumprod[t]`` (for a denoiser of a discrete schedule).

    A negative timestep (the clean level after the last step, where diffusers' DDIM uses the scheduler's
    final alpha; BDIA's reference code evaluates the model there) maps to ``final`` instead of wrapping
    around to the noisiest level.
    """
    def alpha_bar(t: Tensor) -> Tensor:
        index = t.round().long().cpu()
        out = alphas_cumprod[index.clamp(min=0)]
        return torch.where(index < 0, torch.full_like(out, final), out).to(t)

    return alpha_bar
