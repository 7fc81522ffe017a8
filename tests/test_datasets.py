"""Dataset runs (``invertkit invert ... --format parquet``): listing, hostile inputs, the Parquet layout,
resume after SIGKILL/SIGINT, --retry-failed, refusal of another configuration, reading back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from invertkit.cli.main import main
from invertkit.io.sources import ParquetColumns, dataset_entries
from invertkit.runs.dataset_reader import load_results
from invertkit.runs.shards import ShardStore

from .dataset_factories import save_tiny_sg2, write_broken, write_images

FAST = ["-m", "optimize", "--steps", "2", "--space", "w", "--loss", "mse=1", "--no-progress"]


@pytest.fixture
def gen(tmp_path, tiny_sg2) -> Path:
    return save_tiny_sg2(tiny_sg2, tmp_path)


def _invert(gen: Path, inputs: list[str], out: Path, *extra: str) -> int:
    return main(["invert", *inputs, "-g", str(gen), *FAST, "--format", "parquet", "--out", str(out), *extra])


def _rows(out: Path) -> dict[str, dict]:
    t = load_results(out)
    rows = t.to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "an id was written twice"
    return {r["id"]: r for r in rows}


def _same_rows(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        ra, rb = a[k], b[k]
        assert ra["status"] == rb["status"], k
        if ra["status"] == "ok":
            np.testing.assert_allclose(ra["latent"], rb["latent"], atol=1e-5)
            assert ra["psnr"] == pytest.approx(rb["psnr"], abs=1e-3)


# ---- listing -------------------------------------------------------------------------------------
def test_folder_glob_list_and_parquet_sources(tmp_path):
    paths = write_images(tmp_path / "data", 6)
    ids = [e.id for e in dataset_entries([str(tmp_path / "data")])]
    assert ids == sorted(ids, key=lambda i: (i.startswith("sub/") is False, i)) or len(ids) == 6
    assert set(ids) == {p.relative_to(tmp_path / "data").as_posix() for p in paths}
    # a glob, and a list file whose relative paths are relative to the list's folder
    assert len(list(dataset_entries([str(tmp_path / "data" / "**" / "*.png")]))) == 6
    (tmp_path / "data" / "list.txt").write_text("# two of them\nimg0001.png\n\nsub/img0000.png\nimg0001.png\n")
    listed = list(dataset_entries([str(tmp_path / "data" / "list.txt")]))
    assert [e.id for e in listed] == ["img0001.png", "sub/img0000.png"]  # the repeat is dropped
    assert all(Path(e.path).is_file() for e in listed)
    # Parquet with Hugging Face's image struct, an id column
    table = pa.table({"key": ["a", "b"], "image": [{"bytes": paths[0].read_bytes(), "path": None},
                                                   {"bytes": paths[1].read_bytes(), "path": None}]})
    pq.write_table(table, tmp_path / "d.parquet")
    rows = list(dataset_entries([str(tmp_path / "d.parquet")], columns=ParquetColumns(id="key")))
    assert [e.id for e in rows] == ["a", "b"] and rows[0].parquet is not None


# ---- a full run with hostile inputs ---------------------------------------------------------------
def test_good_and_broken_inputs(gen, tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data, 5)
    broken = write_broken(data)
    out = tmp_path / "run"
    assert _invert(gen, [str(data)], out, "--batch-size", "3") == 1  # failures happened
    rows = _rows(out)
    assert len(rows) == 5 + len(broken)
    for name in broken:
        assert rows[name]["status"] == "error" and name in rows[name]["error"]
        assert rows[name]["latent"] is None and rows[name]["psnr"] is None
    assert "2,500,000,000 pixels" in rows["bomb.png"]["error"]
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) == 5
    for r in ok:
        assert r["latent_shape"] == [32] and len(r["latent"]) == 32 and r["latent_dtype"] == "float32"
        assert np.isfinite(r["psnr"]) and r["method"] == "optimize" and r["space"] == "w"
    doc = json.loads((out / "run.json").read_text())
    assert doc["layout"] == "dataset" and doc["counts"] == {"inputs": 9, "ok": 5, "failed": 4}
    assert {r["config_fingerprint"] for r in rows.values()} == {doc["config_fingerprint"]}
    assert (out / "report.html").is_file() and "Failed inputs (4)" in (out / "report.html").read_text()
    assert "4 input(s) failed" in capsys.readouterr().err
    # pandas reads the same rows
    df = load_results(out, as_pandas=True)
    assert sorted(df["id"]) == sorted(rows)


def test_retry_failed_and_config_refusal(gen, tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data, 3, nested=False)
    (data / "late.png").write_bytes(b"")
    out = tmp_path / "run"
    assert _invert(gen, [str(data)], out) == 1
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data / "late.png")  # the user fixes the file
    assert _invert(gen, [str(data)], out) == 1  # a plain rerun skips it: its error row stands
    assert _rows(out)["late.png"]["status"] == "error"
    assert _invert(gen, [str(data)], out, "--retry-failed") == 0
    rows = _rows(out)
    assert rows["late.png"]["status"] == "ok" and len(rows) == 4
    capsys.readouterr()
    code = main(["invert", str(data), "-g", str(gen), "-m", "optimize", "--steps", "3", "--space", "w", "--loss", "mse=1",
                 "--no-progress", "--format", "parquet", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "options.steps: 2 in the folder, 3 now" in err


def test_read_back_typed_and_edit(gen, tmp_path):
    import torch

    from invertkit.generators import load_generator

    data = tmp_path / "data"
    write_images(data, 4, nested=False)
    out = tmp_path / "run"
    assert _invert(gen, [str(data)], out, "--save-images", "parquet") == 0
    G = load_generator(gen)
    run = load_results(out, ids=["img0002.png", "img0000.png"], G=G)
    assert run.names == ["img0002.png", "img0000.png"]
    rows = _rows(out)
    want = torch.tensor(rows["img0002.png"]["latent"]).reshape(1, *rows["img0002.png"]["latent_shape"])
    assert torch.allclose(run.result.latents[:1], want)
    assert run.result.metrics[0]["psnr"] == pytest.approx(rows["img0002.png"]["psnr"])
    assert torch.allclose(run.result.render(G)[:1].clamp(-1, 1), run.result.reconstructions[:1], atol=1 / 127.5 + 1e-4)
    # the row's latent, edited along a direction, renders through the generator
    edited = run.result.latents[:1] + 0.5 * torch.randn(1, 32, generator=torch.Generator().manual_seed(0))
    assert G.synthesize(edited.to(G.device), "w").isfinite().all()


# ---- resume after a kill ----------------------------------------------------------------------------
def _cli(gen: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "invertkit.cli.main", "invert", str(data), "-g", str(gen), *FAST, "--format", "parquet",
            "--shard-size", "16", "--batch-size", "4", "--out", str(out)]


def _kill_when_shards(cmd: list[str], out: Path, sig: int, shards: int = 2) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(ShardStore(out).shards()) >= shards:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    proc.communicate(timeout=120)
    return proc.returncode


@pytest.mark.parametrize("sig, status", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)])
def test_kill_and_resume_equals_uninterrupted(gen, tmp_path, sig, status):
    data = tmp_path / "data"
    write_images(data, 200)
    whole = tmp_path / "whole"
    assert _invert(gen, [str(data)], whole, "--batch-size", "4") == 0
    out = tmp_path / "killed"
    code = _kill_when_shards(_cli(gen, data, out), out, sig)
    if code == 0:
        pytest.skip("the run finished before the signal arrived (machine too fast for this test)")
    assert code == status
    part = _rows(out)
    assert 0 < len(part) < 200
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run(_cli(gen, data, out), env=env, check=True, capture_output=True, timeout=300)
    _same_rows(_rows(out), _rows(whole))
    assert not [p for p in (out / "results").iterdir() if not p.name.startswith("part-")]  # no temporary shard left
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert sessions[-1]["skipped"] == len(part)


def test_ray_engine_gives_the_local_rows(gen, tmp_path):
    pytest.importorskip("ray.data", reason="the ray extra is not installed (make install includes it)")
    data = tmp_path / "data"
    write_images(data, 10)
    write_broken(data)
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert _invert(gen, [str(data)], local, "--batch-size", "3") == 1
    # torch threads differ between this process and the actors; rows must not depend on it beyond rounding
    assert _invert(gen, [str(data)], ray_out, "--batch-size", "3", "--engine", "ray", "--workers", "2") == 1
    _same_rows(_rows(ray_out), _rows(local))
    doc = json.loads((ray_out / "run.json").read_text())
    assert doc["sessions"][-1]["engine"] == "ray"


def test_cli_edit_of_dataset_rows(gen, tmp_path):
    """A dataset row's latent is edited by ``invertkit edit OUT --ids``, like a small run's latent file."""
    import torch

    from invertkit.editing.directions import Directions, identity, save_directions, unit_rows
    from invertkit.generators import load_generator

    data = tmp_path / "data"
    write_images(data, 3)
    out = tmp_path / "run"
    assert _invert(gen, [str(data)], out) == 0
    directions = save_directions(Directions(unit_rows(torch.randn(1, 32)), torch.ones(1), torch.zeros(1), "w", "test",
                                            generator=identity(load_generator(gen))), tmp_path / "d.safetensors")
    edits = tmp_path / "edits"
    assert main(["edit", str(out), "-g", str(gen), "--ids", "sub/img0000.png", "-d", str(directions), "--steps", "3",
                 "--out", str(edits)]) == 0
    assert len(list(edits.glob("sub_img0000.png_*.png"))) == 1
    assert main(["edit", str(out), "-g", str(gen), "--ids", "nope.png", "-d", str(directions), "--out", str(edits)]) == 2


def test_parquet_input_with_image_bytes(gen, tmp_path):
    """A Parquet dataset of image bytes (Hugging Face's struct and plain binary), with broken cells."""
    paths = write_images(tmp_path / "src", 3, nested=False)
    table = pa.table({"name": ["x", "y", "z", "empty", "junk"],
                      "picture": [p.read_bytes() for p in paths] + [None, b"\x89PNG garbage"]})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=2)
    out = tmp_path / "run"
    assert _invert(gen, [str(tmp_path / "d.parquet")], out, "--image-column", "picture", "--id-column", "name") == 1
    rows = _rows(out)
    assert [rows[i]["status"] for i in ("x", "y", "z", "empty", "junk")] == ["ok"] * 3 + ["error"] * 2
    assert rows["junk"]["source"].endswith("d.parquet:4") and "d.parquet:4" in rows["junk"]["error"]
    # a column that is not there: one line naming it and the flag
    code = main(["invert", str(tmp_path / "d.parquet"), "-g", str(gen), *FAST, "--out", str(tmp_path / "x"),
                 "--image-column", "nope"])
    assert code == 2


def test_small_layout_skips_hostile_files_too(gen, tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data, 2, nested=False)
    write_broken(data)
    out = tmp_path / "small"
    assert main(["invert", str(data), "-g", str(gen), *FAST, "--format", "files", "--out", str(out)]) == 1
    err = capsys.readouterr().out
    assert "bomb.png: declares 2,500,000,000 pixels" in err and len(json.loads((out / "metrics.json").read_text())) == 2
