"""``basincma``: BasinCMA (Huh et al. 2020): CMA-ES proposes, a few Adam steps refine each proposal,
and each strategy is told the refined losses of its own proposals (a Baldwinian basin-hopping
search: CMA-ES learns where good basins start). The best refined latent per image is returned."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..generators.base import Generator
from ..optionfields import Options, option
from ..progress import QUIET, Phase, track
from ..results import LatentInversion
from . import METHODS, MethodSpec
from .cma import Search
from .context import RunContext
from .variables import Variables


@dataclass(frozen=True)
class BasinCMAOptions(Options):
    """Options of ``basincma`` (defaults are the API's and the CLI's)."""

    space: str = option("auto", "latent space: auto (w for StyleGAN2, z otherwise); any space except f:LAYER")
    steps: int = option(10, "CMA-ES generations (each costs popsize x (inner_steps + 1) evaluations)", min=1)
    popsize: int = option(6, "proposals per generation and image", min=2)
    inner_steps: int = option(10, "Adam steps refining every proposal", min=0)
    inner_lr: float = option(0.05, "Adam learning rate of the refinement", min=0, min_exclusive=True)
    sigma: float = option(1.0, "initial CMA-ES step size, in units of the latent's per-dimension spread", min=0, min_exclusive=True)
    diagonal_above: int = option(600, "separable CMA-ES above this many dimensions", min=0)
    final_steps: int = option(50, "Adam steps polishing the best latent at the end (0: none)", min=0)
    loss: str = option("auto", "weighted loss terms (auto: the generator's, as optimize)")
    init: str = option("auto", "mean of the first generation: auto (mean for StyleGAN2, random otherwise), mean, random or given", choices=("auto", "mean", "random", "given"))
    seed: int = option(0, "run seed; each image's strategy derives its seed from it and the image's position")


def run_basincma(G: Generator, images: torch.Tensor, opts: BasinCMAOptions, ctx: RunContext) -> LatentInversion:
    search = Search.begin(G, images, ctx, space=opts.space, loss=opts.loss, init=opts.init, sigma=opts.sigma,
                          popsize=opts.popsize, diagonal_above=opts.diagonal_above, seed=opts.seed)
    phase = track(ctx.progress, "cma-es generations", opts.steps, "best loss")
    for _ in range(opts.steps):
        search.generation(lambda x, index: refine(search.problem, search.space, x, index, opts.inner_steps, opts.inner_lr),
                          opts.inner_steps + 1)
        phase.step(search.best_f)
    phase.end()
    if opts.final_steps:
        search.best_x, search.best_f = refine(search.problem, search.space, search.best_x, None, opts.final_steps, opts.inner_lr,
                                              track(ctx.progress, "polish (adam)", opts.final_steps, "loss"))
        search.evals += opts.final_steps + 1
        search.log.append(search.best_f.clone())
    return search.result(ctx, opts.steps)


def refine(problem, space: str, x: torch.Tensor, index: torch.Tensor | None, steps: int, lr: float,
           phase: Phase = QUIET) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` Adam steps from every row of ``x``; returns the refined latents and their losses
    (``phase`` is told every step)."""
    var = Variables.create(problem.G, space, x)
    prepared = problem.prepared_for(index)
    optim = torch.optim.Adam(var.tensors(), lr=lr)
    for _ in range(steps):
        total = problem.loss(var, prepared)[0]
        optim.zero_grad(set_to_none=True)
        total.sum().backward()
        optim.step()
        var.project_()
        phase.step(total.detach())
    phase.end()
    with torch.no_grad():
        final = problem.loss(var, prepared)[0]
    return var.latent.detach(), final


METHODS.add("basincma", MethodSpec(run=run_basincma, options=BasinCMAOptions,
                                summary="BasinCMA: CMA-ES proposals refined by a few Adam steps"))
