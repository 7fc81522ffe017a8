"""Issue 14, "never a wrong number": a NaN or inf result is a failed image (no score, strict JSON,
status and reason in every output), a NaN option value is refused up front, and damaged but finite
files (NaN / absurd tensors) are refused at load with one line naming the file and the tensor."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from invertkit.cli.main import main
from invertkit.errors import ConfigError, ImageError
from invertkit.generators import wrap
from invertkit.io.images import save_image
from invertkit.methods import invert
from invertkit.metrics import psnr
from invertkit.results.health import nonfinite_images
from invertkit.runs import RunWriter, load_run


def strict_json(path: Path):
    """Parse like a strict JSON parser: NaN, Infinity and -Infinity are errors."""
    def refuse(name: str):
        raise ValueError(f"{path.name}: non-standard JSON constant {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


class NaNPixel(nn.Module):
    """z in R^4 -> a 1 x 2 x 2 image tanh(z), whose first pixel is NaN once z[0] > 1: a target that
    pulls z[0] up diverges, one that pulls it down does not."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(z)
        first = torch.where(z[:, :1] > 1.0, torch.full_like(x[:, :1], float("nan")), x[:, :1])
        return torch.cat([first, x[:, 1:]], 1).reshape(-1, 1, 2, 2)


@pytest.fixture
def nan_pixel():
    G = wrap(NaNPixel(), (4,), 2, 1, name="nan-pixel")
    targets = torch.stack([torch.full((1, 2, 2), 0.95), torch.full((1, 2, 2), -0.5)])
    return G, targets


# ---- metrics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_psnr_of_a_non_finite_image_is_nan_never_the_identical_value(bad):
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[0, 1, 2, 3] = bad
    scores = psnr(b, a)
    assert torch.isnan(scores[0]) and scores[1] == 100.0  # the finite identical pair keeps its value
    assert torch.isnan(psnr(a, b)[0])
    assert torch.isnan(psnr(b, a, quantized=False)[0])


def test_nan_input_image_is_refused_by_the_api(nan_pixel):
    G, x = nan_pixel
    x = x.clone()
    x[1, 0, 1, 1] = float("nan")
    with pytest.raises(ImageError, match=r"non-finite value\(s\) \(NaN or infinity\) in images\[1\]"):
        invert(G, x, "optimize", steps=2, loss="mse=1")


# ---- a diverged image in a run folder -----------------------------------------------------------
def test_wrapped_module_with_a_nan_pixel_is_a_failed_image_everywhere(nan_pixel, tmp_path):
    G, x = nan_pixel
    result = invert(G, x, "optimize", steps=50, loss="mse=1")
    assert nonfinite_images(result) == {0: "non-finite reconstruction"}
    out = tmp_path / "run"
    writer = RunWriter(out, G)
    writer.add(result, x, ["up.png", "down.png"])
    writer.finish()

    rows = strict_json(out / "metrics.json")
    by_name = {r["image"]: r for r in rows}
    assert by_name["up.png"]["status"] == "failed" and by_name["up.png"]["psnr"] is None
    assert "diverged (non-finite reconstruction)" in by_name["up.png"]["error"]
    assert by_name["down.png"]["status"] == "ok" and by_name["down.png"]["psnr"] > 30
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        csv_rows = {r["image"]: r for r in csv.DictReader(f)}
    assert csv_rows["up.png"]["status"] == "failed" and csv_rows["up.png"]["psnr"] == ""
    doc = strict_json(out / "run.json")
    assert list(doc["failures"]) == ["up.png"] and doc["images"] == ["down.png"]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "1 failed" in report and "diverged" in report and "100.000" not in report
    assert not (out / "latents" / "up.npz").exists()  # no latent file for a failed image
    back = load_run(out, G)
    assert back.result.n == 1 and back.result.metrics[0]["psnr"] > 30


@pytest.fixture
def sg2_file(tmp_path, tiny_sg2) -> Path:
    from invertkit.generators.checkpoints import save_native

    return save_native(tiny_sg2, tmp_path / "tiny.safetensors")


@pytest.fixture
def two_images(tmp_path, tiny_sg2) -> Path:
    folder = tmp_path / "imgs"
    with torch.no_grad():
        x = tiny_sg2.synthesize(tiny_sg2.sample_latent(2, "w", seed=5), "w").clamp(-1, 1)
    save_image(x[0], folder / "a.png")
    save_image(x[1], folder / "b.png")
    return folder


