"""PGGAN network: golden comparison with the authors' code (facebookresearch/pytorch_GAN_zoo), and
the generator's protocol, split and tuning behaviour.

How the golden values were produced: ``benchmarks/pggan_reference.py AUTHORS`` (AUTHORS a checkout of
pytorch_GAN_zoo, commit b75dee40918caabb4fe7ec561522717bf096a8cb, outside this repository; torch 2.13,
CPU, one thread) builds the
authors' ``ProgressiveGAN`` at 16 px (latent 16, depthScale0 32, scales [32, 16]) with seeded weights
and non-zero biases, runs their forward for variants (average generator, alpha 0.5 fade-in, final
tanh, no equalised lr, leaky ReLU 0.1), and saves a tiny 8 px ``ProgressiveGAN(lossMode="DCGAN")``
with the authors' own ``save()`` to ``tests/golden/pggan_authors_tiny.pth`` (their BaseConfig
pickle, netG, netD, avgG), with its netG and avgG outputs. Measured error: 0 (bit-identical).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from invertkit.errors import CheckpointError
from invertkit.generators import load_generator
from invertkit.generators.capabilities import LayerSplitting, Tunable
from invertkit.generators.pggan import PGGANConfig, PGGANGenerator, PGGANNetwork, load_pggan

from .pggan_factories import TINY, random_state

GOLDEN = Path(__file__).parent / "golden" / "pggan_reference.safetensors"
AUTHORS_FILE = Path(__file__).parent / "golden" / "pggan_authors_tiny.pth"
REL_TOL = 1e-4


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    with safe_open(str(GOLDEN), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        variants = json.loads(f.metadata()["variants"])
    return tensors, variants


@pytest.mark.parametrize("variant", ["avg", "alpha05", "tanh", "noeq", "leak01"])
def test_matches_authors_gnet(golden: tuple[dict, dict], variant: str) -> None:
    tensors, variants = golden
    spec = dict(variants[variant])
    prefix = spec.pop("weights") + "."
    sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    G = PGGANGenerator(PGGANConfig(**spec), sd)
    with torch.no_grad():
        out = G.synthesize(tensors["z"], "z")
    ref = tensors[f"out.{variant}"]
    assert out.shape == ref.shape == (4, 3, 16, 16)
    assert rel_err(out, ref) <= REL_TOL


@pytest.mark.parametrize("which", ["avgG", "netG"])
def test_authors_saved_file_matches(golden: tuple[dict, dict], which: str) -> None:
    tensors, _ = golden
    G = load_pggan(AUTHORS_FILE, which=which)
    assert (G.resolution, G.channels, G.latent_shape("z")) == (8, 3, (8,))
    assert G.config.generation_activation == "tanh"  # lossMode DCGAN in the authors' config
    with torch.no_grad():
        out = G.synthesize(tensors["tiny.z"], "z")
    assert rel_err(out, tensors[f"tiny.out.{which[:3]}"]) <= REL_TOL


def test_load_generator_takes_the_average_generator(golden: tuple[dict, dict]) -> None:
    tensors, _ = golden
    G = load_generator(AUTHORS_FILE)
    assert isinstance(G, PGGANGenerator) and G.meta["generator"] == "avgG"
    with torch.no_grad():
        assert rel_err(G.synthesize(tensors["tiny.z"], "z"), tensors["tiny.out.avg"]) <= REL_TOL
    assert G.describe()["config"]["depths"] == [8, 8]


def tiny_generator(**over: object) -> PGGANGenerator:
    cfg = PGGANConfig(**{**TINY, **over})
    return PGGANGenerator(cfg, random_state(cfg, 3), name="tiny")


def test_protocol_basics() -> None:
    G = tiny_generator()
    assert G.spaces == ("z",) and G.resolution == 16 and G.channels == 3
    z = G.sample_latent(2, seed=7)
    assert z.shape == (2, 8) and torch.equal(z, G.sample_latent(2, seed=7))
    assert torch.equal(G.mean_latent("z"), torch.zeros(1, 8))
    img = G.synthesize(z, "z")
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    # z is pixel-normalised first: its scale does not matter (what the authors' network does)
    assert torch.allclose(G.synthesize(3.0 * z, "z"), img, atol=1e-5)
    # the weights keep the authors' names: a file's netG loads unchanged, deltas name them
    assert set(G.weights()) == set(G.config.layout())


def test_tanh_output_is_in_range_and_raw_output_is_not_clamped() -> None:
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    assert tiny_generator(generation_activation="tanh").synthesize(z, "z").abs().max() < 1
    assert tiny_generator().synthesize(z, "z").abs().max() > 1  # random weights: raw WGANGP output exceeds 1


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_layer_split_recomposes_the_forward(alpha: float) -> None:
    G = tiny_generator(alpha=alpha)
    assert isinstance(G, LayerSplitting)
    z = G.sample_latent(2, seed=1)
    full = G.synthesize(z, "z")
    layers = G.split_layers()
    assert layers == [str(k) for k in range(1, 5 if alpha else 6)]
    for layer in layers:
        split = G.layer_split(layer)
        (state,) = split.head(z, "z")
        assert torch.allclose(split.tail((state,), None), full, atol=1e-6)


def test_alpha_zero_and_fade_in_differ_only_by_the_blend() -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg, 4)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    net0 = PGGANNetwork(cfg).load(dict(sd))
    net1 = PGGANNetwork(PGGANConfig(**{**TINY, "alpha": 1.0})).load(dict(sd))
    # alpha 1: the upsampled RGB of the previous scale only
    up = torch.nn.functional.interpolate
    feats = net0.as_sequence()[:-2](z)  # features of the 8 px scale
    low = up(net0.toRGBLayers[-2](feats), scale_factor=2, mode="nearest")
    assert torch.allclose(net1(z), low, atol=1e-6)
    assert not torch.allclose(net0(z), low, atol=1e-3)


def test_tunable_copy_is_independent() -> None:
    from invertkit.generators.tuning import tunable_copy, weight_delta

    G = tiny_generator()
    assert isinstance(G, Tunable)
    tuned, params = tunable_copy(G)
    z = G.sample_latent(1, seed=0)
    before = G.synthesize(z, "z")
    with torch.no_grad():
        for p in params:
            p.add_(0.01)
    assert torch.equal(G.synthesize(z, "z"), before)
    assert not torch.allclose(tuned.synthesize(z, "z"), before)
    # the tuned copy's split shares the tuned weights
    split = tuned.layer_split("3")
    assert torch.allclose(split.tail(split.head(z, "z"), None), tuned.synthesize(z, "z"), atol=1e-6)
    assert set(weight_delta(G, tuned)) == set(G.config.layout())


def test_weights_that_do_not_fit_are_one_line() -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg)
    del sd["toRGBLayers.1.module.bias"]
    with pytest.raises(CheckpointError, match="missing toRGBLayers.1.module.bias"):
        PGGANGenerator(cfg, sd)


def test_deepcopy_and_device_move_keep_stages_shared() -> None:
    G = tiny_generator()
    H = copy.deepcopy(G).to("cpu")
    assert H.module.formatLayer is H.layer_sequence()[1].layer
    assert H.module.formatLayer is not G.module.formatLayer
