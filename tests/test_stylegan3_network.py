"""StyleGAN3 network and generator: golden comparison with NVIDIA's own code, the input transform, spaces.

How the golden files were produced
----------------------------------
``benchmarks/stylegan3_reference.py`` (its docstring has the details) imported NVIDIA's stylegan3
repository (github.com/NVlabs/stylegan3, commit c233a919a6faee6e36a316ddd4eddababad1adf9) unmodified (only a
stub for its ``pkg_resources`` import, gone from recent setuptools, was added), built
``training.networks_stylegan3.Generator`` as ``train.py`` does for configs T (``t32``: 32 px, 6 layers,
rates 16 -> 32 so one layer upsamples by 4) and R (``r16``: 1x1 convolutions, radial filters) and for a
conditional greyscale network with every other option changed (``c16``), gave them seeded random weights,
pickled ``dict(G, D, G_ema, augment_pipe, training_set_kwargs)`` as ``training_loop.py`` does into
``tests/golden/stylegan3_<name>.pkl`` (real stylegan3 pickles: NVIDIA's persistence embedded the module
source) and saved the generator's outputs for fixed z (truncation 1; truncation psi / cutoff; a style-mixed
w+; the input transform set as ``gen_images.py --translate=0.125,-0.0625 --rotate=17`` does) into
``tests/golden/stylegan3_nvidia_outputs.safetensors``. On CPU NVIDIA's ops run their reference paths
(``_filtered_lrelu_ref`` ...); scipy designed the filters (torch 2.13, numpy 2.4, scipy 1.17).

Here the pickles are loaded with invertkit's restricted reader (nothing in them runs) and the images are
required to match to ``max|ours - ref| / max|ref| <= 1e-4`` (measured: below 1e-6 for all of them; the
script's ``--check`` also compared 64 px networks of NVIDIA's default geometry, 15 layers, T and R, live:
about 1e-6).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import invertkit
from invertkit.errors import CheckpointError, ConfigError, LatentSpaceError
from invertkit.generators.capabilities import LayerSplitting, NoiseMaps, StyleSpaces, Tunable, require
from invertkit.generators.checkpoints import read_stylegan3_pkl
from invertkit.generators.stylegan3 import StyleGAN3Config, StyleGAN3Generator, StyleGAN3Network, make_transform
from invertkit.generators.stylegan3.config import nvidia_layout
from invertkit.generators.stylegan3.network import design_lowpass_filter, filtered_lrelu, upfirdn2d, upsample_separable

GOLDEN = Path(__file__).parent / "golden"
OUTPUTS = GOLDEN / "stylegan3_nvidia_outputs.safetensors"
REL_TOL = 1e-4
NAMES = ("t32", "r16", "c16")


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    with safe_open(str(OUTPUTS), framework="pt") as f:
        meta = json.loads(f.metadata()["json"])
        return {k: f.get_tensor(k) for k in f.keys()}, meta


@pytest.fixture(scope="module")
def generators() -> dict[str, StyleGAN3Generator]:
    return {n: invertkit.load_generator(GOLDEN / f"stylegan3_{n}.pkl") for n in NAMES}  # type: ignore[misc]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max() / b.abs().max())


# ------------------------------------------------------------------------------------------------
# golden: NVIDIA's outputs from NVIDIA's pickles
# ------------------------------------------------------------------------------------------------


def test_golden_pickles_are_small_and_real() -> None:
    for n in NAMES:
        path = GOLDEN / f"stylegan3_{n}.pkl"
        assert path.stat().st_size < 300_000
        assert b"Alias-Free Generative Adversarial Networks" in path.read_bytes()  # NVIDIA's embedded module source


@pytest.mark.parametrize("name", NAMES)
def test_matches_nvidia(golden, generators, name: str) -> None:
    out, meta = golden
    G = generators[name]
    assert isinstance(G, StyleGAN3Generator)
    assert G.config.variant == {"t32": "T", "r16": "R", "c16": "custom"}[name]
    pre = f"{name}."
    z, c = out[pre + "z"], out.get(pre + "c")
    psi, cutoff = meta["configs"][name]["psi"]
    with torch.no_grad():
        assert rel(G.convert(z, "z", "w+", c=c), out[pre + "ws"]) <= REL_TOL
        assert rel(G.synthesize(z, "z", c=c), out[pre + "img"]) <= REL_TOL
        assert rel(G.synthesize(z, "z", c=c, truncation_psi=psi, truncation_cutoff=cutoff), out[pre + "img_psi"]) <= REL_TOL
        assert rel(G.synthesize(out[pre + "wmix"], "w+"), out[pre + "img_wmix"]) <= REL_TOL
        moved = G.with_transform(translate=meta["translate"], rotate_deg=meta["rotate"])
        assert torch.allclose(moved.input_transform, out[pre + "transform"], atol=1e-7)
        assert rel(moved.synthesize(z, "z", c=c), out[pre + "img_transform"]) <= REL_TOL
        # the same matrix given per call, once for the batch and once per image
        m = out[pre + "transform"]
        assert rel(G.synthesize(z, "z", c=c, transform=m), out[pre + "img_transform"]) <= REL_TOL
        assert rel(G.synthesize(z, "z", c=c, transform=m.expand(z.shape[0], 3, 3)), out[pre + "img_transform"]) <= REL_TOL
    assert not torch.equal(out[pre + "img"], out[pre + "img_transform"])  # the transform does change the images


def test_state_dict_is_nvidia_layout_and_order(generators) -> None:
    """Our module tree has NVIDIA's keys in NVIDIA's order (the pickle's own order, parameters before buffers)."""
    for name, G in generators.items():
        loaded = read_stylegan3_pkl(GOLDEN / f"stylegan3_{name}.pkl")
        assert list(G.net.state_dict()) == list(loaded.state_dict) == list(nvidia_layout(G.config))
        assert {k: tuple(v.shape) for k, v in loaded.state_dict.items()} == nvidia_layout(G.config)
        assert loaded.meta["network"] == "G_ema" and loaded.meta["code"].startswith("stylegan3")
        for k, v in loaded.state_dict.items():
            assert torch.equal(G.weights()[k], v), k


def test_filter_design_reproduces_nvidias_filters() -> None:
    """Without scipy, our filter design gives the up/down filters scipy designed for NVIDIA (separable Kaiser
    and radial jinc), so networks built without weights are NVIDIA's too."""
    for name in NAMES:
        loaded = read_stylegan3_pkl(GOLDEN / f"stylegan3_{name}.pkl")
        for s in loaded.config.layer_specs():
            for kind, taps, cutoff, half, radial in (("up_filter", s.up_taps, s.in_cutoff, s.in_half_width, False),
                                                     ("down_filter", s.down_taps, s.out_cutoff, s.out_half_width, s.down_radial)):
                f = design_lowpass_filter(taps, cutoff, half * 2, s.tmp_sampling_rate, radial=radial)
                key = f"synthesis.{s.name}.{kind}"
                if f is None:
                    assert key not in loaded.state_dict
                else:
                    ref = loaded.state_dict[key]
                    assert f.shape == ref.shape and float((f - ref).abs().max()) <= 1e-6 * float(ref.abs().max()), key
    assert design_lowpass_filter(1, 2.0, 1.0, 16.0) is None


def test_geometry_matches_nvidia_defaults() -> None:
    """Layer names (sizes, channels) of NVIDIA's default geometry, as its ``SynthesisNetwork`` builds them
    (printed from the authors' code at the golden commit)."""
    t = StyleGAN3Config(img_resolution=1024)
    assert [s.name for s in t.layer_specs()] == [
        "L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512", "L6_148_512", "L7_276_323",
        "L8_276_203", "L9_532_128", "L10_1044_81", "L11_1044_51", "L12_1044_32", "L13_1024_32", "L14_1024_3"]
    assert t.num_ws == 16 and t.variant == "T" and t.input_spec().size == 36
    assert [s.name for s in StyleGAN3Config(img_resolution=256).layer_specs()] == [
        "L0_36_512", "L1_36_512", "L2_36_512", "L3_52_512", "L4_52_512", "L5_84_512", "L6_84_512", "L7_148_512",
        "L8_148_512", "L9_148_362", "L10_276_256", "L11_276_181", "L12_276_128", "L13_256_128", "L14_256_3"]
    r = StyleGAN3Config(img_resolution=1024, conv_kernel=1, use_radial_filters=True, channel_base=65536, channel_max=1024)
    assert r.variant == "R" and [s.name for s in r.layer_specs()][7:10] == ["L7_276_645", "L8_276_406", "L9_532_256"]
    assert [s.down_filter_shape for s in r.layer_specs()][10:] == [(12, 12), (12, 12), (12,), (12,), None]


# ------------------------------------------------------------------------------------------------
# the input transform
# ------------------------------------------------------------------------------------------------


def test_make_transform_is_gen_images() -> None:
    m = make_transform((0.25, -0.5), 30.0)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    assert torch.allclose(m, torch.tensor([[c, s, 0.25], [-s, c, -0.5], [0, 0, 1]], dtype=torch.float64))
    with pytest.raises(ConfigError, match="finite"):
        make_transform((float("nan"), 0.0), 0.0)


def test_with_transform_shares_weights_and_leaves_the_original(generators) -> None:
    G = generators["t32"]
    z = G.sample_latent(2, seed=3)
    with torch.no_grad():
        base = G.synthesize(z, "z")
        same = G.with_transform().synthesize(z, "z")
        moved_gen = G.with_transform(translate=(0.25, 0.0), rotate_deg=-10.0)
        moved = moved_gen.synthesize(z, "z")
        again = G.synthesize(z, "z")
    assert torch.equal(base, same) and torch.equal(base, again)
    assert rel(moved, base) > 0.05
    assert moved_gen.net is G.net  # no copy of the weights
    assert torch.equal(G.input_transform, torch.eye(3))
    assert torch.equal(G.weights()["synthesis.input.transform"], torch.eye(3))
    assert not torch.equal(moved_gen.weights()["synthesis.input.transform"], torch.eye(3))
    assert moved_gen.fingerprint() != G.fingerprint() and G.with_transform().fingerprint() == G.fingerprint()
    assert moved_gen.describe()["input_transform"] == {"translate": [0.25, 0.0], "rotate_deg": -10.0}
    with pytest.raises(ConfigError, match=r"transform must be a \[3, 3\]"):
        G.synthesize(z, "z", transform=torch.eye(2))


def test_translation_by_whole_pixels_shifts_the_image() -> None:
    """Config T is translation-equivariant: moving the input by 4/32 of the width (a whole number of samples
    at every layer's sampling rate, 16 and 32) moves the 32 px output by exactly 4 pixels, to float rounding,
    away from the borders (the margin absorbs what enters there)."""
    cfg = StyleGAN3Config(z_dim=16, w_dim=16, img_resolution=32, channel_base=256, channel_max=8, num_layers=6)
    G = StyleGAN3Generator(cfg, init_seed=1)
    w = G.sample_latent(1, "w", seed=0)
    with torch.no_grad():
        a = G.synthesize(w, "w")
        b = G.with_transform(translate=(4 / 32, 0.0)).synthesize(w, "w")
    shifted, ref = b[..., 8:24, 12:24], a[..., 8:24, 8:20]  # +x moves content 4 px to the right
    assert rel(shifted, ref) < 1e-4
    assert rel(b[..., 8:24, 8:20], ref) > 0.1  # and it did move


# ------------------------------------------------------------------------------------------------
# ops
# ------------------------------------------------------------------------------------------------


def test_strided_decimation_equals_filter_then_subsample() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 20, 20, generator=g)
    for f in (torch.rand(6, generator=g), torch.rand(6, 6, generator=g)):
        full = upfirdn2d(x, f)[:, :, ::2, ::2]
        assert torch.allclose(upfirdn2d(x, f, down=2), full, atol=1e-6)
    # filtered_lrelu without filters and factors: bias, lrelu * gain, clamp
    b = torch.randn(3, generator=g)
    y = filtered_lrelu(x, None, None, b, gain=2.0, slope=0.2, clamp=1.5)
    assert torch.allclose(y, (torch.nn.functional.leaky_relu(x + b.view(1, 3, 1, 1), 0.2) * 2.0).clamp(-1.5, 1.5))


