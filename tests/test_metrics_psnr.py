"""PSNR against scikit-image's reference on the same uint8 arrays."""

from __future__ import annotations

import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from invertkit.errors import ImageError
from invertkit.io.images import to_uint8
from invertkit.metrics import PSNR, mse, psnr


def test_psnr_matches_skimage():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    b = (a + 0.1 * torch.randn(3, 3, 16, 16, generator=g)).clamp(-1, 1)
    ours = psnr(a, b)
    ua, ub = to_uint8(a), to_uint8(b)
    for i in range(3):
        ref = peak_signal_noise_ratio(ua[i], ub[i], data_range=255)
        assert ours[i].item() == pytest.approx(ref, abs=1e-3)


def test_psnr_definition_and_edge_cases():
    a = torch.zeros(1, 1, 4, 4)
    b = a + 0.2  # 0.1 on [0, 1] -> MSE 0.01 -> 20 dB (unquantised)
    assert psnr(a, b, quantized=False).item() == pytest.approx(20.0, abs=1e-4)
    assert mse(a, b, quantized=False).item() == pytest.approx(0.01, abs=1e-7)
    assert psnr(a, a).item() == 100.0
    assert PSNR()(a, b).item() == pytest.approx(psnr(a, b).mean().item())
    with pytest.raises(ImageError, match="same shape"):
        psnr(a, torch.zeros(1, 1, 4, 5))
    # black against white: MSE 1 on [0, 1] is 0 dB, finite (not clamped or NaN)
    black = torch.full((1, 1, 4, 4), -1.0)
    assert psnr(black, -black).item() == 0.0 and psnr(black, -black, quantized=False).item() == 0.0
