"""Does faces32's "drawing" prompt draw faces like the DigiFace DCGAN's, and is "photo" still fine?

    python benchmarks/faces32_check.py [--before diffusion-faces32] [--after diffusers:runs/diffusion/faces32-ft] \\
        [--n 64] [--steps 50] [--guidance 1 3] [--out runs/faces32_check]

For each model (``before``, ``after``; any ``load_generator`` name) and guidance: ``n`` DDIM samples
(seed 0) for "drawing" and for "photo", and

- pixel mean and std of the samples; the references: ``n`` DCGAN drawn faces made exactly like the
  training pool (greyscale, area-resized to 32) but from seeds the pool never used (90,000+), and the
  held-out real photos LFW 0-49 (training used ORL s20-40 and LFW 50-99);
- FMD (Fréchet distance of ImageNet MobileNetV2 pooled features, :func:`invertkit.metrics.distribution.fmd`;
  not FID, and biased upwards at this n: compare rows with each other only): "drawing" samples against
  the DCGAN faces, "photo" samples against LFW 0-49. ``floor`` rows give the distance between two
  disjoint reference sets of the same kind (what a perfect model would score at this n).

Writes ``OUT/results.json`` and ``OUT/grid_g{guidance}.png`` (rows: drawing before, drawing after,
photo before, photo after; 16 samples each, 2x), and caches each model's samples in
``OUT/samples_{before,after}.pt`` (reused when the model name, n, steps and guidances match). Runs on one CPU thread by default (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def stats(x: torch.Tensor) -> dict[str, float]:
    return {"mean": round(float(x.mean()), 4), "std": round(float(x.std()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="diffusion-faces32")
    ap.add_argument("--after", default="diffusers:runs/diffusion/faces32-ft")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--out", default="runs/faces32_check")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from invertkit.diffusion.train import drawn_faces
    from invertkit.features.mobilenet import cached_mobilenet_v2
    from invertkit.generators import load_generator
    from invertkit.io.images import make_grid
    from invertkit.io.samples import lfw_faces
    from invertkit.metrics.distribution import FMD_SIZE, extract_features, frechet_distance_features

    pooled = cached_mobilenet_v2("cpu").pooled

    def feats(x: torch.Tensor) -> torch.Tensor:  # what fmd() computes, kept so each reference is embedded once
        return extract_features(x, pooled, resize=FMD_SIZE)

    def fmd(a: torch.Tensor, b: torch.Tensor) -> float:
        return frechet_distance_features(a if a.dtype == torch.float64 else feats(a), b if b.dtype == torch.float64 else feats(b))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    dcgan = drawn_faces(2 * args.n, 32, seed=90_000)  # the pool used seeds 10,000-29,999
    dcgan_a, dcgan_b = dcgan[:args.n], dcgan[args.n:]
    lfw = lfw_faces(list(range(50)), 32, 1)
    dcgan_f, lfw_f = feats(dcgan_a), feats(lfw)
    results: dict = {"n": args.n, "steps": args.steps, "references": {
        "dcgan": stats(dcgan_a), "lfw0-49": stats(lfw),
        "floor_fmd_dcgan_vs_dcgan": round(fmd(dcgan_f, dcgan_b), 2),
        "floor_fmd_lfw0-24_vs_lfw25-49": round(fmd(lfw[:25], lfw[25:]), 2)}}
    samples: dict[tuple[str, str, float], torch.Tensor] = {}
    for label, name in (("before", args.before), ("after", args.after)):
        cache = out / f"samples_{label}.pt"  # reused when the same model, n, steps and guidances ran before
        key = {"name": name, "n": args.n, "steps": args.steps, "guidance": args.guidance}
        cached = torch.load(cache) if cache.exists() else None
        if cached is not None and cached["key"] != key:
            cached = None
        G = None if cached is not None else load_generator(name)
        z = None if G is None else G.sample_latent(args.n, seed=0)
        for g in args.guidance:
            for prompt, ref in (("drawing", dcgan_f), ("photo", lfw_f)):
                if cached is not None:
                    x = cached["samples"][f"{prompt}_g{g:g}"]
                else:
                    x = torch.cat([G.sample(chunk, steps=args.steps, prompt=prompt, guidance=g) for chunk in z.split(32)]).clamp(-1, 1)
                samples[(label, prompt, g)] = x
                row = {**stats(x), "fmd": round(fmd(x, ref), 2)}
                results.setdefault(label, {}).setdefault(prompt, {})[f"g{g:g}"] = row
                print(label, prompt, f"g={g:g}", row, f"({time.time() - t0:.0f}s)", flush=True)
        if cached is None:
            torch.save({"key": key, "samples": {f"{p}_g{g:g}": samples[(label, p, g)] for p in ("drawing", "photo")
                                                 for g in args.guidance}}, cache)
    for g in args.guidance:
        rows = [samples[(label, prompt, g)][:16] for prompt in ("drawing", "photo") for label in ("before", "after")]
        make_grid(rows, scale=2).save(out / f"grid_g{g:g}.png")
    results["seconds"] = round(time.time() - t0)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
