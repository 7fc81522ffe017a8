"""Latent regularisers: NVIDIA projector's noise terms, per-space priors, w+ spread."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invertkit.errors import LatentSpaceError
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.objectives.latent_terms import (
    latent_prior,
    noise_regularizer,
    normalize_noise_,
    wplus_spread,
)

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def G():
    return StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0, name="tiny")


def projector_reg(maps: list[torch.Tensor]) -> torch.Tensor:
    """stylegan2-ada-pytorch projector.py's reg_loss, transcribed for single [H, W] buffers."""
    reg = torch.zeros(())
    for v in maps:
        noise = v[None, None, :, :]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def test_noise_regularizer_matches_projector_per_image():
    g = torch.Generator().manual_seed(0)
    maps = {f"l{r}": torch.randn(3, 1, r, r, generator=g) for r in (4, 8, 16, 32)}
    out = noise_regularizer(maps)
    assert out.shape == (3,)
    for i in range(3):
        ref = projector_reg([m[i, 0] for m in maps.values()])
        assert torch.allclose(out[i], ref, rtol=1e-5, atol=1e-10)
    # a shared [H, W] map broadcasts against per-image maps
    shared = {"a": maps["l16"][0, 0], "b": maps["l8"]}
    assert noise_regularizer(shared).shape == (3,)


def test_noise_regularizer_penalises_correlated_noise_and_is_differentiable():
    g = torch.Generator().manual_seed(1)
    white = torch.randn(1, 1, 32, 32, generator=g)
    smooth = F.interpolate(torch.randn(1, 1, 4, 4, generator=g), size=32, mode="bilinear")
    smooth = (smooth - smooth.mean()) / smooth.std()
    assert noise_regularizer({"x": smooth}) > 20 * noise_regularizer({"x": white})
    x = smooth.clone().requires_grad_(True)
    noise_regularizer({"x": x}).sum().backward()
    assert x.grad.abs().sum() > 0


def test_normalize_noise_in_place_per_image():
    g = torch.Generator().manual_seed(2)
    x = (3 * torch.randn(2, 1, 8, 8, generator=g) + torch.tensor([1.0, -5.0]).view(2, 1, 1, 1)).requires_grad_(True)
    maps = {"x": x}
    assert normalize_noise_(maps) is maps
    assert maps["x"] is x and x.requires_grad
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(x.square().mean(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)


def test_latent_prior_values_per_space(G):
    for space in ("w", "w+", "p", "pn"):
        x = G.sample_latent(2000, space, seed=7)
        v = latent_prior(G, x, space)
        assert v.shape == (2000,)
        assert 0.8 < float(v.mean()) < 1.25, space
        far = latent_prior(G, x + 3.0, space)
        assert float(far.mean()) > 3 * float(v.mean()), space
    z = G.sample_latent(4000, "z", seed=7)
    vz = latent_prior(G, z, "z")
    assert abs(float(vz.mean()) - 2 / 16) < 0.03  # E[(mean z^2 - 1)^2] = 2/d
    assert torch.equal(latent_prior(G, z, "z-sphere"), vz)
    assert float(latent_prior(G, 2 * z, "z").mean()) > 5
    s = G.sample_latent(100, "s", seed=7)
    assert torch.allclose(latent_prior(G, G.mean_latent("s"), "s"), torch.zeros(1))
    assert float(latent_prior(G, s, "s").mean()) > 0


def test_latent_prior_is_differentiable_and_checks_space(G, tiny_mlp):
    for space in ("z", "w", "w+", "p", "pn", "s"):
        x = G.sample_latent(2, space, seed=0).requires_grad_(True)
        latent_prior(G, x, space).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, space
    assert latent_prior(tiny_mlp, tiny_mlp.sample_latent(3, seed=0), "z").shape == (3,)
    with pytest.raises(LatentSpaceError, match="'w' is not available for tiny-mlp; choose one of: z"):
        latent_prior(tiny_mlp, torch.zeros(1, 8), "w")


def test_wplus_spread(G):
    w = G.sample_latent(3, "w", seed=0)
    assert torch.equal(wplus_spread(w), torch.zeros(3))
    same = G.convert(w, "w", "w+")
    assert torch.allclose(wplus_spread(same), torch.zeros(3))
    mixed = torch.stack([G.sample_latent(G.num_ws, "w", seed=i) for i in range(3)])  # independent rows
    spread = wplus_spread(mixed, G)
    assert spread.shape == (3,) and (spread > 0.4).all()  # ~ (L-1)/L = 5/6 of the sample variance
    x = mixed.clone().requires_grad_(True)
    wplus_spread(x).sum().backward()
    assert x.grad.abs().sum() > 0
