"""invertkit's native .safetensors checkpoint: round trip and validation of the header metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from invertkit.errors import CheckpointError
from invertkit.generators.checkpoints import LoadedCheckpoint, detect_format, read_checkpoint, save_native

from .checkpoint_factories import random_nvidia_state, tiny_config


@pytest.fixture()
def native_file(tmp_path):
    cfg = tiny_config(c_dim=2, conv_clamp=256.0, channels={4: 32, 8: 24, 16: 16})
    sd = random_nvidia_state(cfg, seed=3)
    path = save_native(LoadedCheckpoint("nvidia-pkl", cfg, sd, {"network": "G_ema"}), tmp_path / "g.safetensors")
    return path, cfg, sd


def _header(path: Path) -> tuple[int, dict]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return n, json.loads(raw[8 : 8 + n])


def test_round_trip(native_file):
    path, cfg, sd = native_file
    assert detect_format(path) == "invertkit-safetensors"
    loaded = read_checkpoint(path)
    assert loaded.format == "invertkit-safetensors" and loaded.config == cfg
    assert list(loaded.state_dict) == list(sd)
    assert all(torch.equal(loaded.state_dict[k], sd[k]) for k in sd)
    assert loaded.meta["source"] == {"network": "G_ema", "source_format": "nvidia-pkl"}
    _, header = _header(path)
    payload = json.loads(header["__metadata__"]["invertkit"])
    assert payload["format"] == "invertkit" and payload["format_version"] == 1
    assert payload["architecture"] == "stylegan2" and payload["config"] == cfg.to_dict()


def test_metadata_missing_refused(tmp_path):
    cfg = tiny_config()
    path = tmp_path / "plain.safetensors"
    save_file(random_nvidia_state(cfg), str(path))
    with pytest.raises(CheckpointError, match=r"plain\.safetensors: a safetensors file without invertkit metadata"):
        read_checkpoint(path)


@pytest.mark.parametrize("payload, msg", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "other"}), "malformed"),
    (json.dumps({"format": "invertkit", "format_version": 99, "architecture": "stylegan2", "config": {}}), "newer invertkit"),
    (json.dumps({"format": "invertkit", "format_version": 1, "architecture": "dcgan", "config": {}}), "architecture 'dcgan'"),
    (json.dumps({"format": "invertkit", "format_version": 1, "architecture": "stylegan2", "config": {"bogus": 1}}), "invalid config"),
])
def test_bad_metadata_refused(tmp_path, payload, msg):
    path = tmp_path / "bad.safetensors"
    save_file(random_nvidia_state(tiny_config()), str(path), metadata={"invertkit": payload})
    with pytest.raises(CheckpointError, match=rf"bad\.safetensors: .*{msg}"):
        read_checkpoint(path)


def test_tensors_must_fit_config(tmp_path, native_file):
    path, cfg, sd = native_file
    _, header = _header(path)
    other = dict(sd)
    other["synthesis.b4.const"] = torch.zeros(8, 4, 4)
    bad = tmp_path / "shape.safetensors"
    save_file(other, str(bad), metadata=header["__metadata__"])
    with pytest.raises(CheckpointError, match=r"shape\.safetensors: weights do not fit.*synthesis\.b4\.const"):
        read_checkpoint(bad)


def test_corrupted_header_refused(tmp_path, native_file):
    path, _, _ = native_file
    raw = bytearray(path.read_bytes())
    n, _ = _header(path)
    raw[8 + n // 2] = ord("\x01")  # a control byte inside the JSON header
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"corrupt\.safetensors: not a valid safetensors file"):
        read_checkpoint(bad)
    raw2 = bytearray(path.read_bytes())
    raw2[:8] = struct.pack("<Q", n - 7)  # header length that cuts the JSON
    bad.write_bytes(bytes(raw2))
    with pytest.raises(CheckpointError, match=r"corrupt\.safetensors"):
        read_checkpoint(bad)


def test_save_generator_object(tmp_path):
    from invertkit.generators.stylegan2 import StyleGAN2Generator

    cfg = tiny_config()
    gen = StyleGAN2Generator(cfg, name="tiny")
    loaded = read_checkpoint(save_native(gen, tmp_path / "gen.safetensors"))
    assert loaded.config == cfg and loaded.meta["source"]["source_name"] == "tiny"
    ref = gen.state_dict()
    assert all(torch.equal(loaded.state_dict[k], ref[k]) for k in ref)


def test_save_refuses_non_stylegan(tmp_path):
    with pytest.raises(CheckpointError, match="only StyleGAN2 generators"):
        save_native(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
