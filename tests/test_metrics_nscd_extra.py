"""``--metrics nscd`` / ``extra_metrics=("nscd",)``: LSAP's NSCD as an extra metric of the inverted latent."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from invertkit.cli.main import main
from invertkit.errors import CapabilityError, ConfigError
from invertkit.generators import load_generator
from invertkit.io.images import save_image
from invertkit.methods import METHODS, invert
from invertkit.methods.scoring import score
from invertkit.metrics import check_extra_metrics, nscd, nscd_defined
from invertkit.results.health import nonfinite_images
from invertkit.runs import load_run


@pytest.fixture
def sg2_file(tmp_path, tiny_sg2) -> Path:
    from invertkit.generators.checkpoints import save_native

    return save_native(tiny_sg2, tmp_path / "tiny.safetensors")


@pytest.fixture
def images(tiny_sg2, tmp_path) -> Path:
    folder = tmp_path / "imgs"
    with torch.no_grad():
        x = tiny_sg2.synthesize(tiny_sg2.sample_latent(2, "w", seed=5), "w").clamp(-1, 1)
    save_image(x[0], folder / "a.png")
    save_image(x[1], folder / "b.png")
    return folder


def _drawn(G, n: int = 2) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesize(G.sample_latent(n, "w", seed=5), "w").clamp(-1, 1)


@pytest.mark.parametrize("space", ["w+", "z"])
def test_cli_writes_the_nscd_column_equal_to_the_function_on_the_stored_latent(sg2_file, images, tmp_path, space):
    out = tmp_path / "run"
    assert main(["invert", str(images), "-g", str(sg2_file), "--steps", "5", "--loss", "mse=1", "--space", space,
                 "--metrics", "nscd", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "metrics.json").read_text())
    with open(out / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert "nscd" in table[0] and len(table) == 2
    G = load_generator(sg2_file)
    run = load_run(out, G)
    want = nscd(G, run.result.latents, run.result.latent_space).tolist()
    for row, line, value in zip(rows, table, want):
        assert 0 < row["nscd"] < 2 and row["nscd"] == pytest.approx(value, abs=1e-6)
        assert float(line["nscd"]) == pytest.approx(value, abs=1e-6)
    # the same from the raw latent file (the z key, or NVIDIA's [1, num_ws, w_dim] "w")
    with np.load(out / "latents" / "a.npz") as f:
        stored = torch.from_numpy(f["z" if space == "z" else "w"]).float()
    assert float(nscd(G, stored, space)[0]) == pytest.approx(rows[0]["nscd"], abs=1e-6)
    html = (out / "report.html").read_text()
    assert "mean NSCD" in html and f"{sum(want) / len(want):.3f}" in html


def test_api_extra_metric_is_the_function_of_the_latent_not_the_image(tiny_sg2):
    x = _drawn(tiny_sg2)
    res = invert(tiny_sg2, x, "optimize", space="w", steps=3, loss="mse=1", extra_metrics=("nscd",))
    want = nscd(tiny_sg2, res.latents, "w")
    assert [m["nscd"] for m in res.metrics] == pytest.approx(want.tolist(), abs=1e-7)
    # the image does not enter: scoring the same latents against another reference changes nothing
    rows = score(tiny_sg2, res.reconstructions, torch.zeros_like(x), latents=res.latents, space="w", extra=("nscd",))
    assert [r["nscd"] for r in rows] == pytest.approx(want.tolist(), abs=1e-7)


def test_sampled_latent_scores_lower_than_a_far_away_w_plus(tiny_sg2):
    G = tiny_sg2
    sampled = G.sample_latent(8, "w+", seed=11)
    far = 4.0 * torch.randn(8, G.num_ws, 32, generator=torch.Generator().manual_seed(3))  # independent far rows
    recon = torch.zeros(8, G.channels, G.resolution, G.resolution)
    near = [r["nscd"] for r in score(G, recon, recon, latents=sampled, space="w+", extra=("nscd",))]
    away = [r["nscd"] for r in score(G, recon, recon, latents=far, space="w+", extra=("nscd",))]
    assert max(near) < min(away)
    assert sum(near) / 8 < 0.5 * sum(away) / 8


def test_every_style_space_gives_the_same_value(tiny_sg2):
    G = tiny_sg2
    w = G.sample_latent(3, "w", seed=2)
    recon = torch.zeros(3, G.channels, G.resolution, G.resolution)
    ref = [r["nscd"] for r in score(G, recon, recon, latents=w, space="w", extra=("nscd",))]
    for space in ("w+", "s", "p", "pn"):
        got = [r["nscd"] for r in score(G, recon, recon, latents=G.convert(w, "w", space), space=space, extra=("nscd",))]
        assert got == pytest.approx(ref, abs=1e-5), space
    z = G.sample_latent(3, "z", seed=2)
    got = [r["nscd"] for r in score(G, recon, recon, latents=z, space="z", extra=("nscd",))]
    assert got == pytest.approx(ref, abs=1e-6)


def test_pivot_of_a_tuned_result(tiny_sg2):
    x = _drawn(tiny_sg2, 1)
    res = invert(tiny_sg2, x, "pti", pivot="optimize", pivot_steps=3, steps=2, space="w", extra_metrics=("nscd",))
    assert res.kind == "tuned"
    want = float(nscd(tiny_sg2, res.latents, res.latent_space)[0])  # the pivot, under the base generator's anchors
    assert res.metrics[0]["nscd"] == pytest.approx(want, abs=1e-7)


def test_layerwise_result_has_no_nscd(tiny_sg2):
    """The rows of an f:LAYER latent before the cut never reach the image: no value, and not a NaN
    (a NaN would mark the image as failed)."""
    res = invert(tiny_sg2, _drawn(tiny_sg2, 1), "optimize", space="f:8", steps=2, loss="mse=1", extra_metrics=("nscd",))
    assert "nscd" not in res.metrics[0] and not nonfinite_images(res)
    assert not nscd_defined(tiny_sg2, "f:8") and nscd_defined(tiny_sg2, "z") and nscd_defined(tiny_sg2, "pn")


def test_a_nan_latent_is_not_a_score(tiny_sg2):
    G = tiny_sg2
    w = G.sample_latent(3, "w+", seed=1)
    w[1, 0, 0] = float("nan")
    w[2, 2, 3] = float("inf")
    values = nscd(G, w, "w+")
    assert math.isfinite(float(values[0])) and torch.isnan(values[1:]).all()
    # S: a NaN in a style NSCD does not read (an intermediate ToRGB's) still makes the row NaN
    s = G.sample_latent(2, "s", seed=1)
    torgb = G.style_layer_names.index("b4.torgb")
    assert torgb not in G.row_layers()
    s[1, sum(G.style_dims[:torgb])] = float("nan")
    values = nscd(G, s, "s")
    assert math.isfinite(float(values[0])) and math.isnan(float(values[1]))
    recon = torch.zeros(2, G.channels, G.resolution, G.resolution)
    rows = score(G, recon, recon, latents=s, space="s", extra=("nscd",))
    assert math.isnan(rows[1]["nscd"]) and math.isfinite(rows[0]["nscd"])


def test_refused_without_style_spaces_before_any_work(tiny_mlp, monkeypatch):
    called = []
    spec = dataclasses.replace(METHODS.get("optimize"), run=lambda *a: called.append(1))
    monkeypatch.setitem(METHODS._items, "optimize", spec)
    with pytest.raises(CapabilityError) as info:
        invert(tiny_mlp, torch.zeros(1, 1, 8, 8), "optimize", extra_metrics=("nscd",))
    msg = str(info.value)
    assert "\n" not in msg and "--metrics nscd" in msg and "style spaces" in msg and "StyleGAN2" in msg
    assert not called
    with pytest.raises(ConfigError, match="unknown metric 'nope'; known: .*nscd"):
        check_extra_metrics(tiny_mlp, ("nope",))
    assert check_extra_metrics(tiny_mlp, ("mse", "mse")) == ("mse",)


@pytest.mark.parametrize("generator", ["dcgan-digiface64", "analytic:diffusion"])
def test_cli_refuses_nscd_for_a_generator_without_style_spaces(generator, images, tmp_path, capsys):
    for command in (["invert", str(images), "--out", str(tmp_path / "x")],
                    ["invert", str(images), "--format", "parquet", "--out", str(tmp_path / "x")],  # the dataset layout
                    ["bench", "--images", str(images), "--methods", "plain", "--out", str(tmp_path / "x")]):
        assert main([*command, "-g", generator, "--metrics", "nscd"]) == 2
        captured = capsys.readouterr()
        [line] = captured.err.splitlines()
        assert line.startswith("invertkit: error: --metrics nscd (LSAP's NSCD") and "style spaces" in line and "StyleGAN2" in line
        assert "bench" not in captured.out and not (tmp_path / "x").exists()


def test_bench_reports_nscd_mean(sg2_file, images, tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "-g", str(sg2_file), "--images", str(images), "--methods", "optimize:w,plain:w",
                 "--steps", "3", "--loss", "mse=1", "--metrics", "nscd", "--out", str(out)]) == 0
    rows = json.loads((out / "bench.json").read_text())
    G = load_generator(sg2_file)
    for r in rows:
        folder = out / r["method"].replace(":", "_")
        latents = load_run(folder, G).result.latents
        assert r["nscd_mean"] == pytest.approx(float(nscd(G, latents, "w").mean()), abs=1e-6)


def test_dataset_run_rows_hold_nscd(sg2_file, tmp_path):
    from invertkit.runs.dataset_reader import load_results

    from .dataset_factories import write_images

    data = tmp_path / "data"
    write_images(data, 3)
    out = tmp_path / "ds"
    assert main(["invert", str(data), "-g", str(sg2_file), "-m", "optimize", "--steps", "2", "--space", "w", "--loss", "mse=1",
                 "--no-progress", "--format", "parquet", "--metrics", "nscd", "--out", str(out)]) == 0
    rows = load_results(out).to_pylist()
    G = load_generator(sg2_file)
    assert len(rows) == 3
    for r in rows:
        want = float(nscd(G, torch.tensor(r["latent"]).reshape(1, *r["latent_shape"]), r["space"])[0])
        assert r["nscd"] == pytest.approx(want, abs=1e-6)
    assert "nscd" in (out / "report.html").read_text()


GOLDEN = Path(__file__).parent / "golden" / "nscd_lsap.safetensors"


def test_nscd_matches_the_authors_code():
    """NSCD of ten W+ codes (samples, far-away rows, noisy samples) against caopulan/GANInverter's
    modules and LSAP formulas (``benchmarks/nscd_reference.py`` wrote the golden file), to 1e-4
    relative; the anchors (10^4 samples, seed 0) to 1e-5."""
    from safetensors import safe_open

    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    with safe_open(str(GOLDEN), "pt") as f:
        golden = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    G = StyleGAN2Generator(StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, mapping_layers=2, channel_base=256,
                                           channel_max=32), name="tiny-golden", init_seed=0)
    state = G.state_dict()
    weights = {k[len("weights."):]: v for k, v in golden.items() if k.startswith("weights.")}
    assert weights and set(weights) <= set(state)
    G.load_state_dict({**state, **weights})
    ours = nscd(G, golden["latents"], "w+")
    ref = golden["nscd"]
    assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-4
    anchors = G.style_anchors()
    for k, layer in enumerate(G.row_layers()):
        assert torch.allclose(anchors[layer], golden[f"anchor_{k}"], atol=1e-5), G.style_layer_names[layer]
    assert ref[:4].max() < ref[4:7].min()  # mapped samples sit nearer the anchors than far-away rows
