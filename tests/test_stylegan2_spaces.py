"""StyleGAN2 P / P_N spaces (Zhu et al. 2020), their statistics cache, and per-image noise maps."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open

from invertkit.errors import LatentSpaceError
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.generators.stylegan2 import spaces as sp
from invertkit.generators.stylegan2.network import truncate

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=3, channel_base=256, channel_max=32)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))


@pytest.fixture
def G():
    return StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0, name="tiny")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_spaces_and_shapes(G):
    assert G.spaces == ("z", "w", "w+", "s", "p", "pn")
    assert G.latent_shape("p") == G.latent_shape("pn") == (G.num_ws, 16)
    for space in G.spaces:
        assert G.sample_latent(2, space, seed=0).shape == (2, *G.latent_shape(space))
        assert G.mean_latent(space).shape == (1, *G.latent_shape(space))


def test_p_is_the_last_mapping_layers_preactivation(G):
    m = G.net.mapping
    z = G.sample_latent(64, seed=1)
    with torch.no_grad():
        h = m.fc0(z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt())
        h = m.fc1(h)
        last = m.fc2
        pre = h @ (last.weight * last.weight_gain).T + last.bias * last.bias_gain
        w = m(z)
    assert (pre < 0).any() and (pre > 0).any()
    assert torch.allclose(sp.w_to_p(w), pre, atol=1e-5, rtol=1e-5)
    assert torch.allclose(sp.p_to_w(pre), w, atol=1e-6, rtol=1e-6)
    # Zhu et al.'s LeakyReLU_{5.0}(w), up to the layer's sqrt(2) gain
    assert torch.allclose(sp.w_to_p(w) * math.sqrt(2), torch.nn.functional.leaky_relu(w, 5.0), atol=1e-6)
    # p from z is the same whichever path
    with torch.no_grad():
        assert torch.allclose(G.convert(z, "z", "p"), sp.w_to_p(w).unsqueeze(1).expand(-1, G.num_ws, -1), atol=1e-6)


def test_round_trips(G):
    g = torch.Generator().manual_seed(3)
    wp = G.sample_latent(5, "w+", seed=2) + 0.3 * torch.randn(5, G.num_ws, 16, generator=g)
    with torch.no_grad():
        for s in ("p", "pn"):
            x = G.convert(wp, "w+", s)
            assert rel(G.convert(x, s, "w+"), wp) < 1e-5
        pn = torch.randn(5, G.num_ws, 16, generator=g)
        assert rel(G.convert(G.convert(pn, "pn", "p"), "p", "pn"), pn) < 1e-5
        assert rel(G.convert(G.convert(pn, "pn", "w+"), "w+", "pn"), pn) < 1e-5
        # pn -> s equals pn -> w+ -> s; z -> pn equals z -> w -> pn
        assert torch.allclose(G.convert(pn, "pn", "s"), G.convert(G.convert(pn, "pn", "w+"), "w+", "s"), atol=1e-5)
        z = G.sample_latent(3, seed=4)
        assert torch.allclose(G.convert(z, "z", "pn"), G.convert(G.convert(z, "z", "w"), "w", "pn"), atol=1e-6)
        # rendering from any of the equivalent codes gives the same image
        img = G.synthesize(wp, "w+")
        assert rel(G.synthesize(G.convert(wp, "w+", "pn"), "pn"), img) < 1e-4
        assert rel(G.synthesize(G.convert(wp, "w+", "p"), "p"), img) < 1e-4


def test_pn_of_samples_is_whitened(G):
    st = G.p_stats()
    assert st.n == sp.P_FIT_SAMPLES
    with torch.no_grad():
        v = G.sample_latent(4000, "pn", seed=11)[:, 0]  # fresh draws, not the fit's
    cov = v.T @ v / v.shape[0]
    assert v.mean(0).abs().max() < 0.1
    assert (cov - torch.eye(16)).abs().max() < 0.1
    # fit's eigenvalues descending and positive, components orthonormal
    assert (st.scale[:-1] >= st.scale[1:]).all() and (st.scale > 0).all()
    assert torch.allclose(st.components.T @ st.components, torch.eye(16), atol=1e-5)


def test_pn_zero_renders_the_p_mean(G):
    assert torch.equal(G.mean_latent("pn"), torch.zeros(1, G.num_ws, 16))
    p_mean = G.mean_latent("p")
    assert torch.allclose(p_mean[0, 0], G.p_stats().mean)
    with torch.no_grad():
        assert torch.allclose(G.synthesize(torch.zeros(1, G.num_ws, 16), "pn"), G.synthesize(p_mean, "p"), atol=1e-5)
        assert torch.allclose(G.convert(p_mean, "p", "pn"), torch.zeros(1, G.num_ws, 16), atol=1e-5)


def test_conversion_rules(G):
    p = G.sample_latent(2, "p", seed=0)
    for src, dst in (("p", "w"), ("pn", "w"), ("p", "z"), ("s", "p"), ("w+", "w")):
        x = G.sample_latent(2, src, seed=0)
        with pytest.raises(LatentSpaceError, match="w\\+->s"):
            G.convert(x, src, dst)
    # truncation happens in W, also for p/pn sources
    with torch.no_grad():
        wp = G.convert(p, "p", "w+")
        want = truncate(wp, G.net.mapping.w_avg, 0.5, 2)
        got = G.convert(p, "p", "w+", truncation_psi=0.5, truncation_cutoff=2)
        assert torch.allclose(got, want, atol=1e-6)
        got_pn = G.convert(G.convert(p, "p", "pn"), "pn", "p", truncation_psi=0.5, truncation_cutoff=2)
        assert torch.allclose(got_pn, G.convert(want, "w+", "p"), atol=1e-5)


def test_pn_synthesis_is_differentiable(G):
    v = G.sample_latent(2, "pn", seed=0).requires_grad_(True)
    G.synthesize(v, "pn").square().mean().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_another_fit_never_redefines_pn(G):
    v = G.sample_latent(2, "pn", seed=1)
    before, image = G.p_stats(), G.convert(v, "pn", "w+")
    other = sp.p_stats(G, n=3000, seed=5)  # asking for another fit returns it ...
    assert other.n == 3000 and not torch.allclose(other.mean, before.mean)
    assert G.p_stats() is before and torch.equal(G.convert(v, "pn", "w+"), image)  # ... and pn means what it meant
    # the fit that defines pn is chosen when the generator is built, and recorded in its description
    G5 = StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0, pn_fit=sp.PFit(3000, 5))
    assert torch.equal(G5.p_stats().mean, other.mean) and G5.describe()["pn_fit"] == {"n": 3000, "seed": 5}


def test_stats_cache_memory_disk_and_corruption(G, tmp_path):
    st = sp.p_stats(G, n=3000, seed=5, disk=True)
    assert sp.p_stats(G, n=3000, seed=5) is st  # memory: the same tensors, nothing recomputed
    files = [f for f in (tmp_path / "home" / "stats").glob("p_pca-*.safetensors")
             if json.loads(safe_open(str(f), "pt").metadata()["info"])["n"] == 3000]
    assert len(files) == 1
    # another generator with the same weights reads the file
    G2 = StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0)
    calls = []
    orig = sp.fit_p_stats
    try:
        sp.fit_p_stats = lambda *a, **k: calls.append(1) or orig(*a, **k)
        st2 = sp.p_stats(G2, n=3000, seed=5, disk=True)
        assert not calls
        assert torch.equal(st2.components, st.components) and torch.equal(st2.mean, st.mean)
        # a corrupt file is ignored, recomputed (same values) and rewritten
        files[0].write_bytes(b"\x00garbage" * 10)
        G3 = StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0)
        st3 = sp.p_stats(G3, n=3000, seed=5, disk=True)
        assert calls == [1]
        assert torch.allclose(st3.components, st.components, atol=1e-6)
        G4 = StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0)
        sp.p_stats(G4, n=3000, seed=5, disk=True)
        assert calls == [1]  # the rewritten file is valid
    finally:
        sp.fit_p_stats = orig
    # tuning the mapping in place changes the weights' fingerprint: other statistics
    with torch.no_grad():
        G.net.mapping.fc2.bias.add_(1.0)
    assert not torch.allclose(sp.p_stats(G, n=3000, seed=5).mean, st.mean)


def test_conditional_generator_fits_with_labels():
    cfg = StyleGAN2Config(**{**TINY, "c_dim": 3, "embed_features": 8})
    G = StyleGAN2Generator(cfg, init_seed=1)
    st = sp.p_stats(G, n=2000)
    assert torch.isfinite(st.scale).all()
    w = G.sample_latent(4, "w", seed=0, c=torch.tensor([0, 1, 2, 0]))
    with torch.no_grad():
        assert rel(G.convert(G.convert(w, "w", "pn"), "pn", "w+"), w.unsqueeze(1).expand(-1, G.num_ws, -1)) < 1e-5


# ---- noise maps ----------------------------------------------------------------------------------


def test_noise_shapes_and_initial_noise(G):
    shapes = G.noise_shapes()
    assert list(shapes) == G.net.synthesis.noise_layer_names
    assert shapes["b4.conv1"] == (4, 4) and shapes["b16.conv1"] == (16, 16)
    a, b = G.initial_noise(3, seed=1), G.initial_noise(3, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["b16.conv1"], G.initial_noise(3, seed=2)["b16.conv1"])
    assert all(a[k].shape == (3, 1, *shapes[k]) for k in a)
    nonoise = StyleGAN2Generator(StyleGAN2Config(**{**TINY, "use_noise": False}), init_seed=0)
    assert nonoise.noise_shapes() == {} and nonoise.initial_noise(2, seed=0) == {}


def test_per_image_noise_with_gradients(G):
    with torch.no_grad():
        G.net.synthesis.b16.conv1.noise_strength.fill_(0.5)  # random init has zero strength
    w = G.sample_latent(1, "w", seed=0).expand(2, -1)
    noise = {k: v.requires_grad_(True) for k, v in G.initial_noise(2, seed=3).items()}
    img = G.synthesize(w, "w", noise=noise)
    assert not torch.allclose(img[0], img[1])  # same latent, different noise per image
    with torch.no_grad():
        single = G.synthesize(w[:1], "w", noise={k: v[1:] for k, v in noise.items()})
    assert torch.allclose(img[1:], single, atol=1e-5)
    img.square().sum().backward()
    assert noise["b16.conv1"].grad.abs().sum() > 0


def test_bad_noise_maps_raise(G):
    w = G.sample_latent(2, "w", seed=0)
    with pytest.raises(LatentSpaceError, match="b4.conv1"):
        G.synthesize(w, "w", noise={"b4.torgb": torch.zeros(4, 4)})
    with pytest.raises(LatentSpaceError, match="must have shape"):
        G.synthesize(w, "w", noise={"b8.conv0": torch.zeros(3, 1, 8, 8)})
    # a shared map may be [H, W] or [1, 1, H, W]: both mean that map for every image
    with torch.no_grad():
        shared = G.synthesize(w, "w", noise={"b8.conv0": torch.zeros(8, 8), "b8.conv1": torch.zeros(1, 1, 8, 8)})
        per_image = G.synthesize(w, "w", noise={"b8.conv0": torch.zeros(2, 1, 8, 8), "b8.conv1": torch.zeros(2, 1, 8, 8)})
    assert torch.equal(shared, per_image)
