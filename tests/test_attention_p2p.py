"""Prompt-to-Prompt on a tiny random UNet2DConditionModel: exact with equal prompts, source maps in the
edit branch on the swapped steps, and nothing changed outside the local-blend mask."""

import pytest
import torch

pytest.importorskip("diffusers")

from invertkit import invert  # noqa: E402
from invertkit.diffusion.attention import P2POptions, PromptToPrompt, attention_control, attention_edit  # noqa: E402
from invertkit.diffusion.attention.processor import Site  # noqa: E402
from invertkit.diffusion.attention.tokens import refine_mapper, replace_mapper  # noqa: E402
from invertkit.diffusion.generator import load_diffusers  # noqa: E402
from invertkit.errors import ConfigError  # noqa: E402

from .diffusers_factories import write_folder  # noqa: E402

WORDS = {"": ["", "", ""], "cat": ["a", "cat", ""], "dog": ["a", "dog", ""]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    G = load_diffusers(str(write_folder(tmp_path_factory.mktemp("p2p") / "m", "cond")))
    G.prompt_words = lambda prompt: WORDS["" if prompt is None else prompt]  # the tiny folder's prompts, as words
    return G


def images(n=2, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def controller(G, result, target, **kw):
    opts = P2POptions(**kw)
    s = result.setup
    return PromptToPrompt(opts, s.grid.steps, tuple(result.state.x_T.shape[-2:]), (3, 3),
                          G.prompt_words(s.options.prompt), G.prompt_words(target))


@pytest.mark.parametrize("method,options", [("ddim", {}), ("nulltext", {"inner_steps": 2}), ("ddpm-ef", {}), ("edict", {}), ("bdia", {}), ("renoise", {}),
                                            ("negprompt", {})])
def test_equal_prompts_reproduce_the_reconstruction(model, method, options):
    G = model
    res = invert(G, images(), method, prompt="cat", steps=6, guidance=3.0, dtype="float64", **options)
    c = controller(G, res, "cat", blend=(("cat",), ("cat",)))
    out = attention_edit(G, method, res.setup, res.state, c, target_prompt="cat")
    assert torch.allclose(out.source, res.reconstructions, atol=1e-6)
    assert torch.allclose(out.edited, out.source, atol=1e-10)  # same prompt: the edit branch is the source branch


class Recorder(PromptToPrompt):
    """Records the target rows' cross-attention as used, and the source rows', per step."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def attention(self, site: Site, cross: bool, probs):
        out = super().attention(site, cross, probs)
        if cross and self.layout is not None:
            for b0 in self.layout.conditional_blocks():
                n = self.layout.n
                self.seen.append((self.step, out[b0:b0 + n].clone(), out[b0 + n:b0 + 2 * n].clone()))
        return out


def test_word_swap_uses_the_source_maps_on_the_swapped_steps(model):
    G = model
    res = invert(G, images(), "direct", prompt="cat", steps=10, guidance=3.0)
    opts = P2POptions(cross_steps=0.5, self_steps=0.3)
    rec = Recorder(opts, 10, (8, 8), (3, 3), WORDS["cat"], WORDS["dog"])
    out = attention_edit(G, "direct", res.setup, res.state, rec, target_prompt="dog")
    early = [(s, t) for step, s, t in rec.seen if step < 5]
    late = [(s, t) for step, s, t in rec.seen if step >= 5]
    assert early and late
    assert all(torch.equal(s, t) for s, t in early)  # identity mapper: the target took the source's maps
    assert not all(torch.allclose(s, t, atol=1e-4) for s, t in late)  # afterwards its own
    assert torch.allclose(out.source, res.reconstructions, atol=1e-4)  # Direct Inversion's source branch stays exact
    assert not torch.allclose(out.edited, out.source, atol=1e-3)


def test_local_blend_keeps_the_rest_of_the_image(tmp_path):
    G = load_diffusers(str(write_folder(tmp_path / "m16", "cond16")))  # cross-attention at 8 x 8: maps with a shape
    G.prompt_words = lambda prompt: WORDS["" if prompt is None else prompt]
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    res = invert(G, x, "ddim", prompt="cat", steps=10, guidance=3.0)
    # a random network's word maps are nearly flat (max / min about 1.5), so the cut sits high to leave a region out
    c = controller(G, res, "dog", blend=(("cat",), ("dog",)), blend_threshold=0.93)
    out = attention_edit(G, "ddim", res.setup, res.state, c, target_prompt="dog")
    mask = c.mask
    assert mask is not None and mask.shape == (3, 1, 16, 16)
    assert 0 < float(mask.mean()) < 1  # a real region, not all or nothing
    outside = (1 - mask).expand_as(out.edited).bool()
    # pixel-space model: outside the mask the edit is the source branch, to float rounding
    assert float((out.edited - out.source)[outside].abs().max()) < 1e-5
    inside = mask.expand_as(out.edited).bool()
    assert float((out.edited - out.source)[inside].abs().max()) > 1e-3


def test_processors_are_restored_after_the_edit(model):
    G = model
    before = {k: type(v) for k, v in G.network.attn_processors.items()}
    res = invert(G, images(1), "ddim", prompt="cat", steps=3)
    c = controller(G, res, "dog")
    with pytest.raises(RuntimeError):
        with attention_control(G.network, c):
            raise RuntimeError("boom")
    attention_edit(G, "ddim", res.setup, res.state, c, target_prompt="dog")
    assert {k: type(v) for k, v in G.network.attn_processors.items()} == before


def test_mappers():
    assert torch.equal(replace_mapper(["a", "cat", ""], ["a", "dog", ""]), torch.eye(3))
    with pytest.raises(ConfigError, match="refine"):
        replace_mapper(["a", "cat"], ["a", "big", "cat"])
    index, alphas = refine_mapper(["a", "cat", "", ""], ["a", "big", "cat", ""])
    assert alphas.tolist() == [1, 0, 1, 1]
    assert index[0] == 0 and index[2] == 1 and index[3] in (2, 3)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="cross_steps"):
        P2POptions(cross_steps=1.5)
    with pytest.raises(ConfigError, match="not in the prompt"):
        PromptToPrompt(P2POptions(blend=(("cow",), ("dog",))), 5, (8, 8), (3, 3), WORDS["cat"], WORDS["dog"])