@pytest.mark.parametrize(("up", "taps", "pad"), [(2, 12, (9, 8, 9, 8)), (4, 24, (-6, -9, -6, -9)), (2, 12, (-3, -4, 30, 2)),
                                                 (2, 8, (40, -3, 0, 0))])
def test_polyphase_upsampling_equals_zero_insertion(up: int, taps: int, pad: tuple[int, int, int, int]) -> None:
    g = torch.Generator().manual_seed(up * taps)
    x, f = torch.randn(2, 3, 13, 11, generator=g), torch.rand(taps, generator=g)
    ref = upfirdn2d(x, f, up=up, padding=pad, gain=up**2)
    got = upsample_separable(x, f, up, pad, up**2)
    assert got.shape == ref.shape and rel(got, ref) < 1e-6


def test_batch_independent(generators) -> None:
    """Each image depends only on its own latent (styles are pre-normalised per sample)."""
    G = generators["t32"]
    w = G.sample_latent(3, "w+", seed=5)
    with torch.no_grad():
        batch = G.synthesize(w, "w+")
        single = torch.cat([G.synthesize(w[i:i + 1], "w+") for i in range(3)])
    assert rel(batch, single) < 1e-5


# ------------------------------------------------------------------------------------------------
# spaces and capabilities
# ------------------------------------------------------------------------------------------------


