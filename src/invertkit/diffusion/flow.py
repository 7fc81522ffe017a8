"""Rectified-flow ODE sampling and inversion: Euler, midpoint (RF-Solver-2) and FireFlow.

The flow ODE ``dx/dt = v(x, t)`` runs from t = sigmas[0] (noise) to 0 (data) for sampling and back
for inversion (Liu et al. 2023, "Flow Straight and Fast"). All steps evaluate the model at the
current point and its own time (``t * grid.time_scale`` is passed to the model).

* Euler: ``x' = x + h v(x, t)``, h = t' - t; first order; one evaluation per step.
  ``fixed_point_iters`` in inversion solves the implicit step ``x = x' - h v(x, t)`` by iteration
  (ReNoise-style), the exact inverse of an Euler sampling step when it converges.
* Midpoint: ``x' = x + h v(x + h/2 v(x, t), t + h/2)``; second order, two evaluations per step. This is
  exactly RF-Solver's second-order update (Wang et al. 2024, "Taming Rectified Flow for Inversion and
  Editing"): its Taylor term ``h^2/2 * (v_mid - v) / (h/2)`` collapses to the midpoint rule.
* FireFlow (Deng et al. 2024, "FireFlow: Fast Inversion of Rectified Flow for Image Semantic
  Editing"): midpoint steps that reuse the previous step's midpoint velocity in place of ``v(x, t)``,
  so one evaluation per step (plus one at the start); second order in practice.
"""

from __future__ import annotations

from torch import Tensor

from invertkit.diffusion.guidance import Guidance, evaluate
from invertkit.diffusion.parameterisation import Denoiser
from invertkit.diffusion.results import StepHook, Trajectory
from invertkit.diffusion.schedules import FlowGrid
from invertkit.errors import ConfigError


def _steps(grid: FlowGrid, invert: bool) -> list[tuple[float, float]]:
    """(t, t') pairs in the order walked: noise -> data for sampling, data -> noise for inversion."""
    s = [float(v) for v in grid.sigmas]
    pairs = list(zip(s[:-1], s[1:]))
    return [(b, a) for a, b in reversed(pairs)] if invert else pairs


def _v(denoiser: Denoiser, x: Tensor, t: float, grid: FlowGrid, guidance: Guidance | None) -> tuple[Tensor, int]:
    return evaluate(denoiser, x, t * grid.time_scale, guidance)


def _euler(denoiser: Denoiser, x: Tensor, grid: FlowGrid, invert: bool, guidance: Guidance | None,
           fixed_point_iters: int = 0, on_step: StepHook | None = None) -> Trajectory:
    if fixed_point_iters < 0:
        raise ConfigError(f"fixed_point_iters={fixed_point_iters} must be >= 0")
    nfe = 0
    for j, (t, t_next) in enumerate(_steps(grid, invert)):
        if invert and fixed_point_iters:
            # Sampling maps z (upper time t_next) to x = z + (t - t_next) v(z, t_next); solve that for z.
            z = x
            for _ in range(1 + fixed_point_iters):
                v, n = _v(denoiser, z, t_next, grid, guidance)
                z, nfe = x - (t - t_next) * v, nfe + n
            x = z
            continue
        v, n = _v(denoiser, x, t, grid, guidance)
        x, nfe = x + (t_next - t) * v, nfe + n
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)


def flow_euler_sample(denoiser: Denoiser, x_T: Tensor, grid: FlowGrid, *, guidance: Guidance | None = None,
                      on_step: StepHook | None = None) -> Trajectory:
    """Euler sampling from noise ``x_T [N, ...]`` at t = sigmas[0] to t = 0 (``on_step`` after each
    step, see ``results.StepHook``). NFE = S (x2 for guidance)."""
    return _euler(denoiser, x_T, grid, False, guidance, on_step=on_step)


def flow_euler_invert(
    denoiser: Denoiser, x_0: Tensor, grid: FlowGrid, *, guidance: Guidance | None = None, fixed_point_iters: int = 0,
    on_step: StepHook | None = None,
) -> Trajectory:
    """Euler inversion of data ``x_0 [N, ...]`` from t = 0 to sigmas[0]. NFE = S (1 + fixed_point_iters).

    With ``fixed_point_iters = k > 0`` each step is the implicit inverse of the Euler sampling step
    (model at the upper time), solved by k + 1 fixed-point evaluations.
    """
    return _euler(denoiser, x_0, grid, True, guidance, fixed_point_iters, on_step=on_step)


def _midpoint(denoiser: Denoiser, x: Tensor, grid: FlowGrid, invert: bool, guidance: Guidance | None,
              reuse: bool, on_step: StepHook | None = None) -> Trajectory:
    nfe, v_cached = 0, None
    for j, (t, t_next) in enumerate(_steps(grid, invert)):
        h = t_next - t
        if v_cached is None:
            v_cached, n = _v(denoiser, x, t, grid, guidance)
            nfe += n
        v_mid, n = _v(denoiser, x + 0.5 * h * v_cached, t + 0.5 * h, grid, guidance)
        x, nfe = x + h * v_mid, nfe + n
        v_cached = v_mid if reuse else None
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)


def flow_midpoint_sample(denoiser: Denoiser, x_T: Tensor, grid: FlowGrid, *, guidance: Guidance | None = None,
                         on_step: StepHook | None = None) -> Trajectory:
    """Midpoint (RF-Solver-2) sampling, noise -> data. NFE = 2 S (x2 for guidance)."""
    return _midpoint(denoiser, x_T, grid, False, guidance, reuse=False, on_step=on_step)


def flow_midpoint_invert(denoiser: Denoiser, x_0: Tensor, grid: FlowGrid, *, guidance: Guidance | None = None,
                         on_step: StepHook | None = None) -> Trajectory:
    """Midpoint (RF-Solver-2) inversion, data -> noise. NFE = 2 S (x2 for guidance)."""
    return _midpoint(denoiser, x_0, grid, True, guidance, reuse=False, on_step=on_step)


def fireflow_sample(denoiser: Denoiser, x_T: Tensor, grid: FlowGrid, *, guidance: Guidance | None = None,
                    on_step: StepHook | None = None) -> Trajectory:
    """FireFlow sampling (midpoint with reused velocity), noise -> data. NFE = S + 1 (x2 for guidance)."""
    return _midpoint(denoiser, x_T, grid, False, guidance, reuse=True, on_step=on_step)


def fireflow_invert(denoiser: Denoiser, x_0: Tensor, grid: FlowGrid, *, guidance: Guidance | None = None,
                    on_step: StepHook | None = None) -> Trajectory:
    """FireFlow inversion, data -> noise. NFE = S + 1 (x2 for guidance)."""
    return _midpoint(denoiser, x_0, grid, True, guidance, reuse=True, on_step=on_step)
