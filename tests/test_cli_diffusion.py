"""The command line with diffusion models: invert (with edits), bench (NFE and round-trip columns),
generate and info on a tiny diffusers folder and on the analytic model."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from invertkit.cli.main import main
from invertkit.errors import ConfigError
from invertkit.io.images import save_image

from .diffusers_factories import write_folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_diffusion")
    folder = write_folder(root / "model", "cond")
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        save_image(torch.rand(3, 8, 8, generator=g) * 1.6 - 0.8, root / "imgs" / f"im{i}.png")
    return root, folder


def test_invert_with_edits_writes_everything(setup, tmp_path):
    root, folder = setup
    out = tmp_path / "run"
    code = main(["invert", str(root / "imgs"), "-g", f"diffusers:{folder}", "-m", "bdia", "--prompt", "cat",
                 "--guidance", "3", "--steps", "8", "--edit-prompt", "dog,null", "--out", str(out)])
    assert code == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert len(rows) == 3 and all(r["psnr"] > 60 and r["nfe_invert"] == 16 for r in rows)
    assert {"edit_psnr_dog", "edit_change_dog", "edit_psnr_null"} <= set(rows[0])
    assert (out / "images" / "im0_edit-prompt_dog.png").is_file() and (out / "latents" / "im0.npz").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["method"] == "bdia" and run["config"]["guidance"] == 3.0 and run["generator"]["family"] == "diffusion"
    assert "prompt dog" in (out / "report.html").read_text()


def test_bench_has_nfe_and_round_trip_columns(setup, tmp_path):
    root, folder = setup
    out = tmp_path / "bench"
    assert main(["bench", "-g", f"diffusers:{folder}", "--images", str(root / "imgs"), "--methods", "ddim,edict,renoise@iterations=2",
                 "--prompt", "cat", "--steps", "6", "--dtype", "float64", "--metrics", "", "--edit-prompt", "dog", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads((out / "bench.json").read_text())}
    assert rows["edict"]["roundtrip_error_max"] < 1e-10 < rows["ddim"]["roundtrip_error_max"]
    assert (rows["ddim"]["nfe_invert"], rows["edict"]["nfe_invert"], rows["renoise@iterations=2"]["nfe_invert"]) == (6, 12, 18)
    assert "edit_psnr_dog_mean" in rows["ddim"]
    assert "nfe_invert" in (out / "bench.md").read_text()


def test_generate_and_info(setup, tmp_path, capsys):
    _, folder = setup
    assert main(["generate", f"diffusers:{folder}", "--seeds", "0-1", "--prompt", "dog", "--steps", "4", "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "seed0001.png").is_file()
    assert main(["info", f"diffusers:{folder}"]) == 0
    text = capsys.readouterr().out
    assert "UNet2DConditionModel (diffusion, predicts epsilon)" in text and "'cat'" in text
    assert main(["info", "analytic:flow"]) == 0
    assert "FlowMatchEulerDiscreteScheduler" in capsys.readouterr().out


def test_diffusion_flags_are_refused_for_gans(setup, tmp_path, tiny_mlp):
    root, _ = setup
    from invertkit.cli.invert import prepare_diffusion_flags

    with pytest.raises(ConfigError, match="--prompt-embeds/--edit-prompt are for diffusion models"):
        prepare_diffusion_flags(tiny_mlp, None, "dog")


def test_unknown_edit_prompt_fails_before_work(setup, tmp_path, capsys):
    root, folder = setup
    code = main(["invert", str(root / "imgs"), "-g", f"diffusers:{folder}", "-m", "ddim", "--edit-prompt", "horse",
                 "--out", str(tmp_path / "r")])
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith("invertkit: error: ") and "no prompt embedding named 'horse'" in line
    assert not (tmp_path / "r" / "images").exists()


@pytest.mark.parametrize("method,extra", [("nulltext", ["--inner-steps", "2"]), ("edict", []), ("direct", [])])
def test_saved_states_regenerate_later(setup, tmp_path, method, extra):
    """A run's latents/<name>_state.safetensors regenerates the reconstruction with the same prompt
    and an edit with another, in a later process (here: a later command)."""
    from invertkit.io.images import read_image

    root, folder = setup
    out = tmp_path / "run"
    assert main(["invert", str(root / "imgs" / "im0.png"), "-g", f"diffusers:{folder}", "-m", method, "--prompt", "cat",
                 "--guidance", "3", "--steps", "6", *extra, "--out", str(out)]) == 0
    assert (out / "latents" / "im0_state.safetensors").is_file()
    assert main(["regenerate", str(out), "-g", f"diffusers:{folder}", "--prompt", "cat,dog", "--out", str(tmp_path / "re")]) == 0
    same = read_image(tmp_path / "re" / "im0_cat.png", 8, 3)
    recon = read_image(out / "images" / "im0_recon.png", 8, 3)
    assert (same - recon).abs().max() <= 2 / 255 + 1e-6  # uint8 files of the same image
    dog = read_image(tmp_path / "re" / "im0_dog.png", 8, 3)
    assert (dog - recon).abs().mean() > 0.01


def test_regenerate_refuses_another_generator(setup, tmp_path, capsys):
    root, folder = setup
    out = tmp_path / "run"
    assert main(["invert", str(root / "imgs" / "im0.png"), "-g", f"diffusers:{folder}", "-m", "ddim", "--steps", "4", "--out", str(out)]) == 0
    other = write_folder(tmp_path / "other", "cond", seed=5)
    capsys.readouterr()
    assert main(["regenerate", str(out), "-g", f"diffusers:{other}", "--prompt", "cat", "--out", str(tmp_path / "re")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("invertkit: error: ") and "was made with generator 'model'" in line
    assert not (tmp_path / "re").exists()


def test_edit_with_prompt_to_prompt_writes_strips_and_report(setup, tmp_path, capsys):
    root, folder = setup
    run = tmp_path / "run"
    assert main(["invert", str(root / "imgs"), "-g", f"diffusers:{folder}", "-m", "direct", "--prompt", "cat",
                 "--guidance", "3", "--steps", "6", "--out", str(run)]) == 0
    out = tmp_path / "edits"
    assert main(["edit", str(run), "-g", f"diffusers:{folder}", "--edit-prompt", "dog,cat", "--controller", "p2p",
                 "--cross-steps", "0.5", "--out", str(out)]) == 0
    record = json.loads((out / "edits.json").read_text())
    assert record["controller"] == "p2p" and len(record["edits"]) == 6 and not record["failures"]
    assert (out / "im0_p2p_dog.png").is_file() and "p2p: dog" in (out / "report.html").read_text()
    # blending names words, which this model's precomputed prompts do not have: one line, exit 2
    assert main(["edit", str(run), "-g", f"diffusers:{folder}", "--edit-prompt", "dog", "--blend", "cat:dog",
                 "--out", str(tmp_path / "e2")]) == 2
    assert "no word list" in capsys.readouterr().err
    assert main(["edit", str(run), "-g", f"diffusers:{folder}", "--edit-prompt", "dog", "--controller", "magic",
                 "--out", str(tmp_path / "e3")]) == 2
    assert main(["edit", str(run), "-g", f"diffusers:{folder}", "--out", str(tmp_path / "e4")]) == 2
    assert main(["edit", str(run), "-g", f"diffusers:{folder}", "--edit-prompt", "dog", "--controller", "pnp",
                 "--feature-layer", "up_blocks.0.resnets.1", "--out", str(tmp_path / "e5")]) == 0
    assert (tmp_path / "e5" / "im2_pnp_dog.png").is_file()
