"""Diffusers-format model folders: loading (safely), schedulers from the model's own config, and
sampling that matches diffusers' own schedulers step for step."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from invertkit import load_generator
from invertkit.errors import CheckpointError, ConfigError

from .diffusers_factories import DDIM_CONFIG, diffusers_guided_loop, write_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    return {kind: write_folder(root / kind, kind) for kind in ("unet", "cond", "latent", "sd3", "flux")}


@pytest.mark.parametrize("kind,family,shape,res,conditional", [
    ("unet", "diffusion", [3, 8, 8], 8, False),
    ("cond", "diffusion", [3, 8, 8], 8, True),
    ("latent", "diffusion", [4, 8, 8], 16, True),
    ("sd3", "flow", [4, 8, 8], 16, True),
])
def test_load_kinds(folders, kind, family, shape, res, conditional):
    G = load_generator(f"diffusers:{folders[kind]}")
    info = G.describe()
    assert (info["family"], info["latent_shapes"]["noise"], G.resolution, G.channels) == (family, shape, res, 3)
    assert G.conditional is conditional
    prompt = "cat" if conditional else None
    images = G.synthesize(G.sample_latent(2, seed=1), steps=3, prompt=prompt)
    assert images.shape == (2, 3, res, res) and torch.isfinite(images).all()
    again = G.synthesize(G.sample_latent(2, seed=1), steps=3, prompt=prompt)
    assert torch.equal(images, again)  # deterministic sampler, seeded noise


def test_pickled_weights_are_refused(tmp_path):
    root = write_folder(tmp_path / "m", "unet", pickled=True)
    with pytest.raises(CheckpointError, match=r"diffusion_pytorch_model\.bin: pickled weights are refused"):
        load_generator(f"diffusers:{root}")


def test_bad_folders_name_the_file(tmp_path, folders):
    with pytest.raises(CheckpointError, match="not a folder"):
        load_generator(f"diffusers:{tmp_path / 'missing'}")
    root = write_folder(tmp_path / "m", "unet")
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "FlowMatchEulerDiscreteScheduler"}))
    with pytest.raises(CheckpointError, match="scheduler_config.json: scheduler 'FlowMatchEulerDiscreteScheduler' does not fit"):
        load_generator(f"diffusers:{root}")
    (root / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(CheckpointError, match="scheduler_config.json: missing"):
        load_generator(f"diffusers:{root}")
    config = json.loads((root / "unet" / "config.json").read_text())
    (root / "unet" / "config.json").write_text(json.dumps({**config, "_class_name": "ControlNetModel"}))
    with pytest.raises(CheckpointError, match="network class 'ControlNetModel' is not supported"):
        load_generator(f"diffusers:{root}")
    # weights of another model under a matching config
    other = write_folder(tmp_path / "o", "cond")
    (root / "unet" / "config.json").write_text(json.dumps(config))
    (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(
        (other / "unet" / "diffusion_pytorch_model.safetensors").read_bytes())
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(DDIM_CONFIG))
    with pytest.raises(CheckpointError, match="weights do not match config.json"):
        load_generator(f"diffusers:{root}")


def test_prompts_and_guidance_errors(folders):
    G = load_generator(f"diffusers:{folders['cond']}")
    with pytest.raises(ConfigError, match="no prompt embedding named 'horse'"):
        G.synthesize(G.sample_latent(1), steps=2, prompt="horse")
    U = load_generator(f"diffusers:{folders['unet']}")
    with pytest.raises(ConfigError, match="unconditional"):
        U.synthesize(U.sample_latent(1), steps=2, guidance=7.5)


@pytest.mark.parametrize("changes", [
    {},
    {"prediction_type": "v_prediction", "timestep_spacing": "trailing", "set_alpha_to_one": True, "steps_offset": 0},
    {"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "leading"},
    {"clip_sample": True, "clip_sample_range": 0.5},
    {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5},
])
def test_ddim_sampling_matches_diffusers_scheduler(folders, tmp_path, changes):
    """Our DDIM on the model's own scheduler config equals DDIMScheduler.step, with guidance 3, for
    epsilon / v / sample predictions and several spacings (the scheduler config is read, not assumed)."""
    from diffusers import DDIMScheduler

    root = write_folder(tmp_path / "m", "cond")
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({**DDIM_CONFIG, **changes}))
    G = load_generator(f"diffusers:{root}")
    assert G.prediction_type == changes.get("prediction_type", "epsilon")
    x = G.sample_latent(2, seed=3)
    ours = G.synthesize(x, steps=8, prompt="cat", guidance=3.0)
    sched = DDIMScheduler.from_config(G.scheduler)
    sched.set_timesteps(8)
    ref = diffusers_guided_loop(G, sched, x, "cat", 3.0)
    assert (ours - ref).abs().max() < 3e-4  # float32 (diffusers computes its betas in float32, we in float64)


def test_flow_sampling_matches_diffusers_scheduler(folders):
    """Our Euler flow sampler on an SD3-style transformer equals FlowMatchEulerDiscreteScheduler.step."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    G = load_generator(f"diffusers:{folders['sd3']}")
    x = G.sample_latent(1, seed=4)
    ours = G.synthesize(x, steps=5, prompt="dog")
    sched = FlowMatchEulerDiscreteScheduler.from_config(G.scheduler)
    sched.set_timesteps(5)
    embeds, pooled = G.cond("dog")
    ref = x.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            v = G.network(hidden_states=ref, timestep=t.expand(1), encoder_hidden_states=embeds[None], pooled_projections=pooled[None]).sample
            ref = sched.step(v, t, ref).prev_sample
    assert (ours - G.decode(ref)).abs().max() < 1e-4


