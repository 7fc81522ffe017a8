"""Encoder inference speed: images per second of the encoder alone and of encode + render, at
several batch sizes, for the shipped encoders (or freshly built ones of the same architecture when a
generator has none shipped), plus the held-out quality recorded in each encoder file. An fs encoder's
"encoder alone" is its latent, the latent's render and the feature residual (the render is its
input); "encode + render" adds the tail with the residual (what ``fs-encoder`` does).

A shipped (or installed) hyperstyle network is timed end to end: its pivots (the bootstrap encoder's
latents and images; for an fs bootstrap, latent plus residual), then its passes (hypernetwork and a
render with each image's offset weights), as ``invertkit invert -m hyperstyle`` runs them; the same
with the per-image weights applied one image at a time (``render_offset_loop``) gives the batching's
speed-up, and the pivot alone, timed in the same run, anchors the numbers on a shared machine.

    python benchmarks/encoder_speed.py [--threads 2] [--repeats 10]
    python benchmarks/encoder_speed.py --only hyperstyle --batches 64 --repeats 3

Prints one JSON object: {"<generator>/<arch>": {"params", "heldout_psnr", "batch": {b: {...}}}}.
"""

from __future__ import annotations

import argparse
import json

import torch
from generator_speed import timed  # benchmarks/ is on sys.path when a script in it runs

from invertkit.encoders import Encoder, config_for, encode
from invertkit.encoders import hyper
from invertkit.encoders.files import load_encoder
from invertkit.encoders.inference import encode_features, feature_split, render_features
from invertkit.methods.hyperstyle import trained_iterations
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


def measure_hyperstyle(G, net, batches: list[int], repeats: int, *, loop: bool = True) -> dict[str, dict[str, float]]:
    """Images per second of a hyperstyle network's pivots alone and of pivots + all passes (batched
    per-image weights; with ``loop`` also one image at a time)."""
    out = {}
    iters = trained_iterations(net)
    for b in batches:
        x = G.synthesize(G.sample_latent(b, "z", seed=0), "z").clamp(-1, 1).detach()

        def pivot_only() -> None:
            with torch.inference_mode():
                hyper.pivot_start(net, G, x)

        def full() -> None:
            with torch.inference_mode():
                latent, recon, split, state = hyper.pivot_start(net, G, x)
                hyper.refine(net, G, x, latent, recon, iters, split=split, state=state)

        row = {"iterations": iters, "pivot_images_per_second": round(b / timed(pivot_only, repeats), 1),
               "hyperstyle_images_per_second": round(b / timed(full, repeats), 1)}
        if loop:
            batched = hyper.render_offset
            hyper.render_offset = hyper.render_offset_loop  # refine() looks it up at call time
            try:
                row["hyperstyle_one_image_at_a_time_images_per_second"] = round(b / timed(full, max(1, repeats // 3)), 1)
            finally:
                hyper.render_offset = batched
            row["batching_speedup"] = round(row["hyperstyle_images_per_second"] / row["hyperstyle_one_image_at_a_time_images_per_second"], 2)
        out[str(b)] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--mnist-weights", default="../shared/data/mnist_mlp_gan/generator.ckpt")
    ap.add_argument("--hypernet", default=None, help="time this hyperstyle network file for dcgan-digiface64 instead of the shipped one")
    ap.add_argument("--only", default=None, help="comma-separated architectures to time (default: all, hyperstyle included)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    batches = [int(b) for b in args.batches.split(",")]
    report = {"threads": args.threads, "torch": torch.__version__}
    for name, weights in (("dcgan-digiface64", None), ("mnist-mlp-gan", args.mnist_weights)):
        try:
            G = load_generator(name, weights=weights)
        except Exception as exc:  # noqa: BLE001 - a missing zoo file skips that generator
            report[name] = f"skipped: {exc}"
            continue
        path = find_encoder(G, ("hyperstyle",))
        if args.hypernet and name == "dcgan-digiface64":
            path = args.hypernet
        if path is not None and (only is None or "hyperstyle" in only):
            net = load_encoder(path)
            key = f"{name}/hyperstyle"
            report[key] = {"file": str(path), "params": net.parameter_count(), "pivot": net.start_encoder.config.arch,
                           "heldout_psnr": net.meta.get("heldout_psnr"), "batch": measure_hyperstyle(G, net, batches, args.repeats)}
            print(key, json.dumps(report[key]["batch"]), flush=True)
        for arch in ("psp", "e4e", "restyle", "fs"):
            if only is not None and arch not in only:
                continue
            path = find_encoder(G, (arch,))
            try:
                enc = load_encoder(path) if path else Encoder(config_for(G, arch)).eval()
            except ConfigError as exc:  # fs needs a generator with feature maps (not the MNIST MLP)
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
