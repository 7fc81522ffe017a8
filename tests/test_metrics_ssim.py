"""SSIM against scikit-image's structural_similarity on the same uint8 images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from skimage.metrics import structural_similarity

from invertkit.errors import ImageError
from invertkit.io.images import to_uint8
from invertkit.metrics import SSIM, ssim
from invertkit.metrics.ssim import compute_dtype


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    ua, ub = to_uint8(a), to_uint8(b)
    out = []
    for x, y in zip(ua, ub):
        x = np.asarray(x, dtype=np.float64) / 255.0
        y = np.asarray(y, dtype=np.float64) / 255.0
        if x.ndim == 2:
            x, y = x[..., None], y[..., None]
        out.append(structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1))
    return out


def test_random_images_match_skimage():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 24, 19, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(3, 3, 24, 19, generator=g)).clamp(-1, 1)
    assert ssim(a, b).tolist() == pytest.approx(_skimage_ssim(a, b), abs=1e-4)


def test_real_photo_matches_skimage():
    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    img = F.interpolate(img, size=(64, 48), mode="bilinear", antialias=True, align_corners=False)
    g = torch.Generator().manual_seed(1)
    noisy = (img + 0.1 * torch.randn(img.shape, generator=g)).clamp(-1, 1)
    blurred = F.avg_pool2d(img, 3, 1, 1, count_include_pad=False)
    batch_a, batch_b = torch.cat([img, img]), torch.cat([noisy, blurred])
    ours = ssim(batch_a, batch_b)
    assert ours.tolist() == pytest.approx(_skimage_ssim(batch_a, batch_b), abs=1e-4)
    assert 0.3 < ours.min() < ours.max() < 0.99
    grey_a, grey_b = batch_a[:, :1], batch_b[:, :1]
    assert ssim(grey_a, grey_b).tolist() == pytest.approx(_skimage_ssim(grey_a, grey_b), abs=1e-4)


def test_float32_arithmetic_of_accelerators_stays_within_the_promise():
    # GPUs compute SSIM in float32 (compute_dtype); run that path here on the same images
    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    img = F.interpolate(img, size=(96, 80), mode="bilinear", antialias=True, align_corners=False)
    g = torch.Generator().manual_seed(2)
    a = torch.cat([img, img, img.flip(3)])
    b = torch.cat([(img + 0.05 * torch.randn(img.shape, generator=g)).clamp(-1, 1), img.roll(1, 3), img])
    assert compute_dtype(torch.device("cpu")) == torch.float64
    assert compute_dtype(torch.device("cuda", 0)) == torch.float32
    single = ssim(a, b, dtype=torch.float32)
    assert single.tolist() == pytest.approx(_skimage_ssim(a, b), abs=1e-4)
    assert single.tolist() == pytest.approx(ssim(a, b).tolist(), abs=1e-5)


def test_identity_module_and_errors():
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim(a, a), torch.ones(2))
    assert SSIM()(a, -a).item() == pytest.approx(ssim(a, -a).mean().item())
    # tiny images: a shrunken window (9 taps for 10 px), still 1 for identical images and finite
    small = torch.rand(2, 1, 10, 30) * 2 - 1
    assert torch.allclose(ssim(small, small), torch.ones(2))
    assert torch.isfinite(ssim(small, -small)).all() and (ssim(small, -small) < 0.5).all()
    assert ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)).item() == pytest.approx(1.0)
    with pytest.raises(ImageError, match="same shape"):
        ssim(a, a[:1])
