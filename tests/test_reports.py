"""Reports that answer "how good is my inversion": restoration pages show the observation and the
delivered composite and score it, groups (the demo's real photos and controls) are averaged apart,
and the loss history is written as data (history.csv) that matches the result."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from invertkit import metrics as M
from invertkit.cli.main import main
from invertkit.degradations import Downsample, Mask, show_observation
from invertkit.io.images import read_image, save_image
from invertkit.methods import invert
from invertkit.runs import RunWriter, load_run, write_run
from invertkit.runs.writer import Restoration


def _faces(G, n: int = 2, seed: int = 3) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesize(G.sample_latent(n, "w", seed=seed), "w").clamp(-1, 1)


def _hole(resolution: int) -> torch.Tensor:
    """A mask hiding the lower half (1 = known)."""
    m = torch.ones(1, 1, resolution, resolution)
    m[..., resolution // 2 :, :] = 0
    return m


def test_inpainting_run_writes_shows_and_scores_the_composite(tiny_sg2, tmp_path):
    G = tiny_sg2
    x = _faces(G)
    op = Mask(_hole(G.resolution))
    observed = op.observe(x)
    res = invert(G, observed, "optimize", degradation=op, reference=x, steps=5, space="w", loss="mse=1")
    writer = RunWriter(tmp_path / "run", G)
    writer.add(res, x, ["a.png", "b.png"], restoration=Restoration(show_observation(observed, G.resolution, G.channels),
                                                                   op.describe(), clean_reference=True))
    out = writer.finish()

    # the composite keeps the observed pixels and takes the generator's in the hole
    known = op.mask.bool().expand_as(x)
    assert torch.equal(res.composite[known], x[known]) and torch.equal(res.composite[~known], res.reconstructions[~known])
    saved = read_image(out / "images" / "a_restored.png", G.resolution, G.channels)[0]
    assert (saved - res.composite[0].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6  # the delivered image, 8-bit

    rows = json.loads((out / "metrics.json").read_text())
    for i, row in enumerate(rows):
        assert row["psnr_composite"] == pytest.approx(float(M.psnr(res.composite[i : i + 1], x[i : i + 1])), abs=1e-4)
        assert row["ssim_composite"] == pytest.approx(float(M.ssim(res.composite[i : i + 1], x[i : i + 1])), abs=1e-4)
        assert row["psnr_composite"] >= row["psnr"]  # exact known pixels: only the hole's error is left
    assert "ssim_composite" in (out / "metrics.csv").read_text().splitlines()[0].split(",")

    doc = json.loads((out / "run.json").read_text())
    assert doc["restoration"] == {"degradation": op.describe(), "clean_reference": True}
    assert doc["items"][0]["observed"] == "images/a_observed.png" and doc["items"][0]["delivered"] == "images/a_restored.png"
    page = (out / "report.html").read_text()
    for label in ("clean target", "observed (as the model saw it)", "reconstruction G(w)", "delivered composite",
                  "mean PSNR of the delivered composite", "mean SSIM of the delivered composite"):
        assert label in page, label
    assert page.count("data:image/png;base64") == 2 * 4  # per image: target, observed, reconstruction, composite


def test_super_resolution_report_says_the_reconstruction_is_delivered(tiny_sg2, tmp_path):
    G = tiny_sg2
    x = _faces(G, 1)
    op = Downsample(2)
    res = invert(G, op(x), "optimize", degradation=op, reference=x, steps=3, space="w", loss="mse=1")
    writer = RunWriter(tmp_path / "sr", G)
    shown = show_observation(op(x), G.resolution, G.channels)
    writer.add(res, x, ["a.png"], restoration=Restoration(shown, op.describe(), clean_reference=True))
    page = writer.finish().joinpath("report.html").read_text()
    assert "reconstruction G(w) = delivered" in page and "no pixel is observed exactly" in page
    assert page.count("data:image/png;base64") == 3  # target, observed (blocks), reconstruction
    assert not (tmp_path / "sr" / "images" / "a_restored.png").exists()
    # the observation shown is the low-resolution one enlarged by pixel repetition
    assert torch.equal(shown[0, :, ::2, ::2], op(x)[0]) and torch.equal(shown[0, :, 1::2, 1::2], op(x)[0])


def test_a_real_photo_with_a_mask_is_seen_through_the_mask(tiny_sg2):
    """--mask on an unmasked photo: the hole's pixels are not part of the observation (loss, fit, report)."""
    G = tiny_sg2
    x = _faces(G, 2, seed=8)
    op = Mask(_hole(G.resolution))
    raw = invert(G, x, "optimize", degradation=op, steps=4, space="w", loss="mse=1", seed=1)
    masked = invert(G, op(x), "optimize", degradation=op, steps=4, space="w", loss="mse=1", seed=1)
    assert torch.allclose(raw.latents, masked.latents, atol=1e-6)
    assert [m["psnr_observed"] for m in raw.metrics] == pytest.approx([m["psnr_observed"] for m in masked.metrics], abs=1e-5)


