"""rosinality stylegan2-pytorch checkpoints: reading, writing, and exact conversion to/from NVIDIA naming.

The rosinality files here come from ``checkpoint_factories.random_rosinality_g_ema``, written from
rosinality's ``model.py`` (commit bef283a1c24087da704d16c30abc8e36e63efa0e). Outside the test suite
the converter was checked against the real code: a real NVIDIA pickle converted by
``save_rosinality`` loaded into rosinality's ``Generator`` with ``load_state_dict(strict=True)`` and
rendered the same image as NVIDIA's ``G_ema(z, noise_mode='const')`` (max abs diff 1.3e-6); a random
rosinality ``Generator`` saved like ``train.py`` (with ``args``) read back and loaded strictly into
NVIDIA's ``training.networks.Generator`` with identical images (2.9e-6).
"""

from __future__ import annotations

import argparse

import pytest
import torch

from invertkit.errors import CheckpointError
from invertkit.generators.checkpoints import detect_format, read_checkpoint, save_rosinality
from invertkit.generators.checkpoints.detect import LoadedCheckpoint
from invertkit.generators.checkpoints.rosinality import nvidia_to_rosinality

from .checkpoint_factories import random_nvidia_state, random_rosinality_g_ema, tiny_config

CHANNELS = {4: 32, 8: 24, 16: 16}


class NotATensor:
    pass


@pytest.fixture()
def ros_file(tmp_path):
    g_ema = random_rosinality_g_ema(16, 32, 3, CHANNELS, seed=1)
    latent_avg = torch.randn(32)
    path = tmp_path / "550000.pt"
    torch.save({"g": g_ema, "d": {"x": torch.ones(1)}, "g_ema": g_ema, "args": argparse.Namespace(size=16),
                "latent_avg": latent_avg, "ada_aug_p": 0.1}, path)
    return path, g_ema, latent_avg


def test_reads_rosinality_file(ros_file):
    path, ros, latent_avg = ros_file
    assert detect_format(path) == "rosinality-pt"
    loaded = read_checkpoint(path)
    cfg = loaded.config
    assert (cfg.img_resolution, cfg.z_dim, cfg.w_dim, cfg.mapping_layers) == (16, 32, 32, 3)
    assert cfg.channels == CHANNELS and cfg.architecture == "skip" and cfg.conv_clamp is None
    assert cfg.mapping_lr_multiplier == 0.01 and "assumed 0.01" in loaded.meta["lr_mlp"]
    sd = loaded.state_dict
    # spot checks of every kind of rename / reshape (independent of the converter's tables)
    assert torch.equal(sd["mapping.fc0.weight"], ros["style.1.weight"])
    assert torch.equal(sd["mapping.fc2.bias"], ros["style.3.bias"])
    assert torch.equal(sd["mapping.w_avg"], latent_avg)
    assert torch.equal(sd["synthesis.b4.const"], ros["input.input"][0])
    assert torch.equal(sd["synthesis.b4.conv1.weight"], ros["conv1.conv.weight"][0])
    assert torch.equal(sd["synthesis.b4.conv1.noise_strength"], ros["conv1.noise.weight"][0])
    assert sd["synthesis.b4.conv1.noise_strength"].shape == ()
    assert torch.equal(sd["synthesis.b4.conv1.bias"], ros["conv1.activate.bias"])
    assert torch.equal(sd["synthesis.b4.torgb.bias"], ros["to_rgb1.bias"].flatten())
    assert torch.equal(sd["synthesis.b8.conv0.affine.bias"], ros["convs.0.conv.modulation.bias"])
    assert torch.equal(sd["synthesis.b16.conv1.weight"], ros["convs.3.conv.weight"][0])
    assert torch.equal(sd["synthesis.b16.torgb.weight"], ros["to_rgbs.1.conv.weight"][0])
    assert torch.equal(sd["synthesis.b4.conv1.noise_const"], ros["noises.noise_0"][0, 0])
    assert torch.equal(sd["synthesis.b8.conv0.noise_const"], ros["noises.noise_1"][0, 0])
    assert torch.equal(sd["synthesis.b16.conv1.noise_const"], ros["noises.noise_4"][0, 0])
    f = torch.tensor([1.0, 3, 3, 1])
    assert torch.allclose(sd["synthesis.b16.conv0.resample_filter"], torch.outer(f, f) / 64)


