"""Speed of the optimisation engine, per generator.

    python benchmarks/inversion_speed.py [--quick] [--device cpu]

Prints one JSON object: for each generator (the two offline zoo models and a random-weight 256 px
StyleGAN2 in W+), with the default (auto) settings of ``optimize`` for that generator:

- ``seconds_per_step``: wall time of ``invertkit.invert(..., method="optimize", restarts=1)`` per
  step at batch 4 (with K starts, the first phase runs the same step on K x the batch);
- ``overhead_ratio``: that, divided by the time of one generator + objective forward+backward at the
  same batch (1.0 means the loop adds nothing);
- ``throughput``: images x steps per second at batch 1, 4, 16;
- ``plain_loop_ratio``: our time per step over a plain 20-line Adam loop with the same objective;
- ``peak_memory_mb``: peak resident memory of the process after that generator (CPU), or peak CUDA
  memory allocated (GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

import invertkit
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.methods.optimize import auto_defaults
from invertkit.objectives.combined import Objective


def plain_loop(G, targets: torch.Tensor, space: str, steps: int, objective: Objective) -> float:
    """The loop a user would write: Adam on the latent, the same objective; seconds per step."""
    prepared = objective.prepare(targets)
    latent = G.mean_latent(space).repeat(targets.shape[0], *[1] * (G.mean_latent(space).dim() - 1)).clone()
    latent += 0.1 * torch.randn_like(latent)
    latent.requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=0.1)
    start = time.perf_counter()
    for _ in range(steps):
        img = G.synthesize(latent, space)
        loss = objective(img, prepared, G=G, latent=latent, space=space)[0].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def fwd_bwd_time(G, targets: torch.Tensor, space: str, objective: Objective, repeats: int) -> float:
    prepared = objective.prepare(targets)
    latent = G.sample_latent(targets.shape[0], space, seed=0).requires_grad_(True)

    def once() -> None:
        img = G.synthesize(latent, space)
        objective(img, prepared, G=G, latent=latent, space=space)[0].sum().backward()

    once()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    return (time.perf_counter() - start) / repeats


def ours(G, targets: torch.Tensor, space: str, steps: int) -> float:
    # one start per image: the K-start phase of z-only generators runs the same step on K x the batch
    invertkit.invert(G, targets[:1], space=space, steps=2, restarts=1)  # warm-up (feature nets, caches)
    r = invertkit.invert(G, targets, space=space, steps=steps, seed=0, restarts=1)
    return r.timings.seconds / steps


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(G, space: str, steps: int, batches: list[int], device: str) -> dict[str, object]:
    objective = Objective.build(str(auto_defaults(G)["loss"]), device=device)
    with torch.no_grad():
        pool = G.synthesize(G.sample_latent(max(batches), space, seed=1), space).clamp(-1, 1)
    b4 = pool[: min(4, pool.shape[0])]
    step = ours(G, b4, space, steps)
    ref = fwd_bwd_time(G, b4, space, objective, max(2, steps // 4))
    plain = plain_loop(G, b4, space, steps, objective)
    throughput = {str(b): b / ours(G, pool[:b], space, steps) for b in batches}
    return {
        "space": space,
        "loss": auto_defaults(G)["loss"],
        "batch": b4.shape[0],
        "steps": steps,
        "seconds_per_step": step,
        "overhead_ratio": step / ref,
        "throughput": throughput,
        "plain_loop_ratio": step / plain,
        "peak_memory_mb": peak_mb(device),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/data", help="the real-data folder (the MNIST GAN\'s weights)")
    ap.add_argument("--quick", action="store_true", help="fewer steps and batches (about a minute on 2 cores)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    steps = 30 if args.quick else 100
    out: dict[str, object] = {"device": args.device, "torch_threads": torch.get_num_threads()}
    out["dcgan-digiface64"] = bench(invertkit.load_generator("dcgan-digiface64", args.device), "z", steps, [1, 4, 16], args.device)
    try:
        out["mnist-mlp-gan"] = bench(invertkit.load_generator("mnist-mlp-gan", args.device, weights=Path(args.shared) / "mnist_mlp_gan" / "generator.ckpt"), "z", steps, [1, 4, 16], args.device)
    except invertkit.CheckpointError as exc:
        out["mnist-mlp-gan"] = f"skipped: {exc}"
    cfg = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=256, channel_base=16384, channel_max=512)
    sg = StyleGAN2Generator(cfg, name="stylegan2-256-random").to(args.device)
    out["stylegan2-256-random"] = bench(sg, "w+", 3 if args.quick else 10, [1, 4] if args.quick else [1, 4, 16], args.device)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
