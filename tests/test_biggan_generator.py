"""BigGAN generator: spaces z and zc, truncation, classes, sampling, statistics levels, PTI tuning."""

from __future__ import annotations

import math

import pytest
import torch

from invertkit.errors import CheckpointError, ConfigError, LatentSpaceError
from invertkit.generators.base import Generator
from invertkit.generators.biggan import BigGANConfig, BigGANGenerator, load_biggan, save_biggan
from invertkit.generators.biggan.network import BigGANNetwork, stats_at
from invertkit.generators.biggan.sampling import truncated_normal
from invertkit.generators.capabilities import Tunable, capabilities_of
from invertkit.generators.tuning import tunable_copy, weight_delta

from .biggan_factories import TINY, tiny_config, tiny_generator


@pytest.fixture(scope="module")
def G() -> BigGANGenerator:
    return tiny_generator()


def test_spaces_shapes_and_capabilities(G):
    assert isinstance(G, Generator) and isinstance(G, Tunable)
    assert G.spaces == ("z", "zc") and G.latent_shape("z") == (16,) and G.latent_shape("zc") == (32,)
    assert (G.resolution, G.channels) == (32, 3) and capabilities_of(G) == ["Tunable"]
    d = G.describe()
    assert d["num_classes"] == 10 and d["truncation"] == 0.4 and d["config"]["layers"][0] == [True, 16, 8]
    with pytest.raises(LatentSpaceError, match="'w'"):
        G.latent_shape("w")


