"""The README's frontier table: every GAN inversion family on the same unseen real faces, with the
columns the papers report (quality, editability, time, model size, storage per image).

    python benchmarks/frontier_table.py [--faces 16] [--drawn 16] [--threads 2] [--out runs/frontier]

Generator ``dcgan-digiface64``; methods with their shipped models and default options: ``encoder``
(pSp), ``restyle``, ``fs-encoder``, ``hyperstyle`` (when shipped or installed), ``hybrid``, ``pti``
with the full weight delta (``rank=0``) and with its default low-rank delta, ``optimize``.

- **Reconstruction** on LFW faces ``0..FACES-1`` (never trained on), run through ``invertkit bench``
  (``run_bench``: the same metric protocol, run folders in ``OUT/bench``): PSNR, SSIM and the
  MobileNetV2 perceptual distance (LPIPS-like; lower is better), seconds per image at batch
  ``--batch``, and ``bytes_per_image`` (what a run stores per image to re-render it).
- **Model size**: bytes of the model files a method loads (its encoder or hypernetwork file and the
  file it bootstraps from, float16 as shipped); the generator itself is not counted.
- **Editability**, where the true edit is known: faces the generator draws (``--drawn`` of them, seeds
  from 50,000, never seen in training) are inverted by each method and edited along SeFa directions
  0-2 at -2 and +2 sigma, through each result's own edit path (``editing.apply.edit_result``: the
  tuned generator of PTI/hyperstyle, the re-applied residual of fs-encoder). ``edit PSNR`` is the
  mean PSNR of those edits against the generator's own edit ``G(z + d)``; ``edit follow`` is the
  RMS change the edit makes to the inversion over the RMS change of the true edit (1 = moves as far
  as the true edit; 0 = the edit does nothing).

Prints a Markdown table and writes ``OUT/frontier.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from invertkit.bench import run_bench
from invertkit.editing.apply import edit_latents, edit_result, render_edits
from invertkit.editing.sefa import sefa
from invertkit.encoders.shipped import find_encoder, resolve_encoder
from invertkit.generators import load_generator
from invertkit.io.samples import lfw_faces
from invertkit.methods import invert
from invertkit.metrics import psnr, quantize

ARCHS = {"encoder": ("psp", "e4e"), "restyle": ("restyle",), "fs-encoder": ("fs",), "hyperstyle": ("hyperstyle",),
         "hybrid": ("psp", "e4e"), "pti": ("psp", "e4e"), "optimize": ()}
STRENGTHS = (-2.0, 2.0)
DIRECTIONS = (0, 1, 2)


def model_bytes(G, method: str) -> int:
    """Bytes of the model files ``method`` loads for ``G``: the file and the chain of files it bootstraps from."""
    archs = ARCHS[method.split("@")[0]]
    if not archs or find_encoder(G, archs) is None:
        return 0
    net = resolve_encoder(G, "auto", archs)
    path, total = Path(net.source), 0
    config = net.config
    while True:
        total += path.stat().st_size
        if not config.bootstrap:
            return total
        path = path.parent / config.bootstrap
        config = resolve_encoder(G, str(path), ("psp", "e4e", "restyle", "fs")).config


def edit_scores(G, method: str, options: dict, drawn_z: torch.Tensor) -> dict[str, float]:
    """Edit PSNR against ``G(z + d)`` and edit follow (see the module doc), mean over faces, directions and strengths."""
    dirs = sefa(G)
    with torch.no_grad():
        truth_base = G.synthesize(drawn_z, "z").clamp(-1, 1)
    res = invert(G, truth_base, method, **options)
    psnrs, ratios = [], []
    for index in DIRECTIONS:
        frames = edit_result(G, res, dirs, index, STRENGTHS)  # [N, S, C, H, W]
        for s, strength in enumerate(STRENGTHS):
            # the true edit: the same direction and strength applied to the true latents
            edited, space = edit_latents(G, drawn_z, "z", dirs, index, [strength])
            truth = render_edits(G, edited, space)[:, 0]
            got = frames[:, s]
            psnrs += psnr(got, truth).tolist()
            moved = (quantize(got) - quantize(res.reconstructions)).square().mean((1, 2, 3)).sqrt()
            true_move = (quantize(truth) - quantize(truth_base)).square().mean((1, 2, 3)).sqrt()
            ratios += (moved / true_move.clamp_min(1e-6)).tolist()
    return {"edit_psnr": sum(psnrs) / len(psnrs), "edit_follow": sum(ratios) / len(ratios)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/frontier")
    ap.add_argument("--faces", type=int, default=16, help="LFW faces 0..N-1 (at most 50: the unseen ones)")
    ap.add_argument("--drawn", type=int, default=16, help="faces drawn by the generator for the editability columns")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse-bench", action="store_true", help="take the reconstruction columns from OUT/bench/bench.json (same faces)")
    ap.add_argument("--methods", default="", help="comma-separated bench specs instead of the default list (a quick look)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    G = load_generator("dcgan-digiface64")
    faces = lfw_faces(list(range(min(args.faces, 50))), 64, 3)
    methods = ["encoder", "restyle", "fs-encoder"] + (["hyperstyle"] if find_encoder(G, ("hyperstyle",)) else [])
    methods += ["hybrid", "pti@rank=0", "pti", "optimize"]
    if args.methods:
        methods = [m for m in args.methods.split(",") if m]
    start = time.perf_counter()
    if args.reuse_bench:
        rows = [r for r in json.loads((out / "bench" / "bench.json").read_text()) if r["method"] in methods]
    else:
        rows = run_bench(G, faces, [f"lfw-{i}" for i in range(faces.shape[0])], methods, out / "bench",
                         batch_size=args.batch, extra_metrics=("perceptual",), progress=lambda m: print(f"bench: {m}", flush=True))
    drawn_z = torch.cat([G.sample_latent(1, "z", seed=50_000 + s) for s in range(args.drawn)])
    table = []
    for row in rows:
        spec = row["method"]
        name, _, opts = spec.partition("@")
        options = dict(kv.split("=", 1) for kv in opts.split(";") if kv)
        print(f"editability: {spec}", flush=True)
        table.append({
            "method": spec, "psnr": row.get("psnr_mean"), "ssim": row.get("ssim_mean"), "perceptual": row.get("perceptual_mean"),
            **edit_scores(G, name, {k: int(v) if v.isdigit() else v for k, v in options.items()}, drawn_z),
            "seconds_per_image": row.get("seconds_per_image"), "model_bytes": model_bytes(G, spec),
            "bytes_per_image": row.get("bytes_per_image"),
        })
    report = {"faces": faces.shape[0], "drawn": args.drawn, "threads": args.threads, "batch": args.batch,
              "seconds": time.perf_counter() - start, "rows": table}
    (out / "frontier.json").write_text(json.dumps(report, indent=1))
    print(f"\n{faces.shape[0]} unseen LFW faces (0-{faces.shape[0] - 1}); editability on {args.drawn} drawn faces; "
          f"{args.threads} torch threads, batch {args.batch}\n")
    print("| method | PSNR (dB) | SSIM | perceptual | edit PSNR (dB) | edit follow | s / image | model | storage / image |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def size(b: float | None) -> str:
        if not b:
            return "-"
        return f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"

    for r in table:
        print(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['perceptual']:.3f} | {r['edit_psnr']:.2f} | "
              f"{r['edit_follow']:.2f} | {r['seconds_per_image']:.3f} | {size(r['model_bytes'])} | {size(r['bytes_per_image'])} |")


if __name__ == "__main__":
    main()
