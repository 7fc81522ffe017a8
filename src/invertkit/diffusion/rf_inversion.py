"""RF-Inversion: controlled rectified-flow ODEs for faithful inversion and editing.

Rout et al. 2025 (ICLR), "Semantic Image Inversion and Editing using Rectified Stochastic
Differential Equations", Algorithms 1 and 2, in our convention ``x_t = (1 - t) x0 + t noise``
(velocity ``noise - x0``, t = 1 pure noise).

**Controlled forward ODE** (image ``y0`` at t = 0 -> noise at t = 1): blend the model velocity
``u(Y, t)`` with the velocity of the straight line from ``Y`` to a fixed noise sample ``y1``,

    dY/dt = u(Y, t) + gamma (u(Y, t | y1) - u(Y, t)),    u(Y, t | y1) = (y1 - Y) / (1 - t).

``gamma = 0`` is plain inversion; ``gamma = 1`` is the straight line ``Y_t = (1 - t) y0 + t y1``,
which Euler integrates exactly (the conditional velocity is constant along it).

**Controlled reverse ODE** (noise at t = sigmas[0] -> image at t = 0): blend the model velocity with
the velocity of the straight line through ``X`` that reaches ``y0`` at t = 0,

    dX/dt = v(X, t) + eta_t (v(X, t | y0) - v(X, t)),    v(X, t | y0) = (X - y0) / t,

with ``eta_t = eta`` on sampling steps ``start_step <= j < stop_step`` and 0 elsewhere (the paper
guides the early, layout-forming steps and lets the model finish freely; its FLUX defaults are
eta = 0.9 for the first ~1/4 of the steps; diffusers' community pipeline uses
``stop_timestep = 0.25``, i.e. ``int(0.25 S)`` steps). An Euler step with eta = 1 ending at t = 0
lands exactly on y0.

Both integrate with Euler, evaluating at each step's start time: during inversion that time is
below sigmas[0] <= 1 and during sampling above sigmas[S] >= 0, so neither conditional velocity
divides by zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from invertkit.diffusion.flow import _steps, _v
from invertkit.diffusion.guidance import Guidance
from invertkit.diffusion.parameterisation import Denoiser
from invertkit.diffusion.results import StepHook, Trajectory
from invertkit.diffusion.schedules import FlowGrid
from invertkit.errors import ConfigError


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value} must lie in [0, 1]")


def rf_invert(
    denoiser: Denoiser, x_0: Tensor, grid: FlowGrid, *, gamma: float = 0.5, noise: Tensor | None = None,
    seed: int = 0, guidance: Guidance | None = None, on_step: StepHook | None = None,
) -> Trajectory:
    """Controlled forward ODE from image ``x_0 [N, ...]`` (t = 0) to t = ``sigmas[0]`` with Euler steps.

    ``gamma`` in [0, 1]: controller strength (paper default 0.5; 0 = :func:`flow_euler_invert`).
    ``noise``: the target sample ``y1`` (x_0's shape); default ``torch.randn`` from a CPU generator
    seeded with ``seed``, in x_0's dtype. ``guidance``: the model conditioning (the paper inverts
    with the empty prompt). NFE = S (x2 for guidance). ``on_step(j, x) -> x`` runs after each step (progress).
    """
    _unit("gamma", gamma)
    if noise is None:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(x_0.shape, generator=gen, dtype=x_0.dtype).to(x_0.device)
    elif noise.shape != x_0.shape:
        raise ConfigError(f"noise shape {tuple(noise.shape)} != x_0 shape {tuple(x_0.shape)}; pass noise like x_0")
    x, nfe = x_0, 0
    for j, (t, t_next) in enumerate(_steps(grid, invert=True)):
        v, n = _v(denoiser, x, t, grid, guidance)
        if gamma:
            v = v + gamma * ((noise - x) / (1 - t) - v)
        x, nfe = x + (t_next - t) * v, nfe + n
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)


def rf_sample(
    denoiser: Denoiser, x_T: Tensor, grid: FlowGrid, *, y_0: Tensor | None = None, eta: float = 0.9,
    start_step: int = 0, stop_step: int | None = None, guidance: Guidance | None = None,
    on_step: StepHook | None = None,
) -> Trajectory:
    """Controlled reverse ODE from ``x_T [N, ...]`` at t = ``sigmas[0]`` to t = 0 with Euler steps.

    ``y_0``: the image to stay faithful to (x_T's shape; needed whenever eta > 0 on some step).
    ``eta`` in [0, 1] applies on sampling steps ``start_step <= j < stop_step`` (j = 0 the noisiest);
    ``stop_step`` defaults to ``S // 4``. eta = 0 (or an empty window) is :func:`flow_euler_sample`.
    ``guidance``: conditioning for the model velocity (the edit prompt). NFE = S (x2 for guidance).
    """
    _unit("eta", eta)
    steps = grid.steps
    stop = steps // 4 if stop_step is None else stop_step
    if not 0 <= start_step <= stop <= steps:
        raise ConfigError(f"need 0 <= start_step={start_step} <= stop_step={stop} <= steps={steps}")
    active = eta > 0 and start_step < stop
    if active and y_0 is None:
        raise ConfigError("rf_sample with eta > 0 needs y_0 (the inverted image); pass y_0 or eta=0")
    if active and y_0.shape != x_T.shape:
        raise ConfigError(f"y_0 shape {tuple(y_0.shape)} != x_T shape {tuple(x_T.shape)}")
    x, nfe = x_T, 0
    for j, (t, t_next) in enumerate(_steps(grid, invert=False)):
        v, n = _v(denoiser, x, t, grid, guidance)
        if active and start_step <= j < stop:
            v = v + eta * ((x - y_0) / t - v)
        x, nfe = x + (t_next - t) * v, nfe + n
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)
