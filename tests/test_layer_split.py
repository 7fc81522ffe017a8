"""Layerwise split: head + tail reproduces synthesize at every split point, gradients reach the state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invertkit
from invertkit.errors import LatentSpaceError
from invertkit.generators import wrap
from invertkit.generators.architectures import DCGANGenerator
from invertkit.generators.capabilities import LayerSplitting, require
from invertkit.generators.layers import LayerSplit
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

TINY = dict(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=512, channel_max=32)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module", params=["skip", "orig", "resnet"])
def G(request):
    cfg = StyleGAN2Config(**{**TINY, "architecture": request.param})
    g = StyleGAN2Generator(cfg, init_seed=0, name=f"tiny-{request.param}")
    with torch.no_grad():  # random init has zero noise strength; make noise matter
        for name in g.net.synthesis.noise_layer_names:
            g.net.synthesis.layer(name).noise_strength.fill_(0.3)
    return g


def test_stylegan2_split_names(G):
    assert G.split_layers() == ["4", "8", "16"]
    with pytest.raises(LatentSpaceError, match="valid layers: 4, 8, 16"):
        G.layer_split("32")
    with pytest.raises(LatentSpaceError, match="unknown split layer 'b8'"):
        G.layer_split("b8")


def test_stylegan2_head_tail_equals_synthesize(G):
    wp = G.sample_latent(2, "w+", seed=0) + 0.2 * torch.randn(2, G.num_ws, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = G.synthesize(wp, "w+")
        for layer in G.split_layers():
            split = G.layer_split(layer)
            assert isinstance(split, LayerSplit) and split.tail_space == "w+" and split.name == layer
            x, img = split.head(wp, "w+")
            r = int(layer)
            assert x.shape[-2:] == (r, r)
            assert (img is None) == (G.config.architecture != "skip")
            if img is not None:
                assert img.shape == (2, 3, r, r)
            assert rel(split.tail((x, img), wp), ref) < 1e-5, layer
            # other head spaces
            s = G.convert(wp, "w+", "s")
            xs, _ = split.head(s, "s")
            assert torch.allclose(xs, x, atol=1e-5)
            # noise overrides and modes pass through
            noise = G.initial_noise(2, seed=4)
            got = split.tail(split.head(wp, "w+", noise=noise), wp, noise=noise)
            assert rel(got, G.synthesize(wp, "w+", noise=noise)) < 1e-5
            got = split.tail(split.head(wp, "w+", noise_mode="none"), wp, noise_mode="none")
            assert rel(got, G.synthesize(wp, "w+", noise_mode="none")) < 1e-5


def test_stylegan2_tail_reads_only_rows_after_the_split(G):
    wp = G.sample_latent(2, "w+", seed=0)
    syn = G.net.synthesis
    for layer in G.split_layers():
        split = G.layer_split(layer)
        with torch.no_grad():
            state = split.head(wp, "w+")
            tail_rows = {i for n, i in zip(syn.layer_names, syn.layer_w_index) if int(n.split(".")[0][1:]) > int(layer)}
            other = wp.clone()
            for i in range(G.num_ws):
                if i not in tail_rows:
                    other[:, i] += 5.0
            assert torch.equal(split.tail(state, wp), split.tail(state, other))


def test_stylegan2_gradients_reach_state_and_tail_latent(G):
    split = G.layer_split("8")
    wp = G.sample_latent(1, "w+", seed=0)
    with torch.no_grad():
        x, img = split.head(wp, "w+")
    x = x.clone().requires_grad_(True)
    img = img.clone().requires_grad_(True) if img is not None else None
    tail_w = wp.clone().requires_grad_(True)
    split.tail((x, img), tail_w).square().mean().backward()
    assert x.grad.abs().sum() > 0 and tail_w.grad.abs().sum() > 0
    if img is not None:
        assert img.grad.abs().sum() > 0
    # and through the head to the latent
    wp2 = wp.clone().requires_grad_(True)
    split.tail(split.head(wp2, "w+"), wp2.detach()).square().mean().backward()
    assert wp2.grad.abs().sum() > 0


def test_mlp_split(tiny_mlp):
    names = tiny_mlp.split_layers()
    assert names == [str(k) for k in range(1, len(tiny_mlp.module))]
    z = tiny_mlp.sample_latent(3, seed=0)
    with torch.no_grad():
        ref = tiny_mlp.synthesize(z, "z")
    for layer in names:
        split = require(tiny_mlp, LayerSplitting, "test").layer_split(layer)
        assert split.tail_space is None
        (h,) = split.head(z, "z")
        assert torch.allclose(split.tail((h,), None), ref, atol=1e-6)
        h = h.detach().requires_grad_(True)
        split.tail((h,), None).sum().backward()
        assert h.grad is not None and h.grad.abs().sum() > 0
    assert tiny_mlp.layer_split(2).name == "2"  # an int index works too
    with pytest.raises(LatentSpaceError, match="valid layers: 1, 2"):
        tiny_mlp.layer_split("0")


def test_dcgan_split():
    torch.manual_seed(0)
    net = DCGANGenerator(nz=8, ngf=4, nc=1)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    G = wrap(net, 8, 64, 1, name="tiny-dcgan")
    seq = net.as_sequence()
    assert len(seq) == len(net.main) + 1 and seq[1] is net.main[0]  # shares the layers
    assert G.split_layers() == [str(k) for k in range(1, len(seq))]
    z = G.sample_latent(2, seed=0)
    with torch.no_grad():
        ref = G.synthesize(z, "z")
        assert G.layer_split("1").head(z, "z")[0].shape == (2, 8, 1, 1)  # after the reshape
        for layer in G.split_layers():
            split = G.layer_split(layer)
            assert torch.allclose(split.tail(split.head(z, "z"), None), ref, atol=1e-6), layer
    for layer in G.split_layers():  # cuts before an in-place ReLU ("3", "6", ...) included
        split = G.layer_split(layer)
        (h,) = split.head(z, "z")
        h = h.detach().requires_grad_(True)
        kept = h.detach().clone()
        split.tail((h,), None).square().sum().backward()
        assert h.grad.abs().sum() > 0 and torch.equal(h.detach(), kept), layer  # the state is not overwritten
    r = invertkit.invert(G, ref, "optimize", space="f:3", steps=3, restarts=1)
    assert r.space == "f:3" and torch.isfinite(r.reconstructions).all()


def test_non_sequential_module_cannot_be_split():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 16)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(z))

    G = wrap(Net(), 4, 4, 1)
    assert not isinstance(G, LayerSplitting)  # a module without a sequential form has no split layers
    with pytest.raises(LatentSpaceError, match=r"layerwise inversion \(f:1\) needs a network that can be cut.*Net \(SimpleGenerator\) has none; generators that have it: ") as info:
        require(G, LayerSplitting, "layerwise inversion (f:1)")
    assert "StyleGAN2 checkpoints" in str(info.value) and "as_sequence()" in str(info.value)
    with pytest.raises(LatentSpaceError, match="needs a network that can be cut"):
        invertkit.invert(G, torch.zeros(1, 1, 4, 4), "optimize", space="f:1", steps=1)
