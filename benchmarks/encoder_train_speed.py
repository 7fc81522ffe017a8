"""Seconds per training step of each `make encoders` stage, and the whole target's estimated time.

    python benchmarks/encoder_train_speed.py [--steps 60] [--threads 2] [--shared ../shared/data]

Runs each stage of the Makefile's ``encoders`` target for ``--steps`` steps with the same options
(warm starts and the bootstrap come from the shipped encoders; real faces from ``runs/faces/train``,
written by ``benchmarks/export_faces.py``, or none if absent) and prints JSON: seconds per step (the
training log's own clock, so start-up and checkpoints are excluded) and steps x seconds per stage;
the fs encoder's residual aligner (its own trainer, ``python -m invertkit.editing.aligner``) counts
its start-up too (it encodes its pool of 3,072 faces once). ``runs/mnist/train`` (written by
``benchmarks/export_mnist.py``) supplies the MNIST fs stage's real digits when present.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from invertkit.editing.aligner import AlignerTrainOptions, train_aligner
from invertkit.encoders.shipped import SHIPPED_DIR
from invertkit.encoders.train import TrainOptions, train_encoder
from invertkit.generators import load_generator

ALIGNER_STEPS = 1200  # the Makefile's
FAST = dict(perceptual_weight=0.0, log_every=10, checkpoint_every=10**6)


def seconds_per_step(log: Path) -> float:
    rows = [json.loads(line) for line in log.read_text().splitlines() if '"seconds"' in line]
    first, last = rows[0], rows[-1]  # the first logged interval includes warm-up: measure from there
    return (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shared", default="../shared/data")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shared = Path(args.shared)
    real = f"{shared}/orl_faces/s[234]?,runs/faces/train/lfw" if Path("runs/faces/train/lfw").is_dir() else None
    lfw84 = "runs/faces/train/lfw/lfw-[5-7]?.png,runs/faces/train/lfw/lfw-8[0-4].png"
    real3 = f"{shared}/orl_faces/s[234]?,{lfw84},{lfw84},{lfw84}" if real else None
    dcgan, mnist = SHIPPED_DIR / "dcgan-digiface64", SHIPPED_DIR / "mnist-mlp-gan"
    D = load_generator("dcgan-digiface64")
    M = load_generator("mnist-mlp-gan", weights=shared / "mnist_mlp_gan" / "generator.ckpt")
    # (name, generator, options, steps in the Makefile)
    stages = [
        ("dcgan pSp stage 1", D, dict(arch="psp", augment=True, batch=32), 2500),
        ("dcgan pSp stage 2", D, dict(arch="psp", augment=True, batch=32, lr=5e-4, init_from=str(dcgan / "psp.safetensors"),
                                      images=real, real_fraction=0.3), 3000),
        ("dcgan ReStyle", D, dict(arch="restyle", iterations=3, batch=32, pixel_weight=10.0, latent_weight=0.3,
                                  bootstrap=str(dcgan / "psp.safetensors")), 1500),
        ("dcgan pSp stage 3", D, dict(arch="psp", augment=True, batch=32, lr=3e-4, pixel_weight=10.0, latent_weight=0.3,
                                      init_from=str(dcgan / "psp.safetensors"), images=real3, real_fraction=0.5), 800),
        ("dcgan pSp stage 4", D, dict(arch="psp", augment=True, batch=32, lr=2e-4, pixel_weight=10.0, latent_weight=0.3,
                                      init_from=str(dcgan / "psp.safetensors"), images=real3, real_fraction=0.5, real_jitter=0.12), 800),
        ("dcgan ReStyle fine-tune", D, dict(arch="restyle", iterations=3, batch=32, lr=3e-4, pixel_weight=10.0, latent_weight=0.3,
                                            init_from=str(dcgan / "restyle.safetensors"), bootstrap=str(dcgan / "psp.safetensors")), 300),
        ("dcgan fs", D, dict(arch="fs", batch=32, lr=5e-4, init_from=str(dcgan / "psp.safetensors"), images=real,
                             real_fraction=0.3), 400),
        ("dcgan hyperstyle", D, dict(arch="hyperstyle", bootstrap=str(dcgan / "fs.safetensors"), batch=16, iterations=2, rank=8,
                                     max_width=128, lr=5e-4, images=real, real_fraction=0.3), 1000),
        ("mnist pSp", M, dict(arch="psp", batch=64), 3000),
        ("mnist ReStyle", M, dict(arch="restyle", iterations=2, batch=64, lr=3e-4, init_from=str(mnist / "psp.safetensors")), 750),
        ("mnist fs", M, dict(arch="fs", layer="4", batch=64, lr=5e-4, init_from=str(mnist / "psp.safetensors"),
                             images="runs/mnist/train" if Path("runs/mnist/train").is_dir() else None, real_fraction=0.5), 1500),
    ]
    report, total = {}, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, G, opts, steps) in enumerate(stages):
            out = Path(tmp) / str(i)
            train_encoder(G, out, TrainOptions(steps=args.steps, **FAST, **opts))
            sps = seconds_per_step(out / "log.jsonl")
            total += sps * steps
            report[name] = {"seconds_per_step": round(sps, 3), "makefile_steps": steps, "minutes": round(sps * steps / 60, 1)}
            print(json.dumps({name: report[name]}), flush=True)
        # the fs encoder's residual aligner (its own trainer): encoding its pool of faces once, then the steps
        out = Path(tmp) / "aligner"
        start = time.perf_counter()
        train_aligner(D, dcgan / "fs.safetensors", out, AlignerTrainOptions(steps=101, save_every=10**6), log=lambda _: None)
        wall = time.perf_counter() - start
        sps = seconds_per_step(out / "log.jsonl")
        minutes = (wall - 101 * sps + ALIGNER_STEPS * sps) / 60  # the pool's encoding and start-up count once
        total += minutes * 60
        report["dcgan fs aligner"] = {"seconds_per_step": round(sps, 3), "makefile_steps": ALIGNER_STEPS, "minutes": round(minutes, 1)}
        print(json.dumps({"dcgan fs aligner": report["dcgan fs aligner"]}), flush=True)
    report["total_training_minutes"] = round(total / 60, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
