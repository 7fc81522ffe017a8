"""The FID Inception-v3: pytorch-fid's weight-file layout, strict loading, input contract, lookup.

The real ``pt_inception-2015-12-05-6726825d.pth`` is not reachable offline, so the files here hold
random weights written in its layout. The expected keys and shapes below are written out from
torchvision's Inception-v3 definition (with pytorch-fid's 1008-class head), independently of the
module under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invertkit.errors import CheckpointError, ImageError
from invertkit.features.inception import FID_INCEPTION, FIDInceptionV3, fid_inception_available, load_fid_inception

from .feature_factories import random_inception_state

FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / FILE_NAME
    torch.save(random_inception_state(0), path)
    return path


@pytest.fixture(scope="module")
def inception_net(inception_file):
    return load_fid_inception(inception_file)


def _n_convs() -> int:
    # stem 5; Mixed_5b-d: 7 each; Mixed_6a: 4; Mixed_6b-e: 10 each; Mixed_7a: 6; Mixed_7b-c: 9 each
    return 5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9


def test_layout_is_pytorch_fid_file_layout():
    state = FIDInceptionV3().state_dict()
    # each BasicConv2d: conv.weight + bn.{weight,bias,running_mean,running_var,num_batches_tracked}; fc.{weight,bias}
    assert len(state) == 6 * _n_convs() + 2 == 566
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "Mixed_7c.branch_pool.bn.running_var": (192,),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.endswith(".conv.bias") for k in state)
    bns = [m for m in FIDInceptionV3().modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == _n_convs() and all(m.eps == 0.001 for m in bns)


@pytest.mark.slow  # the full-size FID Inception (95 MB of weights) built, written or read
def test_load_and_features(inception_net):
    net = inception_net
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in random_inception_state(0).items())
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x[1] = x[1, :1]  # image 1 is grey, stored as RGB
    with torch.inference_mode():
        f = net(x)
        grey = net(x[1:, :1])  # the same image given as one channel
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and (f >= 0).all()  # pool of ReLU outputs
    assert f.std() > 0 and not torch.allclose(f[0], f[1])
    torch.testing.assert_close(grey, f[1:])
    with pytest.raises(ImageError, match="C = 1 or 3"):
        net(torch.zeros(1, 4, 32, 32))


def test_tf_pooling_variants():
    """Pool branches: A/C/E_1 average without counting padding (TensorFlow), E_2 (Mixed_7c) max-pools."""
    import torch.nn.functional as F

    from invertkit.features.inception import InceptionA, InceptionE

    net = FIDInceptionV3()
    assert net.Mixed_7b.pool == "avg" and net.Mixed_7c.pool == "max"
    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(0))

    def pool_branch(block, pooled):
        return F.relu(block.branch_pool.bn(block.branch_pool.conv(pooled)))

    with torch.no_grad():
        a = InceptionA(8, pool_features=4).eval()
        out = a(x)
        assert out.shape == (1, 64 + 64 + 96 + 4, 6, 6)
        tf_avg = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        torch.testing.assert_close(out[:, -4:], pool_branch(a, tf_avg))
        assert not torch.allclose(out[:, -4:], pool_branch(a, F.avg_pool2d(x, 3, 1, 1)))
        e = InceptionE(8, pool="max").eval()
        out = e(x)
        assert out.shape == (1, 2048, 6, 6)  # 320 + 2 * 384 + 2 * 384 + 192
        torch.testing.assert_close(out[:, -192:], pool_branch(e, F.max_pool2d(x, 3, 1, 1)))


@pytest.mark.slow  # the full-size FID Inception (95 MB of weights) built, written or read
def test_file_without_batch_counters_loads(inception_file, inception_net, tmp_path):
    """Files saved by older PyTorch lack BatchNorm's ``num_batches_tracked``: they load and give the
    same network (the counters play no part in eval mode)."""
    state = random_inception_state(0)  # what inception_file holds
    path = tmp_path / "old.pth"
    old_state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(old_state) == len(state) - _n_convs()
    torch.save(old_state, path)
    old = load_fid_inception(path)
    assert not old.training and not any(p.requires_grad for p in old.parameters())
    assert all(torch.equal(old.state_dict()[k], v) for k, v in old_state.items())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(old(x), inception_net(x))


@pytest.mark.slow  # the full-size FID Inception (95 MB of weights) built, written or read
def test_wrong_files_are_checkpoint_errors(tmp_path):
    state = random_inception_state(0)
    missing = tmp_path / "missing_key.pth"
    torch.save({k: v for k, v in state.items() if k != "Mixed_6c.branch1x1.conv.weight"}, missing)
    with pytest.raises(CheckpointError, match="missing_key.pth.*Mixed_6c.branch1x1.conv.weight"):
        load_fid_inception(missing)
    other = tmp_path / "classes1000_aux.pth"
    torch.save({**state, "fc.weight": torch.zeros(1000, 2048), "AuxLogits.fc.weight": torch.zeros(1000, 768)}, other)
    with pytest.raises(CheckpointError, match=r"classes1000_aux.pth.*unexpected '?AuxLogits.fc.weight.*wrong shape fc.weight \[1000, 2048\]"):
        load_fid_inception(other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_fid_inception(junk)
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_fid_inception(tmp_path / "nope.pth")


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    for var in ("TORCH_HOME", "INVERTKIT_HOME", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


@pytest.mark.slow  # the full-size FID Inception (95 MB of weights) built, written or read
def test_lookup_in_torch_hub_cache(inception_file, empty_caches):
    assert not fid_inception_available()
    with pytest.raises(CheckpointError) as err:
        load_fid_inception()
    msg = str(err.value)  # the folders searched are resolve_weight's, pinned in test_features_weights
    assert FILE_NAME in msg and FID_INCEPTION.url in msg
    hub = empty_caches / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / FILE_NAME).symlink_to(inception_file)
    assert fid_inception_available()
    found = load_fid_inception()  # the file in the hub cache, not a default initialisation
    assert all(torch.equal(found.state_dict()[k], v) for k, v in random_inception_state(0).items())
