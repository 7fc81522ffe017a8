"""Output conversions, the analytic Gaussian denoisers and classifier-free guidance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from invertkit.diffusion import (
    AnalyticGaussian,
    Guidance,
    diffuse,
    eps_x0_to_output,
    evaluate,
    flow_interpolate,
    flow_velocity,
    output_to_eps_x0,
    velocity_to_x0_noise,
)
from invertkit.diffusion.guidance import CondPair, PairedDenoiser
from invertkit.errors import ConfigError

D = torch.float64


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(3, 1, 4, 4, generator=g, dtype=D), torch.randn(3, 1, 4, 4, generator=g, dtype=D),
            torch.rand(3, generator=g, dtype=D) * 0.98 + 0.01)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_conversions_invert_each_other(kind: str) -> None:
    x0, eps, ab = _data()
    x_t = diffuse(x0, eps, ab)
    out = eps_x0_to_output(eps, x0, ab, kind)
    eps2, x02 = output_to_eps_x0(out, x_t, ab, kind)
    assert torch.allclose(eps2, eps, atol=1e-12) and torch.allclose(x02, x0, atol=1e-12)


def test_v_definition_and_flow_conversions() -> None:
    x0, eps, ab = _data(1)
    v = eps_x0_to_output(eps, x0, ab, "v_prediction")
    assert torch.allclose(v, ab.sqrt().view(-1, 1, 1, 1) * eps - (1 - ab).sqrt().view(-1, 1, 1, 1) * x0)
    x_t = flow_interpolate(x0, eps, ab)
    rec_x0, rec_noise = velocity_to_x0_noise(flow_velocity(x0, eps), x_t, ab)
    assert torch.allclose(rec_x0, x0, atol=1e-12) and torch.allclose(rec_noise, eps, atol=1e-12)
    with pytest.raises(ConfigError, match="prediction_type"):
        output_to_eps_x0(v, x_t, ab, "x0")


def test_analytic_eps_is_tweedie_score() -> None:
    """E[eps | x_t] = -sqrt(1 - ab) * grad log N(x_t; sqrt(ab) mu, ab s^2 + 1 - ab), checked by autograd."""
    mu, s, ab = torch.randn(1, 4, 4, dtype=D), 0.6, 0.3
    model = AnalyticGaussian(mu, s)
    x = torch.randn(2, 1, 4, 4, dtype=D, requires_grad=True)
    var = ab * s**2 + 1 - ab
    logp = (-(x - ab**0.5 * mu) ** 2 / (2 * var)).sum()
    (score,) = torch.autograd.grad(logp, x)
    assert torch.allclose(model.eps(x.detach(), ab), -((1 - ab) ** 0.5) * score, atol=1e-13)
    # x_t = sqrt(ab) E[x0|x_t] + sqrt(1-ab) E[eps|x_t] must hold exactly.
    xd = x.detach()
    assert torch.allclose(diffuse(model.x0(xd, ab), model.eps(xd, ab), ab), xd, atol=1e-13)


def test_analytic_predictors_match_monte_carlo_regression() -> None:
    """Conditional expectations of jointly Gaussian variables are linear: regress on samples and compare."""
    g = torch.Generator().manual_seed(3)
    mu, s, n = 0.4, 0.5, 200_000
    model = AnalyticGaussian(torch.full((1, 1, 1), mu, dtype=D), s)
    x0 = mu + s * torch.randn(n, 1, 1, 1, generator=g, dtype=D)
    noise = torch.randn(n, 1, 1, 1, generator=g, dtype=D)
    probe = torch.tensor([-1.0, 0.0, 1.5], dtype=D).view(3, 1, 1, 1)

    def fitted(target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a = torch.stack([torch.ones(n, dtype=D), x.flatten()], 1)
        coef = torch.linalg.lstsq(a, target.flatten()[:, None]).solution
        return (coef[0] + coef[1] * probe).view(3, 1, 1, 1)

    ab = 0.45
    x_t = diffuse(x0, noise, ab)
    assert torch.allclose(fitted(noise, x_t), model.eps(probe, ab), atol=0.01)
    assert torch.allclose(fitted(ab**0.5 * noise - (1 - ab) ** 0.5 * x0, x_t), model.v(probe, ab), atol=0.01)
    t = 0.35
    x_t = flow_interpolate(x0, noise, t)
    assert torch.allclose(fitted(noise - x0, x_t), model.velocity(probe, t), atol=0.01)


def test_analytic_ode_maps_are_flows() -> None:
    """Maps compose (phi_{b->c} o phi_{a->b} = phi_{a->c}) and a tiny RK4 step agrees with the velocity."""
    mu = torch.randn(1, 4, 4, dtype=D)
    model = AnalyticGaussian(mu, 0.8)
    x = torch.randn(2, 1, 4, 4, dtype=D)
    assert torch.allclose(model.flow_ode_map(model.flow_ode_map(x, 0.9, 0.5), 0.5, 0.1), model.flow_ode_map(x, 0.9, 0.1))
    h = 1e-4
    fd = (model.flow_ode_map(x, 0.5, 0.5 + h) - model.flow_ode_map(x, 0.5, 0.5 - h)) / (2 * h)
    assert torch.allclose(fd, model.velocity(x, 0.5), atol=1e-7)
    ab_to = 0.9
    y = model.diffusion_ode_map(x, 0.2, ab_to)
    assert torch.allclose(model.diffusion_ode_map(y, ab_to, 0.2), x, atol=1e-13)


def test_guidance_nfe_and_batching() -> None:
    mu, direction = torch.randn(1, 4, 4, dtype=D), torch.randn(1, 4, 4, dtype=D)
    model = AnalyticGaussian(mu, 0.7, direction=direction)
    den = model.flow_denoiser()
    x = torch.randn(2, 1, 4, 4, dtype=D)
    cond, uncond = torch.tensor([1.0, 2.0], dtype=D), torch.zeros(2, dtype=D)
    out, nfe = evaluate(den, x, 0.4, Guidance(cond=cond, uncond=uncond, scale=1.0))
    assert nfe == 1 and torch.allclose(out, model.velocity(x, 0.4, cond))
    out, nfe = evaluate(den, x, 0.4, Guidance(cond=cond, uncond=uncond, scale=3.0))
    vu, vc = model.velocity(x, 0.4, uncond), model.velocity(x, 0.4, cond)
    assert nfe == 2 and torch.allclose(out, vu + 3.0 * (vc - vu))
    assert not torch.allclose(out, vc)
    out_b, nfe_b = evaluate(den, x, 0.4, Guidance(cond=cond, uncond=uncond, scale=3.0, batched=True))
    assert nfe_b == 2 and torch.allclose(out_b, out, atol=1e-14)  # both branches count, batched or not
    with pytest.raises(ConfigError, match="batched"):
        evaluate(den, x, 0.4, Guidance(cond=cond, uncond=None, scale=3.0, batched=True))


def test_paired_denoisers_take_both_branches_in_one_call_and_fall_back_on_out_of_memory() -> None:
    """``batched="auto"``: a PairedDenoiser gets one doubled call with a CondPair (same output as two
    calls, NFE 2); when the doubled batch runs out of memory the two branches run one after the other."""
    mu, direction = torch.randn(1, 4, 4, dtype=D), torch.randn(1, 4, 4, dtype=D)
    model = AnalyticGaussian(mu, 0.7, direction=direction)
    plain = model.flow_denoiser()
    calls: list[int] = []

    def fn(x, t, cond, oom=False):
        calls.append(x.shape[0])
        if isinstance(cond, CondPair):
            if oom:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            n = x.shape[0] // 2
            return torch.cat([plain(x[:n], t[:n], cond.uncond), plain(x[n:], t[n:], cond.cond)])
        return plain(x, t, cond)

    x = torch.randn(2, 1, 4, 4, dtype=D)  # the analytic model takes one condition value per image
    g = Guidance(cond=torch.tensor([1.0, 2.0], dtype=D), uncond=torch.zeros(2, dtype=D), scale=4.0)
    ref, nfe_ref = evaluate(plain, x, 0.3, dataclasses.replace(g, batched=False))
    out, nfe = evaluate(PairedDenoiser(fn), x, 0.3, g)
    assert calls == [4] and nfe == nfe_ref == 2 and torch.allclose(out, ref, atol=1e-14)
    calls.clear()
    out, nfe = evaluate(PairedDenoiser(lambda x, t, c: fn(x, t, c, oom=True)), x, 0.3, g)
    assert calls == [4, 2, 2] and nfe == 2 and torch.allclose(out, ref, atol=1e-14)
    with pytest.raises(torch.OutOfMemoryError):  # batched=True insists on one call
        evaluate(PairedDenoiser(lambda x, t, c: fn(x, t, c, oom=True)), x, 0.3, dataclasses.replace(g, batched=True))
