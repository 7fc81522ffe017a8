"""Tiny diffusers model folders built from small configs with fixed seeds (never from a hub).

Sizes follow diffusers' own unit tests (block widths 4-32, one layer per block, 8-16 pixel samples).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

DDIM_CONFIG = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "epsilon", "clip_sample": False,
    "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
}
FLOW_CONFIG = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
FLUX_CONFIG = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
               "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
               "max_image_seq_len": 4096}


def _unet2d(num_classes: int | None = None):
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, attention_head_dim=4, num_class_embeds=num_classes)


def _unet_cond(channels: int = 3, size: int = 8):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(8, 16),
                                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
                                attention_head_dim=2, norm_num_groups=4)


def _sd3(layers: int = 1):
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=layers,
                                 attention_head_dim=8, num_attention_heads=2, joint_attention_dim=8,
                                 caption_projection_dim=16, pooled_projection_dim=8, pos_embed_max_size=16)


def _flux():
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                                  num_attention_heads=2, joint_attention_dim=8, pooled_projection_dim=8,
                                  guidance_embeds=True, axes_dims_rope=[4, 4, 8])


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                         down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), layers_per_block=1, norm_num_groups=4)


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fixed-seed weights with every zero-initialised output layer filled too (a freshly built
    diffusers UNet predicts exactly 0, which would make every test trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and float(p.abs().max()) == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def write_folder(root: Path, kind: str, *, seed: int = 0, pickled: bool = False) -> Path:
    """Write a tiny model folder: kind ``unet`` (pixel UNet2DModel), ``classes`` (the same with 3 class labels), ``cond`` (pixel UNet2DConditionModel
    with prompts "", "cat", "dog"; ``cond16``: the same at 16 px), ``latent`` (UNet2DConditionModel over a tiny VAE), ``sd3`` or ``flux``
    (flow transformers over a tiny VAE with pooled prompts; FLUX with dynamic shifting and distilled guidance; ``sd3x2``:
    SD3 with two joint blocks)."""
    torch.manual_seed(seed)
    network = {"unet": _unet2d, "classes": lambda: _unet2d(3), "cond": _unet_cond, "cond16": lambda: _unet_cond(3, 16), "latent": lambda: _unet_cond(4, 8), "sd3": _sd3, "sd3x2": lambda: _sd3(2), "flux": _flux}[kind]()
    flow = kind in ("sd3", "sd3x2", "flux")
    sub = "transformer" if flow else "unet"
    _randomise(network, seed).save_pretrained(root / sub, safe_serialization=not pickled)
    if kind == "latent" or flow:
        vae = _vae()
        vae.register_to_config(scaling_factor=0.5, shift_factor=0.1 if flow else None)
        vae.save_pretrained(root / "vae")
    (root / "scheduler").mkdir(parents=True, exist_ok=True)
    sched = {"sd3": FLOW_CONFIG, "sd3x2": FLOW_CONFIG, "flux": FLUX_CONFIG}.get(kind, DDIM_CONFIG)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched))
    if kind not in ("unet", "classes"):
        from safetensors.torch import save_file

        g = torch.Generator().manual_seed(seed + 1)
        width = 8
        prompts = {name: torch.randn(3, width, generator=g) for name in ("", "cat", "dog")}
        if flow:
            prompts.update({f"pooled:{name}": torch.randn(8, generator=g) for name in ("", "cat", "dog")})
        save_file(prompts, str(root / "prompt_embeds.safetensors"))
    return root


def diffusers_guided_loop(G, scheduler, x: torch.Tensor, prompt: str, scale: float) -> torch.Tensor:
    """Run a diffusers scheduler's own loop (``set_timesteps`` already called) over ``G``'s
    UNet2DConditionModel with classifier-free guidance of ``prompt`` against the empty prompt: the
    reference our samplers and inversions are compared with."""
    cond, uncond = G.cond(prompt), G.cond("")
    n = x.shape[0]
    ref = x.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            tt = t.expand(n)
            e_u = G.network(ref, tt, encoder_hidden_states=uncond.expand(n, -1, -1)).sample
            e_c = G.network(ref, tt, encoder_hidden_states=cond.expand(n, -1, -1)).sample
            ref = scheduler.step(e_u + scale * (e_c - e_u), t, ref).prev_sample
    return ref
