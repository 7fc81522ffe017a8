"""Encoder inference speed: images per second of the encoder alone and of encode + render, at
several batch sizes, for the shipped encoders (or freshly built ones of the same architecture when a
generator has none shipped), plus the held-out quality recorded in each encoder file. An fs encoder's
"encoder alone" is its latent, the latent's render and the feature residual (the render is its
input); "encode + render" adds the tail with the residual (what ``fs-encoder`` does).

    python benchmarks/encoder_speed.py [--threads 2] [--repeats 10]

Prints one JSON object: {"<generator>/<arch>": {"params", "heldout_psnr", "batch": {b: {...}}}}.
"""

from __future__ import annotations

import argparse
import json

import torch
from generator_speed import timed  # benchmarks/ is on sys.path when a script in it runs

from invertkit.encoders import Encoder, config_for, encode
from invertkit.encoders.files import load_encoder
from invertkit.encoders.inference import encode_features, feature_split, render_features
from invertkit.encoders.shipped import find_encoder
from invertkit.errors import ConfigError
from invertkit.generators import load_generator


def measure(G, enc: Encoder, batches: list[int], repeats: int) -> dict[str, dict[str, float]]:
    out = {}
    iters = int(enc.meta.get("options", {}).get("iterations", 1)) if enc.config.arch == "restyle" else 1
    for b in batches:
        x = G.synthesize(G.sample_latent(b, "z", seed=0), "z").clamp(-1, 1).detach()

        fs = enc.config.arch == "fs"

        def encoder_only() -> None:
            with torch.inference_mode():
                if fs:
                    encode_features(enc, G, x)
                else:
                    encode(enc, G, x, iterations=iters) if enc.config.arch == "restyle" else enc(x)

        def encode_and_render() -> None:
            with torch.inference_mode():
                if fs:
                    latent, residual, _, head = encode_features(enc, G, x)
                    render_features(G, feature_split(enc, G), latent, enc.config.space, residual, head)
                else:
                    G.synthesize(encode(enc, G, x, iterations=iters), enc.config.space)

        t_enc, t_all = timed(encoder_only, repeats), timed(encode_and_render, repeats)
        out[str(b)] = {"encoder_images_per_second": round(b / t_enc, 1),
                       "encode_render_images_per_second": round(b / t_all, 1), "iterations": iters}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--mnist-weights", default="../shared/data/mnist_mlp_gan/generator.ckpt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    report = {"threads": args.threads, "torch": torch.__version__}
    for name, weights in (("dcgan-digiface64", None), ("mnist-mlp-gan", args.mnist_weights)):
        try:
            G = load_generator(name, weights=weights)
        except Exception as exc:  # noqa: BLE001 - a missing zoo file skips that generator
            report[name] = f"skipped: {exc}"
            continue
        for arch in ("psp", "e4e", "restyle", "fs"):
            path = find_encoder(G, (arch,))
            try:
                enc = load_encoder(path) if path else Encoder(config_for(G, arch)).eval()
            except ConfigError as exc:  # fs needs a generator with split layers (LayerSplitting)
                report[f"{name}/{arch}"] = f"skipped: {exc}"
                continue
            key = f"{name}/{arch}"
            report[key] = {"file": str(path) if path else "none shipped (random weights, same architecture)",
                           "params": enc.parameter_count(), "heldout_psnr": enc.meta.get("heldout_psnr"),
                           "batch": measure(G, enc, batches, args.repeats)}
            print(key, json.dumps(report[key]["batch"]), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
