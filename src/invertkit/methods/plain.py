"""``plain``: the baseline a user would write in twenty lines: Adam at a constant learning rate on the
latent, MSE loss, no schedule, no noise, no prior. Kept as a reference point for the bench (same
seeded starts as ``optimize``), not as a recommended method."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..generators.base import Generator
from ..optionfields import Options, is_auto, option
from ..progress import track
from ..results import LatentInversion
from . import METHODS, MethodSpec
from .context import RunContext
from .init import initial_latents, resolve_init
from .optimize import build_problem, finish
from .variables import Variables, default_space


@dataclass(frozen=True)
class PlainOptions(Options):
    """Options of ``plain``."""

    space: str = option("auto", "latent space: auto (w+ for StyleGAN2, z otherwise), or another of the generator's spaces")
    steps: int = option(300, "Adam steps per image", min=1)
    lr: float = option(0.1, "Adam's constant learning rate (that of NVIDIA's and rosinality's projectors)", min=0, min_exclusive=True)
    init: str = option("auto", "start: auto (mean for StyleGAN2, random otherwise), mean, random or given", choices=("auto", "mean", "random", "given"))
    seed: int = option(0, "run seed; each image's start derives from it and the image's position")


def run_plain(G: Generator, images: Tensor, opts: PlainOptions, ctx: RunContext) -> LatentInversion:
    space = G.check_space(default_space(G) if is_auto(opts.space) else opts.space)
    n = images.shape[0]
    ids = ctx.image_ids if ctx.image_ids is not None else list(range(n))
    problem = build_problem(G, images.float(), space, "mse=1", ctx, noise=False)
    start = time.perf_counter()
    var = Variables.create(G, space, initial_latents(G, space, ids, 1, init=resolve_init(G, opts.init), seed=opts.seed, given=ctx.init_latent))
    optim = torch.optim.Adam([var.latent], lr=opts.lr)
    log = []
    phase = track(ctx.progress, "adam", opts.steps, "loss")
    for _ in range(opts.steps):
        loss = problem.loss(var, problem.prepared)[0]
        optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        optim.step()
        log.append(loss.detach())
        phase.step(log[-1])
    phase.end()
    return finish(G, problem, var, log, torch.full((n,), float(opts.steps + 1)), time.perf_counter() - start, opts.steps, ctx)


METHODS.add("plain", MethodSpec(run=run_plain, options=PlainOptions,
                                summary="the 20-line baseline: Adam at a constant rate on the latent, MSE"))
