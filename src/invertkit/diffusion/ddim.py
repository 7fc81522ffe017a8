"""Deterministic DDIM sampling (eta = 0) and DDIM inversion.

Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 with sigma = 0. One step from level
``ab`` to level ``ab'`` with noise prediction ``eps``:

    x' = sqrt(ab') x0_hat + sqrt(1 - ab') eps = a x + b eps,
    a = sqrt(ab' / ab),  b = sqrt(1 - ab') - a sqrt(1 - ab).

DDIM inversion (Dhariwal & Nichol 2021, sec. F; Mokady et al. 2023, "Null-text Inversion") runs the
same map upwards, ``x_j = (x_{j+1} - b_j eps) / a_j``, approximating the unknown ``eps(x_j)`` by the
prediction at the current point ``eps(x_{j+1}, t_j)``; the error is first order in the step size.
``fixed_point_iters > 0`` instead solves ``x_j = (x_{j+1} - b_j eps(x_j, t_j)) / a_j`` by fixed-point
iteration (Garibi et al. 2024, "ReNoise"; Pan et al. 2023, "AIDI"), which makes inversion the exact
inverse of sampling when it converges.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from invertkit.diffusion.guidance import Guidance, evaluate_eps
from invertkit.diffusion.parameterisation import Denoiser
from invertkit.diffusion.results import StepHook, Trajectory
from invertkit.diffusion.schedules import DiffusionGrid
from invertkit.errors import ConfigError


def ddim_coefficients(ab: float, ab_next: float) -> tuple[float, float]:
    """``(a, b)`` of the DDIM map ``x' = a x + b eps`` from level ``ab`` to ``ab_next`` (both in (0, 1])."""
    a = (ab_next / ab) ** 0.5
    return a, (1 - ab_next) ** 0.5 - a * (1 - ab) ** 0.5


def _levels(grid: DiffusionGrid, j: int) -> tuple[float, float, float]:
    return float(grid.timesteps[j]), float(grid.alpha_bar[j]), float(grid.alpha_bar[j + 1])


def ddim_sample(
    denoiser: Denoiser, x_T: Tensor, grid: DiffusionGrid, *, prediction_type: str = "epsilon",
    guidance: Guidance | None = None, clip_x0: Callable[[Tensor], Tensor] | None = None, on_step: StepHook | None = None,
) -> Trajectory:
    """Deterministic DDIM from ``x_T [N, ...]`` at level ``grid.alpha_bar[0]`` to the clean end.

    ``clip_x0`` (``schedules.x0_clipper``: a scheduler's ``clip_sample`` / ``thresholding``) is applied to
    each step's x0 prediction, as diffusers' DDIMScheduler does: ``x' = sqrt(ab') clip(x0) + sqrt(1 - ab') eps``.
    It makes sampling non-invertible, so inversion methods never use it.
    ``on_step(j, x) -> x`` runs after each step (see ``results.StepHook``).
    Returns the sample (x_T's dtype and shape) and NFE = S (x2 for guidance with scale != 1).
    """
    x, nfe = x_T, 0
    for j in range(grid.steps):
        t, ab, ab_next = _levels(grid, j)
        eps, n = evaluate_eps(denoiser, x, t, ab, prediction_type, guidance)
        nfe += n
        if clip_x0 is None:
            a, b = ddim_coefficients(ab, ab_next)
            x = a * x + b * eps
        else:
            x0 = clip_x0((x - (1 - ab) ** 0.5 * eps) / ab**0.5)
            x = ab_next**0.5 * x0 + (1 - ab_next) ** 0.5 * eps
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)


def ddim_invert(
    denoiser: Denoiser, x_0: Tensor, grid: DiffusionGrid, *, prediction_type: str = "epsilon",
    guidance: Guidance | None = None, fixed_point_iters: int = 0, on_step: StepHook | None = None,
) -> Trajectory:
    """DDIM inversion of a clean latent/image ``x_0 [N, ...]`` up to level ``grid.alpha_bar[0]``.

    Step j (levels j+1 -> j) evaluates the model at the current point with time ``timesteps[j]``;
    with ``fixed_point_iters = k`` it re-evaluates k more times at the updated estimate (ReNoise-style).
    NFE = S * (1 + k) (x2 for guidance). ``on_step(j, x) -> x`` runs after each step (progress).
    """
    if fixed_point_iters < 0:
        raise ConfigError(f"fixed_point_iters={fixed_point_iters} must be >= 0")
    x, nfe = x_0, 0
    for j in reversed(range(grid.steps)):
        t, ab, ab_next = _levels(grid, j)
        a, b = ddim_coefficients(ab, ab_next)
        z = x
        for _ in range(1 + fixed_point_iters):
            eps, n = evaluate_eps(denoiser, z, t, ab, prediction_type, guidance)
            z, nfe = (x - b * eps) / a, nfe + n
        x = z
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)