def test_spaces_and_conversions(generators) -> None:
    G = generators["t32"]
    assert G.spaces == ("z", "w", "w+", "s") and G.num_ws == 8 == G.config.num_layers + 2
    assert G.latent_shape("w+") == (8, 32) and G.latent_shape("s") == (sum(G.style_dims),)
    assert G.style_layer_names[0] == "input" and G.style_dims[0] == 4 and len(G.style_layer_names) == G.num_ws
    assert G.row_layers() == list(range(8))
    z = G.sample_latent(2, seed=1)
    with torch.no_grad():
        w = G.convert(z, "z", "w")
        wp = G.convert(w, "w", "w+")
        s = G.convert(wp, "w+", "s")
        img = G.synthesize(s, "s")
        assert torch.allclose(img, G.synthesize(z, "z"), atol=1e-6)
        # S is the affine outputs: the affines the capability reports reproduce it row by row
        for a, part in zip(G.style_affines(), G.split_styles(s)):
            assert torch.allclose(wp[:, a.row] @ a.weight.T + a.bias, part, atol=1e-5)
        assert torch.equal(G.join_styles(G.split_styles(s)), s)
        t = G.truncated(w, "w", 0.5)
        assert torch.allclose(t, G.mean_latent("w") + 0.5 * (w - G.mean_latent("w")), atol=1e-6)
        assert torch.allclose(G.mean_latent("w+")[0, 3], G.net.mapping.w_avg)
    with pytest.raises(LatentSpaceError, match="only downstream"):
        G.convert(wp, "w+", "w")
    with pytest.raises(LatentSpaceError, match="not available"):
        G.synthesize(wp, "p")
    with pytest.raises(ConfigError, match="unconditional"):
        G.convert(z, "z", "w", c=0)
    with pytest.raises(ConfigError, match="noise_mode"):
        G.synthesize(z, "z", noise_mode="loud")
    assert torch.equal(G.synthesize(z, "z", noise_mode="random"), G.synthesize(z, "z"))  # no noise inputs


