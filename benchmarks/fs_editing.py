"""Edits of feature-space (fs-encoder) inversions: does the residual follow the edit?

    python benchmarks/fs_editing.py [--out runs/fs_editing] [--faces 64] [--directions 3] [--lfw 50]

On ``dcgan-digiface64``:

1. Drawn faces (``x = G(z)``, seeds 2,000,000 + i: neither the encoders' nor the aligner's training
   draws), where the true edit is known: ``G(z + s u)`` for the top ``--directions`` SeFa directions
   ``u`` and for as many random unit directions (never among the aligner's training bank), at strengths
   s = +-1, +-2, +-3 sigma. Edit fidelity = PSNR of each method's edited image against ``G(z + s u)``:

   - ``psp``: the shipped pSp encoder's latent, edited (``encoder`` method);
   - ``fs latent``: the fs encoder's latent alone (its residual dropped);
   - ``fs raw``: fs-encoder, residual re-added unchanged (HFGI's rule, ``--residual raw``);
   - ``fs aligned``: fs-encoder, residual moved by the shipped residual aligner (``--residual aligned``).

   Strength 0 is the reconstruction PSNR against ``x``.
2. LFW faces 0..``--lfw``-1 (never trained on): how much the same SeFa edits move each method's image:
   RMS pixel change on [0, 1] (uint8 levels) per unit strength against the unedited image, and for the
   fs methods its ratio to the change of the fs latent's own edit ``G(z_fs + s u) - G(z_fs)``.
   A strip (raw above aligned, strengths -3..3) of two LFW faces is written to OUT.

Prints markdown tables and writes OUT/fs_editing.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from invertkit import invert, load_generator
from invertkit.editing.apply import render_layer_edits, result_aligner
from invertkit.editing.sefa import sefa
from invertkit.io.images import make_grid
from invertkit.io.samples import lfw_faces
from invertkit.metrics import psnr, quantize

STRENGTHS = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
METHODS = ("psp", "fs latent", "fs raw", "fs aligned")


@torch.no_grad()
def edited_images(G, inv: dict, units: torch.Tensor, strengths, aligner) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """Each method's edited images ``[N, D, S, C, H, W]`` for directions ``units [D, dim]``."""
    s = torch.tensor(strengths)
    shape = (G.channels, G.resolution, G.resolution)
    out: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}
    psp, fs = inv["psp"], inv["fs"]
    for u in units:
        step = s[:, None] * u[None]  # [S, dim]
        for name, lat in (("psp", psp.latents), ("fs latent", fs.latents)):
            z = lat[:, None] + step[None]
            out[name].append(G.synthesize(z.flatten(0, 1), "z").clamp(-1, 1).reshape(z.shape[0], len(s), *shape))
        z = fs.latents[:, None] + step[None]
        out["fs raw"].append(render_layer_edits(G, fs, z, "z"))
        out["fs aligned"].append(render_layer_edits(G, fs, z, "z", aligner=aligner))
    return {m: torch.stack(v, 1) for m, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/fs_editing")
    ap.add_argument("--faces", type=int, default=64, help="drawn faces (known true edits)")
    ap.add_argument("--directions", type=int, default=3, help="top SeFa directions (and as many random ones)")
    ap.add_argument("--lfw", type=int, default=50, help="LFW faces 0..N-1")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator("dcgan-digiface64")
    sf = sefa(G, count=args.directions)
    rnd = torch.nn.functional.normalize(torch.randn(args.directions, 100, generator=torch.Generator().manual_seed(777)), dim=1)
    families = {"sefa": torch.stack([sf.unit(i, "sigma") for i in range(args.directions)]), "random": rnd}
    report: dict = {"generator": G.name, "strengths": list(STRENGTHS), "directions": args.directions}

    # 1. drawn faces: fidelity to the true edit
    z = torch.cat([G.sample_latent(1, "z", seed=2_000_000 + i) for i in range(args.faces)])
    with torch.no_grad():
        x = G.synthesize(z, "z").clamp(-1, 1)
    inv = {"psp": invert(G, x, "encoder"), "fs": invert(G, x, "fs-encoder")}
    aligner = result_aligner(G, inv["fs"], "aligned")
    report["aligner"] = aligner.source
    recon = {"psp": float(psnr(inv["psp"].reconstructions, x).mean()),
             "fs latent": float(psnr(G.synthesize(inv["fs"].latents, "z"), x).mean()),
             "fs raw": float(psnr(inv["fs"].reconstructions, x).mean())}
    recon["fs aligned"] = recon["fs raw"]  # A(r, F, F) = r: the same image
    fidelity: dict = {}
    for fam, units in families.items():
        t0 = time.perf_counter()
        frames = edited_images(G, inv, units, STRENGTHS, aligner)
        with torch.no_grad():
            s, shape = torch.tensor(STRENGTHS), (G.channels, G.resolution, G.resolution)
            truth = torch.stack([G.synthesize((z[:, None] + s[:, None] * u[None]).flatten(0, 1), "z").clamp(-1, 1)
                                 .reshape(z.shape[0], len(s), *shape) for u in units], 1)
        rows = {}
        for m in METHODS:
            p = psnr(frames[m].flatten(0, 2), truth.flatten(0, 2)).reshape(z.shape[0], len(units), len(s))
            rows[m] = {"0": recon[m], **{f"{a:g}": float(p[:, :, s.abs() == a].mean()) for a in (1.0, 2.0, 3.0)},
                       "all": float(p.mean())}
        fidelity[fam] = rows
        print(f"# drawn faces, {fam} directions ({time.perf_counter() - t0:.0f} s)")
    report["fidelity"] = fidelity

    # 2. LFW: how much edits move the images
    faces = lfw_faces(list(range(args.lfw)), G.resolution, G.channels)
    lfw_inv = {"psp": invert(G, faces, "encoder"), "fs": invert(G, faces, "fs-encoder")}
    frames = edited_images(G, lfw_inv, families["sefa"], STRENGTHS, aligner)
    s = torch.tensor(STRENGTHS)
    with torch.no_grad():
        base = {"psp": lfw_inv["psp"].reconstructions, "fs latent": G.synthesize(lfw_inv["fs"].latents, "z"),
                "fs raw": lfw_inv["fs"].reconstructions, "fs aligned": lfw_inv["fs"].reconstructions}
    change = {}
    for m in METHODS:
        diff = quantize(frames[m]) - quantize(base[m].clamp(-1, 1))[:, None, None]
        rms = diff.square().mean((3, 4, 5)).sqrt()  # [N, D, S]
        change[m] = rms / s.abs()
    moves = {m: {"rms_per_sigma": float(change[m].mean())} for m in METHODS}
    for m in ("fs raw", "fs aligned"):
        moves[m]["ratio_to_fs_latent_edit"] = float((change[m] / change["fs latent"].clamp_min(1e-6)).mean())
    moves["psp"]["psnr_recon"] = float(psnr(lfw_inv["psp"].reconstructions, faces).mean())
    moves["fs raw"]["psnr_recon"] = float(psnr(lfw_inv["fs"].reconstructions, faces).mean())
    moves["fs aligned"]["psnr_recon"] = moves["fs raw"]["psnr_recon"]  # the same image at strength 0
    moves["fs latent"]["psnr_recon"] = float(psnr(base["fs latent"], faces).mean())
    report["lfw"] = {"faces": args.lfw, "directions": "sefa", **moves}
    t0 = time.perf_counter()
    with torch.no_grad():
        zz = lfw_inv["fs"].latents[:, None] + s[:, None] * families["sefa"][0][None]
        render_layer_edits(G, lfw_inv["fs"], zz, "z", aligner=aligner)
    report["aligned_seconds_per_frame"] = (time.perf_counter() - t0) / zz.shape[0] / zz.shape[1]
    for k in (0, 1):  # strips: raw (top) and aligned (bottom) along SeFa 0, strengths -3..3
        for d in range(min(2, args.directions)):
            full = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
            zk = lfw_inv["fs"].latents[k:k + 1, None] + full[:, None] * families["sefa"][d][None]
            one = lfw_inv["fs"].select([k])
            raw = render_layer_edits(G, one, zk, "z")[0]
            al = render_layer_edits(G, one, zk, "z", aligner=aligner)[0]
            lat = G.synthesize(zk[0], "z").clamp(-1, 1)
            make_grid([lat, raw, al], scale=2).save(out / f"lfw{k}_sefa{d}_latent_raw_aligned.png")
    (out / "fs_editing.json").write_text(json.dumps(report, indent=2) + "\n")

    for fam, rows in fidelity.items():
        print(f"\nEdit fidelity on {args.faces} drawn faces, {fam} directions: PSNR (dB) vs G(z + s u); s = 0: reconstruction")
        print("| method | s=0 | abs(s)=1 | abs(s)=2 | abs(s)=3 | all edits |")
        print("|---|---|---|---|---|---|")
        for m, r in rows.items():
            print(f"| {m} | {r['0']:.2f} | {r['1']:.2f} | {r['2']:.2f} | {r['3']:.2f} | {r['all']:.2f} |")
    print(f"\nLFW 0-{args.lfw - 1}, SeFa top {args.directions}, s = +-1..3: RMS change per sigma on [0, 1]")
    print("| method | recon PSNR | RMS change / sigma | ratio to fs latent's edit |")
    print("|---|---|---|---|")
    for m, r in moves.items():
        print(f"| {m} | {r.get('psnr_recon', float('nan')):.2f} | {r['rms_per_sigma']:.4f} | {r.get('ratio_to_fs_latent_edit', float('nan')):.3f} |")
    print(f"\naligned edit: {1000 * report['aligned_seconds_per_frame']:.1f} ms per frame (CPU, 1 thread)")


if __name__ == "__main__":
    main()
