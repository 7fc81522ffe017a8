"""The IR-SE50 ArcFace: pSp's ``model_ir_se50.pth`` layout, strict loading, pSp's face crop.

The real weights are not reachable offline; the files here hold random weights in that layout. The
expected keys and shapes are written out from the IR-SE50 definition (TreB1eN / pSp), independently
of the module under test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invertkit.errors import CheckpointError, ImageError
from invertkit.features.arcface import (
    ARCFACE_IR_SE50,
    ArcFaceIRSE50,
    arcface_available,
    face_input,
    load_arcface,
)
from invertkit.features.weights import resolve_weight

from .feature_factories import random_arcface_state

FILE_NAME = "model_ir_se50.pth"


@pytest.fixture(scope="module")
def arcface_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("arcface") / FILE_NAME
    torch.save(random_arcface_state(), path)
    return path


def test_layout_is_psp_file_layout():
    state = ArcFaceIRSE50().state_dict()
    units = sorted({int(k.split(".")[1]) for k in state if k.startswith("body.")})
    assert units == list(range(24))  # IR-50: 3 + 4 + 14 + 3 units
    expected = {
        "input_layer.0.weight": (64, 3, 3, 3),
        "input_layer.1.running_mean": (64,),
        "input_layer.2.weight": (64,),  # PReLU
        "body.0.res_layer.0.weight": (64,),
        "body.0.res_layer.1.weight": (64, 64, 3, 3),
        "body.0.res_layer.5.fc1.weight": (4, 64, 1, 1),
        "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),
        "body.3.shortcut_layer.1.running_var": (128,),
        "body.7.shortcut_layer.0.weight": (256, 128, 1, 1),
        "body.21.shortcut_layer.0.weight": (512, 256, 1, 1),
        "body.23.res_layer.3.weight": (512, 512, 3, 3),
        "body.23.res_layer.5.fc2.weight": (512, 32, 1, 1),
        "output_layer.0.weight": (512,),
        "output_layer.3.weight": (512, 512 * 7 * 7),
        "output_layer.3.bias": (512,),
        "output_layer.4.weight": (512,),  # affine BatchNorm1d, as in pSp's IDLoss
        "output_layer.4.running_var": (512,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    # same-width units have a parameter-free (max-pool) shortcut
    assert not any(k.startswith(("body.0.shortcut", "body.4.shortcut", "body.22.shortcut")) for k in state)


@pytest.mark.slow  # the full IR-SE50 on 256 px images, and its file written and read (about 3 s)
def test_embeddings_and_psp_crop(arcface_file):
    net = load_arcface(arcface_file)
    assert not net.training
    assert all(torch.equal(net.state_dict()[k], v) for k, v in random_arcface_state().items())
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 256, 256, generator=g) * 2 - 1
    with torch.inference_mode():
        e = net.embed(x)
        # pSp: x[:, :, 35:223, 32:220], adaptive average pooling to 112, then the network
        direct = net(F.adaptive_avg_pool2d(x[:1, :, 35:223, 32:220], (112, 112)))
        # 1024-px images are first pooled to 256, as pSp pools its generator outputs
        big = net.embed(x[:1].repeat_interleave(4, dim=2).repeat_interleave(4, dim=3))
    assert e.shape == (2, 512)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(e[:1], direct)
    torch.testing.assert_close(big, e[:1], atol=1e-4, rtol=1e-4)
    assert (e[0] @ e[1]).abs() < 0.99
    # input geometry: pSp crop of a 256-px image, or a plain resize
    crop = x[:, :, 35:223, 32:220]
    torch.testing.assert_close(face_input(x), F.adaptive_avg_pool2d(crop, (112, 112)))
    torch.testing.assert_close(face_input(x[:, :1]), face_input(x[:, :1].expand(-1, 3, -1, -1)))
    small = x[:, :, ::4, ::4]  # 64 px: upsampled bilinearly to 256 before the crop
    up = F.interpolate(small, size=(256, 256), mode="bilinear", align_corners=False)
    torch.testing.assert_close(face_input(small), F.adaptive_avg_pool2d(up[:, :, 35:223, 32:220], (112, 112)))
    assert face_input(x[:, :, :64, :80], face_crop=False).shape == (2, 3, 112, 112)
    torch.testing.assert_close(face_input(x[:, :, :112, :112], face_crop=False), x[:, :, :112, :112])
    with pytest.raises(ImageError, match="112"):
        net(x)
    with pytest.raises(ImageError, match="C = 1 or 3"):
        face_input(torch.zeros(1, 2, 64, 64))


@pytest.mark.slow  # the full-size IR-SE50 (175 MB of weights) written and read
def test_wrong_files_are_checkpoint_errors(arcface_file, tmp_path, monkeypatch):
    resnet = tmp_path / "resnet50.pth"  # e.g. an ImageNet ResNet given by mistake
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, resnet)
    with pytest.raises(CheckpointError, match="resnet50.pth.*missing input_layer.0.weight.*unexpected '?conv1.weight"):
        load_arcface(resnet)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_arcface(junk)
    for var in ("TORCH_HOME", "INVERTKIT_HOME", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    assert not arcface_available()
    with pytest.raises(CheckpointError, match=f"{FILE_NAME} not found"):
        load_arcface()
    home = tmp_path / "invertkit_home"
    home.mkdir()
    (home / FILE_NAME).symlink_to(arcface_file)
    assert arcface_available()
    assert resolve_weight(ARCFACE_IR_SE50) == home / FILE_NAME  # what load_arcface() then reads
