"""Diffusion and flow inversion, measured: every method's reconstruction, round-trip error, NFE and time.

    python benchmarks/diffusion_bench.py [--out runs/diffusion_bench] [--shared ../shared/data] [--steps 50]

1. **Real photographs** into the shipped ``diffusion-faces32`` model (32 x 32 greyscale, prompt
   "photo"): the astronaut, LFW faces 0-7 and ORL subjects 1-8 (photo 1), none of them trained on.
   Each diffusion method at guidance 1 and 7.5, float32, ``--steps`` steps. Columns: PSNR/SSIM of
   the reconstruction, the round-trip error in latent space, NFE of inversion and of reconstruction,
   seconds per image; and the edit ``photo -> drawing`` (PSNR of the edit against the reconstruction:
   how much of the face it keeps).
2. **Exactness in float64** on the same model and photos: EDICT, BDIA round trips.
3. **Flow methods on the analytic Gaussian flow** (no pretrained rectified flow is reachable
   offline): error against the exact inversion, round trip, NFE, for 8/16/32 steps.

With ``--figure PATH``: a picture of six photos (rows): target | reconstructions at guidance 7.5 by
DDIM, null-text and Direct Inversion | BDIA inversion at guidance 1 regenerated with the prompt
"drawing" at guidance 1 and 2 (the README's figure).

Prints markdown tables and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import invertkit
from invertkit.io.images import read_image
from invertkit.io.samples import astronaut_face, lfw_faces
from invertkit.methods.diffusion import add_edits

DIFFUSION_METHODS = [("ddim", {}), ("renoise", {"iterations": 4}), ("nulltext", {}), ("nulltext", {"schedule": "invertkit"}), ("negprompt", {}), ("direct", {}),
                     ("edict", {}), ("bdia", {})]
FLOW_METHODS = [("flow-euler", {}), ("flow-midpoint", {}), ("fireflow", {}), ("rf-inversion", {}), ("coupled-flow", {})]


def real_photos(shared: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """The astronaut, LFW 0-7 and ORL s1-s8 photo 1, greyscale ``[17, 1, size, size]``."""
    images = [astronaut_face(size, 1), lfw_faces(list(range(8)), size, 1)]
    names = ["astronaut"] + [f"lfw-{i}" for i in range(8)]
    for s in range(1, 9):
        images.append(read_image(shared / "orl_faces" / f"s{s}" / "1.pgm", size, 1))
        names.append(f"orl-s{s}")
    return torch.cat(images), names


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else float("nan")


def run_method(G, images, method: str, edit: str | None = None, **options) -> dict:
    start = time.perf_counter()
    result = invertkit.invert(G, images, method, **options)
    if edit is not None:
        add_edits(G, result, [edit])
    seconds = time.perf_counter() - start
    row = {"method": method, **{k: v for k, v in options.items() if k != "prompt"},
           "psnr": _mean(result.metrics, "psnr"), "ssim": _mean(result.metrics, "ssim"),
           "roundtrip_error_max": max(m["roundtrip_error"] for m in result.metrics),
           "nfe_invert": result.timings.mean_evaluations(), "nfe_reconstruct": result.nfe_reconstruct[0],
           "seconds_per_image": seconds / images.shape[0]}
    if edit is not None:
        row[f"edit_psnr_{edit}"] = _mean(result.metrics, f"edit_psnr_{edit}")
    if "inversion_error" in result.metrics[0]:
        row["inversion_error_max"] = max(m["inversion_error"] for m in result.metrics)
    return row


def table(rows: list[dict]) -> str:
    cols = [c for c in rows[0]]
    for r in rows:
        cols += [c for c in r if c not in cols]
    fmt = lambda v: (f"{v:.1e}" if 0 < abs(v) < 1e-2 else f"{v:.3f}") if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows])


def figure(G, images: torch.Tensor, path: str, steps: int) -> None:
    """Columns: target, reconstructions of ddim / nulltext / direct at 7.5, BDIA edits to "drawing" (see module doc)."""
    from invertkit.io.images import make_grid
    from invertkit.methods.diffusion import regenerate

    cols = [images]
    results = {m: invertkit.invert(G, images, m, prompt="photo", guidance=7.5, steps=steps) for m in ("ddim", "nulltext", "direct")}
    cols += [results[m].reconstructions for m in ("ddim", "nulltext", "direct")]
    exact = invertkit.invert(G, images, "bdia", prompt="photo", guidance=1.0, steps=steps)
    cols += [regenerate(G, exact, prompt="drawing", guidance=g) for g in (1.0, 2.0)]
    grid = torch.stack(cols, 1)  # [N, columns, C, H, W]: one grid row per image
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    make_grid(list(grid), scale=3).save(path)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/diffusion_bench")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--skip-real", action="store_true", help="only the analytic flow part")
    ap.add_argument("--figure-only", action="store_true", help="only write the figure")
    ap.add_argument("--figure", default=None, help="also write the README figure to this PNG")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    if not args.skip_real:
        G = invertkit.load_generator("diffusion-faces32")
        images, names = real_photos(Path(args.shared), G.resolution)
        if args.figure:
            figure(G, images[[0, 1, 2, 9, 10, 11]], args.figure, args.steps)
            if args.figure_only:
                return
        rows = []
        for guidance in (1.0, 7.5):
            for method, extra in DIFFUSION_METHODS:
                rows.append(run_method(G, images, method, edit="drawing", prompt="photo", guidance=guidance,
                                       steps=args.steps, **extra))
                print(rows[-1], flush=True)
        results["real_photos"] = rows
        print(f"\n### {len(names)} real photographs into diffusion-faces32, prompt 'photo', {args.steps} steps, float32\n")
        print(table(rows))
        exact = [run_method(G, images, m, prompt="photo", guidance=7.5, steps=args.steps, dtype="float64")
                 for m in ("edict", "bdia")]
        results["exact_float64"] = exact
        print("\n### float64 round trips, guidance 7.5\n")
        print(table(exact))
    F = invertkit.load_generator("analytic:flow:16")
    data = F.synthesize(F.sample_latent(8, seed=0), steps=400, prompt="up", dtype="float64")
    rows = []
    for steps in (8, 16, 32):
        for method, extra in FLOW_METHODS:
            rows.append(run_method(F, data, method, prompt="up", guidance=2.0, steps=steps, dtype="float64", **extra))
    results["analytic_flow"] = rows
    print("\n### flow methods on the analytic Gaussian flow (16 x 16, guidance 2, float64)\n")
    print(table(rows))
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
