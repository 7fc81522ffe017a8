"""NSCD (LSAP): anchors, the differentiable loss, the metric, and Proposition 1."""

from __future__ import annotations

import pytest
import torch

from invertkit.errors import LatentSpaceError
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.generators.stylegan2 import nscd as anchors_mod
from invertkit.generators.stylegan2.nscd import nscd_layer_indices, nscd_layer_names, style_anchors
from invertkit.metrics.nscd import nscd, nscd_of_samples
from invertkit.objectives.nscd import NSCDLoss, nscd_loss

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))


def make(arch: str = "skip", **kw) -> StyleGAN2Generator:
    return StyleGAN2Generator(StyleGAN2Config(**{**TINY, "architecture": arch, **kw}), init_seed=0, name=f"tiny-{arch}")


@pytest.fixture(scope="module")
def G():
    import os
    import tempfile

    old = os.environ.get("INVERTKIT_HOME")
    os.environ["INVERTKIT_HOME"] = tempfile.mkdtemp()
    try:
        g = StyleGAN2Generator(StyleGAN2Config(**TINY), init_seed=0, name="tiny-skip")
        style_anchors(g)  # default n = 10^4 (fast for this mapping), cached for the module
        yield g
    finally:
        if old is None:
            os.environ.pop("INVERTKIT_HOME", None)
        else:
            os.environ["INVERTKIT_HOME"] = old


@pytest.mark.parametrize("arch", ["skip", "orig", "resnet"])
def test_layer_set(arch):
    G = make(arch)
    names = nscd_layer_names(G)
    convs = [n for n in G.style_layer_names if not n.endswith("torgb")]
    assert len(names) == len(convs) + 1 == G.num_ws
    assert names == convs + [G.style_layer_names[-1]] and names[-1] == "b16.torgb"
    assert [G.style_layer_names[i] for i in nscd_layer_indices(G)] == names


def test_anchors_definition_and_cache(G):
    a = style_anchors(G)
    assert len(a) == len(G.style_layer_names)
    assert [t.shape[0] for t in a] == G.style_dims
    assert all(0 < float(t.norm()) <= 1 + 1e-6 for t in a)  # mean of unit vectors, not re-normalised
    assert style_anchors(G) is a  # memory cache
    # the definition, recomputed directly from the same draws
    w = torch.cat(list(anchors_mod._sp.mapped_w_batches(G, 10_000, 0 + anchors_mod._ANCHOR_SEED_OFFSET)))
    for k, name in enumerate(G.style_layer_names[:3]):
        with torch.no_grad():
            s = G.net.synthesis.layer(name).affine(w)
        want = (s / s.norm(dim=1, keepdim=True)).mean(0)
        assert torch.allclose(a[k], want, atol=1e-5)


def test_anchors_disk_cache(tmp_path):
    G = make()
    a = style_anchors(G, n=500, seed=3, disk=True)
    files = list((tmp_path / "home" / "stats").glob("nscd_anchors-*.safetensors"))
    assert len(files) == 1
    G2 = make()
    calls = []
    orig = anchors_mod._compute
    try:
        anchors_mod._compute = lambda *x: calls.append(1) or orig(*x)
        b = style_anchors(G2, n=500, seed=3, disk=True)
        assert not calls and all(torch.equal(x, y) for x, y in zip(a, b))
        files[0].write_bytes(b"not a safetensors file")
        G3 = make()
        c = style_anchors(G3, n=500, seed=3, disk=True)
        assert calls == [1] and all(torch.allclose(x, y) for x, y in zip(a, c))
    finally:
        anchors_mod._compute = orig


def test_samples_score_low_random_codes_high(G):
    base = nscd_of_samples(G, n=500, seed=1)
    g = torch.Generator().manual_seed(5)
    random_s = torch.randn(300, sum(G.style_dims), generator=g)
    random_rows = 3.0 * torch.randn(300, G.num_ws, 16, generator=g)  # independent N(0, 9 I) rows
    rs, rw = float(nscd(G, random_s, "s").mean()), float(nscd(G, random_rows, "w+").mean())
    assert base < 0.5 * rs and base < 0.5 * rw
    assert abs(rs - 1.0) < 0.1  # random directions: cos ~ 0
    assert abs(float(nscd(G, G.sample_latent(500, "w", seed=1), "w").mean()) - base) < 1e-6


def test_same_value_in_every_space(G):
    w = G.sample_latent(4, "w", seed=2)
    ref = nscd(G, w, "w")
    for space in ("w+", "s", "p", "pn"):
        x = G.convert(w, "w", space)
        assert torch.allclose(nscd(G, x, space), ref, atol=1e-5), space
    z = G.sample_latent(4, "z", seed=2)
    assert torch.allclose(nscd(G, z, "z"), ref, atol=1e-6)


def test_scale_invariance_and_proposition_1(G):
    s = G.sample_latent(3, "s", seed=4)
    styles = G.split_styles(s)
    ref_nscd = nscd(G, s, "s")
    with torch.no_grad():
        ref_img = G.synthesize(s, "s")
    for k, name in enumerate(G.style_layer_names):
        scaled = list(styles)
        scaled[k] = scaled[k] * 3.7
        s2 = G.join_styles(scaled)
        assert torch.allclose(nscd(G, s2, "s"), ref_nscd, atol=1e-6), name
        if not name.endswith("torgb"):  # demodulated: the image ignores the style's scale
            with torch.no_grad():
                img = G.synthesize(s2, "s")
            assert float((img - ref_img).abs().max() / ref_img.abs().max()) < 1e-4, name


def test_gradient_descent_lowers_nscd(G):
    g = torch.Generator().manual_seed(9)
    x = (3.0 * torch.randn(2, G.num_ws, 16, generator=g)).requires_grad_(True)
    start = nscd(G, x.detach(), "w+")
    loss_fn = NSCDLoss(G)
    for _ in range(60):  # normalised gradient steps (torch.optim's first step costs seconds of imports)
        loss = loss_fn(x, "w+")
        assert loss.shape == (2,)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            x -= 0.5 * grad / grad.norm(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    end = nscd(G, x.detach(), "w+")
    assert (end < 0.5 * start).all()


def test_loss_matches_metric_and_metric_has_no_grad(G):
    x = G.sample_latent(3, "pn", seed=6).requires_grad_(True)
    loss = nscd_loss(G, x, "pn")
    assert loss.requires_grad
    m = nscd(G, x, "pn")
    assert not m.requires_grad and torch.allclose(loss.detach(), m, atol=1e-6)
    # anchors can be pinned (e.g. to those of an original generator while it is being tuned)
    pinned = [t.clone() for t in style_anchors(G)]
    assert torch.allclose(nscd_loss(G, x, "pn", anchors=pinned), loss)


def test_nscd_needs_a_style_generator(tiny_mlp):
    with pytest.raises(LatentSpaceError, match="style space"):
        nscd(tiny_mlp, torch.zeros(1, 8), "z")


def test_statistics_first_built_under_inference_mode_work_with_autograd():
    G = make()
    with torch.inference_mode():
        nscd(G, G.sample_latent(2, "pn", seed=0), "pn")  # fits P stats and anchors in inference mode
    x = G.sample_latent(2, "pn", seed=1).requires_grad_(True)
    nscd_loss(G, x, "pn").sum().backward()
    assert x.grad.abs().sum() > 0
