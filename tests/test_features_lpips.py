"""LPIPS maths against a plain re-computation and against values of the reference package."""

from __future__ import annotations

import pytest
import torch

from invertkit.errors import CheckpointError, ConfigError, ImageError
from invertkit.features.lpips import load_lpips

from .feature_factories import backbone_state, heads_path, real_heads_path, reference_lpips, write_backbone


def _pair(seed: int = 3, shape=(2, 3, 48, 40)):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(*shape, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(*shape, generator=g)).clamp(-1, 1)
    return a, b


def _smooth_pair():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    return torch.stack([xx, yy, xx * yy])[None], torch.stack([yy, xx, -xx * yy])[None]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_plain_recomputation(tmp_path, net):
    heads = heads_path(tmp_path, net)
    model = load_lpips(net, write_backbone(tmp_path, net), heads)
    head_state = torch.load(heads, map_location="cpu", weights_only=True)
    for a, b in (_pair(), _smooth_pair()):
        with torch.no_grad():
            ours = model(a, b)
        ref = reference_lpips(net, backbone_state(net), head_state, a, b)
        assert torch.allclose(ours.double(), ref, rtol=1e-5, atol=1e-8), (ours, ref)
        assert (ours > 0).all()


# Computed by the reference package lpips==0.1.4 (LPIPS(net=..., version='0.1'), its real v0.1 heads)
# with torchvision's `models.<net>` replaced by modules holding backbone_state(net) (seed 0), on the
# pairs above; our values differed from these by at most 3e-8.
GOLDEN = {
    "alex": ([0.0191744678, 0.0207328312], 0.228866309),
    "vgg": ([0.0340724215, 0.0336225629], 0.231007949),
}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_reference_package_values(tmp_path, net):
    if real_heads_path(net) is None:
        pytest.skip("the lpips wheel (published heads) is not installed")
    model = load_lpips(net, write_backbone(tmp_path, net))  # heads found in the wheel
    with torch.no_grad():
        noisy = model(*_pair())
        smooth = model(*_smooth_pair())
    assert noisy.tolist() == pytest.approx(GOLDEN[net][0], rel=1e-5)
    assert smooth.item() == pytest.approx(GOLDEN[net][1], rel=1e-5)


def test_features_once_identity_greyscale_and_gradient(tmp_path):
    model = load_lpips("alex", write_backbone(tmp_path, "alex"), heads_path(tmp_path, "alex"))
    a, b = _pair()
    with torch.no_grad():
        fb = model.features(b)
        assert torch.allclose(model.distance_from_features(model.features(a), fb), model(a, b))
        assert model(a, a).abs().max() < 1e-6
        # broadcasting a single target against a batch
        assert torch.allclose(model.distance_from_features(model.features(a), [f[:1] for f in fb]), model(a, b[:1].expand_as(a)), atol=1e-7)
        grey = a[:, :1]
        assert torch.allclose(model(grey, b[:, :1]), model(grey.expand(-1, 3, -1, -1), b[:, :1].expand(-1, 3, -1, -1)))
    x = a.clone().requires_grad_()
    model.distance_from_features(model.features(x), fb).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ImageError, match="at least 32"):
        model(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def test_missing_backbone_names_file_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "ik"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with pytest.raises(CheckpointError) as info:
        load_lpips("vgg")
    # VGG's file and URL (the folders searched are resolve_weight's, pinned in test_features_weights)
    msg = str(info.value)
    assert "vgg16-397923af.pth" in msg and "download.pytorch.org/models/vgg16-397923af.pth" in msg
    # once the file is in the cache it is found there
    write_backbone(tmp_path / "torch" / "hub" / "checkpoints", "alex")
    assert load_lpips("alex", head_path=heads_path(tmp_path, "alex")).net == "alex"


def test_wrong_files_and_names(tmp_path):
    alex_file = write_backbone(tmp_path, "alex")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_lpips("vgg", backbone_path=alex_file, head_path=heads_path(tmp_path, "vgg"))
    with pytest.raises(CheckpointError, match="lin0.model.1.weight"):
        load_lpips("alex", backbone_path=alex_file, head_path=alex_file)
    with pytest.raises(ConfigError, match="unknown LPIPS network"):
        load_lpips("resnet")  # squeeze became known (PIE-Bench LPIPS)
