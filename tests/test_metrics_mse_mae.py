"""MSE and MAE on [0, 1] after uint8 quantisation, against numpy on the uint8 arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invertkit.errors import ImageError
from invertkit.io.images import to_uint8
from invertkit.metrics import MAE, MSE, mae, mse


def test_against_numpy():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    b = (a + 0.2 * torch.randn(2, 3, 8, 8, generator=g)).clamp(-1, 1)
    ua = np.stack([np.asarray(x, dtype=np.float64) for x in to_uint8(a)]) / 255.0
    ub = np.stack([np.asarray(x, dtype=np.float64) for x in to_uint8(b)]) / 255.0
    assert mse(a, b).tolist() == pytest.approx(((ua - ub) ** 2).reshape(2, -1).mean(1), abs=1e-7)
    assert mae(a, b).tolist() == pytest.approx(np.abs(ua - ub).reshape(2, -1).mean(1), abs=1e-7)
    assert MSE()(a, b).item() == pytest.approx(mse(a, b).mean().item())
    assert MAE()(a, b).item() == pytest.approx(mae(a, b).mean().item())


def test_unquantized_and_shape_check():
    a = torch.zeros(1, 1, 4, 4)
    assert mae(a, a + 0.2, quantized=False).item() == pytest.approx(0.1)
    with pytest.raises(ImageError, match=r"same shape, got \[1, 1, 4, 4\] and \[1, 1, 4, 5\]"):
        mae(a, torch.zeros(1, 1, 4, 5))