def test_conditional_labels(generators) -> None:
    G = generators["c16"]
    z = G.sample_latent(3, seed=2)
    with pytest.raises(ConfigError, match="conditional"):
        G.convert(z, "z", "w")
    with torch.no_grad():
        a = G.synthesize(z, "z", c=torch.tensor([0, 1, 2]))
        b = G.synthesize(z, "z", c=torch.eye(3))
    assert torch.equal(a, b) and a.shape == (3, 1, 16, 16)


def test_capabilities(generators) -> None:
    G = generators["r16"]
    assert isinstance(G, StyleSpaces) and isinstance(G, Tunable)
    assert not isinstance(G, NoiseMaps) and not isinstance(G, LayerSplitting)
    assert G.tunable_module() is G.net.synthesis
    assert float(G.w_variance()) > 0
    anchors = G.style_anchors()
    assert [a.shape[0] for a in anchors] == G.style_dims and all(float(a.norm()) <= 1 + 1e-5 for a in anchors)
    from invertkit.errors import CapabilityError

    with pytest.raises(CapabilityError, match="StyleGAN3 checkpoints"):
        require(invertkit.wrap(torch.nn.Linear(4, 12), latent_shape=(4,), resolution=2, channels=3), StyleSpaces, "x")
    d = G.describe()
    json.dumps(d)
    assert d["variant"] == "R" and d["capabilities"] == ["StyleSpaces", "Tunable"]


def test_random_init_is_nvidia_layout() -> None:
    cfg = StyleGAN3Config(z_dim=8, w_dim=8, c_dim=2, img_resolution=16, channel_base=64, channel_max=4, num_layers=3,
                          conv_kernel=1, use_radial_filters=True)
    net = StyleGAN3Network(cfg)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == nvidia_layout(cfg)
    G = StyleGAN3Generator(cfg, init_seed=4)
    G2 = StyleGAN3Generator(cfg, init_seed=4)
    assert G.fingerprint() == G2.fingerprint()
    with pytest.raises(CheckpointError, match="do not match its config"):
        G.load_state_dict({k: v for k, v in G.weights().items() if "up_filter" not in k})
    bad = dict(G.weights())
    bad[f"synthesis.{G.style_layer_names[1]}.magnitude_ema"] = torch.tensor(0.0)
    with pytest.raises(CheckpointError, match="not positive"):
        G.load_state_dict(bad)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("img_resolution", 48, "power of two"),
    ("num_layers", "14", "integer"),
    ("num_critical", 4, "smaller than num_layers"),
    ("conv_kernel", 2.5, "integer"),
    ("use_radial_filters", "yes", "true or false"),
    ("first_cutoff", float("nan"), "finite positive"),
    ("channel_base", 4, "no channels"),
    ("first_cutoff", 9.0, "below half its sampling rate"),
    ("mapping_lr_multiplier", 1e9, "damaged"),
])
def test_config_checks(field: str, value: object, words: str) -> None:
    kw = dict(z_dim=8, w_dim=8, img_resolution=16, channel_base=64, channel_max=4, num_layers=4)
    kw[field] = value
    with pytest.raises(CheckpointError, match=words):
        StyleGAN3Config(**kw)
