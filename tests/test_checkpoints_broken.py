"""Broken or foreign files: every one is a CheckpointError whose single-line message names the file."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest
import torch

from invertkit.errors import CheckpointError
from invertkit.generators.checkpoints import LoadedCheckpoint, detect_format, read_checkpoint, save_native

from .checkpoint_factories import random_nvidia_state, random_rosinality_g_ema, tiny_config, write_nvidia_pkl


def _half(path: Path, name: str) -> Path:
    out = path.with_name(name)
    raw = path.read_bytes()
    out.write_bytes(raw[: len(raw) // 2])
    return out


def _make(kind: str, tmp: Path) -> Path:
    cfg = tiny_config()
    if kind == "nonexistent":
        return tmp / "missing_model.pkl"
    if kind == "directory":
        d = tmp / "a_directory.pkl"
        d.mkdir()
        return d
    if kind == "empty":
        p = tmp / "empty.pkl"
        p.write_bytes(b"")
        return p
    if kind == "truncated_pickle":
        return _half(write_nvidia_pkl(tmp / "full.pkl", cfg, random_nvidia_state(cfg)), "truncated.pkl")
    if kind == "truncated_zip":
        full = tmp / "full.pt"
        torch.save({"g_ema": random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})}, full)
        return _half(full, "truncated.pt")
    if kind == "truncated_legacy_torch":
        full = tmp / "full_legacy.pt"
        torch.save({"g_ema": random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})}, full, _use_new_zipfile_serialization=False)
        return _half(full, "truncated_legacy.pt")
    if kind == "truncated_safetensors":
        full = save_native(LoadedCheckpoint("x", cfg, random_nvidia_state(cfg), {}), tmp / "full.safetensors")
        return _half(full, "truncated.safetensors")
    if kind == "random_bytes":
        p = tmp / "random.pkl"
        p.write_bytes(b"\x13" + random.Random(0).randbytes(4095))
        return p
    if kind == "random_after_pickle_header":
        p = tmp / "random_pickle.pkl"
        p.write_bytes(b"\x80\x04" + random.Random(1).randbytes(4094))
        return p
    if kind == "text":
        p = tmp / "notes.pkl"
        p.write_text("this is not a network\n")
        return p
    if kind == "foreign_zip":
        p = tmp / "dataset.pt"
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("img0.png", b"x")
        return p
    if kind == "pickle_of_list":
        p = tmp / "list.pkl"
        import pickle

        p.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
        return p
    raise AssertionError(kind)


KINDS = ["nonexistent", "directory", "empty", "truncated_pickle", "truncated_zip", "truncated_legacy_torch",
         "truncated_safetensors", "random_bytes", "random_after_pickle_header", "text", "foreign_zip", "pickle_of_list"]


@pytest.mark.parametrize("kind", KINDS)
def test_broken_input_is_checkpoint_error(tmp_path, kind):
    path = _make(kind, tmp_path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert path.name in msg
    assert "\n" not in msg
    assert isinstance(info.value, ValueError)


def test_unknown_format_lists_supported(tmp_path):
    p = _make("text", tmp_path)
    with pytest.raises(CheckpointError, match=r"notes\.pkl: unrecognised checkpoint content.*NVIDIA.*rosinality.*safetensors"):
        detect_format(p)


def test_detection_ignores_extension(tmp_path):
    cfg = tiny_config()
    p = write_nvidia_pkl(tmp_path / "looks_like.safetensors", cfg, random_nvidia_state(cfg))
    assert detect_format(p) == "nvidia-pkl"
    q = tmp_path / "looks_like.pkl"
    torch.save({"g_ema": random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16})}, q)
    assert detect_format(q) == "rosinality-pt"
