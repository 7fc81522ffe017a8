"""Inversion of a tiny BigGAN: ``optimize`` in ``zc`` (z and the class embedding together, as
pix2latent) through the API and ``invertkit invert``; ``invertkit info`` on a BigGAN folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from invertkit import invert, load_generator, load_run
from invertkit.cli.main import main
from invertkit.io.images import save_image

from .biggan_factories import tiny_generator, write_folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("biggan_cli")
    folder = write_folder(root / "biggan")
    G = tiny_generator()
    with torch.no_grad():
        image = G.synthesize(G.sample_latent(1, "zc", seed=3, class_index=5), "zc")
    save_image(image[0], root / "imgs" / "im0.png")
    return root, folder


def test_optimize_moves_z_and_the_class_embedding():
    G = tiny_generator()
    with torch.no_grad():
        target = G.synthesize(G.sample_latent(1, "zc", seed=3, class_index=5), "zc")
        start = G.mean_latent("zc")
        start_mse = float((G.synthesize(start, "zc") - target).square().mean())
    r = invert(G, target, "optimize", space="zc", steps=4, loss="mse", seed=0)
    assert r.space == "zc" and r.latents.shape == (1, 32)
    moved = (r.latents.cpu() - start).abs()
    assert float(moved[:, :16].max()) > 1e-3 and float(moved[:, 16:].max()) > 1e-3  # both parts optimised
    assert r.metrics[0]["mse"] < start_mse


def test_pti_in_zc_tunes_the_synthesis():
    G = tiny_generator()
    with torch.no_grad():
        target = G.synthesize(G.sample_latent(1, "zc", seed=3, class_index=5), "zc")
    r = invert(G, target, "pti", space="zc", pivot="optimize", pivot_steps=5, steps=5, loss="mse",
               locality_loss="mse=0.1", target_perceptual=None)
    assert r.space == "zc" and r.metrics[0]["psnr"] > r.metrics[0]["psnr_pivot"]
    names = {k.removesuffix(".lora_A").removesuffix(".lora_B") for d in r.deltas for k in d}
    assert names and all(k.startswith("generator.") for k in names)  # the class embeddings stay fixed


@pytest.mark.slow  # the whole command, run folder and report (about 4 s on a shared CPU)
def test_invert_optimize_in_zc(setup, tmp_path):
    root, folder = setup
    out = tmp_path / "run"
    code = main(["invert", str(root / "imgs"), "-g", str(folder), "-m", "optimize", "--space", "zc", "--steps", "5",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["psnr"] > 10
    run = json.loads((out / "run.json").read_text())
    assert "zc" in json.dumps(run["config"])
    with np.load(out / "latents" / "im0.npz") as z:
        assert any(z[k].shape[-1] == 32 for k in z.files)  # z [16] + class embedding [16]
    G = load_generator(str(folder))
    assert load_run(out, G).render(G).shape == (1, 3, 32, 32)  # the run re-renders from its zc latents


def test_info_describes_the_folder(setup, capsys):
    _, folder = setup
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "BigGAN-deep" in out and "z [16], zc [32]" in out and "10 classes" in out and "Tunable" in out
