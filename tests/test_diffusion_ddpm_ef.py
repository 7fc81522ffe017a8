"""Edit-friendly DDPM inversion: exact reconstruction from stochastic noise maps, edits through them."""

from __future__ import annotations

import math

import pytest
import torch

import invertkit
from invertkit.diffusion import AnalyticGaussian, Guidance
from invertkit.diffusion.ddpm_ef import ddpm_ef_inversion, ddpm_ef_sample
from invertkit.errors import ConfigError

from .analytic_factories import D, cosine_alpha_bar, cosine_grid
from .diffusers_factories import write_folder

COND = torch.tensor([1.0, -0.5], dtype=D)


def _setup(kind: str):
    g = torch.Generator().manual_seed(0)
    mu, direction = 0.5 * torch.randn(1, 4, 4, generator=g, dtype=D), torch.randn(1, 4, 4, generator=g, dtype=D)
    model = AnalyticGaussian(mu, 0.7, direction=direction)
    return model.diffusion_denoiser(cosine_alpha_bar, kind), torch.randn(2, 1, 4, 4, generator=g, dtype=D)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_reconstruction_is_exact_and_the_levels_are_independent_draws(kind: str, eta: float) -> None:
    den, x0 = _setup(kind)
    grid = cosine_grid(20)
    guidance = Guidance(cond=COND, uncond=torch.zeros(2, dtype=D), scale=3.5)
    inv = ddpm_ef_inversion(den, x0, grid, guidance=guidance, eta=eta, prediction_type=kind, generator=torch.Generator().manual_seed(1))
    assert inv.nfe == 20 * 2 and len(inv.noise) == 20
    out = ddpm_ef_sample(den, inv.x_T, grid, inv.noise, guidance=guidance, eta=eta, prediction_type=kind)
    assert float((out.x - x0).abs().max()) < 1e-10 and out.nfe == 40
    # x_T is x_0's noisiest level drawn afresh: its noise part has unit variance, not a deterministic path
    ab = float(grid.alpha_bar[0])
    n = (inv.x_T - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    assert 0.5 < float(n.std()) < 1.6
    again = ddpm_ef_inversion(den, x0, grid, guidance=guidance, eta=eta, prediction_type=kind, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(again.x_T, inv.x_T)  # another seed, other maps, the same exact reconstruction
    assert float((ddpm_ef_sample(den, again.x_T, grid, again.noise, guidance=guidance, eta=eta, prediction_type=kind).x - x0).abs().max()) < 1e-10


def test_another_condition_edits_and_bad_inputs_are_refused() -> None:
    den, x0 = _setup("epsilon")
    grid = cosine_grid(20)
    src = Guidance(cond=COND, uncond=torch.zeros(2, dtype=D), scale=3.5)
    inv = ddpm_ef_inversion(den, x0, grid, guidance=src, generator=torch.Generator().manual_seed(0))
    target = Guidance(cond=1.2 * COND, uncond=torch.zeros(2, dtype=D), scale=3.5)  # a nearby condition
    edit = ddpm_ef_sample(den, inv.x_T, grid, inv.noise, guidance=target)
    assert float((edit.x - x0).abs().max()) > 1e-3  # the edit moves the image ...
    # ... and the image's own noise maps keep it closer to the source than another image's maps do
    other = ddpm_ef_inversion(den, torch.randn_like(x0), grid, guidance=src, generator=torch.Generator().manual_seed(5))
    unrelated = ddpm_ef_sample(den, other.x_T, grid, other.noise, guidance=target)
    assert float((edit.x - x0).square().mean()) < 0.5 * float((unrelated.x - x0).square().mean())
    with pytest.raises(ConfigError, match="eta must be in"):
        ddpm_ef_inversion(den, x0, grid, guidance=src, eta=0.0)
    with pytest.raises(ConfigError, match="one per step"):
        ddpm_ef_sample(den, inv.x_T, grid, [], guidance=src)
    with pytest.raises(ConfigError, match="skip must be in 0..19"):
        ddpm_ef_inversion(den, x0, grid, guidance=src, skip=20)


def test_skip_starts_later_and_still_reconstructs_exactly() -> None:
    """The paper's T_skip: x_T is level ``skip`` of the same draws, S - skip maps, S - skip steps."""
    den, x0 = _setup("epsilon")
    grid = cosine_grid(20)
    src = Guidance(cond=COND, uncond=torch.zeros(2, dtype=D), scale=3.5)
    full = ddpm_ef_inversion(den, x0, grid, guidance=src, generator=torch.Generator().manual_seed(4))
    part = ddpm_ef_inversion(den, x0, grid, guidance=src, generator=torch.Generator().manual_seed(4), skip=6)
    assert len(part.noise) == 14 and part.nfe == 14 * 2
    assert all(torch.equal(a, b) for a, b in zip(part.noise, full.noise[6:]))  # the same maps from there on
    out = ddpm_ef_sample(den, part.x_T, grid, part.noise, guidance=src)
    assert float((out.x - x0).abs().max()) < 1e-10 and out.nfe == 28
    assert not torch.allclose(part.x_T, full.x_T)  # a less noisy start


def test_method_runs_reloads_and_regenerates_on_a_tiny_unet(tmp_path) -> None:
    folder = write_folder(tmp_path / "cond", "cond")
    G = invertkit.load_generator(f"diffusers:{folder}")
    x = torch.rand(2, G.channels, G.resolution, G.resolution) * 2 - 1
    res = invertkit.invert(G, x, "ddpm-ef", steps=6, prompt="cat", guidance=3.5, dtype="float64")
    assert min(m["psnr"] for m in res.metrics) > 60  # exact up to rounding (float64)
    assert res.timings.evaluations[0] == 12
    again = invertkit.invert(G, x, "ddpm-ef", steps=6, prompt="cat", guidance=3.5, dtype="float64")
    assert torch.equal(again.state.x_T, res.state.x_T)  # seeded: the same images and seed give the same maps
    alone = invertkit.invert(G, x[1:], "ddpm-ef", steps=6, prompt="cat", guidance=3.5, dtype="float64", image_ids=[1])
    assert torch.equal(alone.state.x_T[0], res.state.x_T[1])  # an image's draws do not depend on its batch
    later = invertkit.invert(G, x, "ddpm-ef", steps=6, skip=2, prompt="cat", guidance=3.5, dtype="float64")
    assert min(m["psnr"] for m in later.metrics) > 60 and later.timings.evaluations[0] == 8
    with pytest.raises(ConfigError, match="skip must be in 0..5"):
        invertkit.invert(G, x, "ddpm-ef", steps=6, skip=6, prompt="cat", guidance=3.5)
