"""StyleGAN2 network and generator: golden comparison with NVIDIA's reference, and space semantics.

How the golden values were produced
-----------------------------------
Reference: NVIDIA stylegan2-ada-pytorch (github.com/NVlabs/stylegan2-ada-pytorch), commit
d72cc7d041b42ec8e806021a205ed9349f87c6a4, imported unmodified from a scratch checkout outside this
repository (only a stub module for the unused ``requests`` import was added to ``sys.path``). On CPU
its ops run their pure-PyTorch reference paths (``_upfirdn2d_ref``, ``_bias_act_ref``, the
``conv2d_resample`` transposed-conv path). A throwaway script, run with torch 2.13 (CPU), did:

1. For each config in ``GOLDEN_CONFIGS`` build ``training.networks.Generator(z_dim, c_dim, w_dim,
   img_resolution, img_channels, mapping_kwargs=dict(num_layers, lr_multiplier, embed_features,
   layer_features), synthesis_kwargs=dict(channel_base, channel_max, conv_clamp, architecture,
   resample_filter, use_noise))``, ``.eval()``, record its ``state_dict()`` key order and shapes and
   its ``resample_filter`` buffer.
2. Overwrite every state_dict entry except ``resample_filter`` with ``seeded_weights`` below (the
   script imports that function from this file, so both sides use the same weights).
3. Draw ``z`` with ``torch.Generator().manual_seed(100 + k)`` (k = config index) and, for the
   conditional config, use one-hot labels; call ``G(z, c, truncation_psi, truncation_cutoff,
   noise_mode=..., force_fp32=True)`` for each entry of ``GOLDEN_RUNS`` (for ``random`` noise after
   ``torch.manual_seed(seed)``, which draws the same maps as our ``generator=torch.Generator().manual_seed(seed)``),
   and ``G.mapping(z, c)`` for the conditional config.
4. Save z, c, w and the output images (whole images, N=2) with the key/shape lists and the configs
   to ``tests/golden/stylegan2_nvidia.safetensors`` (safetensors metadata holds the JSON).

The tests rebuild the same weights, load them into ``StyleGAN2Generator`` and require
``max|ours - ref| / max|ref| <= 1e-4`` over each image batch (measured: 0 for the fused path, about
1e-6 for the non-fused path). A live comparison against the reference at 128 px with default
channel settings (channel_base 32768, channel_max 512, 8 mapping layers, z/w 512) gave the same.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from invertkit.errors import CheckpointError, ConfigError, LatentSpaceError
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator, StyleGAN2Network

GOLDEN_PATH = Path(__file__).parent / "golden" / "stylegan2_nvidia.safetensors"
REL_TOL = 1e-4

GOLDEN_CONFIGS: dict[str, dict] = {
    "skip16": dict(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=3, channel_base=256,
                   channel_max=32, conv_clamp=256),
    "cond16": dict(z_dim=16, w_dim=16, c_dim=3, img_resolution=16, mapping_layers=2, embed_features=8,
                   mapping_layer_features=24, channel_base=256, channel_max=32, conv_clamp=256),
    # conv_clamp=2 so the clamp actually bites on these random weights
    "resnet32": dict(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=512,
                     channel_max=32, conv_clamp=2, architecture="resnet"),
    "orig16gray": dict(z_dim=8, w_dim=12, img_resolution=16, img_channels=1, mapping_layers=1,
                       channel_base=128, channel_max=16, architecture="orig"),
    "nonoise8": dict(z_dim=16, w_dim=16, img_resolution=8, mapping_layers=2, channel_base=128,
                     channel_max=32, use_noise=False),
    # 8 taps: NVIDIA keeps the filter 1-D (separable); conv1 buffers keep the default [4, 4] filter
    "sep16": dict(z_dim=8, w_dim=8, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=16,
                  conv_clamp=256, resample_filter=(1, 2, 3, 4, 4, 3, 2, 1)),
}

# (config, run name, kwargs for NVIDIA's G(...) / our synthesize(...))
GOLDEN_RUNS: list[tuple[str, str, dict]] = [
    ("skip16", "const", dict(noise_mode="const")),
    ("skip16", "none", dict(noise_mode="none")),
    ("skip16", "psi07", dict(noise_mode="const", truncation_psi=0.7)),
    ("skip16", "random", dict(noise_mode="random", seed=1234)),
    ("cond16", "const_psi07_cut3", dict(noise_mode="const", truncation_psi=0.7, truncation_cutoff=3)),
    ("resnet32", "const", dict(noise_mode="const")),
    ("orig16gray", "none", dict(noise_mode="none")),
    ("orig16gray", "const", dict(noise_mode="const")),
    ("nonoise8", "const", dict(noise_mode="const")),
    ("sep16", "const", dict(noise_mode="const")),
]


def seeded_weights(shapes: dict[str, tuple[int, ...]], mapping_lr_multiplier: float, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic NVIDIA-named weights: key i (in sorted order) is drawn from
    ``torch.Generator().manual_seed(seed * 1000 + i)`` randn, scaled so every layer is active
    (raw mapping weights carry NVIDIA's ``1/lr_multiplier``; affine biases near 1; small biases;
    noise strengths ~0.3). ``resample_filter`` buffers are skipped (the model's own value is kept)."""
    out = {}
    lr = mapping_lr_multiplier
    for i, key in enumerate(sorted(shapes)):
        if key.endswith("resample_filter"):
            continue
        g = torch.Generator().manual_seed(seed * 1000 + i)
        r = torch.randn(shapes[key], generator=g)
        if key.startswith("mapping.fc"):
            r = r / lr if key.endswith("weight") else 0.1 * r / lr
        elif key == "mapping.w_avg":
            r = 0.5 * r
        elif key.endswith("affine.bias"):
            r = 1.0 + 0.2 * r
        elif key.endswith("noise_strength"):
            r = 0.3 * r
        elif key.endswith("bias"):
            r = 0.1 * r
        out[key] = r
    return out


