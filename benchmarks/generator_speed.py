"""Generator speed: images per second (forward, inference mode) and seconds per forward+backward
w.r.t. the latent, for the offline zoo models and a random-weight StyleGAN2 at 256 px.

    python benchmarks/generator_speed.py [--quick] [--device cpu]

Prints one JSON object: {generator: {batch: {"images_per_second", "fwd_bwd_seconds"}}}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import invertkit
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(G, space: str, batches: list[int], repeats: int) -> dict[str, dict[str, float]]:
    out = {}
    for b in batches:
        lat = G.sample_latent(b, space, seed=0) if space != "z" else G.sample_latent(b, "z", seed=0)

        def fwd() -> None:
            with torch.inference_mode():
                G.synthesize(lat, space)

        def fwd_bwd() -> None:
            x = lat.detach().requires_grad_(True)
            G.synthesize(x, space).square().mean().backward()

        out[str(b)] = {"images_per_second": b / timed(fwd, repeats), "fwd_bwd_seconds": timed(fwd_bwd, repeats)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/data", help="the real-data folder (the MNIST GAN\'s weights)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    repeats = 2 if args.quick else 5
    batches = [1, 8] if args.quick else [1, 8, 32]
    result: dict[str, object] = {"device": args.device, "torch_threads": torch.get_num_threads()}
    result["dcgan-digiface64"] = measure(invertkit.load_generator("dcgan-digiface64", args.device), "z", batches, repeats)
    try:
        result["mnist-mlp-gan"] = measure(invertkit.load_generator("mnist-mlp-gan", args.device, weights=Path(args.shared) / "mnist_mlp_gan" / "generator.ckpt"), "z", batches, repeats)
    except invertkit.CheckpointError as exc:
        result["mnist-mlp-gan"] = f"skipped: {exc}"
    cfg = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=256, channel_base=16384, channel_max=512)
    sg = StyleGAN2Generator(cfg, name="stylegan2-256-random").to(args.device)
    result["stylegan2-256 (random weights, w+)"] = measure(sg, "w+", [1, 4] if args.quick else [1, 4, 8], repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
