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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces
from ..optionfields import Auto, Options, is_auto, option
from ..progress import track
from ..results import LatentInversion
from . import METHODS, MethodSpec
from .context import RunContext
from .init import derive_seed, initial_latents, latent_row_std, resolve_init
from .optimize import auto_defaults, build_problem, finish
from .problem import Problem
from .variables import SPHERE, Variables, base_space, project_sphere


@dataclass(frozen=True)
class CMAOptions(Options):
    """Options of ``cma`` (defaults are the API's and the CLI's)."""

    space: str = option("auto", "latent space: auto (w for StyleGAN2, z otherwise); any space except f:LAYER")
    steps: int = option(100, "generations", min=1)
    popsize: int | Auto = option("auto", "candidates per generation and image (auto: CMA-ES's default 4 + 3 ln(d))", min=2)
    sigma: float = option(1.0, "initial step size, in units of the latent's per-dimension spread", min=0, min_exclusive=True)
    diagonal_above: int = option(600, "separable CMA-ES above this many dimensions", min=0)
    loss: str = option("auto", "weighted loss terms (auto: the generator's, as optimize)")
    init: str = option("auto", "mean of the first generation: auto (mean for StyleGAN2, random otherwise), mean, random or given", choices=("auto", "mean", "random", "given"))
    chunk: int = option(256, "candidates per forward pass (memory)", min=1)
    seed: int = option(0, "run seed; each image's strategy derives its seed from it and the image's position")


def cma_space(G: Generator, space: str | None) -> str:
    space = ("w" if isinstance(G, StyleSpaces) else G.spaces[0]) if is_auto(space) else space
    if space.startswith("f:"):
        raise ConfigError("gradient-free methods do not support layerwise spaces (f:LAYER); use optimize")
    base_space(G, space)
    return space


def new_strategies(G: Generator, space: str, x0: Tensor, ids: list[int], sigma: float, popsize: int | str, diagonal_above: int, seed: int) -> list:
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
        if not is_auto(popsize) and popsize:
            opts["popsize"] = int(popsize)
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


@dataclass
class Search:
    """The state of a per-image CMA-ES search: strategies, best latent and loss so far."""

    problem: Problem
    space: str
    strategies: list
    best_x: Tensor
    best_f: Tensor
    evals: Tensor
    log: list[Tensor]
    start: float
    loss: str = ""

    @classmethod
    def begin(cls, G: Generator, images: Tensor, ctx: RunContext, *, space: str | None, loss: str | None, init: str,
              sigma: float, popsize: int | str, diagonal_above: int, seed: int) -> Search:
        space = cma_space(G, space)
        base = base_space(G, space)
        n = images.shape[0]
        ids = ctx.image_ids if ctx.image_ids is not None else list(range(n))
        loss = str(auto_defaults(G)["loss"]) if is_auto(loss) else str(loss)
        problem = build_problem(G, images.float(), space, loss, ctx, noise=False)
        start = time.perf_counter()
        x0 = initial_latents(G, base, ids, 1, init=resolve_init(G, init), seed=seed, given=ctx.init_latent)
        strategies = new_strategies(G, space, x0, ids, sigma, popsize, diagonal_above, seed)
        return cls(problem, space, strategies, x0.detach().clone(), torch.full((n,), float("inf"), device=G.device),
                   torch.zeros(n), [], start, loss)

    def generation(self, fitness: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], evals_per_candidate: int) -> None:
        """Ask every strategy, score all candidates at once with ``fitness(x, image_index) -> (latents
        to keep, losses)``, tell each strategy its own losses, and keep each image's best."""
        G = self.problem.G
        n = self.best_x.shape[0]
        shape = tuple(self.best_x.shape[1:])
        cand = ask_all(self.strategies)  # [N, P, D]
        p = cand.shape[1]
        x = torch.from_numpy(cand).float().to(G.device).reshape(n * p, *shape)
        index = torch.arange(n, device=G.device).repeat_interleave(p)
        kept, losses = fitness(x, index)
        losses = losses.view(n, p)
        for es, c, f in zip(self.strategies, cand, losses.double().cpu().numpy()):
            es.tell(list(c), list(f))
        gen_best, arg = losses.min(dim=1)
        better = gen_best < self.best_f
        self.best_f = torch.where(better, gen_best, self.best_f)
        chosen = kept.view(n, p, *shape)[torch.arange(n, device=G.device), arg]
        self.best_x = torch.where(better.view(-1, *[1] * len(shape)), chosen, self.best_x)
        self.evals += p * evals_per_candidate
        self.log.append(self.best_f.clone())

    def result(self, ctx: RunContext, steps: int) -> LatentInversion:
        best = project_sphere(self.best_x) if self.space == SPHERE else self.best_x
        var = Variables(self.problem.G, self.space, best)
        result = finish(self.problem.G, self.problem, var, self.log, self.evals, time.perf_counter() - self.start, steps, ctx)
        result.config = {"loss": self.loss}  # the resolved loss, for run.json
        return result


def run_cma(G: Generator, images: Tensor, opts: CMAOptions, ctx: RunContext) -> LatentInversion:
    search = Search.begin(G, images, ctx, space=opts.space, loss=opts.loss, init=opts.init, sigma=opts.sigma,
                          popsize=opts.popsize, diagonal_above=opts.diagonal_above, seed=opts.seed)
    phase = track(ctx.progress, "cma-es generations", opts.steps, "best loss")
    for _ in range(opts.steps):
        search.generation(lambda x, index: (x, evaluate(search.problem, x, index, opts.chunk)), 1)
        phase.step(search.best_f)
    phase.end()
    return search.result(ctx, opts.steps)


METHODS.add("cma", MethodSpec(run=run_cma, options=CMAOptions,
                                summary="gradient-free CMA-ES, one strategy per image"))