def test_cli_diverged_run_exits_1_with_null_metrics(sg2_file, two_images, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["invert", str(two_images), "-g", str(sg2_file), "--steps", "4", "--loss", "mse=1", "--lr", "1e30",
                 "--out", str(out), "--no-progress"])
    assert code == 1  # partial failure: nothing got a score
    assert "2 failed" in capsys.readouterr().out
    rows = strict_json(out / "metrics.json")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all(r["psnr"] is None and "diverged" in r["error"] for r in rows)


@pytest.mark.parametrize("flags, needle", [
    (["--loss", "mse=nan"], "weight of 'mse' is nan"),
    (["--loss", "mse=1,perceptual=inf"], "weight of 'perceptual' is inf"),
    (["--degrade", "noise:nan", "--simulate"], "noise:nan"),
    (["--degrade", "noise:inf", "--simulate"], "noise:inf"),
])
def test_non_finite_option_values_are_refused_up_front(sg2_file, two_images, tmp_path, capsys, flags, needle):
    out = tmp_path / "run"
    assert main(["invert", str(two_images / "a.png"), "-g", str(sg2_file), "--steps", "2", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (out / "metrics.json").exists()


def test_api_refuses_non_finite_loss_weight_and_noise():
    from invertkit.degradations import AddNoise
    from invertkit.objectives.combined import parse_loss_spec

    with pytest.raises(ConfigError):
        parse_loss_spec({"mse": float("nan")})
    with pytest.raises(ConfigError):
        AddNoise(float("nan"))


# ---- the bench ----------------------------------------------------------------------------------
def test_bench_shows_a_diverged_method_as_diverged_and_never_ranks_it(sg2_file, two_images, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "-g", str(sg2_file), "--images", str(two_images), "--methods", "optimize:w@lr=1e30,optimize:w",
                 "--steps", "4", "--loss", "mse=1", "--out", str(out)])
    assert code == 1
    assert "diverged, not ranked: optimize:w@lr=1e30 (2 image(s))" in capsys.readouterr().out
    rows = strict_json(out / "bench.json")
    assert [r["method"] for r in rows] == ["optimize:w", "optimize:w@lr=1e30"]  # the finite one first
    good, bad = rows
    assert good["status"] == "ok" and good["diverged"] == 0 and good["psnr_mean"] > 0
    assert bad["status"] == "diverged (2 of 2 images)" and bad["diverged"] == 2
    assert bad.get("psnr_mean") is None and bad.get("ssim_mean") is None
    with open(out / "bench.csv", newline="", encoding="utf-8") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok", "diverged (2 of 2 images)"]
    md = (out / "bench.md").read_text(encoding="utf-8")
    assert "diverged (2 of 2 images)" in md and "nan" not in md.lower().replace("n/a", "")
    html = (out / "bench.html").read_text(encoding="utf-8")
    assert "diverged (2 of 2 images)" in html and ">nan<" not in html
    assert strict_json(out / "optimize_w_lr_1e30" / "metrics.json")[0]["status"] == "failed"


# ---- damaged but finite files: refused at load, one line naming the file and the tensor -----------
def rewrite_safetensors(path: Path, out: Path, *, tensor: str | None = None, value: float = 0.0, fill: bool = False,
                        header: str | None = None, edit=None) -> Path:
    """A copy of a safetensors file with one value of ``tensor`` set to ``value`` (or the whole tensor
    when ``fill``), or the JSON header entry ``header`` changed by ``edit``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k).clone() for k in f.keys()}
    if tensor is not None:
        if fill:
            tensors[tensor].fill_(value)
        else:
            tensors[tensor].view(-1)[0] = value
    if header is not None:
        doc = json.loads(meta[header])
        edit(doc)
        meta[header] = json.dumps(doc)
    save_file(tensors, str(out), metadata=meta)
    return out


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_nan_lr_multiplier_in_a_checkpoint_config_is_refused(sg2_file, two_images, tmp_path, capsys):
    from invertkit.errors import CheckpointError
    from invertkit.generators import load_generator

    for bad in (float("nan"), float("inf"), 0.0, -0.01, 3e38):
        damaged = rewrite_safetensors(sg2_file, tmp_path / "damaged.safetensors", header="invertkit",
                                      edit=lambda d, v=bad: d["config"].__setitem__("mapping_lr_multiplier", v))
        with pytest.raises(CheckpointError) as exc:
            load_generator(damaged)
        assert str(damaged) in one_line(exc) and "mapping_lr_multiplier" in str(exc.value)
    assert main(["invert", str(two_images / "a.png"), "-g", str(damaged), "--steps", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mapping_lr_multiplier" in err and str(damaged) in err


def test_huge_weight_in_a_pti_delta_is_refused(tmp_path):
    from invertkit.errors import CheckpointError
    from invertkit.generators.tuning import read_delta, save_delta

    good = save_delta(tmp_path / "x_delta.safetensors", {"synthesis.b4.conv1.weight": torch.full((3, 3), 1e-3)}, {"base": "tiny"})
    assert read_delta(good)[0]["synthesis.b4.conv1.weight"].abs().max() < 1
    for value in (3e38, float("nan")):
        bad = rewrite_safetensors(good, tmp_path / "bad_delta.safetensors", tensor="synthesis.b4.conv1.weight", value=value)
        with pytest.raises(CheckpointError) as exc:
            read_delta(bad)
        assert str(bad) in one_line(exc) and "synthesis.b4.conv1.weight" in str(exc.value)
    with pytest.raises(ConfigError, match="more than"):
        save_delta(tmp_path / "y_delta.safetensors", {"w": torch.full((2,), 3e38)}, {"base": "tiny"})


def test_damaged_prompt_embeddings_are_refused(tmp_path):
    from safetensors.torch import save_file

    from invertkit.diffusion.diffusers_io import read_prompts

    for value in (float("nan"), 3e38):
        emb = torch.zeros(4, 8)
        emb[1, 2] = value
        path = tmp_path / "prompts.safetensors"
        save_file({"a cat": torch.zeros(4, 8), "a dog": emb}, str(path))
        with pytest.raises(ConfigError) as exc:
            read_prompts(path)
        assert str(path) in one_line(exc) and "'a dog'" in str(exc.value)


def test_damaged_diffusion_state_is_refused(tmp_path):
    from invertkit.errors import CheckpointError
    from invertkit.generators import load_generator
    from invertkit.results.diffusion import load_state, save_state

    G = load_generator("analytic:flow:8")
    images = G.synthesize(G.sample_latent(1, seed=0), steps=4).clamp(-1, 1)
    result = invert(G, images, "flow-euler", steps=4)
    good = save_state(tmp_path / "a_state.safetensors", result, 0, G)
    load_state(good, G)
    for value in (float("nan"), 3e38):
        bad = rewrite_safetensors(good, tmp_path / "b_state.safetensors", tensor="x_T", value=value)
        with pytest.raises(CheckpointError) as exc:
            load_state(bad, G)
        assert str(bad) in one_line(exc) and "x_T" in str(exc.value)


def test_damaged_directions_are_refused(tmp_path):
    from invertkit.editing.directions import Directions, load_directions, save_directions, unit_rows
    from invertkit.errors import CheckpointError

    good = save_directions(Directions(unit_rows(torch.randn(2, 8, generator=torch.Generator().manual_seed(0))),
                                      torch.ones(2), torch.zeros(2), "z", "test"), tmp_path / "dirs.safetensors")
    assert len(load_directions(good)) == 2
    cases = [({"tensor": "sigmas", "value": 3e38}, "sigmas"), ({"tensor": "sigmas", "value": 0.0}, "sigmas"),
             ({"tensor": "sigmas", "value": float("nan")}, "sigmas"),
             ({"tensor": "vectors", "value": 0.0, "fill": True}, "vectors"), ({"tensor": "vectors", "value": 5.0}, "vectors")]
    for change, name in cases:
        bad = rewrite_safetensors(good, tmp_path / "bad.safetensors", **change)
        with pytest.raises(CheckpointError) as exc:
            load_directions(bad)
        assert str(bad) in one_line(exc) and f"tensor {name}" in str(exc.value), exc.value


@pytest.mark.parametrize("flags, needle", [(["--lr", "nan"], "lr (CLI --lr) = nan"), (["--lr", "inf"], "lr (CLI --lr) = inf")])
def test_non_finite_method_options_are_refused(sg2_file, two_images, tmp_path, capsys, flags, needle):
    assert main(["invert", str(two_images / "a.png"), "-g", str(sg2_file), "--steps", "2", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "finite number" in err and len(err.splitlines()) == 1
