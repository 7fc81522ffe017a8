"""Attention-value sharing (RF-Solver-Edit / FireFlow) on tiny random SD3 and FLUX transformers, and the
processors behind it: diffusers' attention reproduced, source values in the target rows on the shared
steps and blocks only, exact with equal prompts, the model left as it was."""

import pytest
import torch

pytest.importorskip("diffusers")

from invertkit import invert  # noqa: E402
from invertkit.diffusion.attention import AttentionHooks, ShareOptions, ValueSharing, attention_control, attention_edit  # noqa: E402
from invertkit.diffusion.generator import load_diffusers  # noqa: E402
from invertkit.errors import ConfigError  # noqa: E402

from .diffusers_factories import write_folder  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("share")
    return {kind: load_diffusers(str(write_folder(root / kind, kind)), resolution=16 if kind == "flux" else None)
            for kind in ("sd3x2", "flux", "cond", "unet")}


def images(n=2, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # latents 8 x 8


def state(G):
    nets = [G.network] + [net for net, _ in G._copies.values()]
    return [({n: type(m.processor) for n, m in net.named_modules() if hasattr(m, "processor")},
             sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())) for net in nets]


@pytest.mark.parametrize("kind", ["sd3x2", "flux", "cond", "unet"])
def test_processors_compute_diffusers_attention(models, kind):
    G = models[kind]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, *G._latent_shape, generator=g)
    t = torch.tensor([700.0, 200.0])
    cond = G.cond(None if kind == "unet" else "cat")
    run = G.denoiser(torch.float32)
    ref = run(x, t, cond)
    with attention_control(G.network, AttentionHooks()) as sites:
        ours = run(x, t, cond)
    assert sites
    assert torch.allclose(ours, ref, atol=1e-5)
    assert not torch.equal(ref, torch.zeros_like(ref))


@pytest.mark.parametrize("kind,method,guidance", [("flux", "flow-midpoint", 1.0), ("flux", "fireflow", 1.0),
                                                  ("sd3x2", "flow-euler", 2.0), ("sd3x2", "rf-inversion", 1.0)])
def test_equal_prompts_reproduce_the_reconstruction(models, kind, method, guidance):
    G = models[kind]
    res = invert(G, images(), method, prompt="cat", steps=4, guidance=guidance, dtype="float64")
    c = ValueSharing(ShareOptions(inject_steps=3))
    out = attention_edit(G, method, res.setup, res.state, c, target_prompt="cat")
    assert c.sites
    assert torch.allclose(out.source, res.reconstructions, atol=1e-6)
    assert torch.allclose(out.edited, out.source, atol=1e-6)


