"""Images as users have them (issue 14): EXIF orientation, 16-bit and float images, links and FIFOs
named like images, the same base name in two folders, control characters in file names, and tensors
of the wrong convention handed to the API. Every case is built here, at test time."""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import invertkit
from invertkit.cli.main import main
from invertkit.errors import ImageError
from invertkit.io.filenames import display_name, distinct_names
from invertkit.io.images import (
    MAX_PIXELS,
    array_to_tensor,
    check_images,
    decode_image,
    deep_to_uint8,
    list_images,
    read_image,
    read_images,
    to_uint8,
)
from invertkit.io.sources import dataset_entries
from invertkit.runs.dataset_reader import load_results

from .dataset_factories import png_bomb, save_tiny_sg2, write_images

FAST = ["-m", "optimize", "--steps", "2", "--space", "w", "--loss", "mse=1", "--no-progress"]
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and symbolic links need POSIX")


@contextmanager
def no_hang(seconds: float = 120.0):
    """A FIFO opened for reading blocks until a writer comes: if anything here ever opens one, end the
    test process with a traceback after ``seconds`` instead of hanging the suite."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def gen(tmp_path, tiny_sg2) -> Path:
    return save_tiny_sg2(tiny_sg2, tmp_path)


def _grey(path: Path, value: int = 128, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


# ---- 1. EXIF orientation ---------------------------------------------------------------------------
def test_exif_orientation_is_applied_before_cropping(tmp_path):
    stored = np.zeros((16, 32), np.uint8)
    stored[:, 16:] = 255  # stored: left half black, right half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": shown 16 wide x 32 tall, black on top
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    x = read_image(tmp_path / "phone.jpg", 16, 1)[0, 0]
    top, bottom = x[:6].mean(), x[-6:].mean()
    left, right = x[:, :6].mean(), x[:, -6:].mean()
    assert top < -0.9 and bottom > 0.9, "read sideways: the EXIF orientation was ignored"
    assert abs(left - right) < 0.1
    # without an orientation tag, the stored pixels as they are
    Image.fromarray(stored).save(tmp_path / "plain.jpg", quality=95)
    y = read_image(tmp_path / "plain.jpg", 16, 1)[0, 0]
    assert y[:, :6].mean() < -0.9 and y[:, -6:].mean() > 0.9


# ---- 2. deep images: scaled by their bit depth -------------------------------------------------------
def test_16_bit_images_are_scaled_by_their_depth_not_stretched(tmp_path):
    for name, value, want in (("white.png", 65535, 255), ("grey.png", 32768, 128), ("dark.png", 1000, 4)):
        Image.fromarray(np.full((8, 8), value, np.uint16)).save(tmp_path / name)
        assert Image.open(tmp_path / name).mode.startswith("I;16")
        got = to_uint8(read_image(tmp_path / name, 8, 1))
        assert (got == want).all(), (name, np.unique(got))
    # a gradient keeps its values: 0..1000 of 65535 stays dark (min-max stretching made it 0..255)
    Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 16)).save(tmp_path / "ramp.png")
    ramp = to_uint8(read_image(tmp_path / "ramp.png", 8, 1))
    assert ramp.min() == 0 and ramp.max() == round(63 * 16 / 65535 * 255)
    # 16-bit PGM (Pillow reads it as 32-bit "I"), RGB generators too
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "white.pgm")
    assert (to_uint8(read_image(tmp_path / "white.pgm", 8, 3)) == 255).all()


def test_32_bit_integer_images():
    # no declared depth: values within 0..65535 are 16-bit; beyond is refused, not guessed
    assert (deep_to_uint8(Image.fromarray(np.full((4, 4), 65535, np.int32))) == 255).all()
    with pytest.raises(ImageError, match=r"32-bit integer image with values 70000\.\.70000 and no declared bit depth"):
        deep_to_uint8(Image.fromarray(np.full((4, 4), 70000, np.int32)), "big.png")


def test_32_bit_tiff_uses_its_declared_depth(tmp_path):
    Image.fromarray(np.full((4, 4), 2**31 - 1, np.int32)).save(tmp_path / "i32.tif")
    Image.fromarray(np.full((4, 4), -5, np.int32)).save(tmp_path / "neg.tif")
    assert (to_uint8(read_image(tmp_path / "i32.tif", 4, 1)) == 255).all()
    assert (to_uint8(read_image(tmp_path / "neg.tif", 4, 1)) == 0).all()  # signed: negative counts as 0


def test_float_images_are_unit_range_and_nan_is_refused(tmp_path):
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "half.tif")
    Image.fromarray(np.full((8, 8), 3.0, np.float32)).save(tmp_path / "hdr.tif")
    assert (to_uint8(read_image(tmp_path / "half.tif", 8, 1)) == 128).all()
    assert (to_uint8(read_image(tmp_path / "hdr.tif", 8, 1)) == 255).all()  # clipped to [0, 1]
    bad = np.full((8, 8), 0.5, np.float32)
    bad[0, :3] = np.nan
    bad[1, 0] = np.inf
    Image.fromarray(bad).save(tmp_path / "nan.tif")
    with pytest.raises(ImageError) as err:
        read_image(tmp_path / "nan.tif", 8, 1)
    msg = str(err.value)
    assert "nan.tif" in msg and "holds 4 non-finite pixel(s)" in msg and "\n" not in msg


# ---- 3. links and special files named like images ----------------------------------------------------
def _special_files(folder: Path) -> dict[str, str]:
    """A symbolic-link loop, a dangling link and a FIFO named like images; name -> expected reason."""
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink("loop.png", folder / "loop.png")
    os.symlink("nowhere.png", folder / "dangling.png")
    os.mkfifo(folder / "pipe.png")
    return {"loop.png": "symbolic-link loop", "dangling.png": "dangling symbolic link (to nowhere.png)",
            "pipe.png": "named pipe (FIFO), not an image file; not opened"}


@posix_only
def test_special_files_are_refused_unopened_and_listed(tmp_path):
    reasons = _special_files(tmp_path / "d")
    with no_hang(60):
        for name, reason in reasons.items():
            with pytest.raises(ImageError, match=reason.replace("(", r"\(").replace(")", r"\)")):
                read_image(tmp_path / "d" / name, 8, 3)
        assert sorted(p.name for p in list_images(tmp_path / "d")) == sorted(reasons)
        assert sorted(e.id for e in dataset_entries([str(tmp_path / "d")])) == sorted(reasons)
    with pytest.raises(ImageError, match="a folder, not an image file"):
        read_image(tmp_path / "d", 8, 3)


@posix_only
def test_folder_walk_does_not_loop_through_linked_folders(tmp_path):
    data = tmp_path / "data"
    write_images(data, 4)  # img0000 in sub/
    os.symlink("..", data / "sub" / "up")  # a link back to an ancestor: a loop
    os.symlink(str(data / "sub"), data / "again")  # a second route to a folder
    os.symlink(str(tmp_path / "elsewhere"), data / "linked")  # a linked folder outside: followed
    _grey(tmp_path / "elsewhere" / "far.png")
    ids = [e.id for e in dataset_entries([str(data)])]
    assert len(ids) == len(set(ids))
    # the loop (sub/up) is not entered; a folder linked in twice is listed under both paths
    assert sorted(ids) == sorted(["again/img0000.png", "again/img0003.png", "img0001.png", "img0002.png",
                                  "linked/far.png", "sub/img0000.png", "sub/img0003.png"])


@posix_only
def test_small_layout_reports_every_hostile_input(gen, tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data, 2, nested=False)
    reasons = _special_files(data)
    (data / "bad\nname.png").write_bytes(b"not an image")  # a newline in a file name
    _grey(data / "good\tname.png")
    out = tmp_path / "small"
    with no_hang():
        assert main(["invert", str(data), "-g", str(gen), *FAST, "--format", "files", "--out", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    skipped = [line for line in printed if line.startswith("invertkit: skipped")]
    assert len(skipped) == 4, printed  # the newline did not split a message
    for name, reason in reasons.items():
        assert any(name in line and reason in line for line in skipped), name
    assert any("bad\\nname.png: not an image file" in line for line in skipped)
    doc = json.loads((out / "run.json").read_text())
    failed = doc["failures"]
    assert sorted(Path(k).name for k in failed) == sorted([*reasons, "bad\\nname.png"])
    rows = json.loads((out / "metrics.json").read_text())
    assert sorted(r["image"] for r in rows) == ["good\\tname.png", "img0000.png", "img0001.png"]
    stems = {e["stem"] for e in doc["items"]}
    assert stems == {"good_tname", "img0000", "img0001"}
    assert all("\n" not in f.name and "\t" not in f.name for f in (out / "images").iterdir())


@posix_only
def test_dataset_layout_gives_hostile_inputs_error_rows(gen, tmp_path):
    data = tmp_path / "data"
    write_images(data, 2, nested=False)
    reasons = _special_files(data / "sub")
    (data / "bad\nname.png").write_bytes(b"not an image")
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(data / "white16.png")
    out = tmp_path / "ds"
    with no_hang():
        assert main(["invert", str(data), "-g", str(gen), *FAST, "--format", "parquet", "--out", str(out),
                     "--save-images", "parquet"]) == 1
    rows = {r["id"]: r for r in load_results(out).to_pylist()}
    for name, reason in reasons.items():
        row = rows[f"sub/{name}"]
        assert row["status"] == "error" and reason in row["error"], row["error"]
    bad = rows["bad\nname.png"]  # the id is the file name itself; its error message is one line
    assert bad["status"] == "error" and "\n" not in bad["error"] and "bad\\nname.png" in bad["error"]
    assert rows["white16.png"]["status"] == "ok" and rows["img0000.png"]["status"] == "ok"


# ---- 4. the same base name in two folders (small layout) ---------------------------------------------
def test_same_base_name_in_two_folders(gen, tmp_path, capsys):
    _grey(tmp_path / "a" / "x.png", 40)
    _grey(tmp_path / "b" / "x.png", 200)
    _grey(tmp_path / "b" / "y.png", 90)
    out = tmp_path / "run"
    argv = ["invert", str(tmp_path / "a"), str(tmp_path / "b"), "-g", str(gen), *FAST, "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["image"] for r in rows] == ["a/x.png", "b/x.png", "y.png"]
    doc = json.loads((out / "run.json").read_text())
    assert [e["stem"] for e in doc["items"]] == ["a_x", "b_x", "y"]
    dark = np.asarray(Image.open(out / "images" / "a_x_target.png"))
    light = np.asarray(Image.open(out / "images" / "b_x_target.png"))
    assert dark.mean() < 60 and light.mean() > 180  # each row is its own image
    assert "a/x.png" in (out / "report.html").read_text()
    # continuing: nothing is done twice, names and stems stay
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 inverted, 3 done before" in capsys.readouterr().out
    doc2 = json.loads((out / "run.json").read_text())
    assert [e["stem"] for e in doc2["items"]] == ["a_x", "b_x", "y"]


def test_read_images_names_tell_same_base_names_apart(tmp_path):
    batch = read_images([_grey(tmp_path / "a" / "x.png"), _grey(tmp_path / "b" / "x.png"), _grey(tmp_path / "y.png")], 8, 3)
    assert batch.names == ["a/x.png", "b/x.png", "y.png"]


def test_distinct_names_and_display_names():
    assert distinct_names(["a/x.png", "b/x.png", "y.png", "c/y.jpg"]) == ["a/x.png", "b/x.png", "y.png", "y.jpg"]
    assert distinct_names(["/d/s1/img/x.png", "/d/s2/img/x.png", "/d/s1/img/x.png"]) == [
        "s1/img/x.png", "s2/img/x.png", "s1/img/x.png"]
    assert display_name("a\nb\r\x1b[2Jc\u202egnp.exe") == "a\\nb\\r\\x1b[2Jc\\u202egnp.exe"
    assert display_name("café ok.png") == "café ok.png"


# ---- 6. tensors of another convention handed to the API -----------------------------------------------
def test_api_refuses_images_of_another_convention(tiny_sg2):
    G = tiny_sg2
    shape = (1, G.channels, G.resolution, G.resolution)
    with pytest.raises(ImageError, match=r"images must be float in \[-1, 1\]; got uint8: use x\.float\(\) / 127\.5 - 1"):
        invertkit.invert(G, torch.full(shape, 200, dtype=torch.uint8), "optimize", steps=1)
    with pytest.raises(ImageError, match=r"got values in \[0, 255\]: use x / 127\.5 - 1"):
        invertkit.invert(G, torch.linspace(0, 255, int(np.prod(shape))).reshape(shape), "optimize", steps=1)
    nan = torch.zeros(shape)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ImageError, match="1 non-finite value"):
        invertkit.invert(G, nan, "optimize", steps=1)
    with pytest.raises(ImageError, match=r"reference must be float in \[-1, 1\]"):
        invertkit.invert(G, torch.zeros(shape), "optimize", steps=1, reference=torch.full(shape, 9.0))
    # [0, 1] values lie in [-1, 1]: legal (if probably a mistake); a generator's own output beyond
    # [-1, 1] is what known-latent recovery compares against: accepted as it is
    result = invertkit.invert(G, torch.rand(shape), "optimize", steps=1, space="w")
    assert result.latents.shape[0] == 1
    own = G.synthesize(G.sample_latent(1, "w", seed=0), "w").detach()
    assert own.min() < -1 and own.max() > 1
    assert invertkit.invert(G, own, "optimize", steps=1, space="w").latents.shape[0] == 1


def test_image_helpers_refuse_arrays_of_another_convention():
    check_images(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ImageError, match="got int64"):
        check_images(torch.zeros(1, 3, 4, 4, dtype=torch.int64))
    with pytest.raises(ImageError, match=r"values in \[0, 65535\]"):
        check_images(torch.full((1, 1, 2, 2), 40000.0))
    with pytest.raises(ImageError, match=r"use arr / 255"):
        array_to_tensor(np.full((8, 8, 3), 200.0), 8, 3)
    with pytest.raises(ImageError, match="non-finite"):
        array_to_tensor(np.full((8, 8), np.nan, np.float32), 8, 1)
    assert (to_uint8(array_to_tensor(np.full((8, 8), 1.0), 8, 1)) == 255).all()
    assert (to_uint8(array_to_tensor(np.full((8, 8), 7, np.uint8), 8, 1)) == 7).all()


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX file names and special files")


def test_a_raised_pixel_limit_holds_for_that_decode_only():
    """--max-pixels above Pillow's own bomb threshold admits the header for that call and leaves
    Pillow's process-wide limit as it was (no setting leaks into later decodes)."""
    before = Image.MAX_IMAGE_PIXELS
    bomb = png_bomb(14_000, 14_000)  # 196M pixels: over Pillow's refusal at twice its 89.5M threshold
    with pytest.raises(ImageError, match="declares 196,000,000 pixels, over the limit of 89,478,485"):
        decode_image(bomb, 16, 1, name="bomb.png")
    with pytest.raises(ImageError, match="bomb.png: cannot decode image"):  # admitted, then found truncated
        decode_image(bomb, 16, 1, name="bomb.png", max_pixels=200_000_000)
    assert Image.MAX_IMAGE_PIXELS == before and MAX_PIXELS == 89_478_485
