"""Orders of accuracy of the approximate samplers/inversions, measured against exact ODE solutions.

Slopes are least-squares fits of log(max abs error) on log(steps) over a doubling sequence. A
first-order method has slope -1 and a second-order one -2; tolerances of about +-0.2 leave room for
the pre-asymptotic curvature seen at the smallest step counts (measured fits: DDIM -0.95, Euler -0.93
to -0.97, midpoint -1.94), while still failing for a method of the wrong order.

Round trips (invert, then sample on the same grid) of a one-step method with local error
``C h^(p+1)`` cancel that term when p+1 is odd (``Phi_h o Phi_-h = id + C h^(p+1) + C (-h)^(p+1)``),
so midpoint and FireFlow round trips converge at third order while Euler and DDIM stay first order.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from invertkit.diffusion import (
    AnalyticGaussian,
    DiffusionGrid,
    alphas_cumprod,
    ddim_invert,
    ddim_sample,
    diffusion_grid,
    discrete_alpha_bar_fn,
    fireflow_invert,
    fireflow_sample,
    flow_euler_invert,
    flow_euler_sample,
    flow_midpoint_invert,
    flow_midpoint_sample,
    uniform_flow_grid,
)

D = torch.float64


def _slope(steps: list[int], errors: list[float]) -> float:
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def _cosine(t: torch.Tensor) -> torch.Tensor:
    """A continuous alpha_bar(t), t in [0, 1]: from 0.9975 (t = 0) down to 0.0016 (t = 1)."""
    return torch.cos(math.pi / 2 * (0.02 + 0.96 * t)) ** 2


def _grid(steps: int) -> DiffusionGrid:
    t = torch.linspace(1, 0, steps + 1, dtype=D)
    return DiffusionGrid(timesteps=t[:-1], alpha_bar=_cosine(t))


def _model() -> tuple[AnalyticGaussian, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mu = 0.5 * torch.randn(1, 4, 4, generator=g, dtype=D)
    return AnalyticGaussian(mu, 0.7), torch.randn(2, 1, 4, 4, generator=g, dtype=D)


def _max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_ddim_is_first_order_on_analytic_model() -> None:
    model, x = _model()
    den = model.diffusion_denoiser(_cosine)
    steps = [32, 64, 128, 256]
    ab_T, ab_0 = float(_cosine(torch.tensor(1.0, dtype=D))), float(_cosine(torch.tensor(0.0, dtype=D)))
    sample_err = [_max(ddim_sample(den, x, _grid(s)).x, model.diffusion_ode_map(x, ab_T, ab_0)) for s in steps]
    trip_err = [_max(ddim_sample(den, ddim_invert(den, x, _grid(s)).x, _grid(s)).x, x) for s in steps]
    assert -1.2 < _slope(steps, sample_err) < -0.8
    assert -1.2 < _slope(steps, trip_err) < -0.8
    assert sample_err[-1] < 0.01


def test_ddim_on_discrete_schedule_lands_on_ode_solution() -> None:
    model, x = _model()
    cfg = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timestep_spacing": "trailing"}
    den = model.diffusion_denoiser(discrete_alpha_bar_fn(alphas_cumprod(cfg)), prediction_type="v_prediction")
    errs = []
    for steps in (50, 1000):
        g = diffusion_grid(cfg, steps)
        out = ddim_sample(den, x, g, prediction_type="v_prediction")
        assert out.nfe == steps and out.x.dtype == D
        errs.append(_max(out.x, model.diffusion_ode_map(x, float(g.alpha_bar[0]), 1.0)))
    assert errs[1] < 0.005 < errs[0] < 0.1  # measured 0.053 and 0.0035


def test_renoise_fixed_point_makes_ddim_inversion_exact() -> None:
    model, x = _model()
    den = model.diffusion_denoiser(_cosine)
    g = _grid(64)
    errs = []
    for k in (0, 3, 20):
        inv = ddim_invert(den, x, g, fixed_point_iters=k)
        assert inv.nfe == 64 * (k + 1)
        errs.append(_max(ddim_sample(den, inv.x, g).x, x))
    assert errs[0] > 0.05 and errs[1] < errs[0] / 5 and errs[2] < 1e-9


def _square(x: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
    """Velocity of dx/dt = x^2: x(1) = x(0) / (1 - x(0)); a generic nonlinear field (not Gaussian data)."""
    return x * x


def test_flow_orders_on_nonlinear_ode() -> None:
    x0 = torch.linspace(-0.45, 0.45, 32, dtype=D).view(2, 1, 4, 4)
    exact = x0 / (1 - x0)
    steps = [8, 16, 32, 64]
    expected = {flow_euler_invert: -1.0, flow_midpoint_invert: -2.0, fireflow_invert: -2.0}
    for invert, order in expected.items():
        errs = [_max(invert(_square, x0, uniform_flow_grid(s)).x, exact) for s in steps]
        assert abs(_slope(steps, errs) - order) < 0.2, invert.__name__
    assert flow_midpoint_invert(_square, x0, uniform_flow_grid(8)).nfe == 16
    assert fireflow_invert(_square, x0, uniform_flow_grid(8)).nfe == 9


def test_flow_round_trips_on_analytic_model() -> None:
    model, x = _model()
    den = model.flow_denoiser()
    steps = [16, 32, 64, 128]
    pairs = {(flow_euler_invert, flow_euler_sample): -1.0, (flow_midpoint_invert, flow_midpoint_sample): -3.0,
             (fireflow_invert, fireflow_sample): -3.0}
    for (invert, sample), order in pairs.items():
        errs = [_max(sample(den, invert(den, x, uniform_flow_grid(s)).x, uniform_flow_grid(s)).x, x) for s in steps]
        assert abs(_slope(steps, errs) - order) < 0.2, invert.__name__
    # Euler inversion itself against the exact flow map: first order, and close at 128 steps.
    errs = [_max(flow_euler_invert(den, x, uniform_flow_grid(s)).x, model.flow_ode_map(x, 0.0, 1.0)) for s in steps]
    assert -1.2 < _slope(steps, errs) < -0.8 and errs[-1] < 0.05
