"""What a person sees of long work: progress lines from the commands, ``--no-progress`` silence,
per-image seconds, and a bench that charges no method for one-off set-up costs (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from invertkit.bench import run_bench
from invertkit.cli.main import main
from invertkit.generators import load_generator
from invertkit.io.images import save_image
from invertkit.methods import METHODS, MethodSpec, invert
from invertkit.methods.plain import PlainOptions, run_plain
from invertkit.runs import write_run

from .test_progress import Recorder


@pytest.fixture
def sg2_files(tmp_path, tiny_sg2) -> tuple[Path, Path]:
    """The tiny StyleGAN2 as a native checkpoint and a folder of three images it drew."""
    from invertkit.generators.checkpoints import save_native

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    G = load_generator(ckpt)
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(3, "w", seed=5), "w").clamp(-1, 1)
    for i in range(3):
        save_image(x[i], tmp_path / "imgs" / f"{'abc'[i]}.png")
    return ckpt, tmp_path / "imgs"


def test_invert_prints_plain_progress_lines_when_not_a_terminal_and_none_with_no_progress(sg2_files, tmp_path, capsys):
    ckpt, imgs = sg2_files
    code = main(["invert", str(imgs), "--generator", str(ckpt), "--steps", "4", "--loss", "mse=1", "--batch-size", "2",
                 "--out", str(tmp_path / "run")])
    assert code == 0
    out, err = capsys.readouterr()
    assert "wrote " in out  # the command's own message is kept
    assert "\r" not in err  # captured stderr is no terminal: plain lines, no carriage-return bar
    ends = [line for line in err.splitlines() if line.endswith("done") and "adam" in line]
    assert [line for line in err.splitlines() if line.startswith("invertkit: images: img 3/3 (100%)")]  # the whole command
    assert ends == ["invertkit: optimize, images 1-2 of 3, adam: step 4/4 (100%), loss " + ends[0].split("loss ")[1],
                    "invertkit: optimize, images 3-3 of 3, adam: step 4/4 (100%), loss " + ends[1].split("loss ")[1]]

    assert main(["invert", str(imgs), "--generator", str(ckpt), "--steps", "4", "--loss", "mse=1", "--no-progress",
                 "--out", str(tmp_path / "quiet")]) == 0
    out, err = capsys.readouterr()
    assert "step " not in err and "step " not in out and "wrote " in out


def test_diffusion_generate_shows_sampling_steps_unless_told_not_to(tmp_path, capsys):
    assert main(["generate", "analytic:diffusion", "--seeds", "0-1", "--steps", "5", "--out", str(tmp_path / "g")]) == 0
    err = capsys.readouterr().err
    assert "invertkit: seed 0 (1 of 2): sampling: step 5/5 (100%)" in err and "seed 1 (2 of 2)" in err
    assert main(["generate", "analytic:diffusion", "--seeds", "0-1", "--steps", "5", "--no-progress",
                 "--out", str(tmp_path / "g2")]) == 0
    assert "step" not in capsys.readouterr().err


def test_per_image_seconds_follow_the_work_each_image_needed(tiny_mlp, tmp_path):
    with torch.no_grad():
        own = tiny_mlp.synthesize(tiny_mlp.sample_latent(1, "z", seed=1), "z")
    noise = torch.rand(own.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    images = torch.cat([own, noise])  # the generator's own image stops early, noise never reaches 40 dB
    res = invert(tiny_mlp, images, "optimize", steps=300, restarts=1, init="given", lr=0.05, check_every=5,
                 target_psnr=40.0, init_latent=tiny_mlp.sample_latent(1, "z", seed=1).repeat(2, 1) + 0.01)
    ev = res.timings.evaluations
    assert ev[0] < ev[1] == 300
    secs = res.timings.image_seconds()
    assert secs[0] < secs[1] and sum(secs) == pytest.approx(res.timings.seconds)
    assert secs[0] / secs[1] == pytest.approx(ev[0] / ev[1])
    write_run(tmp_path / "run", tiny_mlp, res, images, ["own.png", "noise.png"])
    rows = {r["image"]: r for r in json.loads((tmp_path / "run" / "metrics.json").read_text())}
    assert rows["own.png"]["seconds"] == pytest.approx(secs[0]) and rows["noise.png"]["seconds"] == pytest.approx(secs[1])
    picked = res.select([1])
    assert picked.timings.seconds == pytest.approx(secs[1]) and picked.timings.image_seconds() == pytest.approx([secs[1]])


def test_pti_seconds_are_each_images_own_tuning_plus_its_pivot_share(tiny_mlp):
    with torch.no_grad():
        images = tiny_mlp.synthesize(tiny_mlp.sample_latent(2, "z", seed=2), "z")
    res = invert(tiny_mlp, images, "pti", pivot="optimize", pivot_steps=4, steps=3, pivot_options="restarts=1", target_perceptual=None)
    secs = res.timings.image_seconds()
    assert len(secs) == 2 and all(s > 0 for s in secs)
    assert sum(secs) == pytest.approx(res.timings.seconds, rel=1e-6)
    assert secs != [res.timings.seconds / 2] * 2  # measured per image, not the batch average


def test_bench_warms_each_method_up_untimed(tiny_mlp, tmp_path, monkeypatch):
    """A method whose first call in the process pays a one-off cost (as a first allocation or a lazily
    loaded network does): with the warm-up no row is charged for it; without, the first row is."""
    calls: list[int] = []

    def first_call_slow(G, images, opts, ctx):
        res = run_plain(G, images, opts, ctx)
        res.timings.seconds = 10.0 if not calls else 1.0  # the cost the first call of the process pays
        calls.append(images.shape[0])
        return res

    monkeypatch.setitem(METHODS._items, "first-slow", MethodSpec(run=first_call_slow, options=PlainOptions))
    with torch.no_grad():
        images = tiny_mlp.synthesize(tiny_mlp.sample_latent(2, "z", seed=3), "z")
    specs = ["first-slow@seed=0", "first-slow@seed=1"]
    rec = Recorder()
    rows = run_bench(tiny_mlp, images, ["a.png", "b.png"], specs, tmp_path / "warm", common={"steps": 3}, reporter=rec)
    assert [r["seconds_per_image"] for r in rows] == [0.5, 0.5]
    assert calls == [2, 2, 2, 2]  # warm-up (the first batch), then the timed batch, for each method
    assert [label for label, _ in rec.started][:2] == ["method 1/2 first-slow@seed=0, warm-up (untimed): adam",
                                                       "method 1/2 first-slow@seed=0, images 1-2 of 2: adam"]
    assert rec.started[0][1] == 2  # the warm-up's step budget
    calls.clear()
    cold = run_bench(tiny_mlp, images, ["a.png", "b.png"], specs, tmp_path / "cold", common={"steps": 3}, warmup=False)
    assert [r["seconds_per_image"] for r in cold] == [5.0, 0.5]