def test_truncated_normal_law_and_seed():
    x = truncated_normal((200_000,), generator=torch.Generator().manual_seed(0))
    assert float(x.abs().max()) <= 2.0
    # truncnorm(-2, 2): mean 0, std sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))) = 0.8796
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    std = math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2)))
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - std) < 0.005
    y = truncated_normal((200_000,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


def test_sample_latent_truncation_and_class(G):
    z = G.sample_latent(4, "z", seed=3)
    assert torch.equal(z, G.sample_latent(4, "z", seed=3)) and not torch.equal(z, G.sample_latent(4, "z", seed=4))
    assert float(z.abs().max()) <= 2 * 0.4 + 1e-6
    zc = G.sample_latent(4, "zc", seed=3, class_index=7)
    assert torch.equal(zc[:, :16], z) and torch.equal(zc[:, 16:], G.net.embeddings.weight[:, 7].expand(4, -1))
    assert G.nearest_class(zc).tolist() == [7] * 4


def test_z_and_zc_render_the_same(G):
    z = G.sample_latent(2, "z", seed=1)
    a = G.synthesize(z, "z", class_index=3)
    b = G.synthesize(G.convert(z, "z", "zc", class_index=3), "zc")
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b) and float(a.abs().max()) <= 1
    assert not torch.equal(a, G.synthesize(z, "z", class_index=4))  # the class matters
    with pytest.raises(LatentSpaceError, match="dropped"):
        G.convert(G.convert(z, "z", "zc"), "zc", "z")


def test_class_index_and_truncation_settings():
    G = tiny_generator()
    z = G.sample_latent(1, "z", seed=0)
    G.class_index = 5
    assert torch.equal(G.synthesize(z), G.synthesize(z, class_index=5))
    assert torch.equal(G.mean_latent("zc")[:, 16:], G.class_embedding(5))
    low = G.synthesize(z)
    G.truncation = 0.9  # other batch-norm statistics
    assert not torch.equal(low, G.synthesize(z)) and torch.equal(low, G.synthesize(z, truncation=0.4))
    for bad in (0.0, 1.5, -0.1, float("nan"), "x"):
        with pytest.raises(ConfigError, match=r"\(0, 1\]"):
            G.truncation = bad
    for bad in (10, -1, 2.5, True):
        with pytest.raises(ConfigError, match="class_index"):
            G.class_index = bad


def test_stats_interpolation_is_the_packages():
    """``frac, k = modf(t / step)``; ``frac * stats[k] + (1 - frac) * stats[k + 1]`` (weights opposite to linear)."""
    means = torch.arange(51.0)[:, None].expand(51, 2)  # row k holds k
    for t in (0.4, 0.415, 0.58, 0.73, 1.0):
        frac, k = math.modf(t / (1.0 / 50))
        want = k if frac == 0 else k * frac + (k + 1) * (1 - frac)
        m, v = stats_at(means, 2 * means, t)
        assert torch.allclose(m, torch.full((2,), want)) and torch.allclose(v, torch.full((2,), 2 * want)), t
    m, _ = stats_at(means, means, 0.415)  # 0.415 * 50 = 20.75: 0.75 * row 20 + 0.25 * row 21
    assert torch.allclose(m, torch.full((2,), 20.25))


def test_plain_layers_equal_spectral_ones(tmp_path):
    """A layer stored already normalised (``weight``) renders as its spectral-norm form."""
    G = tiny_generator()
    sd = G.state_dict()
    plain = {"generator.gen_z", "generator.layers.2.snconv1x1_g", "generator.layers.0.bn_1.scale"}
    for p in plain:
        w = G.net.get_submodule(p).effective_weight().detach().clone()
        for s in ("weight_orig", "weight_u", "weight_v"):
            sd.pop(f"{p}.{s}")
        sd[f"{p}.weight"] = w
    folder = save_biggan(G, tmp_path / "m")
    torch.save(sd, folder / "pytorch_model.bin")
    H = load_biggan(folder)
    z = G.sample_latent(2, "z", seed=5)
    assert (H.synthesize(z) - G.synthesize(z)).abs().max() < 1e-5


def test_bin_file_with_prefixed_config(tmp_path):
    G = tiny_generator()
    folder = save_biggan(G, tmp_path / "dl")
    (folder / "pytorch_model.bin").rename(folder / "biggan-deep-tiny-pytorch_model.bin")
    (folder / "config.json").rename(folder / "biggan-deep-tiny-config.json")
    from invertkit.generators.loading import load_generator

    H = load_generator(str(folder / "biggan-deep-tiny-pytorch_model.bin"))
    assert isinstance(H, BigGANGenerator) and H.fingerprint() == G.fingerprint()


def test_config_round_trip_and_checks():
    cfg = tiny_config()
    assert BigGANConfig.from_dict(cfg.to_dict()) == cfg
    assert BigGANConfig().output_dim == 128 and len(BigGANConfig().layers) == 10  # the package's defaults
    assert cfg.attention_resolution == 16 and cfg.condition_dim == 32
    with torch.device("meta"):
        net = BigGANNetwork(BigGANConfig())  # the released 128 px architecture
    n = sum(p.numel() for p in net.parameters())
    assert 50_000_000 < n < 60_000_000  # BigGAN-deep 128: about 56 M parameters (weights + embeddings)
    for change, word in [({"output_dim": 64}, "produce 32 px"), ({"class_embed_dim": 8}, "class_embed_dim"),
                         ({"layers": [[True, 8, 4]]}, "receives 16"), ({"layers": [[True, 16, 4]]}, "half"),
                         ({"channel_width": 2}, "channel_width 2"), ({"n_stats": 1}, "n_stats"),
                         ({"eps": 0}, "eps"), ({"layers": [[1, 16, 8]]}, "up_sample")]:
        with pytest.raises(CheckpointError, match=word):
            BigGANConfig.from_dict({**TINY, **change})


def test_pti_tunes_the_synthesis_only(G):
    tuned, params = tunable_copy(G)
    assert len(params) == len(list(G.net.generator.parameters()))
    z = G.sample_latent(1, "zc", seed=2)
    tuned.synthesize(z, "zc").square().mean().backward()
    with torch.no_grad():  # one plain gradient step (an optimiser's first import costs seconds)
        for p in params:
            p -= 0.1 * p.grad
    delta = weight_delta(G, tuned)
    assert delta and all(k.startswith("generator.") for k in delta)
    assert not any(k.endswith(("weight_u", "weight_v", "running_means")) for k in delta)
    assert not any(p.requires_grad for p in G.net.parameters())
