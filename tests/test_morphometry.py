"""Digit measures: slant follows a shear, thickness follows a dilation, blank images are NaN."""

import math

import pytest
import torch
import torch.nn.functional as F

from invertkit.errors import ConfigError
from invertkit.morphometry import digit_shape, slant, thickness


def bar(width: int = 2, shear: float = 0.0, size: int = 28) -> torch.Tensor:
    """A vertical bar of ``width`` columns, its column shifted by ``shear`` per row up from the centre: [1, 1, size, size]."""
    img = -torch.ones(1, 1, size, size)
    for y in range(4, size - 4):
        x0 = round(size / 2 + shear * (size / 2 - y))  # rows above the centre move right when shear > 0
        img[0, 0, y, x0:x0 + width] = 1
    return img


def test_slant_sign_and_size():
    assert abs(float(slant(bar()))) < 1e-6
    right, left = float(slant(bar(shear=0.3))), float(slant(bar(shear=-0.3)))
    assert right > 0.2 and left < -0.2
    assert right == pytest.approx(math.atan(0.3), abs=0.05)


def test_thickness_grows_with_the_stroke():
    t1, t3, t5 = (float(thickness(bar(width=w))) for w in (1, 3, 5))
    assert t1 == pytest.approx(1.0, abs=0.15)
    assert t1 < t3 < t5 and t5 == pytest.approx(5.0, abs=1.0)
    # a dilated image is thicker
    img = bar(width=2)
    dilated = F.max_pool2d(img, 3, 1, 1)
    assert float(thickness(dilated)) > float(thickness(img)) + 1


def test_blank_images_have_no_shape():
    shape = digit_shape(torch.cat([-torch.ones(1, 1, 28, 28), bar()]))
    assert math.isnan(float(shape.thickness[0])) and math.isnan(float(shape.slant[0]))
    assert not math.isnan(float(shape.thickness[1]))


def test_bad_shapes_are_refused():
    with pytest.raises(ConfigError, match="greyscale"):
        slant(torch.zeros(2, 3, 8, 8))
