"""``cma``: gradient-free inversion with CMA-ES (Hansen's ``cma`` package), one strategy per image.

Every generation asks each image's strategy for ``popsize`` candidates, renders all candidates of all
images in batched forward passes (no gradients), and tells each strategy its own losses. Useful when
gradients mislead (a DCGAN's dead ReLU regions, non-differentiable losses) and as the proposal step of
BasinCMA. Full covariance for up to ``diagonal_above`` dimensions, separable (diagonal) CMA above.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from . import METHODS, MethodSpec
from .context import RunContext
from .init import derive_seed, initial_latents, latent_row_std, resolve_init
from .optimize import auto_defaults, build_problem, finish
from .problem import Problem
from .result import InversionResult
from .variables import SPHERE, Variables, base_space, project_sphere


@dataclass(frozen=True)
class CMAOptions:
    """Options of ``cma`` (defaults are the API's and the CLI's)."""

    space: str | None = None  # None: z (w for StyleGAN2); any space except f:LAYER
    steps: int = 100  # generations
    popsize: int = 0  # 0: CMA-ES's default 4 + 3 ln(d)
    sigma: float = 1.0  # initial step size, in units of the latent's per-dimension spread
    diagonal_above: int = 600  # separable CMA-ES above this many dimensions
    loss: str | None = None  # None: the generator's auto loss (as optimize)
    init: str = "auto"
    chunk: int = 256  # candidates per forward pass
    seed: int = 0


def cma_space(G: Generator, space: str | None) -> str:
    space = space or ("w" if "w" in G.spaces else "z")
    if space.startswith("f:"):
        raise ConfigError("gradient-free methods do not support layerwise spaces (f:LAYER); use optimize")
    base_space(G, space)
    return space


def new_strategies(G: Generator, space: str, x0: Tensor, ids: list[int], sigma: float, popsize: int, diagonal_above: int, seed: int) -> list:
    """One ``cma.CMAEvolutionStrategy`` per row of ``x0`` (``[N, ...]``), seeded per image id."""
    with warnings.catch_warnings():  # cma warns at import that matplotlib (plotting) is absent
        warnings.simplefilter("ignore")
        import cma  # local: only gradient-free methods need it

    base = base_space(G, space)
    dim = x0[0].numel()
    per_dim = latent_row_std(G, base) / math.sqrt(x0.shape[-1])
    strategies = []
    for i, image_id in enumerate(ids):
        opts = {
            "seed": derive_seed(seed, image_id, 3) + 1,
            "verbose": -9,
            "CMA_diagonal": dim > diagonal_above,
            "bounds": [None, None],
        }
        if popsize:
            opts["popsize"] = popsize
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            strategies.append(cma.CMAEvolutionStrategy(x0[i].detach().double().cpu().flatten().numpy(), sigma * per_dim, opts))
    return strategies


def ask_all(strategies: list) -> np.ndarray:
    """Candidates ``[N, popsize, D]`` from every strategy."""
    return np.stack([np.asarray(es.ask()) for es in strategies])


def evaluate(problem: Problem, x: Tensor, image_index: Tensor, chunk: int) -> Tensor:
    """Losses of latents ``x [B, ...]`` (base space) in chunks of ``chunk`` candidates; ``[B]``."""
    if problem.space == SPHERE:
        x = project_sphere(x)
    out = []
    for s in range(0, x.shape[0], chunk):
        out.append(problem.loss_of_latents(x[s : s + chunk], image_index[s : s + chunk]))
    return torch.cat(out)


def run_cma(G: Generator, images: Tensor, opts: CMAOptions, ctx: RunContext) -> InversionResult:
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
        cand = ask_all(strategies)  # [N, P, D]
        p = cand.shape[1]
        x = torch.from_numpy(cand).float().to(G.device).reshape(n * p, *shape)
        index = torch.arange(n, device=G.device).repeat_interleave(p)
        losses = evaluate(problem, x, index, opts.chunk).view(n, p)
        for es, c, f in zip(strategies, cand, losses.double().cpu().numpy()):
            es.tell(list(c), list(f))
        gen_best, arg = losses.min(dim=1)
        better = gen_best < best_f
        best_f = torch.where(better, gen_best, best_f)
        chosen = x.view(n, p, *shape)[torch.arange(n, device=G.device), arg]
        best_x = torch.where(better.view(-1, *[1] * len(shape)), chosen, best_x)
        evals += p
        log.append(best_f.clone())
    seconds = time.perf_counter() - start
    if space == SPHERE:
        best_x = project_sphere(best_x)
    var = Variables(G, space, best_x)
    return finish(G, problem, var, log, evals, seconds, opts.steps, ctx)


METHODS.add("cma", MethodSpec(run=run_cma, options=CMAOptions))
