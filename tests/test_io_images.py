"""Reading images of any size, mode and format; broken files reported by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from invertkit.errors import ImageError
from invertkit.io.images import list_images, make_grid, read_image, read_images, save_image, to_uint8


def _write(path, arr, mode=None, **kw):
    Image.fromarray(arr, mode=mode).save(path, **kw) if mode else Image.fromarray(arr).save(path, **kw)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_formats_and_range(tmp_path, suffix):
    arr = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    x = read_image(_write(tmp_path / f"a{suffix}", arr), 16, 3)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0


def test_exact_values_roundtrip(tmp_path):
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    x = read_image(_write(tmp_path / "g.png", arr), 8, 1)  # same size: no resampling
    assert np.array_equal(to_uint8(x)[0, :, :, 0], arr)
    out = save_image(x[0], tmp_path / "out.png")
    assert np.array_equal(np.asarray(Image.open(out)), arr)


def test_center_crop_keeps_middle(tmp_path):
    arr = np.zeros((10, 30), dtype=np.uint8)
    arr[:, 10:20] = 255  # the centre square is white, the sides black
    x = read_image(_write(tmp_path / "wide.png", arr), 10, 1)
    assert x.min() > 0.99


def test_modes(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, fully transparent: composited on white
    x = read_image(_write(tmp_path / "t.png", rgba, "RGBA"), 8, 3)
    assert torch.allclose(x, torch.ones_like(x))
    pal = Image.fromarray(np.full((8, 8, 3), (0, 0, 255), dtype=np.uint8)).convert("P")
    pal.save(tmp_path / "p.png")
    x = read_image(tmp_path / "p.png", 8, 3)
    assert x[0, 2].min() > 0.99 and x[0, 0].max() < -0.99
    grey = read_image(_write(tmp_path / "c.png", np.full((8, 8, 3), 255, dtype=np.uint8)), 4, 1)
    assert grey.shape == (1, 1, 4, 4)
    rgb = read_image(_write(tmp_path / "l.png", np.full((8, 8), 0, dtype=np.uint8)), 4, 3)
    assert rgb.shape == (1, 3, 4, 4)
    i16 = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    i16.save(tmp_path / "deep.png")
    d = read_image(tmp_path / "deep.png", 8, 1)  # scaled by the bit depth (/ 65535), never stretched
    assert d.min() == -1.0 and to_uint8(d).max() == round(63000 / 65535 * 255)


def test_broken_files_are_named_and_skipped(tmp_path):
    good = _write(tmp_path / "good.png", np.zeros((8, 8, 3), dtype=np.uint8))
    (tmp_path / "text.png").write_text("not an image")
    data = (tmp_path / "good.png").read_bytes()
    jpg = _write(tmp_path / "full.jpg", np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "trunc.jpg").write_bytes(jpg.read_bytes()[:200])
    with pytest.raises(ImageError, match="text.png"):
        read_image(tmp_path / "text.png", 8, 3)
    with pytest.raises(ImageError, match="missing.png"):
        read_image(tmp_path / "missing.png", 8, 3)
    batch = read_images([good, tmp_path / "text.png", tmp_path / "trunc.jpg", tmp_path / "missing.png"], 8, 3)
    assert batch.names == ["good.png"] and batch.images.shape == (1, 3, 8, 8)
    assert set(batch.failures) == {str(tmp_path / n) for n in ("text.png", "trunc.jpg", "missing.png")}
    assert all(name in msg for name, msg in ((n.rsplit("/", 1)[-1], m) for n, m in batch.failures.items()))
    assert (tmp_path / "good.png").read_bytes() == data  # reading never rewrites an input


def test_list_images_and_grid(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
    with pytest.raises(ImageError, match="nope: not a folder of images"):
        list_images(tmp_path / "nope")
    grid = make_grid([torch.zeros(3, 1, 4, 4), torch.ones(3, 1, 4, 4)], scale=2, pad=1)
    assert grid.size == (3 * 9 + 1, 2 * 9 + 1)
