"""``basincma``: BasinCMA (Huh et al. 2020): CMA-ES proposes, a few Adam steps refine each proposal,
and each strategy is told the refined losses of its own proposals (a Baldwinian basin-hopping
search: CMA-ES learns where good basins start). The best refined latent per image is returned."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..generators.base import Generator
from . import METHODS, MethodSpec
from .cma import ask_all, cma_space, new_strategies
from .context import RunContext
from .init import initial_latents, resolve_init
from .optimize import auto_defaults, build_problem, finish
from .result import InversionResult
from .variables import SPHERE, Variables, base_space, project_sphere


@dataclass(frozen=True)
class BasinCMAOptions:
    """Options of ``basincma`` (defaults are the API's and the CLI's)."""

    space: str | None = None  # None: z (w for StyleGAN2)
    steps: int = 10  # CMA-ES generations
    popsize: int = 8
    inner_steps: int = 20  # Adam steps refining every proposal
    inner_lr: float = 0.05
    sigma: float = 1.0
    diagonal_above: int = 600
    final_steps: int = 50  # Adam steps polishing the best latent at the end (0: none)
    loss: str | None = None  # None: the generator's auto loss (as optimize)
    init: str = "auto"
    seed: int = 0


def run_basincma(G: Generator, images: torch.Tensor, opts: BasinCMAOptions, ctx: RunContext) -> InversionResult:
    space = cma_space(G, opts.space)
    base = base_space(G, space)
    n = images.shape[0]
    ids = ctx.image_ids if ctx.image_ids is not None else list(range(n))
    problem = build_problem(G, images.float(), space, opts.loss or str(auto_defaults(G)["loss"]), ctx, noise=False)
    shape = G.latent_shape(base)
    start = time.perf_counter()
    x0 = initial_latents(G, base, ids, 1, init=resolve_init(G, opts.init), seed=opts.seed, given=ctx.init_latent)
    strategies = new_strategies(G, space, x0, ids, opts.sigma, opts.popsize, opts.diagonal_above, opts.seed)
    best_x = x0.detach().clone()
    best_f = torch.full((n,), float("inf"), device=G.device)
    evals = torch.zeros(n)
    log = []
    for _ in range(opts.steps):
        cand = ask_all(strategies)
        p = cand.shape[1]
        x = torch.from_numpy(cand).float().to(G.device).reshape(n * p, *shape)
        index = torch.arange(n, device=G.device).repeat_interleave(p)
        refined, losses = refine(problem, space, x, index, opts.inner_steps, opts.inner_lr)
        losses = losses.view(n, p)
        for es, c, f in zip(strategies, cand, losses.double().cpu().numpy()):
            es.tell(list(c), list(f))
        gen_best, arg = losses.min(dim=1)
        better = gen_best < best_f
        best_f = torch.where(better, gen_best, best_f)
        chosen = refined.view(n, p, *shape)[torch.arange(n, device=G.device), arg]
        best_x = torch.where(better.view(-1, *[1] * len(shape)), chosen, best_x)
        evals += p * (opts.inner_steps + 1)
        log.append(best_f.clone())
    if opts.final_steps:
        best_x, best_f = refine(problem, space, best_x, None, opts.final_steps, opts.inner_lr)
        evals += opts.final_steps + 1
        log.append(best_f.clone())
    seconds = time.perf_counter() - start
    var = Variables(G, space, project_sphere(best_x) if space == SPHERE else best_x)
    return finish(G, problem, var, log, evals, seconds, opts.steps, ctx)


def refine(problem, space: str, x: torch.Tensor, index: torch.Tensor | None, steps: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` Adam steps from every row of ``x``; returns the refined latents and their losses."""
    var = Variables.create(problem.G, space, x)
    prepared = problem.prepared_for(index)
    optim = torch.optim.Adam(var.tensors(), lr=lr)
    for _ in range(steps):
        total = problem.loss(var, prepared)[0]
        optim.zero_grad(set_to_none=True)
        total.sum().backward()
        optim.step()
        var.project_()
    with torch.no_grad():
        final = problem.loss(var, prepared)[0]
    return var.latent.detach(), final


METHODS.add("basincma", MethodSpec(run=run_basincma, options=BasinCMAOptions))
