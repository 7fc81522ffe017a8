"""What optimising StyleGAN2's noise maps buys: quality, edit fidelity and time against NVIDIA's loop.

    python benchmarks/noise_maps.py [--targets 8] [--steps 1000] [--threads 1] [--runs w,noise,nvidia]

A 64 px StyleGAN2 with seeded random weights (NVIDIA's layout, every layer's ``noise_strength`` set to
0.05 as a trained model's are of that order; ToRGB weights scaled by 0.4 so the images mostly lie in
[-1, 1]) draws ``--targets`` images from known ``w`` and known unit noise maps. Because the truth is
known, every inversion is scored three ways:

- ``psnr``: the reconstruction with the noise maps the method kept (its own, or the generator's
  constant buffers when it optimised none), against the target;
- ``psnr_noise_dropped``: ``G(w)`` with the constant buffers, as NVIDIA's ``projector.py`` saves it
  (it throws its optimised maps away);
- ``edit_psnr``: the three strongest SeFa directions applied at 3 sigma to the inverted ``w`` (with the
  kept maps), against the same edits applied to the true ``w`` with the true maps: noise maps that
  soaked up image content, not noise, show here;
- ``nscd``: the inverted ``w``'s NSCD (LSAP), and ``w_error``: its distance to the true ``w``.

Runs (``--runs``):

- ``w``: ``invertkit.invert(G, x, "optimize", space="w")`` with the default loss (mse + perceptual);
- ``noise``: the same with ``noise=True`` (noise maps and their regulariser at the default weight);
- ``noise-mse``: ``noise=True`` and ``loss="mse=1"``;
- ``noise@WEIGHT``: ``noise=True`` and ``loss="mse=1,noise=WEIGHT"`` (the regulariser's weight swept);
- ``nvidia``: NVIDIA's projector loop (:func:`invertkit.methods.projector_reference.reference_projector`,
  audited line by line against stylegan2-ada-pytorch's ``projector.py``) one image at a time, W plus
  noise maps, its schedule and its regulariser weight 1e5, with a pixel loss in place of its VGG
  distance: the mean squared error of the images in NVIDIA's [0, 255] units, i.e. ``mse`` on [-1, 1]
  times 127.5^2.

Prints one JSON object per run and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import invertkit
from invertkit.editing.sefa import sefa
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.methods.projector_reference import reference_projector
from invertkit.metrics import psnr
from invertkit.metrics.nscd import nscd

NVIDIA_PIXEL_SCALE = 127.5**2  # an MSE on [0, 255] images is this times one on [-1, 1]


def build_generator(seed: int = 1) -> StyleGAN2Generator:
    """The 64 px StyleGAN2 with noise strengths 0.05 (seeded random weights, stored mean latent set)."""
    cfg = StyleGAN2Config(z_dim=128, w_dim=128, img_resolution=64, mapping_layers=4, channel_base=4096, channel_max=128)
    G = StyleGAN2Generator(cfg, name="stylegan2-64-random-noise0.05", init_seed=seed)
    with torch.no_grad():
        for name, p in G.net.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.05)
            if ".torgb." in f".{name}" and name.endswith("weight"):
                p.mul_(0.4)
        w = G.net.mapping(torch.randn(10_000, cfg.z_dim, generator=torch.Generator().manual_seed(5)), None)
        G.net.mapping.w_avg.copy_((w[:, 0] if w.dim() == 3 else w).mean(0))
    return G


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="w,noise,noise-mse,nvidia")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = build_generator()
    n = args.targets
    with torch.no_grad():
        w_true = G.sample_latent(n, "w", seed=7)
        g = torch.Generator().manual_seed(7)
        maps_true = {k: torch.randn(n, 1, h, w, generator=g) for k, (h, w) in G.noise_shapes().items()}
        targets = G.synthesize_with_noise(w_true, "w", maps_true).clamp(-1, 1)
        directions = sefa(G, layers="all", count=3)
        edits = [directions.vectors[k] * 3 * directions.sigmas[k] for k in range(3)]
        truth_edits = [G.synthesize_with_noise(w_true + d, "w", maps_true).clamp(-1, 1) for d in edits]
        const_psnr = float(psnr(G.synthesize(w_true, "w").clamp(-1, 1), targets).mean())

    def render(w: torch.Tensor, maps: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return (G.synthesize_with_noise(w, "w", maps) if maps else G.synthesize(w, "w")).clamp(-1, 1)

    rows = []
    for run in args.runs.split(","):
        t0 = time.perf_counter()
        if run == "nvidia":
            parts = [reference_projector(G, targets[i : i + 1], space="w", steps=args.steps, noise=True, noise_weight=1e5,
                                         loss={"mse": NVIDIA_PIXEL_SCALE}, image_id=i) for i in range(n)]
            w_inv = torch.cat([p.latent for p in parts])
            maps = {k: torch.cat([p.noise[k] for p in parts]) for k in parts[0].noise}
        else:
            if run.startswith("noise@"):  # the regulariser's weight swept: loss mse=1,noise=WEIGHT
                kw = {"noise": True, "loss": f"mse=1,noise={float(run[6:]):g}"}
            else:
                kw = {"w": {}, "noise": {"noise": True}, "noise-mse": {"noise": True, "loss": "mse=1"}}[run]
            r = invertkit.invert(G, targets, "optimize", space="w", steps=args.steps, **kw)
            w_inv, maps = r.latents, r.noise
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            row = {"run": run, "psnr": float(psnr(render(w_inv, maps), targets).mean()),
                   "psnr_noise_dropped": float(psnr(render(w_inv, None), targets).mean()),
                   "edit_psnr": float(torch.stack([psnr(render(w_inv + d, maps), t) for d, t in zip(edits, truth_edits)]).mean()),
                   "nscd": float(nscd(G, w_inv, "w").mean()), "w_error": float((w_inv - w_true).norm(dim=-1).mean()),
                   "seconds": seconds}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{n} targets, {args.steps} steps, {args.threads} thread(s); G(true w) with constant noise: {const_psnr:.2f} dB\n")
    print("| run | PSNR (kept maps) | PSNR (maps dropped) | edit PSNR vs truth | NSCD | ‖w − w_true‖ | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['psnr']:.2f} | {r['psnr_noise_dropped']:.2f} | {r['edit_psnr']:.2f} | {r['nscd']:.3f} | "
              f"{r['w_error']:.2f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
