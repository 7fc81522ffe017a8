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

from invertkit.encoders import Encoder, config_for, encode, hyper
from invertkit.encoders.files import load_encoder
from invertkit.encoders.inference import encode_features, feature_split, render_features
from invertkit.encoders.shipped import find_encoder
from invertkit.errors import ConfigError
from invertkit.generators import load_generator
from invertkit.methods import invert
from invertkit.methods.hyperstyle import trained_iterations


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


def measure_hyperstyle(G, net, path: str, batches: list[int], repeats: int, *, loop: bool = True) -> dict[str, dict[str, float]]:
    """Images per second of a hyperstyle network: its pivots alone (``pivot``), pivots plus all passes
    with the batched per-image weights (``hyperstyle``), the same one image at a time (``loop``), and
    the ``hyperstyle`` method as ``invert`` runs it (``method``: its timed part, which also builds each
    image's weight delta; scoring is left out, as for every encoder method). The variants are timed in
    turn, ``repeats`` rounds, so a busy shared machine slows them alike: median and best rates, and the
    median per-round ratio to the pivot alone."""
    import statistics
    import time

    out = {}
    iters = trained_iterations(net)
    for b in batches:
        x = G.synthesize(G.sample_latent(b, "z", seed=0), "z").clamp(-1, 1).detach()

        def pivot() -> None:
            with torch.inference_mode():
                hyper.pivot_start(net, G, x)

        def full() -> None:
            with torch.inference_mode():
                latent, recon, split, state = hyper.pivot_start(net, G, x)
                hyper.refine(net, G, x, latent, recon, iters, split=split, state=state)

        def one_at_a_time() -> None:
            batched = hyper.render_offset
            hyper.render_offset = hyper.render_offset_loop  # refine() looks it up at call time
            try:
                full()
            finally:
                hyper.render_offset = batched

        def method() -> float:
            return invert(G, x, "hyperstyle", hypernet=path).timings.seconds

        variants = {"pivot": pivot, "hyperstyle": full, "method": method, **({"loop": one_at_a_time} if loop else {})}
        for fn in variants.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(repeats):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                got = fn()
                times[k].append(got if k == "method" else time.perf_counter() - t0)
        row: dict[str, float] = {"iterations": iters, "rounds": repeats}
        for k, ts in times.items():
            row[f"{k}_images_per_second_median"] = round(b / statistics.median(ts), 1)
            row[f"{k}_images_per_second_best"] = round(b / min(ts), 1)
            if k != "pivot":
                row[f"{k}_over_pivot_median"] = round(statistics.median(p / t for p, t in zip(times["pivot"], ts)), 3)
        if loop:
            row["batching_speedup_median"] = round(statistics.median(a / h for a, h in zip(times["loop"], times["hyperstyle"])), 2)
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
                           "heldout_psnr": net.meta.get("heldout_psnr"), "batch": measure_hyperstyle(G, net, str(path), batches, args.repeats)}
            print(key, json.dumps(report[key]["batch"]), flush=True)
        for arch in ("psp", "e4e", "restyle", "fs"):
            if only is not None and arch not in only:
                continue
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
