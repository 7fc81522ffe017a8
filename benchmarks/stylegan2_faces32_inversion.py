"""The StyleGAN2 spaces on real faces: W vs W+ vs P_N, the NSCD loss, PTI with a W pivot, the e4e encoder.

    python benchmarks/stylegan2_faces32_inversion.py [--model stylegan2-faces32] [--faces 24] [--drawn 16] \\
        [--steps 300] [--methods all] [--out runs/stylegan2_inversion]

Generator ``stylegan2-faces32``. Each method, with its options:

- ``optimize:w``, ``optimize:w+``, ``optimize:w noise`` / ``optimize:w+ noise`` (the noise maps
  optimised too, at the default regulariser weight), ``optimize:pn`` (P_N, Zhu et al. 2020), ``optimize:w+ nscd``
  (W+ with LSAP's NSCD loss added: ``mse=1,perceptual=1,nscd=0.5``), all ``--steps`` steps of
  NVIDIA's projector schedule; ``pti`` (W pivot, PTI's defaults); ``encoder`` (the shipped e4e, when
  present).
- **Reconstruction** of LFW faces ``0..FACES-1`` (never trained on; greyscale, compared with the RGB
  reconstruction as they are): PSNR on 8-bit images and LSAP's **NSCD** of the inverted latent (of the
  pivot for PTI; PTI on the first ``--pti-faces`` only), with NSCD of 1,000 sampled latents as the reference.
- **Editability where the true edit is known**: faces the generator draws (``--drawn``, seeds from
  50,000) are inverted by each method and edited along the coarse-row SeFa directions 0-2 (W+ rows 0-3)
  at -2 and +2 sigma through each result's own edit path. ``edit PSNR``: the edits against the
  generator's own edit of the true latent; ``edit follow``: RMS change of the edit over that of the
  true edit (1: moves as far).

Prints a Markdown table and writes ``OUT/results.json``. One CPU thread by default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

METHODS = {
    "optimize:w": ("optimize", {"space": "w"}),
    "optimize:w+": ("optimize", {"space": "w+"}),
    "optimize:w noise": ("optimize", {"space": "w", "noise": True}),
    "optimize:w+ noise": ("optimize", {"space": "w+", "noise": True}),
    "optimize:pn": ("optimize", {"space": "pn"}),
    "optimize:w+ nscd=0.5": ("optimize", {"space": "w+", "loss": "mse=1,perceptual=1,nscd=0.5"}),
    "pti (W pivot)": ("pti", {}),
    "encoder (e4e)": ("encoder", {}),
}
STRENGTHS = (-2.0, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="stylegan2-faces32")
    ap.add_argument("--faces", type=int, default=24)
    ap.add_argument("--drawn", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--pti-faces", type=int, default=8, help="PTI tunes one generator per image: only the first K faces of each set")
    ap.add_argument("--methods", default="all", help="comma-separated names of METHODS, or all")
    ap.add_argument("--out", default="runs/stylegan2_inversion")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from invertkit.editing.apply import edit_latents, edit_result, render_edits
    from invertkit.editing.sefa import sefa
    from invertkit.encoders.shipped import find_encoder
    from invertkit.generators import load_generator
    from invertkit.io.samples import lfw_faces
    from invertkit.methods import invert
    from invertkit.metrics import nscd_of_samples, psnr

    G = load_generator(args.model)
    names = list(METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    if "encoder (e4e)" in names and find_encoder(G, ("e4e", "psp")) is None:
        names.remove("encoder (e4e)")
    real = lfw_faces(list(range(args.faces)), G.resolution, 1).expand(-1, 3, -1, -1).contiguous()
    drawn_w = torch.cat([G.sample_latent(1, "w", seed=50_000 + i) for i in range(args.drawn)])
    dirs = sefa(G, layers="0-3", count=3)
    with torch.no_grad():
        drawn = G.synthesize(drawn_w, "w").clamp(-1, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"model": args.model, "faces": args.faces, "drawn": args.drawn, "steps": args.steps,
                     "nscd_of_1000_samples": round(float(nscd_of_samples(G, 1000)), 4), "methods": {}}
    for name in names:
        method, options = METHODS[name]
        opts = dict(options)
        if method in ("optimize", "pti"):
            opts["steps" if method == "optimize" else "pivot_steps"] = args.steps
        k = min(args.pti_faces, args.faces) if method == "pti" else args.faces
        kd = min(args.pti_faces, args.drawn) if method == "pti" else args.drawn
        t0 = time.time()
        res = invert(G, real[:k], method, extra_metrics=("nscd",), **opts)
        secs = (time.time() - t0) / k
        row = {"psnr": round(sum(m["psnr"] for m in res.metrics) / k, 2), "faces": k,
               "nscd": round(sum(m["nscd"] for m in res.metrics) / k, 4), "s_per_image": round(secs, 2)}
        res_d = invert(G, drawn[:kd], method, **opts)
        psnrs, follow = [], []
        for index in range(3):
            frames = edit_result(G, res_d, dirs, index, STRENGTHS)  # [N, S, C, H, W]
            for s, strength in enumerate(STRENGTHS):
                edited, space = edit_latents(G, drawn_w[:kd], "w", dirs, index, [strength])
                truth = render_edits(G, edited, space)[:, 0].clamp(-1, 1)
                got = frames[:, s].clamp(-1, 1)
                psnrs.append(float(psnr(got, truth).mean()))
                moved = (got - res_d.reconstructions.clamp(-1, 1)).pow(2).mean((1, 2, 3)).sqrt()
                true_moved = (truth - drawn[:kd]).pow(2).mean((1, 2, 3)).sqrt().clamp_min(1e-8)
                follow.append(float((moved / true_moved).mean()))
        row["edit_psnr"] = round(sum(psnrs) / len(psnrs), 2)
        row["edit_follow"] = round(sum(follow) / len(follow), 3)
        row["drawn_psnr"] = round(sum(m["psnr"] for m in res_d.metrics) / kd, 2)
        results["methods"][name] = row
        print(name, row, flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")  # finished rows are kept
    print("\n| method | PSNR real (dB) | NSCD | edit PSNR (dB) | edit follow | PSNR drawn (dB) | s / image |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results["methods"].items():
        print(f"| `{name}` | {r['psnr']:.2f} | {r['nscd']:.3f} | {r['edit_psnr']:.2f} | {r['edit_follow']:.2f} | "
              f"{r['drawn_psnr']:.2f} | {r['s_per_image']:.2f} |")
    print(f"\nNSCD of 1,000 sampled latents: {results['nscd_of_1000_samples']:.3f}")


if __name__ == "__main__":
    main()
