"""Direct Inversion (PnP Inversion): guided reconstruction is exact, editing moves along the condition."""

from __future__ import annotations

import pytest
import torch

from invertkit.diffusion import (
    AnalyticGaussian,
    Guidance,
    ddim_inversion_path,
    ddim_invert,
    ddim_sample,
    direct_inversion,
    direct_sample,
)
from invertkit.errors import ConfigError

from .analytic_factories import D, cosine_alpha_bar, cosine_grid

COND = torch.tensor([1.0, -0.5], dtype=D)
_cosine, _grid = cosine_alpha_bar, cosine_grid


def _setup(kind: str = "epsilon"):
    g = torch.Generator().manual_seed(0)
    mu, direction = 0.5 * torch.randn(1, 4, 4, generator=g, dtype=D), torch.randn(1, 4, 4, generator=g, dtype=D)
    model = AnalyticGaussian(mu, 0.7, direction=direction)
    return model, model.diffusion_denoiser(_cosine, kind), torch.randn(2, 1, 4, 4, generator=g, dtype=D)


def _max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("batched", [False, True])
def test_direct_reconstruction_is_exact(kind: str, batched: bool) -> None:
    _, den, x0 = _setup(kind)
    grid = _grid(20)
    guidance = Guidance(cond=COND, uncond=torch.zeros(2, dtype=D), scale=7.5, batched=batched)
    res = direct_inversion(den, x0, grid, guidance=guidance, prediction_type=kind)
    out = direct_sample(den, res.x_T, grid, res.corrections, guidance=guidance, prediction_type=kind)
    assert _max(out.x, x0) < 1e-10  # measured ~1e-15
    per_eval = 2  # both branches count, batched or not
    assert res.nfe == 20 + 20 * per_eval and out.nfe == 20 * per_eval
    assert len(res.corrections) == 20 and res.corrections[0].shape == x0.shape
    assert torch.equal(res.x_T, ddim_invert(den, x0, grid, prediction_type=kind, guidance=Guidance(cond=COND)).x)
    # without the corrections the same latent reconstructs badly (measured 10.3)
    assert _max(ddim_sample(den, res.x_T, grid, prediction_type=kind, guidance=guidance).x, x0) > 1.0


def test_corrections_measure_the_guided_step_error() -> None:
    _, den, x0 = _setup()

    def largest(steps: int, guidance: Guidance) -> float:
        return max(float(c.abs().max()) for c in direct_inversion(den, x0, _grid(steps), guidance=guidance).corrections)

    # at scale 1 the corrections are DDIM inversion's local error: first order, so halving the step
    # roughly halves them (measured 0.25 -> 0.10); guidance at 7.5 adds far larger ones (1.67, 0.82)
    scale1 = [largest(s, Guidance(cond=COND)) for s in (10, 20)]
    guided = [largest(s, Guidance(COND, 0 * COND, 7.5)) for s in (10, 20)]
    assert 1.8 < scale1[0] / scale1[1] < 3.0 and scale1[1] < 0.15
    assert guided[0] > 5 * scale1[0] and guided[1] > 5 * scale1[1]
    grid = _grid(10)
    pivot, _ = ddim_inversion_path(den, x0, grid, guidance=Guidance(cond=COND))
    res = direct_inversion(den, x0, grid, guidance=Guidance(cond=COND))
    assert res.nfe == 20 and torch.equal(res.x_T, pivot[0])


def test_editing_with_source_corrections_moves_along_the_condition() -> None:
    """With a shifted cond the reconstruction moves along the model's direction (scaled by guidance)."""
    model, den, x0 = _setup()
    grid = _grid(20)
    source = Guidance(cond=COND, uncond=torch.zeros(2, dtype=D), scale=7.5)
    res = direct_inversion(den, x0, grid, guidance=source)
    target = Guidance(cond=COND + 0.2, uncond=torch.zeros(2, dtype=D), scale=7.5)
    delta = direct_sample(den, res.x_T, grid, res.corrections, guidance=target).x - x0
    d = model.direction.reshape(-1)
    for n in range(2):
        cos = float(torch.dot(delta[n].reshape(-1), d) / (delta[n].norm() * d.norm()))
        assert cos > 0.99  # the Gaussian model's shift is exactly along direction; DDIM keeps it nearly so


def test_direct_sample_checks_corrections() -> None:
    _, den, x0 = _setup()
    with pytest.raises(ConfigError, match="corrections"):
        direct_sample(den, x0, _grid(5), [x0], guidance=None)
