"""StyleGAN2's CPU fast paths compute NVIDIA's maths: values *and gradients* equal to the plain forms.

The golden tests (``test_stylegan2_network.py``) pin the forward output of every path against
NVIDIA's reference; inversion also relies on the backward pass, which they do not see. Here the
few-pass epilogue (hand-written backward), the matrix-product demodulation, the batched-matmul ToRGB,
channels-last activations and the cached channels-last weights are each checked against the plain
composition, including gradients w.r.t. the latent, the noise maps and (for tuning) the weights.
The fused form (``fused_modconv=True``, the one CUDA uses by default) runs here on CPU as the reference.
"""

from __future__ import annotations

import pytest
import torch

from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.generators.stylegan2.epilogue import demod_bias_act, demod_bias_act_reference
from invertkit.generators.stylegan2.network import _modulated_1x1, demod_coefficients, modulated_conv2d

from .test_stylegan2_network import golden_generator


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    err = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
    assert err <= tol, err


@pytest.mark.parametrize("noise_shape", [None, (2, 1, 6, 6), (6, 6)])
@pytest.mark.parametrize("clamp", [None, 0.6])
@pytest.mark.parametrize("channels_last", [False, True])
def test_epilogue_matches_reference_values_and_gradients(noise_shape, clamp, channels_last):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 5, 6, 6, generator=g, dtype=torch.float64)
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    d = torch.rand(2, 5, generator=g, dtype=torch.float64) + 0.5
    noise = None if noise_shape is None else 0.3 * torch.randn(noise_shape, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(5, generator=g, dtype=torch.float64)
    grad_out = torch.randn(2, 5, 6, 6, generator=g, dtype=torch.float64)
    results = []
    for fn in (demod_bias_act, demod_bias_act_reference):
        leaves = [t.detach().clone().requires_grad_(True) for t in (y, d, b)]
        nz = None if noise is None else noise.detach().clone().requires_grad_(True)
        out = fn(leaves[0], leaves[1], nz, leaves[2], gain=2**0.5, clamp=clamp)
        grads = torch.autograd.grad(out, leaves + ([nz] if nz is not None else []), grad_out)
        results.append((out, grads))
    (out, grads), (ref, ref_grads) = results
    if clamp is not None:  # the clamp bites, or this would not test it
        assert (ref.abs() == clamp).any() and (ref.abs() < clamp).any()
    _close(out, ref, 1e-12)
    for a, r in zip(grads, ref_grads):
        assert a.shape == r.shape
        _close(a, r, 1e-12)


def test_demod_coefficients_equal_nvidia_form():
    g = torch.Generator().manual_seed(1)
    w, s = torch.randn(7, 5, 3, 3, generator=g), torch.randn(3, 5, generator=g)
    nvidia = ((w.unsqueeze(0) * s.reshape(3, 1, 5, 1, 1)).square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    _close(demod_coefficients(w, s), nvidia, 1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_torgb_matmul_equals_modulated_conv(channels_last):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 8, 5, 5, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, s = torch.randn(3, 8, 1, 1, generator=g), torch.randn(2, 8, generator=g)
    _close(_modulated_1x1(x, w, s), modulated_conv2d(x, w, s, demodulate=False, fused=True), 1e-6)


PATHS = {"fused (CUDA default)": dict(fused_modconv=True, channels_last=False),
         "non-fused NCHW": dict(fused_modconv=False, channels_last=False),
         "non-fused channels-last (CPU default)": dict(fused_modconv=None, channels_last=None)}


def _value_and_grads(G: StyleGAN2Generator, ws: torch.Tensor, noise: dict[str, torch.Tensor], path: dict):
    syn = G.net.synthesis
    syn.fused_modconv, syn.channels_last = path["fused_modconv"], path["channels_last"]
    try:
        ws = ws.detach().clone().requires_grad_(True)
        maps = {k: v.detach().clone().requires_grad_(True) for k, v in noise.items()}
        img = G.synthesize(ws, "w+", noise_mode="none", noise=maps)
        loss = (img * torch.linspace(-1, 1, img.numel()).reshape(img.shape)).sum()
        grads = torch.autograd.grad(loss, [ws, *maps.values()])
    finally:
        syn.fused_modconv, syn.channels_last = None, None
    return img.detach(), grads


@pytest.mark.parametrize("name", ["resnet32", "skip16", "orig16gray"])
def test_all_paths_give_the_same_image_and_gradients(name):
    # resnet32 has conv_clamp=2, so clamped units (zero gradient) are part of the comparison
    G = golden_generator(name)
    ws = G.convert(G.sample_latent(2, "z", seed=3), "z", "w+")
    syn = G.net.synthesis
    noise = {n: torch.randn(2, 1, syn.layer(n).resolution, syn.layer(n).resolution,
                            generator=torch.Generator().manual_seed(i)) for i, n in enumerate(syn.noise_layer_names)}
    results = {k: _value_and_grads(G, ws, noise, p) for k, p in PATHS.items()}
    ref_img, ref_grads = results["fused (CUDA default)"]
    for key, (img, grads) in results.items():
        _close(img, ref_img, 1e-5)
        for a, r in zip(grads, ref_grads):
            _close(a, r, 1e-4)


def test_batch_one_uses_the_same_path_as_batches():
    # each image's output and gradient does not depend on what else is in the batch
    G = golden_generator("skip16")
    ws = G.sample_latent(3, "w+", seed=4).requires_grad_(True)
    G.synthesize(ws, "w+").square().sum().backward()
    one = ws[1:2].detach().clone().requires_grad_(True)
    G.synthesize(one, "w+").square().sum().backward()
    _close(one.grad, ws.grad[1:2], 1e-5)


def test_cached_channels_last_weights_follow_weight_changes():
    G = golden_generator("skip16")
    w = G.sample_latent(2, "w", seed=5)
    with torch.inference_mode():  # the cache is first built here; autograd must still be able to use it
        before = G.synthesize(w, "w")
    x = w.clone().requires_grad_(True)
    G.synthesize(x, "w").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    sd = {k: v.clone() for k, v in G.net.state_dict().items()}
    sd["synthesis.b16.conv1.weight"] = sd["synthesis.b16.conv1.weight"] * -1.5
    G.net.load_state_dict(sd)  # in place: same storage, new version
    with torch.no_grad():
        after = G.synthesize(w, "w")
        G.net.synthesis.channels_last = False  # no cache on this path
        plain = G.synthesize(w, "w")
    G.net.synthesis.channels_last = None
    assert not torch.allclose(after, before)
    _close(after, plain, 1e-5)


def test_tuned_weights_get_gradients_on_the_channels_last_path():
    # PTI-style tuning: weights that require grad must not be served from the detached cache
    cfg = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1, channel_base=64, channel_max=8)
    G = StyleGAN2Generator(cfg)
    w = G.sample_latent(2, "w", seed=6)
    with torch.no_grad():
        G.synthesize(w, "w")  # fills the cache
    layer = G.net.synthesis.b8.conv1
    layer.weight.requires_grad_(True)
    try:
        G.synthesize(w, "w").square().sum().backward()
        grads = {}
        for cl in (None, False):
            layer.weight.grad = None
            G.net.synthesis.channels_last = cl
            G.synthesize(w, "w").square().sum().backward()
            grads[cl] = layer.weight.grad.clone()
    finally:
        layer.weight.requires_grad_(False)
        G.net.synthesis.channels_last = None
    assert grads[None].abs().sum() > 0
    _close(grads[None], grads[False], 1e-5)


def _fresh_compile_state(monkeypatch):
    from invertkit.generators.stylegan2 import epilogue

    monkeypatch.setattr(epilogue._Compiled, "fn", None)
    monkeypatch.setattr(epilogue._Compiled, "failed", False)
    return epilogue


def test_compile_switch_falls_back_to_eager_when_compiling_fails(monkeypatch):
    epilogue = _fresh_compile_state(monkeypatch)

    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    G = golden_generator("resnet32")
    ws = G.sample_latent(2, "w+", seed=7)
    expected = G.synthesize(ws, "w+")
    monkeypatch.setenv(epilogue.COMPILE_ENV, "1")
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = G.synthesize(ws, "w+")
    assert torch.equal(got, expected)
    G.synthesize(ws, "w+")  # tried once per process: no second warning, no second attempt
    assert epilogue._Compiled.failed


@pytest.mark.slow
def test_compile_switch_gives_the_same_values_and_gradients(monkeypatch):
    # real inductor compilation: tens of seconds
    epilogue = _fresh_compile_state(monkeypatch)
    G = golden_generator("resnet32")
    ws = G.convert(G.sample_latent(2, "z", seed=3), "z", "w+")
    eager = _value_and_grads(G, ws, {}, PATHS["non-fused channels-last (CPU default)"])
    monkeypatch.setenv(epilogue.COMPILE_ENV, "1")
    compiled = _value_and_grads(G, ws, {}, PATHS["non-fused channels-last (CPU default)"])
    assert epilogue._Compiled.fn is not None
    _close(compiled[0], eager[0], 1e-5)
    for a, r in zip(compiled[1], eager[1]):
        _close(a, r, 1e-4)


def test_generator_whose_weights_are_inference_tensors_renders():
    # e.g. a tuned copy whose weights were written under inference_mode: no version counter to cache on
    G = golden_generator("skip16")
    w = G.sample_latent(2, "w", seed=8)
    with torch.no_grad():
        expected = G.synthesize(w, "w")
    with torch.inference_mode():
        sd = {k: v.clone() for k, v in G.net.state_dict().items()}
        T = StyleGAN2Generator(G.config, sd)
        got = T.synthesize(w, "w")
    _close(got, expected, 1e-6)