class Recorder(ValueSharing):
    """Records, per evaluation, site and block, the source and target rows of V as attention uses them."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen: list[tuple[int, str, slice, torch.Tensor, torch.Tensor]] = []

    def joint(self, site, q, k, v, image):
        q, k, v = super().joint(site, q, k, v, image)
        n = self.layout.n
        for b0 in range(0, v.shape[0], 2 * n):
            self.seen.append((self.step, site.name, image, v[b0:b0 + n].clone(), v[b0 + n:b0 + 2 * n].clone()))
        return q, k, v


def split(rec, shared_steps):
    on = [r for r in rec.seen if r[0] < shared_steps and r[1] in rec.sites]
    off = [r for r in rec.seen if not (r[0] < shared_steps and r[1] in rec.sites)]
    return on, off


def test_flux_shares_single_stream_values_on_the_first_steps(models):
    G = models["flux"]
    res = invert(G, images(), "flow-midpoint", prompt="cat", steps=6)
    rec = Recorder(ShareOptions(inject_steps=2))
    out = attention_edit(G, "flow-midpoint", res.setup, res.state, rec, target_prompt="dog")
    assert rec.sites == {"single_transformer_blocks.0.attn.processor"}  # the authors' later single blocks: int(20 * 1 / 38) = 0..
    on, off = split(rec, 2)
    assert len(on) == 2 * 2  # two steps, two evaluations each (midpoint), one block of rows
    assert all(torch.equal(s, t) for *_, s, t in on)  # prompt and image tokens, as the authors
    assert {name for _, name, *_ in off} == {"transformer_blocks.0.attn.processor", "single_transformer_blocks.0.attn.processor"}
    assert not any(torch.allclose(s, t, atol=1e-6) for *_, s, t in off)
    assert not torch.allclose(out.edited, out.source, atol=1e-4)


def test_flux_image_tokens_only(models):
    G = models["flux"]
    res = invert(G, images(1), "fireflow", prompt="cat", steps=4)
    rec = Recorder(ShareOptions(inject_steps=1, tokens="image"))
    attention_edit(G, "fireflow", res.setup, res.state, rec, target_prompt="dog")
    on, _ = split(rec, 1)
    assert on
    for *_, image, s, t in on:
        assert image.start == 3 and image.stop == s.shape[2]  # 3 prompt tokens, then 16 image tokens
        assert torch.equal(s[:, :, image], t[:, :, image])
        assert not torch.allclose(s[:, :, :3], t[:, :, :3], atol=1e-6)  # each branch's own prompt values


def test_sd3_shares_the_later_joint_blocks_in_both_guidance_blocks(models):
    G = models["sd3x2"]
    res = invert(G, images(), "flow-euler", prompt="cat", steps=5, guidance=2.0)
    rec = Recorder(ShareOptions(inject_steps=2))
    attention_edit(G, "flow-euler", res.setup, res.state, rec, target_prompt="dog")
    assert rec.sites == {"transformer_blocks.1.attn.processor"}  # int(20 * 2 / 38) = 1: the later of two
    on, off = split(rec, 2)
    assert len(on) == 2 * 2  # two steps, unconditional and conditional blocks
    assert all(torch.equal(s, t) for *_, s, t in on)
    late = [r for r in off if r[0] >= 1]  # step 0's unconditional block starts equal in both branches
    assert late and not any(torch.allclose(s, t, atol=1e-6) for *_, s, t in late)
    early_other = [r for r in off if r[0] == 0 and r[1] == "transformer_blocks.0.attn.processor"]
    assert len(early_other) == 2 and not torch.allclose(early_other[1][3], early_other[1][4], atol=1e-6)


def test_processors_restored_and_unknown_refused(models):
    G = models["flux"]
    before = state(G)
    res = invert(G, images(1), "flow-euler", prompt="cat", steps=2)
    with pytest.raises(RuntimeError, match="boom"):
        with attention_control(G.network, ValueSharing()):
            assert state(G)[0][1] == 2  # one prompt-length hook per FLUX attention block
            raise RuntimeError("boom")
    attention_edit(G, "flow-euler", res.setup, res.state, ValueSharing(), target_prompt="dog")
    assert state(G) == before and all(n == 0 for _, n in before)

    class Unknown:
        def __call__(self, attn, hidden_states, *a, **k):
            return hidden_states

    net = G.network
    keep = net.single_transformer_blocks[0].attn.processor
    net.single_transformer_blocks[0].attn.set_processor(Unknown())
    try:
        with pytest.raises(ConfigError, match="does not know FluxAttention with processor Unknown"):
            with attention_control(net, ValueSharing()):
                pass
        assert type(net.transformer_blocks[0].attn.processor).__name__ == "FluxAttnProcessor"  # nothing installed
    finally:
        net.single_transformer_blocks[0].attn.set_processor(keep)


def test_blocks_and_options_are_checked(models):
    with pytest.raises(ConfigError, match="0..1"):
        with attention_control(models["sd3x2"].network, ValueSharing(ShareOptions(first_block=2))):
            pass
    with pytest.raises(ConfigError, match="no transformer blocks"):
        with attention_control(models["cond"].network, ValueSharing()):
            pass
    assert all(n == 0 for _, n in state(models["cond"]))
    with pytest.raises(ConfigError, match="tokens"):
        ShareOptions(tokens="text")
    with pytest.raises(ConfigError, match="inject_steps"):
        ShareOptions(inject_steps=-1)


def test_prompt_to_prompt_refuses_joint_attention(models):
    from invertkit.diffusion.attention import P2POptions, PromptToPrompt

    with pytest.raises(ConfigError, match="ValueSharing"):
        with attention_control(models["flux"].network, PromptToPrompt(P2POptions(), 4, (8, 8), (3, 3), None, None)):
            pass
