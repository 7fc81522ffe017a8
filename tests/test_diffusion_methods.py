"""Diffusion and flow inversion methods through ``invertkit.invert`` on tiny diffusers models."""

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
    out = {kind: invertkit.load_generator(f"diffusers:{write_folder(root / kind, kind)}" + ("@16" if kind == "flux" else "")) for kind in ("unet", "cond", "latent", "sd3", "flux")}
    out["analytic"] = invertkit.load_generator("analytic:diffusion")
    return out


def _images(G, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, G.channels, G.resolution, G.resolution, generator=g) * 1.6 - 0.8


@pytest.mark.parametrize("kind,method,options", [
    ("cond", "edict", {"guidance": 3.0, "prompt": "cat"}),
    ("latent", "edict", {"prompt": "dog", "leapfrog": False}),
    ("unet", "bdia", {}),
    ("latent", "bdia", {"guidance": 3.0, "prompt": "cat", "first_step": "ddim"}),
    ("analytic", "bdia", {"guidance": 2.0, "prompt": "up"}),
    ("sd3", "coupled-flow", {"guidance": 3.0, "prompt": "cat"}),
    ("flux", "coupled-flow", {"prompt": "dog"}),
])
def test_exact_methods_round_trip_in_float64(models, kind, method, options):
    """Through ``invert()``: EDICT, BDIA (each variant) and the coupled flow integrator invert the image of a
    random network, or of the analytic model, exactly (float64). The maths-level round trips are in
    test_diffusion_exact.py."""
    G = models[kind]
    result = invertkit.invert(G, _images(G), method, steps=10, dtype="float64", **options)
    errors = [m["roundtrip_error"] for m in result.metrics]
    assert max(errors) < 1e-10, errors
    assert result.latents.shape == (2, *G.latent_shape("noise")) and result.space == "noise"


def test_ddim_is_not_exact_and_renoise_helps(models):
    """Plain DDIM inversion leaves a first-order round-trip error; fixed-point iterations shrink it."""
    G = models["unet"]
    images = _images(G)
    ddim = invertkit.invert(G, images, "ddim", steps=10, dtype="float64")
    renoise = invertkit.invert(G, images, "renoise", steps=10, iterations=6, dtype="float64")
    e_ddim = max(m["roundtrip_error"] for m in ddim.metrics)
    e_renoise = max(m["roundtrip_error"] for m in renoise.metrics)
    assert e_ddim > 1e-4 and e_renoise < e_ddim / 10


@pytest.mark.parametrize("method,steps,guidance,nfe_invert,nfe_back", [
    ("ddim", 6, 1.0, 6, 6),
    ("ddim", 6, 3.0, 12, 12),  # two branches per guided evaluation
    ("renoise", 6, 1.0, 6 * 5, 6),
    ("edict", 6, 1.0, 12, 12),
    ("bdia", 6, 1.0, 6, 5),  # sampling starts from two levels: the first step is already known
])
def test_diffusion_nfe_is_reported(models, method, steps, guidance, nfe_invert, nfe_back):
    G = models["cond"]
    extra = {"iterations": 4} if method == "renoise" else {}
    result = invertkit.invert(G, _images(G, 1), method, steps=steps, guidance=guidance, prompt="cat", **extra)
    assert (result.timings.evaluations[0], result.nfe_reconstruct[0]) == (nfe_invert, nfe_back)
    assert result.config["method"] == method and result.config["steps"] == steps


@pytest.mark.parametrize("method,steps,nfe", [("flow-euler", 8, 8), ("flow-midpoint", 4, 8), ("fireflow", 8, 9), ("coupled-flow", 4, 8)])
def test_flow_methods_run_and_count(models, method, steps, nfe):
    G = models["sd3"]
    result = invertkit.invert(G, _images(G, 1), method, steps=steps, prompt="dog")
    assert result.timings.evaluations[0] == nfe and result.reconstructions.shape == (1, 3, 16, 16)
    assert torch.isfinite(result.latents).all()


def test_methods_check_the_model_family(models):
    with pytest.raises(ConfigError, match="'flow-euler' is for rectified-flow models"):
        invertkit.invert(models["unet"], _images(models["unet"]), "flow-euler")
    with pytest.raises(ConfigError, match="'ddim' is for discrete diffusion models"):
        invertkit.invert(models["sd3"], _images(models["sd3"]), "ddim", prompt="cat")
    with pytest.raises(ConfigError, match="option dtype .* = 'float16': must be one of float32, float64"):
        invertkit.invert(models["unet"], _images(models["unet"]), "ddim", dtype="float16")


def test_methods_refuse_gans(tiny_mlp):
    # the message lists the registered implementations: diffusers folders register on import (the
    # module's other tests import it through their fixtures; run alone, this one must too)
    import invertkit.diffusion.generator  # noqa: F401

    with pytest.raises(ConfigError, match="method .ddim. needs a diffusion or rectified-flow model.*tiny-mlp .SequentialGenerator. has none; generators that have it:.*diffusers model folders"):
        invertkit.invert(tiny_mlp, torch.zeros(1, tiny_mlp.channels, tiny_mlp.resolution, tiny_mlp.resolution), "ddim")


def test_saved_edict_states_keep_their_variant(models, tmp_path):
    """A state file records ``leapfrog``; a file written before the option existed (no key) was made
    with the non-leapfrog order and regenerates with it."""
    import json

    from invertkit.io.safetensors_file import read_safetensors, write_safetensors
    from invertkit.results.diffusion import HEADER, load_state

    G = models["cond"]
    images = _images(G, 1)
    for leapfrog in (True, False):
        result = invertkit.invert(G, images, "edict", steps=6, prompt="cat", guidance=2.0, leapfrog=leapfrog)
        files = result.save_item(0, tmp_path / str(leapfrog), "a", G)
        path = tmp_path / str(leapfrog) / files[1]
        assert load_state(path, G)[2].leapfrog is leapfrog
        assert torch.allclose(invertkit.load_run(tmp_path / str(leapfrog) / "a.npz", G).render(G), result.reconstructions, atol=1e-4)
    tensors, meta = read_safetensors(path, HEADER, "diffusion state file", "")
    del meta["options"]["leapfrog"]
    meta.pop("format_version")  # as run format 1 wrote it
    write_safetensors(path, tensors, {HEADER: json.dumps(meta)}, "diffusion state")
    assert load_state(path, G)[2].leapfrog is False
    assert torch.allclose(invertkit.load_run(path.with_name("a.npz"), G).render(G), result.reconstructions, atol=1e-4)


def test_regenerate_with_another_prompt(models):
    """Same inverted state, same prompt: the reconstruction; another prompt: another image."""
    G = models["cond"]
    result = invertkit.invert(G, _images(G), "edict", steps=8, prompt="cat", guidance=2.0, dtype="float64")
    same = regenerate(G, result)
    assert torch.allclose(same, result.reconstructions, atol=1e-6)
    edited = regenerate(G, result, prompt="dog")
    assert (edited - result.reconstructions).abs().mean() > 1e-3
    with pytest.raises(ConfigError, match="no prompt embedding named 'horse'"):
        regenerate(G, result, prompt="horse")
