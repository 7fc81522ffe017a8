"""Conversions between formats keep the generator's function: identical images after every hop.

Also pins that ``nvidia_layout`` (the readers' validation) and ``StyleGAN2Network`` agree on keys,
order and shapes, so every file the readers accept loads strictly into the generator.
"""

from __future__ import annotations

import pytest
import torch

from invertkit.generators.checkpoints import (
    LoadedCheckpoint,
    nvidia_layout,
    read_checkpoint,
    save_native,
    save_rosinality,
)
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator, StyleGAN2Network

from .checkpoint_factories import random_rosinality_g_ema, tiny_config, write_nvidia_pkl

ATOL = 1e-5


def _images(loaded: LoadedCheckpoint) -> torch.Tensor:
    gen = StyleGAN2Generator(loaded.config, loaded.state_dict, name="t")
    w = gen.sample_latent(3, "w", seed=11)
    with torch.no_grad():
        return gen.synthesize(w, "w", noise_mode="const")


def _same(a: LoadedCheckpoint, b: LoadedCheckpoint) -> None:
    ia, ib = _images(a), _images(b)
    assert ia.shape == ib.shape
    assert torch.allclose(ia, ib, atol=ATOL), (ia - ib).abs().max()


@pytest.mark.parametrize("kw", [
    dict(), dict(architecture="orig"), dict(architecture="resnet", conv_clamp=2.0), dict(c_dim=3, embed_features=8),
    dict(use_noise=False, img_channels=1), dict(resample_filter=(1, 2, 1), mapping_layer_features=24),
    dict(channels={4: 32, 8: 24, 16: 16}),
])
def test_layout_matches_network(kw):
    cfg = tiny_config(**kw)
    net_sd = StyleGAN2Network(cfg).state_dict()
    assert {k: tuple(v.shape) for k, v in net_sd.items()} == nvidia_layout(cfg)
    assert list(net_sd) == list(nvidia_layout(cfg))


@pytest.fixture()
def nvidia_pkl(tmp_path):
    cfg = tiny_config()
    sd = StyleGAN2Generator(cfg, init_seed=4).state_dict()  # NVIDIA's initialisation: sensible images
    return write_nvidia_pkl(tmp_path / "net.pkl", cfg, sd)


@pytest.fixture()
def rosinality_pt(tmp_path):
    g_ema = random_rosinality_g_ema(16, 32, 2, {4: 32, 8: 24, 16: 16}, seed=2)
    path = tmp_path / "ros.pt"
    torch.save({"g_ema": g_ema, "latent_avg": torch.randn(32)}, path)
    return path


def test_nvidia_to_native(nvidia_pkl, tmp_path):
    src = read_checkpoint(nvidia_pkl)
    dst = read_checkpoint(save_native(src, tmp_path / "n.safetensors"))
    assert dst.config == src.config
    _same(src, dst)


def test_nvidia_to_rosinality(nvidia_pkl, tmp_path):
    src = read_checkpoint(nvidia_pkl)
    dst = read_checkpoint(save_rosinality(src, tmp_path / "r.pt"))
    _same(src, dst)


def test_rosinality_to_native(rosinality_pt, tmp_path):
    src = read_checkpoint(rosinality_pt)
    dst = read_checkpoint(save_native(src, tmp_path / "n.safetensors"))
    assert dst.config == src.config and dst.config.channels == {4: 32, 8: 24, 16: 16}
    _same(src, dst)


def test_native_to_rosinality(rosinality_pt, tmp_path):
    native = read_checkpoint(save_native(read_checkpoint(rosinality_pt), tmp_path / "n.safetensors"))
    dst = read_checkpoint(save_rosinality(native, tmp_path / "r2.pt"))
    _same(native, dst)


def test_generator_object_round_trip(tmp_path):
    cfg = StyleGAN2Config(z_dim=16, w_dim=16, img_resolution=8, mapping_layers=2, channel_base=128, channel_max=16)
    gen = StyleGAN2Generator(cfg, init_seed=1)
    a = read_checkpoint(save_rosinality(gen, tmp_path / "g.pt"))
    b = read_checkpoint(save_native(gen, tmp_path / "g.safetensors"))
    _same(a, b)
    w = gen.sample_latent(2, "w", seed=0)
    with torch.no_grad():
        ref = gen.synthesize(w, "w", noise_mode="const")
        out = StyleGAN2Generator(a.config, a.state_dict).synthesize(w, "w", noise_mode="const")
    assert torch.allclose(ref, out, atol=ATOL)