def test_vae_scaling_round_trip(folders):
    """encode applies the VAE's shift and scaling factors and decode undoes them."""
    G = load_generator(f"diffusers:{folders['sd3']}")
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    latent = G.encode(images)
    raw = G.vae.encode(images).latent_dist.mean
    assert torch.allclose(latent, (raw - 0.1) * 0.5, atol=1e-6)
    assert torch.allclose(G.decode(latent), G.vae.decode(raw).sample, atol=1e-5)


def test_flux_sampling_matches_diffusers_scheduler_with_dynamic_shift(folders):
    """FLUX: packed 2x2 tokens, distilled guidance 3.5 and the resolution-dependent shift of the
    FluxPipeline (sigmas linspace(1, 1/S), mu from the token count) equal diffusers' scheduler loop."""
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler

    from invertkit.diffusion.generator import pack, token_ids, unpack

    G = load_generator(f"diffusers:{folders['flux']}@32")
    assert (G.resolution, G.latent_shape("noise")) == (32, (4, 16, 16))
    x = G.sample_latent(1, seed=2)
    from invertkit.diffusion.flow import flow_euler_sample

    ours = flow_euler_sample(G.denoiser(), x, G.grid(4), guidance=G.guidance("cat", 1.0)).x
    sched = FlowMatchEulerDiscreteScheduler.from_config(G.scheduler)
    mu = 0.5 + (1.15 - 0.5) * (64 - 256) / (4096 - 256)  # 8 x 8 tokens
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / 4, 4), mu=mu)
    embeds, pooled = G.cond("cat")
    ref = pack(x)
    with torch.no_grad():
        for t in sched.timesteps:
            v = G.network(hidden_states=ref, timestep=t.expand(1) / 1000, guidance=torch.full((1,), 3.5),
                          pooled_projections=pooled[None], encoder_hidden_states=embeds[None], txt_ids=torch.zeros(3, 3),
                          img_ids=token_ids(8, 8, x)).sample
            ref = sched.step(v, t, ref).prev_sample
    assert (ours - unpack(ref, x.shape)).abs().max() < 1e-5


def test_flux_packing_layout():
    """Token k of row r, column c holds the 2x2 cell at (2r, 2c), channel-major as the FluxPipeline packs."""
    from invertkit.diffusion.generator import pack, token_ids, unpack

    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens = pack(x)
    assert tokens.shape == (1, 4, 8)
    assert tokens[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]  # row 0, column 1: channel 0's cell, then channel 1's
    assert torch.equal(unpack(tokens, x.shape), x)
    assert token_ids(2, 2, x).tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]


def test_resolution_suffix_is_checked(folders):
    with pytest.raises(ConfigError, match="resolution 18 must be a positive multiple of 4"):
        load_generator(f"diffusers:{folders['flux']}@18")


def test_hub_ids_resolve_from_the_local_cache_only(tmp_path, monkeypatch):
    """``diffusers:org/name`` finds the snapshot that refs/main names in $HF_HUB_CACHE; a missing one
    fails with the fix (invertkit never downloads)."""
    repo = tmp_path / "hub" / "models--acme--tiny-unet"
    write_folder(repo / "snapshots" / "abc123", "unet")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    G = load_generator("diffusers:acme/tiny-unet")
    assert G.name == "acme/tiny-unet" and G.family == "diffusion"
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache.*huggingface-cli download acme/other"):
        load_generator("diffusers:acme/other")


def test_class_conditional_unet(tmp_path):
    """A UNet2DModel with class labels: the prompt names a class; guidance mixes two classes."""
    import invertkit

    G = load_generator(f"diffusers:{write_folder(tmp_path / 'c', 'classes')}")
    assert G.conditional and G.num_classes == 3
    x = G.sample_latent(1, seed=0)
    a, b = G.synthesize(x, steps=3, prompt="0"), G.synthesize(x, steps=3, prompt="2")
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ConfigError, match="class index 0..2"):
        G.synthesize(x, steps=3, prompt="cat")
    result = invertkit.invert(G, a, "bdia", steps=5, prompt="1", guidance=2.0, negative="0", dtype="float64")
    assert result.metrics[0]["roundtrip_error"] < 1e-10
