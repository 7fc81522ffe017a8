"""Methods for guided sampling (null-text, negative-prompt, Direct Inversion) and RF-Inversion through
``invertkit.invert``, on tiny diffusers models and on the shipped faces model."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

import invertkit
from invertkit.errors import ConfigError
from invertkit.methods.diffusion import regenerate

from .diffusers_factories import write_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    return {kind: invertkit.load_generator(f"diffusers:{write_folder(root / kind, kind)}") for kind in ("unet", "cond", "sd3")}


def _images(G, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, G.channels, G.resolution, G.resolution, generator=g) * 1.6 - 0.8


def _mean(result, key):
    return sum(m[key] for m in result.metrics) / len(result.metrics)


def test_direct_inversion_is_exact_at_guidance_7_5(models):
    G = models["cond"]
    result = invertkit.invert(G, _images(G), "direct", steps=10, prompt="cat", dtype="float64")
    assert result.config["guidance"] == 7.5
    assert max(m["roundtrip_error"] for m in result.metrics) < 1e-10
    assert result.timings.evaluations[0] == 10 + 2 * 10  # the pivot, then one guided evaluation per step


def test_negative_prompt_reconstructs_like_unguided_ddim(models):
    G = models["cond"]
    images = _images(G)
    neg = invertkit.invert(G, images, "negprompt", steps=8, prompt="cat")
    ddim = invertkit.invert(G, images, "ddim", steps=8, prompt="cat", guidance=1.0)
    assert torch.equal(neg.latents, ddim.latents)
    assert torch.allclose(neg.reconstructions, ddim.reconstructions, atol=1e-5)
    assert neg.nfe_reconstruct[0] == 16  # guided sampling: two branches per step
    edited = regenerate(G, neg, prompt="dog")
    assert (edited - neg.reconstructions).abs().mean() > 1e-3


def test_null_text_beats_ddim_at_guidance_7_5_on_a_tiny_model(models):
    G = models["cond"]
    images = _images(G)
    ddim = invertkit.invert(G, images, "ddim", steps=10, prompt="cat", guidance=7.5)
    null = invertkit.invert(G, images, "nulltext", steps=10, prompt="cat")
    assert _mean(null, "psnr") > _mean(ddim, "psnr")  # (a random network: the trained one is tested below)
    assert null.timings.evaluations[0] > ddim.timings.evaluations[0]  # the optimisation's evaluations are counted
    assert len(null.state.tensors["uncond"]) == 10


@pytest.mark.parametrize("schedule", ["paper", "invertkit"])
def test_null_text_image_alone_or_in_a_batch(models, schedule):
    """One image inverted alone and as the middle of a batch of 3 gets the same nulls (float64). At this
    threshold images 1 and 2 stop at the first step and image 0 does not: a batch-mean loss would stop
    them all (the bug this pins: 1.28 apart, 37.00 vs 36.66 dB on the bench's photos)."""
    G = models["cond"]
    images = _images(G, 3)
    kw = {"steps": 6, "prompt": "cat", "guidance": 1.5, "early_stop": 0.03, "dtype": "float64", "schedule": schedule}
    batch = invertkit.invert(G, images, "nulltext", **kw)
    for n in (0, 1):
        alone = invertkit.invert(G, images[n : n + 1], "nulltext", **kw)
        nulls = zip(batch.state.tensors["uncond"], alone.state.tensors["uncond"])
        assert max(float((b[n : n + 1] - a).abs().max()) for b, a in nulls) < 1e-6
        assert float((batch.reconstructions[n] - alone.reconstructions[0]).abs().max()) < 1e-6
        assert batch.timings.evaluations[n] == alone.timings.evaluations[0]  # NFE per image, as if alone
    assert batch.timings.evaluations[1] < batch.timings.evaluations[0]  # image 1 stops early, image 0 does not


def test_null_text_needs_a_tensor_conditioned_diffusion_model(models):
    with pytest.raises(ConfigError, match="is unconditional"):
        invertkit.invert(models["unet"], _images(models["unet"]), "nulltext", steps=4)
    with pytest.raises(ConfigError, match="'nulltext' is for discrete diffusion models"):
        invertkit.invert(models["sd3"], _images(models["sd3"]), "nulltext", steps=4, prompt="cat")


def test_rf_inversion_without_control_is_flow_euler(models):
    G = models["sd3"]
    images = _images(G, 1)
    euler = invertkit.invert(G, images, "flow-euler", steps=6, prompt="cat")
    plain = invertkit.invert(G, images, "rf-inversion", steps=6, prompt="cat", gamma=0.0, eta=0.0)
    assert torch.equal(euler.latents, plain.latents) and torch.equal(euler.reconstructions, plain.reconstructions)
    controlled = invertkit.invert(G, images, "rf-inversion", steps=6, prompt="cat", eta=1.0, stop=1.0)
    assert max(m["roundtrip_error"] for m in controlled.metrics) < 1e-4  # eta = 1 throughout returns to the source
    with pytest.raises(ConfigError, match=r"option stop \(CLI --stop\) = 2.0: must be a finite number in \[0, 1\]"):
        invertkit.invert(G, images, "rf-inversion", steps=6, prompt="cat", stop=2.0)


@pytest.mark.slow  # the shipped faces model, 20 steps of null-text optimisation (about 8 s)
def test_null_text_beats_ddim_on_a_real_photo_with_the_shipped_model():
    """The shipped faces model, guidance 7.5, the astronaut photo (never trained on)."""
    from invertkit.generators.zoo import ZOO
    from invertkit.io.samples import astronaut_face

    if ZOO.get("diffusion-faces32").locate() is None:
        pytest.skip("the shipped diffusion-faces32 model is not in this checkout")
    G = invertkit.load_generator("diffusion-faces32")
    photo = astronaut_face(32, 1)
    ddim = invertkit.invert(G, photo, "ddim", steps=20, prompt="photo", guidance=7.5)
    null = invertkit.invert(G, photo, "nulltext", steps=20, prompt="photo")
    assert _mean(null, "psnr") > _mean(ddim, "psnr") + 3