def config_of(name: str) -> StyleGAN2Config:
    return StyleGAN2Config(**GOLDEN_CONFIGS[name])


def golden_generator(name: str) -> StyleGAN2Generator:
    cfg = config_of(name)
    net = StyleGAN2Network(cfg)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    sd = seeded_weights(shapes, cfg.mapping_lr_multiplier, seed=list(GOLDEN_CONFIGS).index(name))
    sd.update({k: v for k, v in net.state_dict().items() if k.endswith("resample_filter")})
    return StyleGAN2Generator(cfg, sd, name=f"golden-{name}")


@pytest.fixture(scope="module")
def golden():
    from safetensors import safe_open

    with safe_open(str(GOLDEN_PATH), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, json.loads(meta["layout"]), meta


@pytest.fixture(scope="module")
def gens():
    return {name: golden_generator(name) for name in GOLDEN_CONFIGS}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


# ---- agreement with NVIDIA ------------------------------------------------------------------------


def test_golden_metadata(golden):
    _, layout, meta = golden
    assert meta["reference_commit"] == "d72cc7d041b42ec8e806021a205ed9349f87c6a4"
    assert set(layout) == set(GOLDEN_CONFIGS)
    for name in GOLDEN_CONFIGS:  # the configs the golden values came from are the ones tested here
        assert json.loads(meta["configs"])[name] == config_of(name).to_dict()


@pytest.mark.parametrize("name", list(GOLDEN_CONFIGS))
def test_state_dict_layout_matches_nvidia(golden, name):
    _, layout, _ = golden
    ours = StyleGAN2Network(config_of(name)).state_dict()
    assert [[k, list(v.shape)] for k, v in ours.items()] == layout[name]  # same keys, order, shapes


def test_resample_filter_matches_nvidia(golden, gens):
    tensors, _, _ = golden
    ref = tensors["resample_filter"]
    sd = gens["resnet32"].state_dict()
    filters = [k for k in sd if k.endswith("resample_filter")]
    assert filters and all(torch.equal(sd[k], ref) for k in filters)


@pytest.mark.parametrize("fused", [True, False, None])
@pytest.mark.parametrize("cfg_name,run,kw", GOLDEN_RUNS, ids=[f"{c}-{r}" for c, r, _ in GOLDEN_RUNS])
def test_output_matches_nvidia(golden, gens, cfg_name, run, kw, fused):
    tensors, _, _ = golden
    G = gens[cfg_name]
    z = tensors[f"{cfg_name}/z"]
    c = tensors.get(f"{cfg_name}/c")
    ref = tensors[f"{cfg_name}/{run}"]
    kw = dict(kw)
    seed = kw.pop("seed", None)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    G.net.synthesis.fused_modconv = fused
    try:
        with torch.no_grad():
            out = G.synthesize(z, "z", c=c, generator=gen, **kw)
    finally:
        G.net.synthesis.fused_modconv = None
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert rel_err(out, ref) <= REL_TOL


def test_conditional_mapping_matches_nvidia(golden, gens):
    tensors, _, _ = golden
    G = gens["cond16"]
    with torch.no_grad():
        w = G.convert(tensors["cond16/z"], "z", "w", c=tensors["cond16/c"])
    assert rel_err(w, tensors["cond16/w"]) <= REL_TOL


def test_resnet_clamp_is_exercised(golden):
    # conv_clamp=2 must saturate somewhere, otherwise the golden run would not test clamping
    assert golden[0]["resnet32/const"].abs().max().item() == pytest.approx(2.0)


# ---- spaces ---------------------------------------------------------------------------------------


def test_style_layer_order():
    skip = StyleGAN2Generator(config_of("skip16"))
    assert skip.style_layer_names == ["b4.conv1", "b4.torgb", "b8.conv0", "b8.conv1", "b8.torgb",
                                      "b16.conv0", "b16.conv1", "b16.torgb"]
    assert skip.style_dims == [32, 32, 32, 32, 32, 32, 16, 16]
    orig = StyleGAN2Generator(config_of("orig16gray"))
    assert orig.style_layer_names == ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1", "b16.torgb"]
    assert orig.latent_shape("s") == (sum(orig.style_dims),)
    assert orig.latent_shape("w+") == (6, 12)


@pytest.mark.parametrize("name", ["skip16", "resnet32", "orig16gray"])
def test_s_space_path_equals_z_path(gens, name):
    G = gens[name]
    z = G.sample_latent(3, seed=5)
    with torch.no_grad():
        s = G.convert(z, "z", "s")
        assert s.shape == (3, sum(G.style_dims))
        parts = G.split_styles(s)
        assert [p.shape[1] for p in parts] == G.style_dims
        assert torch.equal(G.join_styles(parts), s)
        a = G.synthesize(s, "s")
        b = G.synthesize(z, "z")
        assert torch.equal(G.convert(G.convert(z, "z", "w"), "w", "s"), s)
        assert torch.equal(G.convert(G.convert(z, "z", "w+"), "w+", "s"), s)
    assert torch.allclose(a, b, rtol=0, atol=1e-6 * b.abs().max().item())


def test_wplus_with_equal_rows_equals_w(gens):
    G = gens["skip16"]
    w = G.sample_latent(2, "w", seed=3)
    wp = w.unsqueeze(1).repeat(1, G.num_ws, 1)
    with torch.no_grad():
        assert torch.equal(G.synthesize(wp, "w+"), G.synthesize(w, "w"))
        assert torch.equal(G.convert(w, "w", "w+"), wp)


def test_random_noise_is_seeded_and_differs_from_const(gens):
    G = gens["skip16"]
    w = G.sample_latent(2, "w", seed=0)
    with torch.no_grad():
        r1 = G.synthesize(w, "w", noise_mode="random", generator=torch.Generator().manual_seed(7))
        r2 = G.synthesize(w, "w", noise_mode="random", generator=torch.Generator().manual_seed(7))
        r3 = G.synthesize(w, "w", noise_mode="random", generator=torch.Generator().manual_seed(8))
        const = G.synthesize(w, "w", noise_mode="const")
        none = G.synthesize(w, "w", noise_mode="none")
    assert torch.equal(r1, r2)
    assert not torch.allclose(r1, r3)
    assert not torch.allclose(r1, const)
    assert not torch.allclose(const, none)


def test_noise_override(gens):
    G = gens["skip16"]
    w = G.sample_latent(1, "w", seed=0)
    syn = G.net.synthesis
    maps = {n: syn.layer(n).noise_const for n in syn.noise_layer_names}
    with torch.no_grad():
        assert torch.equal(G.synthesize(w, "w", noise_mode="none", noise=maps), G.synthesize(w, "w", noise_mode="const"))


def test_truncation(gens):
    G = gens["skip16"]
    z = G.sample_latent(4, seed=11)
    w_avg = G.mean_latent("w")
    with torch.no_grad():
        assert torch.allclose(G.convert(z, "z", "w", truncation_psi=0.0), w_avg.expand(4, -1), atol=1e-6)
        w = G.convert(z, "z", "w")
        assert torch.allclose(G.convert(z, "z", "w", truncation_psi=0.5), w_avg + 0.5 * (w - w_avg), atol=1e-6)
        wp = G.convert(z, "z", "w+", truncation_psi=0.0, truncation_cutoff=2)
        assert torch.allclose(wp[:, :2], w_avg.unsqueeze(1).expand(4, 2, -1), atol=1e-6)
        assert torch.equal(wp[:, 2:], w.unsqueeze(1).expand(4, G.num_ws - 2, -1))
        img0 = G.synthesize(z, "z", truncation_psi=0.0)
        assert torch.allclose(img0, G.synthesize(w_avg, "w").expand(4, -1, -1, -1), atol=1e-5)


def test_mean_latent_shapes(gens):
    G = gens["skip16"]
    for space in G.spaces:
        assert G.mean_latent(space).shape == (1, *G.latent_shape(space))
    assert torch.equal(G.mean_latent("z"), torch.zeros(1, 16))
    assert torch.equal(G.mean_latent("w")[0], G.net.mapping.w_avg)


def test_sample_latent_is_seeded(gens):
    G = gens["skip16"]
    assert torch.equal(G.sample_latent(3, seed=4), G.sample_latent(3, seed=4))
    assert not torch.equal(G.sample_latent(3, seed=4), G.sample_latent(3, seed=5))
    assert G.sample_latent(2, "w+", seed=1).shape == (2, G.num_ws, 16)


def test_conditional_label_handling(gens):
    G = gens["cond16"]
    z = G.sample_latent(3, seed=2)
    with pytest.raises(ConfigError, match="conditional"):
        G.convert(z, "z", "w")
    onehot = torch.eye(3)
    with torch.no_grad():
        w1 = G.convert(z, "z", "w", c=onehot)
        w2 = G.convert(z, "z", "w", c=torch.tensor([0, 1, 2]))
        assert torch.equal(w1, w2)
        w = G.sample_latent(3, "w", seed=2, c=onehot)
        assert torch.equal(w, w1)
        assert G.synthesize(w, "w").shape == (3, 3, 16, 16)  # w-space synthesis needs no label
    with pytest.raises(ConfigError, match=r"label c must have shape \[3, 3\] \(or \[1, 3\]\), got \[3, 4\]"):
        G.convert(z, "z", "w", c=torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="unconditional"):
        gens["skip16"].convert(gens["skip16"].sample_latent(1, seed=0), "z", "w", c=onehot[:1])


def test_bad_spaces_and_shapes_raise(gens):
    G = gens["skip16"]
    with pytest.raises(LatentSpaceError, match="choose one of"):
        G.sample_latent(1, "q")
    with pytest.raises(LatentSpaceError, match="w\\+->s"):
        G.convert(G.sample_latent(1, "w", seed=0), "w", "z")
    with pytest.raises(LatentSpaceError, match=r"'w\+' .* must have shape \[N, 6, 16\], got \[2, 3, 16\]"):
        G.convert(torch.zeros(2, 3, 16), "w+", "s")
    with pytest.raises(LatentSpaceError, match=r"'z' .* must have shape \[N, 16\], got \[2, 17\]"):
        G.synthesize(torch.zeros(2, 17), "z")
    with pytest.raises(LatentSpaceError, match=r"'s' .* must have shape \[N, 224\], got \[2, 5\]"):
        G.synthesize(torch.zeros(2, 5), "s")
    with pytest.raises(LatentSpaceError, match="join_styles needs 8 tensors"):
        G.join_styles([torch.zeros(1, 3)])
    with pytest.raises(ConfigError, match="noise_mode must be one of random, const, none, got 'fresh'"):
        G.synthesize(torch.zeros(1, 16), "z", noise_mode="fresh")
    # a single latent without batch dimension is accepted
    assert G.synthesize(torch.zeros(16), "w").shape == (1, 3, 16, 16)


def test_strict_loading_names_bad_keys():
    cfg = config_of("skip16")
    sd = StyleGAN2Network(cfg).state_dict()
    broken = dict(sd)
    del broken["synthesis.b8.conv0.weight"]
    broken["synthesis.b32.conv0.weight"] = torch.zeros(1)
    broken["mapping.fc0.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as info:
        StyleGAN2Generator(cfg, broken)
    msg = str(info.value)
    assert "synthesis.b8.conv0.weight" in msg and "synthesis.b32.conv0.weight" in msg and "mapping.fc0.weight" in msg
    nan = dict(sd)
    nan["synthesis.b4.const"] = torch.full_like(sd["synthesis.b4.const"], float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        StyleGAN2Generator(cfg, nan)


def test_random_init_is_deterministic_and_differentiable():
    cfg = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=4, mapping_layers=2, channel_base=64, channel_max=16)
    a, b = StyleGAN2Generator(cfg), StyleGAN2Generator(cfg)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert a.style_layer_names == ["b4.conv1", "b4.torgb"] and a.num_ws == 2
    w = a.mean_latent("w+").clone().requires_grad_(True)
    img = a.synthesize(w, "w+")
    assert img.shape == (1, 3, 4, 4) and torch.isfinite(img).all()
    img.square().mean().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    assert math.isfinite(float(a.mean_latent("s").sum()))
