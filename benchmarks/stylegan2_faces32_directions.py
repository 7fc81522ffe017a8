"""What do the zoo StyleGAN2's layers mean? SeFa / GANSpace on coarse vs fine rows, StyleSpace by region.

    python benchmarks/stylegan2_faces32_directions.py [--model stylegan2-faces32] [--n 100] \\
        [--out runs/stylegan2_directions] [--figures docs]

- **SeFa** (Shen & Zhou 2021) factorised on the coarse W+ rows 0-3 (the 4 and 8 px layers) and on
  the fine rows 4-7 (16 and 32 px) separately; **GANSpace** (Härkönen et al. 2020: PCA of 10,000
  sampled w) applied to the same two row groups. For the top 3 directions of each, ``n`` sampled faces
  (seeds 0..n-1) are moved by -2 and +2 standard deviations and two changes are measured:
  *layout* = 1 - cosine similarity of the mean-removed 8 x 8 greyscale images (pose, face shape,
  where things are), *colour* = distance between the images' mean RGB (on [-1, 1]). Coarse
  directions should move layout, fine ones colour.
- **StyleSpace by region** (Wu et al. 2021): the 10 style channels whose change concentrates most in
  a region mask (``invertkit.editing.stylespace.channels_for_mask``: share of the image change inside
  the mask), for a mouth box and an eye band; compared with the mask's own share of the image (what a
  channel acting everywhere scores) and with the mean over all candidate channels.

Writes ``OUT/results.json``, the direction files, and with ``--figures`` ``stylegan2-faces32-sefa.png``
(one face; rows: coarse SeFa 0-2, fine SeFa 0-2; strengths -3..3). One CPU thread by default.
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


def changes(G, w: torch.Tensor, dirs, rows: str, k: int, strength: float = 2.0) -> dict[str, float]:
    """Mean layout and colour change of the top ``k`` directions at +-``strength`` sigma on ``rows``."""
    from invertkit.editing.apply import edit_latents

    with torch.no_grad():
        base = G.synthesize(w, "w").clamp(-1, 1)
        lay, col = [], []
        for i in range(min(k, len(dirs))):
            edited, space = edit_latents(G, w, "w", dirs, i, [-strength, strength], layers=rows)
            for j in range(2):
                x = G.synthesize(edited[:, j], space).clamp(-1, 1)
                lay.append(float((1 - (layout(x) * layout(base)).sum(1)).mean()))
                col.append(float((x.mean((2, 3)) - base.mean((2, 3))).norm(dim=1).mean()))
    return {"layout_change": round(sum(lay) / len(lay), 4), "colour_change": round(sum(col) / len(col), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="stylegan2-faces32")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default="runs/stylegan2_directions")
    ap.add_argument("--figures", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from invertkit.editing.apply import edit_latents
    from invertkit.editing.directions import save_directions
    from invertkit.editing.ganspace import ganspace
    from invertkit.editing.sefa import sefa
    from invertkit.editing.stylespace import channels_for_mask
    from invertkit.generators import load_generator
    from invertkit.io.images import make_grid

    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator(args.model)
    w = torch.cat([G.sample_latent(1, "w", seed=i) for i in range(args.n)])
    groups = {"coarse (rows 0-3: 4, 8 px)": "0-3", "fine (rows 4-7: 16, 32 px)": "4-7"}
    results: dict = {"model": args.model, "n": args.n, "strength_sigma": 2.0, "sefa": {}, "ganspace": {}}
    gs = ganspace(G, samples=10_000, components=3)
    save_directions(gs, out / "ganspace.safetensors")
    sefa_dirs = {}
    for label, rows in groups.items():
        d = sefa(G, layers=rows, count=3)
        sefa_dirs[rows] = d
        save_directions(d, out / f"sefa_{rows}.safetensors")
        results["sefa"][label] = changes(G, w, d, rows, 3)
        results["ganspace"][label] = changes(G, w, gs, rows, 3)
        print(label, "sefa", results["sefa"][label], "ganspace", results["ganspace"][label], flush=True)

    r = G.resolution
    regions = {"mouth box (rows 20-26, cols 10-21 of 32)": (slice(20 * r // 32, 27 * r // 32), slice(10 * r // 32, 22 * r // 32)),
               "eye band (rows 10-15 of 32)": (slice(10 * r // 32, 16 * r // 32), slice(0, r))}
    results["stylespace"] = {}
    for label, (ys, xs) in regions.items():
        mask = torch.zeros(r, r)
        mask[ys, xs] = 1
        every = channels_for_mask(G, mask, top=10_000, name=label)  # every candidate, ranked
        results["stylespace"][label] = {
            "mask_share_of_image": round(float(mask.mean()), 3),
            "top10_share_inside": round(float(every.values[:10].mean()), 3),
            "all_channels_share_inside": round(float(every.values.mean()), 3),
            "top10_channels": every.names[:10],
            "top10_change_per_pixel": [round(c, 4) for c in every.info["change"][:10]],
        }
        save_directions(channels_for_mask(G, mask, top=10, name=label), out / f"stylespace_{label.split()[0]}.safetensors")
        print(label, {k: v for k, v in results["stylespace"][label].items() if "channels" not in k}, flush=True)
    results["seconds"] = round(time.time() - t0)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.figures:
        strengths = [-3, -2, -1, 0, 1, 2, 3]
        rows_img = []
        with torch.no_grad():
            for rows, d in sefa_dirs.items():
                for i in range(3):
                    edited, space = edit_latents(G, w[:1], "w", d, i, strengths, layers=rows)
                    rows_img.append(G.synthesize(edited[0], space).clamp(-1, 1))
        Path(args.figures).mkdir(parents=True, exist_ok=True)
        make_grid(rows_img, scale=3).save(Path(args.figures) / "stylegan2-faces32-sefa.png")
        print(f"wrote {args.figures}/stylegan2-faces32-sefa.png")


if __name__ == "__main__":
    main()
