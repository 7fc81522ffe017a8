"""Identity similarity on ArcFace embeddings.

The plumbing (quantisation, cosine, batching) is checked on a cheap stand-in with the ArcFace
``embed`` interface; one check runs the real IR-SE50 architecture with random weights in pSp's layout.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from invertkit.errors import CheckpointError, ImageError
from invertkit.features.arcface import face_input
from invertkit.metrics.identity import IdentitySimilarity, identity_similarity

from .feature_factories import random_arcface


class _TinyFaceNet(nn.Module):
    """Same interface as ArcFaceIRSE50.embed: pSp crop, then a fixed random projection, L2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 16, 8, stride=8)
        nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def embed(self, x: torch.Tensor, *, face_crop: bool = True) -> torch.Tensor:
        return F.normalize(self.proj(face_input(x, face_crop=face_crop)).flatten(1), dim=1)


def _q(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def test_identity_similarity_definition():
    net = _TinyFaceNet().eval()
    g = torch.Generator().manual_seed(0)
    a = _q(torch.rand(3, 3, 64, 64, generator=g) * 2 - 1)
    b = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    pairs = torch.stack([a[0], b[1], b[2]])  # pair 0: the same face; pairs 1, 2: different faces
    sims = identity_similarity(a, pairs, weights=net, batch_size=2)
    assert sims.shape == (3,)
    assert sims[0].item() == pytest.approx(1.0, abs=1e-6)
    # the value is the cosine of the embeddings of the uint8-quantised images
    with torch.no_grad():
        expected = F.cosine_similarity(net.embed(a), net.embed(_q(pairs)), dim=1)
    torch.testing.assert_close(sims, expected, atol=1e-6, rtol=1e-6)
    assert (sims[1:] < 0.99).all()
    # changes below half a uint8 level vanish under the protocol's quantisation, not without it
    nudged = a + (torch.rand(a.shape, generator=g) - 0.5) * (1.6 / 255)
    torch.testing.assert_close(identity_similarity(a, nudged, weights=net), torch.ones(3))
    assert (identity_similarity(a, nudged, weights=net, quantized=False) < 1 - 1e-7).any()
    torch.testing.assert_close(IdentitySimilarity(net)(a, pairs), sims.mean())
    with pytest.raises(ImageError, match="same shape"):
        identity_similarity(a, b[:1], weights=net)


@pytest.mark.slow  # the full-size IR-SE50 built and run
def test_identity_on_ir_se50_architecture():
    net = random_arcface()
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 1, 48, 48, generator=g) * 2 - 1  # greyscale, small: replicated and upsampled
    sims = identity_similarity(a, torch.stack([a[0], a[0]]), weights=net)
    assert sims[0].item() == pytest.approx(1.0, abs=1e-5) and -1 <= sims[1].item() < 0.99


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    for var in ("TORCH_HOME", "INVERTKIT_HOME", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    a = torch.zeros(1, 3, 32, 32)
    with pytest.raises(CheckpointError, match="model_ir_se50.pth not found.*invertkit_home"):
        identity_similarity(a, a)
    with pytest.raises(CheckpointError, match="model_ir_se50.pth not found"):
        IdentitySimilarity()
    with pytest.raises(CheckpointError, match="elsewhere.pth"):
        identity_similarity(a, a, weights=tmp_path / "elsewhere.pth")
