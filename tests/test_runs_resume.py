"""Small runs lose nothing: ``invertkit invert`` into a run folder that is consistent at every instant,
continued by running the same command again, refused for another configuration or a second writer,
stopped cleanly by signals and a full disk; ``invertkit report`` rebuilds the report from the folder."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import invertkit.methods
from invertkit.cli.main import main
from invertkit.generators import load_generator
from invertkit.io.atomic import TMP_MARK
from invertkit.io.images import save_image
from invertkit.runs import load_run

from .dataset_factories import save_tiny_sg2

N = 5


@pytest.fixture
def ckpt(tmp_path, tiny_sg2) -> Path:
    return save_tiny_sg2(tiny_sg2, tmp_path)


@pytest.fixture
def images(ckpt, tmp_path) -> Path:
    """Five images the tiny generator drew."""
    G = load_generator(ckpt)
    folder = tmp_path / "imgs"
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(N, "w", seed=5), "w").clamp(-1, 1)
    for i in range(N):
        save_image(x[i], folder / f"im{i}.png")
    return folder


def _invert(ckpt, images, out, *more: str) -> int:
    """Three batches (2, 2, 1) of a short optimisation (its latent noise is seeded by each image's id)."""
    # --no-progress: these tests read stderr for the one line an interruption or a failure prints
    return main(["invert", str(images), "-g", str(ckpt), "--steps", "3", "--loss", "mse=1", "--space", "w",
                 "--batch-size", "2", "--out", str(out), "--no-progress", *more])


def _once_each(out: Path) -> dict[str, dict]:
    """Every image exactly once in run.json, metrics.json and latents/; returns the rows by image."""
    run = json.loads((out / "run.json").read_text())
    rows = json.loads((out / "metrics.json").read_text())
    names = [f"im{i}.png" for i in range(N)]
    assert [e["image"] for e in run["items"]] == names and run["images"] == names
    assert [e["id"] for e in run["items"]] == list(range(N))
    assert [r["image"] for r in rows] == names
    assert sorted(p.name for p in (out / "latents").iterdir()) == [f"im{i}.npz" for i in range(N)]
    assert run["status"] == "complete" and not list(out.rglob(f"{TMP_MARK}*")) and not (out / ".lock").exists()
    return {r["image"]: r for r in rows}


@pytest.fixture
def baseline(ckpt, images, tmp_path) -> dict[str, dict]:
    """An uninterrupted run's rows."""
    assert _invert(ckpt, images, tmp_path / "whole") == 0
    return _once_each(tmp_path / "whole")


def _same_results(out: Path, whole: Path, rows: dict[str, dict], baseline: dict[str, dict]) -> None:
    for name, row in baseline.items():
        assert rows[name]["psnr"] == pytest.approx(row["psnr"], abs=1e-4)
        stem = name[:-4]
        assert np.allclose(np.load(out / "latents" / f"{stem}.npz")["w"], np.load(whole / "latents" / f"{stem}.npz")["w"], atol=1e-5)


def test_sigterm_between_batches_then_the_same_command_continues(ckpt, images, tmp_path, baseline, monkeypatch, capsys):
    real, calls = invertkit.methods.invert, []

    def signalled_on_the_second_batch(*args, **kwargs):
        calls.append(kwargs["image_ids"])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # outside a write: stops at once, batch 2 is not written
        return real(*args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(invertkit.methods, "invert", signalled_on_the_second_batch)
    assert _invert(ckpt, images, out) == 143
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == "invertkit: interrupted after 2 of 5 images; run the same command again to continue"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and [e["image"] for e in run["items"]] == ["im0.png", "im1.png"]
    assert load_run(out).result.metrics[1]["psnr"] > 0  # what finished reads back, with its metrics
    assert not (out / ".lock").exists()

    monkeypatch.undo()
    calls.clear()
    monkeypatch.setattr(invertkit.methods, "invert", lambda *a, **k: calls.append(k["image_ids"]) or real(*a, **k))
    assert _invert(ckpt, images, out) == 0
    assert calls == [[2, 3], [4]]  # only what was left, with the ids (seeds) of the full list
    assert "continuing" in capsys.readouterr().out
    _same_results(out, tmp_path / "whole", _once_each(out), baseline)


def test_sigint_while_a_batch_is_written_waits_for_the_batch(ckpt, images, tmp_path, baseline, monkeypatch, capsys):
    import invertkit.runs.writer as writer

    real_save, saves = writer.save_image, []

    def signalled_mid_batch(*args, **kwargs):
        saves.append(1)
        if len(saves) == 6:  # batch 2's second file
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(*args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(writer, "save_image", signalled_mid_batch)
    assert _invert(ckpt, images, out) == 130
    assert "after 4 of 5 images" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert len(run["items"]) == 4 and len(json.loads((out / "metrics.json").read_text())) == 4
    assert load_run(out).names == [f"im{i}.png" for i in range(4)]
    monkeypatch.undo()
    assert _invert(ckpt, images, out) == 0
    _same_results(out, tmp_path / "whole", _once_each(out), baseline)
    assert _invert(ckpt, images, out) == 0  # a finished run: nothing more to do, nothing written twice
    assert "0 inverted, 5 done before" in capsys.readouterr().out
    _once_each(out)


def test_another_configuration_is_refused_with_what_differs(ckpt, images, tmp_path, capsys):
    out = tmp_path / "run"
    assert _invert(ckpt, images / "im0.png", out) == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert _invert(ckpt, images / "im0.png", out, "--lr", "0.5") == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "another configuration" in line and "options.lr:" in line and "0.5 now" in line
    assert (out / "metrics.json").read_bytes() == before
    # what changes no result is no reason to refuse: batch size, device
    assert _invert(ckpt, images / "im0.png", out, "--batch-size", "7", "--device", "cpu") == 0


def test_a_held_lock_refuses_and_a_stale_one_is_taken_over(ckpt, images, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    other = {"host": socket.gethostname(), "pid": os.getppid(), "command": "invertkit invert elsewhere"}
    (out / ".lock").write_text(json.dumps(other))
    assert _invert(ckpt, images / "im0.png", out) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"process {os.getppid()}" in line and "invertkit invert elsewhere" in line
    assert not (out / "run.json").exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / ".lock").write_text(json.dumps({**other, "pid": gone.pid}))
    assert _invert(ckpt, images / "im0.png", out) == 0
    assert not (out / ".lock").exists()


def test_a_full_disk_stops_with_one_line_and_keeps_finished_batches(ckpt, images, tmp_path, baseline, monkeypatch, capsys):
    real_save, saves = Image.Image.save, []

    def disk_full_on_batch_two(self, fp, *args, **kwargs):
        saves.append(1)
        if len(saves) == 7:
            Path(fp).write_bytes(b"\x89PNG half")  # the disk took a few bytes, then refused
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, fp, *args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(Image.Image, "save", disk_full_on_batch_two)
    assert _invert(ckpt, images, out) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("invertkit: error: ") and "No space left" in line and "run the same command again" in line
    assert not list(out.rglob(f"{TMP_MARK}*"))
    assert all(p.stat().st_size > 20 for p in (out / "images").iterdir())  # no truncated image under a real name
    run = load_run(out)
    assert run.names == ["im0.png", "im1.png"] and all(m["psnr"] > 0 for m in run.result.metrics)
    monkeypatch.undo()
    assert _invert(ckpt, images, out) == 0  # space freed: the same command finishes the run
    _same_results(out, tmp_path / "whole", _once_each(out), baseline)


def test_a_file_name_that_is_not_utf8_is_inverted_and_reported(ckpt, images, tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"caf\xe9 1.png")
    try:
        with open(raw, "wb") as f:
            f.write((images / "im0.png").read_bytes())
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    out = tmp_path / "run"
    assert _invert(ckpt, folder, out) == 0
    shown = "caf\\xe9 1.png"  # the undecodable byte spelled out: valid text, nothing lost
    assert [r["image"] for r in json.loads((out / "metrics.json").read_text(encoding="utf-8"))] == [shown]
    assert shown in (out / "metrics.csv").read_text(encoding="utf-8")
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["items"][0]["stem"] == "caf_xe9_1"
    assert shown in (out / "report.html").read_text(encoding="utf-8")
    assert load_run(out).names == [shown]
    assert _invert(ckpt, folder, out) == 0  # and it is recognised as done
    assert "0 inverted, 1 done before" in capsys.readouterr().out


def test_report_is_rebuilt_from_the_folder(ckpt, images, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["invert", str(images / "im0.png"), str(images / "im1.png"), "-g", str(ckpt), "--steps", "3",
                 "--loss", "mse=1", "--space", "w", "--out", str(out)]) == 0
    first = (out / "report.html").read_text()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    again = (out / "report.html").read_text()
    assert again == first and again.count("<img") == 4 and "<svg" in again and "mean PSNR" in again
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "nothing").exists()
