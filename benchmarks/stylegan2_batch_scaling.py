"""Per-image speed of a StyleGAN2 inversion step against the batch, on wall-clock time at a given
thread count (the question a user with a multi-core machine asks: does batching help?).

    python benchmarks/stylegan2_batch_scaling.py [--resolution 256] [--threads 2] [--batches 1,8] [--rounds 3] \
        [--malloc reuse|system]

One step = the generator's forward from w+ and the backward of an MSE to the latent (weights frozen, as
in inversion). Batches are measured interleaved (1, 8, 1, 8, ...) and the minimum per batch is kept, so
a shared machine's drift affects both alike. ``benchmarks/inversion_speed.py`` measures CPU time at one
thread instead (immune to other sessions' load, but blind to what a second thread buys).
``--malloc system`` leaves glibc's allocator as it is; ``reuse`` (default, what the ``invertkit``
program does) calls :func:`invertkit.allocator.reuse_freed_memory` first. ``kernel_seconds`` is the
process's system CPU time (page faults show there). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from invertkit.allocator import reuse_freed_memory
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def step_seconds(G: StyleGAN2Generator, latent: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    """Wall seconds of one forward + backward at this batch (mean of ``repeats`` after one warm-up)."""
    def once() -> None:
        x = latent.detach().requires_grad_(True)
        (G.synthesize(x, "w+") - target).square().mean().backward()

    once()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--malloc", choices=("reuse", "system"), default="reuse")
    args = ap.parse_args()
    applied = reuse_freed_memory() if args.malloc == "reuse" else False
    torch.set_num_threads(args.threads)
    cfg = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=args.resolution, channel_base=16384, channel_max=512)
    G = StyleGAN2Generator(cfg, name=f"stylegan2-{args.resolution}-random")
    batches = [int(b) for b in args.batches.split(",")]
    with torch.no_grad():
        latents = {b: G.sample_latent(b, "w+", seed=1) for b in batches}
        targets = {b: G.synthesize(latents[b] + 0.1, "w+") for b in batches}
    per_image: dict[int, list[float]] = {b: [] for b in batches}
    for _ in range(args.rounds):
        for b in batches:
            per_image[b].append(step_seconds(G, latents[b], targets[b], args.repeats) / b)
    best = {b: min(v) for b, v in per_image.items()}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"resolution": args.resolution, "threads": args.threads, "clock": "wall", "malloc": args.malloc,
                      "reuse_applied": applied, "user_seconds": usage.ru_utime, "kernel_seconds": usage.ru_stime,
                      "peak_rss_mb": usage.ru_maxrss / 1024,
                      "seconds_per_image_step": per_image, "best": best,
                      "image_steps_per_second": {b: 1 / s for b, s in best.items()},
                      "per_image_gain_over_batch_1": {b: best[batches[0]] / s for b, s in best.items()}}, indent=2))


if __name__ == "__main__":
    main()
