"""``invertkit edit``, ``invertkit interpolate`` and ``invertkit directions`` end to end on the tiny
StyleGAN2 saved as a checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invertkit.cli.main import main
from invertkit.editing.directions import (
    Directions,
    identity,
    load_directions,
    save_directions,
    unit_rows,
)
from invertkit.generators import load_generator
from invertkit.io.images import save_image, to_uint8
from invertkit.io.latents import load_latent_file
from invertkit.io.strips import label_height
from invertkit.results import save_latent

from .conftest import one_thread

RES, PAD = 16, 2  # the tiny generator's resolution; save_strip's padding


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_sg2):
    """Checkpoint, a W directions file (3 directions), two images, and two inversion runs (optimize and
    pti) written by `invertkit invert` with tiny step counts."""
    from invertkit.generators.checkpoints import save_native

    with one_thread():  # conftest's per-test setting does not reach module fixtures
        root = tmp_path_factory.mktemp("edit")
        ckpt = str(save_native(tiny_sg2, root / "tiny.safetensors"))
        G = load_generator(ckpt)
        vectors = unit_rows(torch.randn(3, 32, generator=torch.Generator().manual_seed(0)))
        dirs = save_directions(Directions(vectors, torch.full((3,), 0.5), torch.arange(3.0), "w", "test",
                                          ["up", "down", "side"], generator=identity(G)), root / "dirs.safetensors")
        zdirs = save_directions(Directions(unit_rows(torch.randn(1, 32)), torch.ones(1), torch.zeros(1), "z", "test",
                                           generator=identity(G)), root / "zdirs.safetensors")
        with torch.no_grad():
            x = G.synthesize(G.sample_latent(2, "w", seed=5), "w").clamp(-1, 1)
        save_image(x[0], root / "imgs" / "a.png")
        save_image(x[1], root / "imgs" / "b.png")
        run = root / "run"
        assert main(["invert", str(root / "imgs"), "-g", ckpt, "--steps", "3", "--loss", "mse=1", "--out", str(run)]) == 0
        pti = root / "pti"
        assert main(["invert", str(root / "imgs" / "a.png"), "-g", ckpt, "--method", "pti", "--pivot", "optimize",
                     "--pivot-steps", "3", "--steps", "4", "--lr", "0.01", "--loss", "mse=1", "--locality-loss", "mse=0.1",
                     "--target-perceptual", "0", "--out", str(pti)]) == 0
        return {"root": root, "ckpt": ckpt, "dirs": str(dirs), "zdirs": str(zdirs), "run": run, "pti": pti}


def _tile(png: Path, i: int, scale: int = 1) -> np.ndarray:
    """Frame ``i`` of a strip written with ``scale``."""
    side = RES * scale
    img = np.asarray(Image.open(png).convert("RGB"))
    left = PAD + i * (side + PAD)
    return img[PAD:PAD + side, left:left + side]


def _render(G, latent_file: Path) -> np.ndarray:
    latent, space = load_latent_file(latent_file)
    with torch.no_grad():
        return to_uint8(G.synthesize(latent, space))[0]


def test_edit_latent_file_strip_gif_and_record(setup, tmp_path):
    out = tmp_path / "e"
    latent = setup["run"] / "latents" / "a.npz"
    code = main(["edit", str(latent), "-g", setup["ckpt"], "--direction", setup["dirs"] + ":1", "--strength", "-2:2",
                 "--steps", "5", "--scale", "1", "--out", str(out)])
    assert code == 0
    png, gif = out / "a_down.png", out / "a_down.gif"
    assert Image.open(png).size == (5 * (RES + PAD) + PAD, RES + 2 * PAD + label_height())
    with Image.open(gif) as g:
        assert g.n_frames == 5 + 3 and g.size == (RES, RES)  # forward, then back without the ends
    G = load_generator(setup["ckpt"])
    assert np.array_equal(_tile(png, 2), _render(G, latent))  # strength 0 is the unedited image
    assert not np.array_equal(_tile(png, 0), _tile(png, 4))
    record = json.loads((out / "edits.json").read_text())
    assert record["strengths"] == [-2.0, -1.0, 0.0, 1.0, 2.0] and record["units"] == "sigma"
    [strip] = record["strips"]
    assert strip["direction_file"] == setup["dirs"] and strip["index"] == 1 and strip["space"] == "w+"
    assert strip["latent_file"] == str(latent) and strip["png"] == "a_down.png" and strip["gif"] == "a_down.gif"
    assert record["latents"][0]["space"] == "w+" and record["failures"] == {}


def test_edit_folder_several_indices_layers_and_no_gif(setup, tmp_path):
    folder = tmp_path / "lats"
    G = load_generator(setup["ckpt"])
    for name, seed in (("p", 1), ("q", 2)):
        save_latent(folder / f"{name}.npz", G, G.sample_latent(1, "w", seed=seed), "w")
    out = tmp_path / "e"
    code = main(["edit", str(folder), "-g", setup["ckpt"], "-d", setup["dirs"] + ":0-1", "-d", setup["dirs"] + ":2",
                 "--strength", "0,1", "--layers", "coarse", "--units", "raw", "--no-gif", "--scale", "2", "--out", str(out)])
    assert code == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["p_down.png", "p_side.png", "p_up.png", "q_down.png", "q_side.png", "q_up.png"]
    assert not list(out.glob("*.gif"))
    assert Image.open(out / "p_up.png").size == (2 * (2 * RES + PAD) + PAD, 2 * RES + 2 * PAD + label_height())
    record = json.loads((out / "edits.json").read_text())
    assert {(s["latent"], s["index"]) for s in record["strips"]} == {(n, i) for n in "pq" for i in range(3)}
    assert all(s["rows"] == [0, 1, 2, 3] and s["space"] == "w+" for s in record["strips"])
    assert np.array_equal(_tile(out / "q_side.png", 0, scale=2)[::2, ::2], _render(G, folder / "q.npz"))


def test_edit_run_folder_from_invert(setup, tmp_path):
    out = tmp_path / "e"
    assert main(["edit", str(setup["run"]), "-g", setup["ckpt"], "-d", setup["dirs"], "--steps", "3", "--scale", "1",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a_up.png", "b_up.png"]
    G = load_generator(setup["ckpt"])
    assert np.array_equal(_tile(out / "b_up.png", 1), _render(G, setup["run"] / "latents" / "b.npz"))
    with Image.open(out / "b_up.gif") as g:
        assert g.n_frames == 4


def test_edit_pti_run_renders_with_tuned_generator(setup, tmp_path):
    out = tmp_path / "e"
    assert main(["edit", str(setup["pti"]), "-g", setup["ckpt"], "-d", setup["dirs"], "--steps", "3", "--scale", "1",
                 "--out", str(out)]) == 0
    pivot = setup["pti"] / "latents" / "a.npz"
    delta = setup["pti"] / "latents" / "a_delta.safetensors"
    tuned = load_generator(setup["ckpt"], delta=delta)
    base = load_generator(setup["ckpt"])
    frame = _tile(out / "a_up.png", 1)
    assert np.array_equal(frame, _render(tuned, pivot))
    assert not np.array_equal(frame, _render(base, pivot))
    [strip] = json.loads((out / "edits.json").read_text())["strips"]
    assert strip["tuned"] is True and strip["space"] == "w"


def test_edit_errors_exit_2_with_one_line(setup, tmp_path, capsys):
    latent = str(setup["run"] / "latents" / "a.npz")
    out = tmp_path / "e"
    base = ["edit", latent, "-g", setup["ckpt"], "--out", str(out)]
    assert main(base + ["-d", setup["dirs"] + ":7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of range" in err and "0..2" in err
    assert main(base + ["-d", setup["zdirs"]]) == 2  # a Z direction cannot edit a w+ latent
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.npz" in err and "Z direction" in err
    assert main(base + ["-d", setup["dirs"], "--strength", "1:x"]) == 2
    assert capsys.readouterr().err == "invertkit: error: strength '1:x': use a range A:B (with a number of steps) or values like -2,0,2\n"
    assert main(["edit", str(tmp_path), "-g", setup["ckpt"], "-d", setup["dirs"], "--out", str(out)]) == 2
    assert "no latents found" in capsys.readouterr().err
    assert not list(out.glob("*.png"))  # nothing was rendered before the checks failed


def test_interpolate_morph_and_mix(setup, tmp_path):
    a, b = setup["run"] / "latents" / "a.npz", setup["pti"] / "latents" / "a.npz"  # w+ and a w pivot
    out = tmp_path / "i"
    code = main(["interpolate", str(a), str(b), "-g", setup["ckpt"], "--steps", "4", "--mix", "coarse", "--mix", "5",
                 "--scale", "1", "--out", str(out)])
    assert code == 0
    G = load_generator(setup["ckpt"])
    morph = out / "a_to_a.png"
    assert Image.open(morph).size == (4 * (RES + PAD) + PAD, RES + 2 * PAD + label_height())
    assert np.array_equal(_tile(morph, 0), _render(G, a))
    with Image.open(out / "a_to_a.gif") as g:
        assert g.n_frames == 6
    assert Image.open(out / "a_x_a_mix.png").size[0] == 4 * (RES + PAD) + PAD  # A, two mixes, B
    wa, _ = load_latent_file(a)
    wb, _ = load_latent_file(b)
    mixed, space = load_latent_file(out / "a_x_a_mix_coarse.npz")
    assert space == "w+"
    assert torch.allclose(mixed[0, :4], wb.expand(4, -1)) and torch.equal(mixed[0, 4:], wa[0, 4:])
    record = json.loads((out / "interpolate.json").read_text())
    assert record["space"] == "w+" and record["interpolation"] == "lerp" and [m["layers"] for m in record["mixes"]] == ["coarse", "5"]


def test_directions_sefa_ganspace_and_flag_checks(setup, tmp_path, capsys):
    out = tmp_path / "sefa.safetensors"
    assert main(["directions", "sefa", "-g", setup["ckpt"], "--count", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and "sefa 0" in printed[0] and str(out) in printed[-1]
    G = load_generator(setup["ckpt"])
    d = load_directions(out, G)
    assert d.method == "sefa" and len(d) == 3
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "invertkit directions" in shown and "sefa (for" in shown and "W+ rows all" in shown and "sefa 2" in shown
    gs = tmp_path / "gs.safetensors"
    assert main(["directions", "ganspace", "-g", setup["ckpt"], "--samples", "200", "--components", "2", "--out", str(gs)]) == 0
    assert len(load_directions(gs, G)) == 2
    assert main(["edit", str(setup["run"]), "-g", setup["ckpt"], "-d", f"{out}:2", "--steps", "3", "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "a_sefa_2.png").is_file()
    capsys.readouterr()
    assert main(["directions", "sefa", "-g", setup["ckpt"], "--components", "4", "--out", str(out)]) == 2
    assert "--components" in capsys.readouterr().err
    assert main(["directions", "interfacegan", "-g", setup["ckpt"], "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "--classifier" in capsys.readouterr().err


def test_directions_interfacegan_labels_and_stylespace_channels(setup, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("latent_id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    ifg = tmp_path / "ifg.safetensors"
    sefa = tmp_path / "sefa.safetensors"
    assert main(["directions", "sefa", "-g", setup["ckpt"], "--count", "2", "--out", str(sefa)]) == 0
    assert main(["directions", "interfacegan", "-g", setup["ckpt"], "--labels", str(csv), "--condition", f"{sefa}:0",
                 "--out", str(ifg)]) == 0
    G = load_generator(setup["ckpt"])
    d, s = load_directions(ifg, G), load_directions(sefa, G)
    assert d.space == "w" and abs(float(d.vectors[0] @ s.vectors[0])) < 1e-5  # conditioned: orthogonal to sefa 0
    ss = tmp_path / "ss.safetensors"
    assert main(["directions", "stylespace", "-g", setup["ckpt"], "--channel", "b8.conv0:1", "--channel", "b16.conv1 c3",
                 "--out", str(ss)]) == 0
    d = load_directions(ss, G)
    assert d.names == ["b8.conv0 c1", "b16.conv1 c3"] and d.space == "s"
    out = tmp_path / "e"
    assert main(["edit", str(setup["run"] / "latents" / "a.npz"), "-g", setup["ckpt"], "-d", f"{ss}:0,1", "--steps", "3",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a_b16.conv1_c3.png", "a_b8.conv0_c1.png"]
    assert {s["space"] for s in json.loads((out / "edits.json").read_text())["strips"]} == {"s"}


def test_directions_with_a_classifier_and_a_mask(tmp_path, capsys):
    from invertkit.features.lenet import LeNet5
    from invertkit.generators.checkpoints import save_native
    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, img_channels=1, mapping_layers=2, channel_base=256, channel_max=32)
    ckpt = str(save_native(StyleGAN2Generator(cfg, name="grey", init_seed=0), tmp_path / "grey.safetensors"))  # LeNet reads greyscale
    torch.manual_seed(0)
    weights = tmp_path / "lenet5.pth"
    torch.save(LeNet5().state_dict(), weights)  # random weights: the pipeline, not the semantics, is under test
    G = load_generator(ckpt)
    ifg = tmp_path / "ifg.safetensors"
    assert main(["directions", "interfacegan", "-g", ckpt, "--classifier", f"lenet5:{weights}", "--target", "3",
                 "--samples", "200", "--seed", "1", "--label-by", "score", "--out", str(ifg)]) == 0
    d = load_directions(ifg, G)
    assert d.names == ["class 3"] and d.info["samples"] == 200 and d.info["target"] == 3 and d.info["label_by"] == "score"
    ss = tmp_path / "ss.safetensors"
    assert main(["directions", "stylespace", "-g", ckpt, "--classifier", f"lenet5:{weights}", "--target", "3",
                 "--samples", "50", "--top", "3", "--out", str(ss)]) == 0
    assert len(load_directions(ss, G)) == 3
    mask = np.zeros((RES, RES), np.uint8)
    mask[:, : RES // 2] = 255  # white = region: the left half
    Image.fromarray(mask).save(tmp_path / "left.png")
    sm = tmp_path / "sm.safetensors"
    assert main(["directions", "stylespace", "-g", ckpt, "--mask", str(tmp_path / "left.png"), "--samples", "2",
                 "--top", "2", "--out", str(sm)]) == 0
    d = load_directions(sm, G)
    assert len(d) == 2 and d.info["region"] == "left" and d.info["mask_pixels"] == RES * RES // 2
    capsys.readouterr()
    assert main(["directions", "stylespace", "-g", ckpt, "--mask", str(tmp_path / "left.png"), "--target", "1",
                 "--out", str(sm)]) == 2
    assert "--target" in capsys.readouterr().err
