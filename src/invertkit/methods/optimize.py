"""``optimize``: a first, plain gradient-based inversion (Adam on the latent, MSE loss).

This is the thin path the demo uses; the full optimisation engine (all spaces, objectives,
optimisers, schedules) replaces it. Kept deliberately small.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..generators.base import Generator
from ..metrics import psnr
from . import METHODS, MethodSpec
from .result import InversionResult


@dataclass(frozen=True)
class OptimizeOptions:
    """Options of ``optimize`` (defaults are the API's and the CLI's)."""

    space: str | None = None  # None: the generator's first space ("z" for simple generators)
    steps: int = 200
    lr: float = 0.1
    prior_weight: float = 1e-2  # pulls z towards the Gaussian shell; keeps faces face-like
    seed: int = 0
    log_every: int = 1  # record history every k steps (recording stays on device)


def optimize(G: Generator, images: Tensor, opts: OptimizeOptions) -> InversionResult:
    """Adam on latents from seeded random starts; per-image losses are summed so images do not interact."""
    space = G.check_space(opts.space or G.spaces[0])
    images = images.float()
    n = images.shape[0]
    # Image i starts from the latent of seed (seed, i): reproducible, and independent of the other
    # images (a DCGAN's mean latent z = 0 can sit where every first-layer ReLU is off: no gradient).
    latent = torch.cat([G.sample_latent(1, space, seed=opts.seed * 1_000_003 + i) for i in range(n)])
    latent.requires_grad_(True)
    optim = torch.optim.Adam([latent], lr=opts.lr)
    n_logs = (opts.steps + opts.log_every - 1) // opts.log_every
    loss_log = torch.zeros(n_logs, n, device=images.device)  # stays on device: no host sync per step

    start = time.perf_counter()
    for step in range(opts.steps):
        recon = G.synthesize(latent, space)
        per_image = (recon - images).pow(2).flatten(1).mean(1)
        if opts.prior_weight:
            # squared distance of ||z||^2 / d from 1: keeps z near the shell where Gaussian samples live
            per_image = per_image + opts.prior_weight * (latent.pow(2).flatten(1).mean(1) - 1.0).pow(2)
        optim.zero_grad(set_to_none=True)
        per_image.sum().backward()
        optim.step()
        if step % opts.log_every == 0:
            loss_log[step // opts.log_every] = per_image.detach()
    seconds = time.perf_counter() - start

    with torch.inference_mode():
        final = latent.detach()
        recon = G.synthesize(final, space)
        scores = psnr(recon, images)
    metrics = [{"psnr": float(v)} for v in scores.cpu()]
    return InversionResult(
        latents=final,
        space=space,
        reconstructions=recon,
        history={"loss": loss_log.cpu()},
        metrics=metrics,
        timings={"seconds": seconds, "steps": opts.steps, "evaluations": opts.steps + 1},
    )


METHODS.add("optimize", MethodSpec(run=optimize, options=OptimizeOptions))
