"""``invertkit train-encoder`` and the encoder methods from the command line."""

from __future__ import annotations

import json

import torch

from invertkit.cli.main import main
from invertkit.generators import load_generator
from invertkit.io.images import save_image

FAST = ["--width", "8", "--max-width", "16", "--perceptual-weight", "0", "--eval-images", "4", "--no-progress"]


def test_train_install_invert_and_bench(tmp_path, tiny_sg2, capsys):
    from invertkit.generators.checkpoints import save_native

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    run = tmp_path / "enc"
    assert main(["train-encoder", "-g", str(ckpt), "--out", str(run), "--steps", "20", "--batch", "8",
                 "--checkpoint-every", "10", "--install", *FAST]) == 0
    out = capsys.readouterr().out
    assert "installed as" in out and (run / "encoder.safetensors").is_file()
    assert json.loads((run / "options.json").read_text())["options"]["steps"] == 20
    assert main(["info", str(run / "encoder.safetensors")]) == 0
    assert "psp encoder for tiny.safetensors" in capsys.readouterr().out
    # running the finished command again resumes and does nothing more
    assert main(["train-encoder", "-g", str(ckpt), "--out", str(run), "--steps", "20", "--batch", "8",
                 "--checkpoint-every", "10", *FAST]) == 0
    assert "resuming" in capsys.readouterr().out
    # a different option into the same folder is refused with one line
    assert main(["train-encoder", "-g", str(ckpt), "--out", str(run), "--steps", "20", "--batch", "4", *FAST]) == 2
    assert "other options (batch)" in capsys.readouterr().err

    G = load_generator(ckpt)
    folder = tmp_path / "imgs"
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(2, "w+", seed=4), "w+").clamp(-1, 1)
    for i in range(2):
        save_image(x[i], folder / f"{i}.png")
    # --encoder auto (the default) finds the installed encoder for this checkpoint
    assert main(["invert", str(folder), "-g", str(ckpt), "--method", "encoder", "--out", str(tmp_path / "inv")]) == 0
    metrics = json.loads((tmp_path / "inv" / "metrics.json").read_text())
    assert len(metrics) == 2
    assert main(["bench", "-g", str(ckpt), "--images", str(folder), "--methods", "encoder,hybrid@steps=3",
                 "--out", str(tmp_path / "bench")]) == 0
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "encoder" in table and "hybrid" in table and "nscd" in table
    # restyle without a restyle encoder: one clear line, exit 2
    assert main(["invert", str(folder), "-g", str(ckpt), "--method", "restyle", "--out", str(tmp_path / "x")]) == 2
    assert "train-encoder" in capsys.readouterr().err


def test_sigterm_writes_a_checkpoint_and_the_same_command_resumes(tmp_path, tiny_sg2, monkeypatch, capsys):
    import os
    import signal

    from invertkit.encoders.train import Trainer
    from invertkit.generators.checkpoints import save_native

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    run = tmp_path / "enc"
    real_step = Trainer.train_step

    def terminated_in_step_3(self, batch):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as a batch scheduler does; the step still completes
        return real_step(self, batch)

    command = ["train-encoder", "-g", str(ckpt), "--out", str(run), "--steps", "6", "--batch", "4",
               "--checkpoint-every", "100", *FAST]
    monkeypatch.setattr(Trainer, "train_step", terminated_in_step_3)
    assert main(command) == 143
    captured = capsys.readouterr()
    assert "interrupted at step 3; checkpoint written" in captured.out
    assert captured.err.strip() == "invertkit: interrupted by SIGTERM"
    assert int(torch.load(run / "train_state.pt", weights_only=True)["step"]) == 3
    assert (run / "encoder.safetensors").is_file()
    monkeypatch.undo()
    assert main(command) == 0
    assert "resuming" in capsys.readouterr().out
    assert int(torch.load(run / "train_state.pt", weights_only=True)["step"]) == 6
