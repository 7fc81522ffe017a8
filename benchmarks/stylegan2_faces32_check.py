"""Does the zoo's StyleGAN2 (``stylegan2-faces32``) draw faces, and does style mixing separate pose from colour?

    python benchmarks/stylegan2_faces32_check.py [--model stylegan2-faces32] [--n 500] [--out runs/stylegan2_check] \\
        [--figures docs]

- **FMD** (Fréchet distance of ImageNet MobileNetV2 pooled features, ``invertkit.metrics.distribution``;
  not FID, biased upwards at this n: compare rows with each other only) of ``n`` samples (seeds
  0..n-1, truncation 1) against two held-apart references: ``n`` DigiFace DCGAN faces the training
  never drew (seeds 900,000+; area-resized 64 -> 32) and the real LFW faces 0-49 (greyscale, never
  trained on). The DCGAN itself (seeds 800,000+) is scored against the same references, and two
  disjoint DCGAN sets give the floor.
- **Style mixing**: 200 pairs (A, B); the mix takes W+ rows 0-3 (the 4 and 8 px layers, ``--mix
  coarse``) from A and rows 4-7 (16 and 32 px) from B. Pose/layout: cosine similarity of the
  mean-removed 8 x 8 greyscale image of the mix to A's and to B's. Colour: distance of the mix's mean
  RGB to A's and to B's. Separation means layout follows A and colour follows B. The same for every
  cut point (rows 0..cut-1 from A) shows where layout and colour are decided.

Writes ``OUT/results.json`` and, with ``--figures``, ``stylegan2-faces32-samples.png`` (8 x 8 samples,
2x) and ``stylegan2-faces32-mixing.png`` (top row: B; left column: A; cells: coarse from A, fine
from B). One CPU thread by default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.nn import functional as F


def layout(x: torch.Tensor) -> torch.Tensor:
    """``N x 3 x R x R`` -> ``N x 64``: the mean-removed, unit-norm 8 x 8 greyscale image."""
    g = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 8).flatten(1)
    g = g - g.mean(1, keepdim=True)
    return g / g.norm(dim=1, keepdim=True).clamp_min(1e-8)


def dcgan_faces(n: int, seed: int) -> torch.Tensor:
    """``n`` DCGAN faces at 32 px (RGB, area-resized), z drawn from ``seed``."""
    from invertkit.generators import load_generator

    G = load_generator("dcgan-digiface64")
    z = torch.randn(n, 100, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.cat([F.avg_pool2d(G.synthesize(c, "z"), 2) for c in z.split(100)]).clamp(-1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="stylegan2-faces32", help="a zoo name or checkpoint path")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--out", default="runs/stylegan2_check")
    ap.add_argument("--figures", default=None, help="folder for the two PNG figures (e.g. docs)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from invertkit.features.mobilenet import cached_mobilenet_v2
    from invertkit.generators import load_generator
    from invertkit.io.images import make_grid
    from invertkit.io.samples import lfw_faces
    from invertkit.metrics.distribution import FMD_SIZE, extract_features, frechet_distance_features

    t0 = time.time()
    pooled = cached_mobilenet_v2("cpu").pooled

    def feats(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([extract_features(c, pooled, resize=FMD_SIZE) for c in x.split(100)])

    G = load_generator(args.model)
    with torch.no_grad():
        z = torch.cat([G.sample_latent(1, "z", seed=i) for i in range(args.n)])
        samples = torch.cat([G.synthesize(c, "z") for c in z.split(100)]).clamp(-1, 1)
    ref_dcgan = feats(dcgan_faces(args.n, 900_000))
    ref_lfw = feats(lfw_faces(list(range(50)), 32, 1).expand(-1, 3, -1, -1))
    dcgan = dcgan_faces(args.n, 800_000)
    f_sg2, f_dcgan = feats(samples), feats(dcgan)
    results: dict = {"model": args.model, "n": args.n, "fmd": {
        "stylegan2_vs_dcgan_heldout": round(frechet_distance_features(f_sg2, ref_dcgan), 2),
        "dcgan_vs_dcgan_heldout (floor)": round(frechet_distance_features(f_dcgan, ref_dcgan), 2),
        "stylegan2_vs_lfw0-49": round(frechet_distance_features(f_sg2, ref_lfw), 2),
        "dcgan_vs_lfw0-49": round(frechet_distance_features(f_dcgan, ref_lfw), 2),
    }}
    print(json.dumps(results["fmd"]), f"({time.time() - t0:.0f}s)", flush=True)

    # style mixing: coarse rows (4 and 8 px) from A, the rest from B
    with torch.no_grad():
        wa = G.convert(torch.cat([G.sample_latent(1, "z", seed=10_000 + i) for i in range(args.pairs)]), "z", "w+")
        wb = G.convert(torch.cat([G.sample_latent(1, "z", seed=20_000 + i) for i in range(args.pairs)]), "z", "w+")
        mixed = torch.cat([wa[:, :4], wb[:, 4:]], 1)
        xa, xb, xm = (G.synthesize(w, "w+").clamp(-1, 1) for w in (wa, wb, mixed))
    la, lb, lm = layout(xa), layout(xb), layout(xm)
    ca, cb, cm = (x.mean((2, 3)) for x in (xa, xb, xm))
    results["mixing"] = {
        "pairs": args.pairs, "rows_from_A": "0-3 (4 and 8 px)", "rows_from_B": "4-7 (16 and 32 px)",
        "layout_cos_to_A": round(float((lm * la).sum(1).mean()), 3),
        "layout_cos_to_B": round(float((lm * lb).sum(1).mean()), 3),
        "layout_cos_A_to_B": round(float((la * lb).sum(1).mean()), 3),
        "colour_dist_to_A": round(float((cm - ca).norm(dim=1).mean()), 3),
        "colour_dist_to_B": round(float((cm - cb).norm(dim=1).mean()), 3),
        "colour_dist_A_to_B": round(float((ca - cb).norm(dim=1).mean()), 3),
    }
    # where is the split? rows 0..cut-1 from A, the rest from B, for every cut
    sweep = {}
    with torch.no_grad():
        for cut in range(1, G.num_ws):
            xc = G.synthesize(torch.cat([wa[:, :cut], wb[:, cut:]], 1), "w+").clamp(-1, 1)
            lc, cc = layout(xc), xc.mean((2, 3))
            sweep[f"rows 0-{cut - 1} from A"] = {
                "layout_cos_to_A": round(float((lc * la).sum(1).mean()), 3), "layout_cos_to_B": round(float((lc * lb).sum(1).mean()), 3),
                "colour_dist_to_A": round(float((cc - ca).norm(dim=1).mean()), 3), "colour_dist_to_B": round(float((cc - cb).norm(dim=1).mean()), 3)}
    results["mixing"]["cuts"] = sweep
    print(json.dumps(results["mixing"]), flush=True)
    results["seconds"] = round(time.time() - t0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.figures:
        fig = Path(args.figures)
        fig.mkdir(parents=True, exist_ok=True)
        make_grid(list(samples[:64].split(8)), scale=2).save(fig / "stylegan2-faces32-samples.png")
        na, nb = 5, 7
        blank = torch.ones_like(xa[:1])
        rows = [torch.cat([blank, xb[:nb]])]
        for i in range(na):
            with torch.no_grad():
                cells = G.synthesize(torch.cat([wa[i:i + 1, :4].expand(nb, -1, -1), wb[:nb, 4:]], 1), "w+").clamp(-1, 1)
            rows.append(torch.cat([xa[i:i + 1], cells]))
        make_grid(rows, scale=3).save(fig / "stylegan2-faces32-mixing.png")
        print(f"wrote {fig}/stylegan2-faces32-samples.png, stylegan2-faces32-mixing.png")


if __name__ == "__main__":
    main()