def test_legacy_torch_format_and_bare_state_dict(tmp_path):
    g_ema = random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})
    path = tmp_path / "old.pt"
    torch.save({"g_ema": g_ema, "latent_avg": torch.zeros(16)}, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "rosinality-pt"
    assert read_checkpoint(path).config.img_resolution == 8
    bare = tmp_path / "bare.pt"
    torch.save(g_ema, bare)
    loaded = read_checkpoint(bare)
    assert "bare" in loaded.meta["note"] and loaded.meta["w_avg"].startswith("estimated")


def test_blur_kernel_inferred(tmp_path):
    g_ema = random_rosinality_g_ema(16, 16, 2, {4: 16, 8: 16, 16: 16}, blur_kernel=(1, 2, 1))
    path = tmp_path / "k.pt"
    torch.save({"g_ema": g_ema, "latent_avg": torch.zeros(16)}, path)
    assert read_checkpoint(path).config.resample_filter == (1, 2, 1)


def test_latent_avg_estimated_when_absent(tmp_path):
    from invertkit.generators.stylegan2.network import MappingNetwork

    g_ema = random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})
    path = tmp_path / "noavg.pt"
    torch.save({"g_ema": g_ema}, path)
    loaded = read_checkpoint(path)
    assert loaded.meta["w_avg"].startswith("estimated")
    mapping = MappingNetwork(loaded.config)
    mapping.load_state_dict({k[8:]: v for k, v in loaded.state_dict.items() if k.startswith("mapping.")})
    z = torch.randn(10_000, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = mapping(z).mean(0)
    assert torch.allclose(loaded.state_dict["mapping.w_avg"], ref, atol=1e-4)


def test_non_tensor_object_refused(tmp_path):
    g_ema = random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})
    path = tmp_path / "pickled_class.pt"
    torch.save({"g_ema": g_ema, "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*pickled_class\.pt: it holds Python objects other than tensors"):
        read_checkpoint(path)


def test_code_in_pt_never_runs(tmp_path):
    marker = tmp_path / "pwned.txt"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "evil.pt"
    torch.save({"g_ema": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt: it holds Python objects other than tensors \(exec\)"):
        read_checkpoint(path)
    assert not marker.exists()


def test_missing_g_ema_refused(tmp_path):
    path = tmp_path / "d_only.pt"
    torch.save({"d": {"w": torch.ones(2)}}, path)
    with pytest.raises(CheckpointError, match=r"d_only\.pt: no 'g_ema' generator"):
        read_checkpoint(path)


def test_unexpected_layout_refused(tmp_path):
    g_ema = random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})
    g_ema["convs.1.conv.weight"] = torch.randn(1, 16, 8, 3, 3)  # wrong in-channels
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": g_ema, "latent_avg": torch.zeros(16)}, path)
    with pytest.raises(CheckpointError, match=r"bad\.pt: weights do not fit"):
        read_checkpoint(path)
    del g_ema["convs.1.conv.weight"]
    g_ema["extra.weight"] = torch.ones(1)
    torch.save({"g_ema": g_ema}, path)
    with pytest.raises(CheckpointError, match=r"bad\.pt: g_ema does not have the layout.*missing convs\.1\.conv\.weight.*unexpected '?extra\.weight"):
        read_checkpoint(path)


def test_round_trip_nvidia_rosinality_nvidia(tmp_path):
    cfg = tiny_config(mapping_lr_multiplier=0.05)
    sd = random_nvidia_state(cfg, seed=7)
    src = LoadedCheckpoint("nvidia-pkl", cfg, sd, {})
    path = save_rosinality(src, tmp_path / "conv.pt")
    back = read_checkpoint(path)
    assert back.config == cfg and "from invertkit metadata" in back.meta["config"]
    assert list(back.state_dict) == list(sd)
    for k in sd:
        assert torch.equal(back.state_dict[k], sd[k]), k
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"g_ema", "latent_avg", "invertkit"}
    assert list(raw["g_ema"]) == list(random_rosinality_g_ema(16, 32, 2, {4: 32, 8: 32, 16: 16}))  # rosinality's key order
    assert torch.allclose(raw["g_ema"]["convs.0.conv.blur.kernel"], torch.outer(*[torch.tensor([1.0, 3, 3, 1])] * 2) / 16)


def test_rosinality_round_trip_from_file(ros_file, tmp_path):
    path, ros, _ = ros_file
    loaded = read_checkpoint(path)
    again = torch.load(save_rosinality(loaded, tmp_path / "again.pt"), weights_only=True)["g_ema"]
    assert list(again) == list(ros)
    for k in ros:
        assert torch.equal(again[k], ros[k]), k


@pytest.mark.parametrize("kw, msg", [
    (dict(c_dim=3), "conditional"),
    (dict(architecture="resnet"), "architecture 'resnet'"),
    (dict(conv_clamp=256.0), "conv_clamp=256"),
    (dict(img_channels=1), "1 image channels"),
])
def test_save_rosinality_refuses_inexpressible(tmp_path, kw, msg):
    cfg = tiny_config(**kw)
    with pytest.raises(CheckpointError, match=rf"out\.pt: cannot express.*{msg}"):
        save_rosinality(LoadedCheckpoint("nvidia-pkl", cfg, random_nvidia_state(cfg), {}), tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_conv_clamp_dropped_when_not_strict(tmp_path):
    cfg = tiny_config(conv_clamp=256.0)
    sd = random_nvidia_state(cfg)
    path = save_rosinality(LoadedCheckpoint("nvidia-pkl", cfg, sd, {}), tmp_path / "c.pt", strict=False)
    assert "conv_clamp=256 dropped" in torch.load(path, weights_only=True)["invertkit"]["notes"]


def test_converter_matches_factory_layout():
    cfg = tiny_config(channel_base=384, channel_max=32)  # 32, 32, 24
    ros = nvidia_to_rosinality(cfg, random_nvidia_state(cfg))
    ref = random_rosinality_g_ema(16, 32, 2, {4: 32, 8: 32, 16: 24})
    assert list(ros) == list(ref)
    assert {k: tuple(v.shape) for k, v in ros.items()} == {k: tuple(v.shape) for k, v in ref.items()}