@pytest.mark.slow  # the command line end to end: ~5 s
def test_cli_restoration_of_a_real_observation_shows_no_clean_target(tiny_sg2, tmp_path):
    from invertkit.generators.checkpoints import save_native

    G = tiny_sg2
    pkl = save_native(G, tmp_path / "tiny.safetensors")
    save_image(_faces(G, 1)[0], tmp_path / "a.png")
    save_image(_hole(G.resolution)[0] * 2 - 1, tmp_path / "mask.png")
    out = tmp_path / "run"
    assert main(["invert", str(tmp_path / "a.png"), "-g", str(pkl), "--mask", str(tmp_path / "mask.png"), "--steps", "3",
                 "--loss", "mse=1", "--space", "w", "--out", str(out), "--no-progress"]) == 0
    page = (out / "report.html").read_text()
    assert "clean target" not in page and "real observations, no clean image known" in page
    assert page.count("data:image/png;base64") == 3  # observed, reconstruction, composite
    observed = read_image(out / "images" / "a_observed.png", G.resolution, G.channels)
    assert observed[..., G.resolution // 2 :, :].abs().max() <= 1 / 127.5  # the hole as the model saw it: unknown (0)
    assert json.loads((out / "run.json").read_text())["restoration"]["clean_reference"] is False


def test_groups_are_averaged_apart(tiny_sg2, tmp_path):
    G = tiny_sg2
    x = _faces(G, 3)
    res = invert(G, x, "optimize", steps=3, space="w", loss="mse=1")
    out = write_run(tmp_path / "run", G, res, x, ["p1", "p2", "c1"], groups=["real", "real", "control"])
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["group"] for r in rows] == ["real", "real", "control"]
    page = (out / "report.html").read_text()
    real = sum(r["psnr"] for r in rows[:2]) / 2
    assert "Means by group" in page and f"{real:.3f} dB (real), {rows[2]['psnr']:.3f} dB (control)" in page
    assert load_run(out).result.metrics[0]["psnr"] == pytest.approx(rows[0]["psnr"])  # the group column is not a metric


def test_history_csv_matches_the_result(tiny_sg2, tmp_path):
    G = tiny_sg2
    x = _faces(G, 2)
    res = invert(G, x, "optimize", steps=7, space="w", loss="mse=1", log_every=2, restarts=1)
    out = write_run(tmp_path / "run", G, res, x, ["a.png", "b.png"])
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    loss = res.history["loss"]  # [records, N]
    assert list(rows[0]) == ["image", "step", "loss"] and len(rows) == loss.numel()
    for i, name in enumerate(["a.png", "b.png"]):
        mine = [r for r in rows if r["image"] == name]
        assert [int(r["step"]) for r in mine] == [2 * k for k in range(loss.shape[0])]
        assert torch.equal(torch.tensor([float(r["loss"]) for r in mine]), loss[:, i].float())
    back = load_run(out).result.history["loss"]
    assert torch.equal(back, loss.float())


def test_report_rebuild_rewrites_history(tiny_sg2, tmp_path):
    G = tiny_sg2
    x = _faces(G, 1)
    out = write_run(tmp_path / "run", G, invert(G, x, "optimize", steps=3, space="w", loss="mse=1"), x, ["a.png"])
    first = (out / "history.csv").read_text()
    (out / "history.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "history.csv").read_text() == first


def _dataset_restoration(tiny_sg2, tmp_path: Path) -> Path:
    from invertkit.generators.checkpoints import save_native

    G = tiny_sg2
    pkl = save_native(G, tmp_path / "tiny.safetensors")
    for k, img in enumerate(_faces(G, 2)):
        save_image(img, tmp_path / "in" / f"f{k}.png")
    save_image(_hole(G.resolution)[0] * 2 - 1, tmp_path / "mask.png")
    out = tmp_path / "ds"
    assert main(["invert", str(tmp_path / "in"), "-g", str(pkl), "--format", "parquet", "--mask", str(tmp_path / "mask.png"),
                 "--simulate", "--steps", "3", "--loss", "mse=1", "--space", "w", "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(out), "-g", str(pkl)]) == 0
    return out


@pytest.mark.slow  # a dataset run and its report: ~10 s
def test_dataset_report_shows_observation_and_composite(tiny_sg2, tmp_path):
    pytest.importorskip("pyarrow")
    page = (_dataset_restoration(tiny_sg2, tmp_path) / "report.html").read_text()
    assert "observations simulated from the clean inputs" in page and "psnr_composite" in page
    for label in ("target", "observed", "reconstruction", "delivered"):
        assert f"<figcaption>{label}</figcaption>" in page, label
