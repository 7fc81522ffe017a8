"""The ``invertkit`` command: zoo, info, convert, generate, demo, and the one-line error contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invertkit.cli.main import main
from invertkit.cli.options import parse_seeds
from invertkit.errors import ConfigError
from invertkit.generators import load_generator

from .checkpoint_factories import random_nvidia_state, tiny_config, write_nvidia_pkl


@pytest.fixture
def nvidia_pkl(tmp_path) -> Path:
    cfg = tiny_config()
    return write_nvidia_pkl(tmp_path / "tiny.pkl", cfg, random_nvidia_state(cfg, seed=1))


def test_zoo_lists_models(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"dcgan-digiface64", "mnist-mlp-gan"} <= set(rows)
    assert rows["dcgan-digiface64"]["present"] and "gan-face-generate" in rows["dcgan-digiface64"]["source"]
    assert main(["zoo"]) == 0
    assert "mnist-mlp-gan" in capsys.readouterr().out


def test_info_stylegan2_pickle(nvidia_pkl, capsys):
    assert main(["info", str(nvidia_pkl)]) == 0
    out = capsys.readouterr().out
    assert "nvidia-pkl" in out and "16x16" in out and "w+ [6, 32]" in out
    assert "  capabilities:  StyleSpaces, LayerSplitting, NoiseMaps, Tunable\n" in out
    assert main(["info", str(nvidia_pkl), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    G = load_generator(nvidia_pkl)
    assert d["parameters"] == sum(p.numel() for p in G.net.parameters())
    assert d["num_ws"] == 6 and d["spaces"] == ["z", "w", "w+", "s", "p", "pn"]


def test_info_zoo(capsys):
    assert main(["info", "dcgan-digiface64", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["resolution"] == 64 and d["parameters"] == 3_576_704
    assert d["capabilities"] == ["LayerSplitting", "Tunable"] and d["class"] == "SequentialGenerator"


def test_convert_both_ways_same_images(nvidia_pkl, tmp_path, capsys):
    native, ros = tmp_path / "g.safetensors", tmp_path / "g.pt"
    assert main(["convert", str(nvidia_pkl), str(native)]) == 0
    assert main(["convert", str(native), str(ros)]) == 0
    back = tmp_path / "back.safetensors"
    assert main(["convert", str(ros), str(back)]) == 0
    imgs = []
    for path in (nvidia_pkl, native, ros, back):
        G = load_generator(path)
        with torch.no_grad():
            imgs.append(G.synthesize(G.sample_latent(2, "z", seed=3), "z"))
    for other in imgs[1:]:
        assert torch.allclose(imgs[0], other, atol=1e-5)
    # never overwrite finished work silently
    assert main(["convert", str(nvidia_pkl), str(native)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["convert", str(nvidia_pkl), str(native), "--force"]) == 0
    assert main(["convert", str(nvidia_pkl), str(tmp_path / "g.bin")]) == 2
    assert "g.bin: cannot tell the output format from the suffix; use .safetensors or .pt, or pass --to" in capsys.readouterr().err


def test_convert_to_rosinality_needs_lossy_for_conv_clamp(tmp_path, capsys):
    cfg = tiny_config(conv_clamp=256)
    src = write_nvidia_pkl(tmp_path / "clamped.pkl", cfg, random_nvidia_state(cfg, seed=2))
    dst = tmp_path / "clamped.pt"
    assert main(["convert", str(src), str(dst)]) == 2
    assert "--lossy" in capsys.readouterr().err and not dst.exists()
    assert main(["convert", str(src), str(dst), "--lossy"]) == 0
    a, b = load_generator(src), load_generator(dst)
    assert b.config.conv_clamp == 256  # invertkit's own record in the .pt restores it
    with torch.no_grad():
        z = a.sample_latent(2, "z", seed=0)
        assert torch.allclose(a.synthesize(z, "z"), b.synthesize(z, "z"), atol=1e-5)


def test_generate(nvidia_pkl, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", str(nvidia_pkl), "--seeds", "0-2,5", "--trunc", "0.7", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0005.png"]
    a = np.asarray(Image.open(out / "seed0000.png"))
    assert a.shape == (16, 16, 3)
    assert main(["generate", "dcgan-digiface64", "--seeds", "1", "--out", str(tmp_path / "dc")]) == 0
    capsys.readouterr()
    assert main(["generate", "dcgan-digiface64", "--seeds", "1", "--trunc", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == "invertkit: error: --trunc and --class need a StyleGAN generator; dcgan-digiface64 has only z\n"
    assert not (tmp_path / "x").exists()


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(ConfigError, match="a-b"):
        parse_seeds("a-b")


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "5"]) == 0
    for name in ("report.html", "run.json", "metrics.csv", "metrics.json", "latents/astronaut.npz", "images/astronaut_recon.png"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["image"] for r in rows][:2] == ["astronaut", "lfw-0"] and len(rows) == 7
    assert all(np.isfinite(r["psnr"]) and r["psnr"] > 5 for r in rows)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["steps"] == 5 and run["generator"]["name"] == "dcgan-digiface64"
    assert run["environment"]["packages"]["torch"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 14 and "<svg" in html and "astronaut" in html
    # the controls (the generator's own faces, easy by construction) are never averaged with the real photos
    assert [r["group"] for r in rows] == ["real"] * 5 + ["control"] * 2
    real = sum(r["psnr"] for r in rows[:5]) / 5
    control = sum(r["psnr"] for r in rows[5:]) / 2
    assert "Means by group" in html and f"{real:.3f} dB (real), {control:.3f} dB (control)" in html
    assert (out / "history.csv").read_text().startswith("image,step,loss\nastronaut,0,")
    with np.load(out / "latents" / "lfw-0.npz") as f:
        assert f["z"].shape == (1, 100) and str(f["space"]) == "z"


BAD_FILES = {
    "missing.pkl": None,
    "random.pkl": bytes(range(256)) * 4,
    "empty.pt": b"",
    "text.safetensors": b"hello world, not a checkpoint",
}


def _bad_file(folder: Path, name: str) -> Path:
    path = folder / name
    if BAD_FILES[name] is not None:
        path.write_bytes(BAD_FILES[name])
    return path


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_checkpoint_one_line_exit_2(tmp_path, capsys, name):
    assert main(["info", str(_bad_file(tmp_path, name))]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert name in line and line.startswith("invertkit: error:")
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.slow  # a fresh interpreter (about 2 s)
def test_command_process_prints_one_line(tmp_path):
    """The process, not only main(): exit status 2, one stderr line, nothing else printed."""
    proc = subprocess.run([sys.executable, "-m", "invertkit.cli.main", "info", str(_bad_file(tmp_path, "random.pkl"))],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("invertkit: error: ") and "random.pkl" in line


@pytest.mark.slow  # a fresh interpreter (about 2 s)
def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "invertkit.cli.main", "--debug", "info", str(tmp_path / "nope.pkl")], capture_output=True, text=True
    )
    # the exception escapes: Python's own exit status 1, the full traceback ending in the same message
    assert proc.returncode == 1 and proc.stderr.startswith("Traceback") and "CheckpointError" in proc.stderr
    assert "nope.pkl" in proc.stderr.strip().splitlines()[-1]
