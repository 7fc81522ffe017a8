"""What freezing a StyleGAN2's weights during inversion saves: seconds per ``optimize`` step with the
weights frozen (invertkit since 0.2) against the same generator whose weights require gradients (as
invertkit 0.1 left them: every step also computed and accumulated a gradient for every weight).

Both are timed in one process, interleaved (frozen, unfrozen, frozen, ...), so the ratio is
meaningful on a shared machine even when absolute times drift. Prints JSON.

    python benchmarks/frozen_weights.py [--resolution 256] [--batch 4] [--steps 4] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import torch

import invertkit
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def seconds_per_step(G: StyleGAN2Generator, targets: torch.Tensor, steps: int, frozen: bool) -> float:
    G.net.requires_grad_(not frozen)
    try:
        r = invertkit.invert(G, targets, "optimize", space="w+", steps=steps, seed=0)
    finally:
        G.net.requires_grad_(False)
    return r.timings.seconds / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=args.resolution, channel_base=16384, channel_max=512)
    G = StyleGAN2Generator(cfg, name=f"stylegan2-{args.resolution}-random")
    with torch.no_grad():
        targets = G.synthesize(G.sample_latent(args.batch, "w", seed=1), "w").clamp(-1, 1)
    invertkit.invert(G, targets[:1], "optimize", steps=1)  # warm-up: feature network, statistics
    times: dict[str, list[float]] = {"frozen": [], "unfrozen": []}
    for _ in range(args.rounds):
        for kind in ("frozen", "unfrozen"):
            times[kind].append(seconds_per_step(G, targets, args.steps, kind == "frozen"))
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({"generator": G.name, "space": "w+", "loss": "mse=1,perceptual=1", "batch": args.batch,
                      "steps": args.steps, "threads": args.threads, "seconds_per_step": times,
                      "best": best, "frozen_over_unfrozen": best["frozen"] / best["unfrozen"]}, indent=2))


if __name__ == "__main__":
    main()
