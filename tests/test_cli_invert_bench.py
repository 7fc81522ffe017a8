"""``invertkit invert`` and ``invertkit bench`` end to end on small inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invertkit.bench import parse_method_spec
from invertkit.cli.main import main
from invertkit.errors import ConfigError
from invertkit.generators import load_generator
from invertkit.io.images import save_image


@pytest.fixture
def sg2_pkl(tmp_path, tiny_sg2) -> Path:
    """The tiny seeded StyleGAN2 (NVIDIA's initialisation, so its images vary) as a native checkpoint."""
    from invertkit.generators.checkpoints import save_native

    return save_native(tiny_sg2, tmp_path / "tiny.safetensors")


@pytest.fixture
def drawn_images(sg2_pkl, tmp_path) -> Path:
    """Three images the tiny generator drew (RGB, RGBA, palette modes) plus a broken file."""
    G = load_generator(sg2_pkl)
    folder = tmp_path / "imgs"
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(3, "w", seed=5), "w").clamp(-1, 1)
    save_image(x[0], folder / "a.png")
    Image.open(save_image(x[1], folder / "b.png")).convert("RGBA").save(folder / "b.png")
    Image.open(save_image(x[2], folder / "c.png")).convert("P").save(folder / "c.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def test_invert_writes_everything_and_keeps_going(sg2_pkl, drawn_images, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["invert", str(drawn_images), "--generator", str(sg2_pkl), "--steps", "60", "--loss", "mse=1",
                 "--batch-size", "2", "--out", str(out), "--lr", "0.1"])
    assert code == 1  # one input failed
    assert "broken.jpg" in capsys.readouterr().out
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["image"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert all({"image", "psnr", "ssim", "seconds", "nscd"} <= set(r) for r in rows)
    assert all(r["psnr"] > 15 for r in rows)
    run = json.loads((out / "run.json").read_text())
    assert "broken.jpg" in next(iter(run["failures"])) and run["config"]["space"] == "w+"
    with np.load(out / "latents" / "a.npz") as f:
        assert f["w"].shape == (1, 6, 32)  # NVIDIA's projected_w layout: [1, num_ws, w_dim]
    for name in ("a_target.png", "a_recon.png", "c_recon.png"):
        assert (out / "images" / name).is_file()
    html = (out / "report.html").read_text()
    assert "broken.jpg" in html and "<svg" in html and html.count("<img") == 6


def test_invert_batching_does_not_change_results(sg2_pkl, drawn_images, tmp_path):
    outs = []
    for bs in ("1", "3"):
        out = tmp_path / f"bs{bs}"
        assert main(["invert", str(drawn_images / "a.png"), str(drawn_images / "c.png"), "-g", str(sg2_pkl), "--steps", "15",
                     "--loss", "mse=1", "--batch-size", bs, "--out", str(out), "--space", "w"]) == 0
        outs.append([np.load(out / "latents" / f"{n}.npz")["w"] for n in ("a", "c")])
    for a, b in zip(*outs):
        assert np.allclose(a, b, atol=1e-4)


def test_invert_restoration_simulated(sg2_pkl, drawn_images, tmp_path):
    out = tmp_path / "sr"
    code = main(["invert", str(drawn_images / "a.png"), "-g", str(sg2_pkl), "--degrade", "downsample:2", "--simulate",
                 "--steps", "40", "--loss", "mse=1", "--space", "w", "--out", str(out)])
    assert code == 0
    row = json.loads((out / "metrics.json").read_text())[0]
    assert {"psnr", "psnr_observed"} <= set(row)
    assert (out / "images" / "a_observed.png").is_file()
    assert json.loads((out / "run.json").read_text())["config"]["degradation"] == "downsample:2"


def test_simulated_noise_does_not_depend_on_batch_size(sg2_pkl, drawn_images, tmp_path):
    """b.png is observed with the same noise whether it is simulated alone or beside a.png."""
    rows = {}
    for bs in ("1", "2"):
        out = tmp_path / f"bs{bs}"
        assert main(["invert", str(drawn_images / "a.png"), str(drawn_images / "b.png"), "-g", str(sg2_pkl), "--degrade", "noise:0.2",
                     "--simulate", "--batch-size", bs, "--steps", "5", "--loss", "mse=1", "--space", "w", "--out", str(out)]) == 0
        rows[bs] = {r["image"]: r for r in json.loads((out / "metrics.json").read_text())}
    for name in ("a", "b"):
        observed = [(tmp_path / f"bs{bs}" / "images" / f"{name}_observed.png").read_bytes() for bs in ("1", "2")]
        assert observed[0] == observed[1], name
        assert observed[0] != (tmp_path / "bs1" / "images" / f"{name}_target.png").read_bytes()  # noisy, not the clean image
        for key in ("psnr_observed", "psnr", "ssim"):
            assert rows["1"][f"{name}.png"][key] == pytest.approx(rows["2"][f"{name}.png"][key], abs=1e-3), (name, key)


@pytest.mark.parametrize("flags,message", [
    (["--method", "cma", "--optimizer", "lbfgs"], "--optimizer do(es) not apply to --method cma; its options: chunk, "),
    (["--space", "q"], "space 'q' is not available for tiny.safetensors; choose one of: z, z-sphere, w, w+, s, p, pn, f:LAYER"),
    (["--simulate"], "--simulate needs --degrade or --mask"),
    (["--method", "nope"], "unknown --method 'nope'; choose one of: optimize, "),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--degrade", "blur:3"], "unknown degradation 'blur'; use downsample:F, grayscale, noise:SIGMA or mask:PATH"),
])
def test_invert_flag_errors(sg2_pkl, drawn_images, tmp_path, capsys, flags, message):
    out = tmp_path / "x"
    assert main(["invert", str(drawn_images / "a.png"), "-g", str(sg2_pkl), "--out", str(out), *flags]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()  # one line, no traceback
    assert line.startswith(f"invertkit: error: {message}"), line
    assert captured.out == "" and not (out / "metrics.json").exists()


def test_parse_method_spec():
    r = parse_method_spec("optimize:w+@steps=50;loss=mse=1+perceptual=0.5;noise=true")
    assert r.method == "optimize" and r.options == {"space": "w+", "steps": 50, "loss": "mse=1,perceptual=0.5", "noise": True}
    assert parse_method_spec("cma").options == {}
    with pytest.raises(ConfigError, match="bogus"):
        parse_method_spec("bogus:z")


def test_bench_table(sg2_pkl, drawn_images, tmp_path):
    out = tmp_path / "bench"
    # exit status 1: the folder's broken.jpg is reported and skipped, the three good images are compared
    assert main(["bench", "-g", str(sg2_pkl), "--images", str(drawn_images), "--methods", "optimize:w,optimize:w+,cma:w@popsize=6,plain:w",
                 "--steps", "8", "--loss", "mse=1", "--out", str(out), "--metrics", "perceptual"]) == 1
    rows = json.loads((out / "bench.json").read_text())
    assert [r["method"] for r in rows] == ["optimize:w", "optimize:w+", "cma:w@popsize=6", "plain:w"]
    for r in rows:
        assert {"psnr_mean", "psnr_std", "ssim_mean", "seconds_per_image", "evaluations_per_image", "bytes_per_image", "nscd_mean", "perceptual_mean"} <= set(r)
    assert rows[2]["evaluations_per_image"] == 8 * 6
    assert rows[1]["bytes_per_image"] > rows[0]["bytes_per_image"] > 0  # a W+ code stores num_ws rows of a W code
    assert (out / "bench.md").read_text().count("\n") == 6
    assert "<svg" in (out / "bench.html").read_text()
    assert (out / "optimize_w" / "metrics.csv").is_file()


def test_bench_default_methods_follow_the_shipped_models(sg2_pkl, drawn_images, tmp_path, capsys, monkeypatch):
    """``--methods auto`` (the default): every encoder-based method with a shipped model, then optimize."""
    from types import SimpleNamespace

    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))  # no encoder another test installed for "tiny"

    from invertkit.bench import default_methods

    dcgan = default_methods(SimpleNamespace(name="dcgan-digiface64"))  # only the name decides where encoders are found
    assert dcgan == ["encoder", "restyle", "fs-encoder", "hyperstyle", "hybrid", "pti", "optimize"]  # hyperstyle: shipped
    assert default_methods(load_generator(sg2_pkl)) == ["optimize"]  # nothing shipped for a random StyleGAN2
    out = tmp_path / "bench"
    assert main(["bench", "-g", str(sg2_pkl), "--images", str(drawn_images), "--steps", "2", "--out", str(out)]) == 1  # broken.jpg
    assert "methods optimize (--methods auto)" in capsys.readouterr().out
    assert [r["method"] for r in json.loads((out / "bench.json").read_text())] == ["optimize"]


def test_bench_keeps_images_with_the_same_file_name_apart(sg2_pkl, tmp_path):
    """s1/1.png and s2/1.png are two faces: the bench scores both (it used to name both 1.png and
    read one image's row twice)."""
    G = load_generator(sg2_pkl)
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(2, "w", seed=9), "w").clamp(-1, 1)
    paths = [save_image(x[i], tmp_path / f"s{i + 1}" / "1.png") for i in range(2)]
    out = tmp_path / "bench"
    assert main(["bench", "-g", str(sg2_pkl), "--images", *map(str, paths), "--methods", "optimize:w",
                 "--steps", "3", "--loss", "mse=1", "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "optimize_w" / "metrics.csv").open()))
    assert sorted(r["image"] for r in rows) == ["s1/1.png", "s2/1.png"]
    assert rows[0]["psnr"] != rows[1]["psnr"]
