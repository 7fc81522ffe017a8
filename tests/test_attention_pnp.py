"""Plug-and-play injection on tiny random UNets (UNet2DConditionModel with prompts, UNet2DModel with class
labels): exact with equal prompts, the source's features and self-attention q/k in the target rows on the
injected steps only, and the model left as it was."""

import pytest
import torch

pytest.importorskip("diffusers")

from invertkit import invert  # noqa: E402
from invertkit.diffusion.attention import PlugAndPlay, PnPOptions, attention_control, attention_edit  # noqa: E402
from invertkit.diffusion.generator import load_diffusers  # noqa: E402
from invertkit.errors import ConfigError  # noqa: E402

from .diffusers_factories import write_folder  # noqa: E402

EARLY = "up_blocks.0.resnets.1"  # the tiny UNets' decoder attention sits in up block 0 (the authors' layer has none after it)


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return load_diffusers(str(write_folder(tmp_path_factory.mktemp("pnp") / "m", "cond16")))


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    return load_diffusers(str(write_folder(tmp_path_factory.mktemp("pnp") / "c", "classes")))


def images(n=2, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def state(G):
    """Attention processors and module hooks of every network copy ``G`` holds."""
    nets = [G.network] + [net for net, _ in G._copies.values()]
    return [({n: type(m.processor) for n, m in net.named_modules() if hasattr(m, "processor")},
             sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())) for net in nets]


@pytest.mark.parametrize("method", ["ddim", "ddpm-ef"])
@pytest.mark.parametrize("layer", ["up_blocks.1.resnets.1", EARLY])
def test_equal_prompts_reproduce_the_reconstruction(cond, method, layer):
    res = invert(cond, images(), method, prompt="cat", steps=5, guidance=3.0, dtype="float64")
    c = PlugAndPlay(PnPOptions(feature_layer=layer), 5)
    out = attention_edit(cond, method, res.setup, res.state, c, target_prompt="cat")
    assert torch.allclose(out.source, res.reconstructions, atol=1e-6)
    assert torch.allclose(out.edited, out.source, atol=1e-6)
    assert bool(c.attention_layers) == (layer == EARLY)


class Recorder(PlugAndPlay):
    """Records, per call and block, the source rows and the target rows as the network goes on with them."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.features: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.qk: list[tuple[int, str, torch.Tensor, torch.Tensor]] = []

    def _pairs(self, t):
        n = self.layout.n
        return [(t[b0:b0 + n].clone(), t[b0 + n:b0 + 2 * n].clone()) for b0 in range(0, t.shape[0], 2 * n)]

    def feature(self, name, output):
        out = super().feature(name, output)
        if self.layout is not None:
            self.features += [(self.step, s, t) for s, t in self._pairs(out)]
        return out

    def qkv(self, site, cross, q, k, v):
        q, k, v = super().qkv(site, cross, q, k, v)
        if self.layout is not None and not cross and site.name in self.attention_layers:
            self.qk += [(self.step, site.name, torch.cat([sq, sk]), torch.cat([tq, tk]))
                        for (sq, tq), (sk, tk) in zip(self._pairs(q), self._pairs(k))]
        return q, k, v


def check(rec, until_f, until_a):
    early = [(s, t) for step, s, t in rec.features if step < until_f]
    late = [(s, t) for step, s, t in rec.features if step >= until_f]
    assert early and late
    assert all(torch.equal(s, t) for s, t in early)  # both blocks of a guided call, as pnp-diffusers
    assert not any(torch.allclose(s, t, atol=1e-6) for s, t in late)
    early = [(s, t) for step, _, s, t in rec.qk if step < until_a]
    late = [(s, t) for step, _, s, t in rec.qk if step >= until_a]
    assert early and late
    assert all(torch.equal(s, t) for s, t in early)
    assert not any(torch.allclose(s, t, atol=1e-6) for s, t in late)


def test_prompt_edit_injects_on_the_first_steps_only(cond):
    res = invert(cond, images(), "ddim", prompt="cat", steps=10, guidance=3.0)
    rec = Recorder(PnPOptions(feature_steps=0.6, attention_steps=0.3, feature_layer=EARLY), 10)
    out = attention_edit(cond, "ddim", res.setup, res.state, rec, target_prompt="dog")
    assert rec.attention_layers == {"up_blocks.0.attentions.1.transformer_blocks.0.attn1.processor"}
    assert len(rec.features) == 2 * 10  # two blocks (unconditional, conditional) per step
    check(rec, 6, 3)
    assert torch.allclose(out.source, res.reconstructions, atol=1e-4)
    assert not torch.allclose(out.edited, out.source, atol=1e-3)


def test_conditional_block_only(cond):
    res = invert(cond, images(1), "ddim", prompt="cat", steps=4, guidance=3.0)
    rec = Recorder(PnPOptions(feature_layer=EARLY, unconditional=False), 4)
    attention_edit(cond, "ddim", res.setup, res.state, rec, target_prompt="dog")
    first = [(s, t) for step, s, t in rec.features if step == 1]  # step 0: both blocks start equal
    assert len(first) == 2 and not torch.allclose(*first[0], atol=1e-6) and torch.equal(*first[1])


def test_class_conditional_unet2d(classes):
    G = classes
    x = images(2, 8)
    res = invert(G, x, "ddim", prompt="0", negative="2", steps=6, guidance=2.0, dtype="float64")
    same = attention_edit(G, "ddim", res.setup, res.state, PlugAndPlay(PnPOptions(feature_layer=EARLY), 6), target_prompt="0")
    assert torch.allclose(same.edited, same.source, atol=1e-6)
    rec = Recorder(PnPOptions(feature_steps=0.5, attention_steps=0.5, feature_layer=EARLY), 6)
    attention_edit(G, "ddim", res.setup, res.state, rec, target_prompt="1")
    assert rec.attention_layers == {"up_blocks.0.attentions.1.processor"}
    check(rec, 3, 3)


def test_hooks_and_processors_are_removed(cond):
    before = state(cond)
    res = invert(cond, images(1), "ddim", prompt="cat", steps=3)
    c = PlugAndPlay(PnPOptions(feature_layer=EARLY), 3)
    with pytest.raises(RuntimeError, match="boom"):
        with attention_control(cond.network, c):
            assert state(cond)[0][1] == 1  # the feature hook is on while the block runs
            raise RuntimeError("boom")
    attention_edit(cond, "ddim", res.setup, res.state, c, target_prompt="dog")
    assert state(cond) == before
    assert all(n == 0 for _, n in before)


def test_unknown_layer_and_options(cond):
    with pytest.raises(ConfigError, match="up_blocks.0.resnets.0"):  # the message lists the decoder's blocks
        with attention_control(cond.network, PlugAndPlay(PnPOptions(feature_layer="up_blocks.7.resnets.0"), 5)):
            pass
    assert state(cond)[0][1] == 0
    with pytest.raises(ConfigError, match="feature_steps"):
        PnPOptions(feature_steps=1.5)
    with pytest.raises(ConfigError, match="ResNet"):
        PnPOptions(feature_layer="mid_block.resnets.0")
