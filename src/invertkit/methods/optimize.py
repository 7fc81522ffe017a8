"""``optimize``: gradient-based inversion in any latent space (Adam with NVIDIA's projector
schedule, or a batched per-image L-BFGS).

Covers Image2StyleGAN (W+), Image2StyleGAN++ (W+ and noise), NVIDIA's and rosinality's projectors
(W, lr ramp, latent noise, noise regulariser), PULSE (``z-sphere``), Zhu et al.'s P_N space with its
Gaussian prior (``pn``), layerwise inversion (``f:LAYER``), K random starts keeping the best per image,
per-image early stopping, and restoration through a degradation operator.

All candidates of all images are optimised together, one forward pass per step; each image's loss
is its own (the batch loss is their sum, Adam is element-wise and L-BFGS runs per image), and each
start is drawn from a seed derived from the image's id, so results do not depend on batching.

The Adam path with one start is written out flat, line by line against NVIDIA's ``projector.py``, in
:func:`invertkit.methods.projector_reference.reference_projector`; ``tests/test_projector_reference.py``
checks that this module reproduces it (bit for bit on one image).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces
from ..metrics import psnr
from ..objectives.combined import Objective, parse_loss_spec
from ..optionfields import Auto, Options, is_auto, option
from ..progress import QUIET, Phase, track
from ..results import LatentInversion, LayerState, Timings
from . import METHODS, MethodSpec
from .adam import Adam, fused_available
from .context import RunContext
from .init import derive_seed, initial_latents, latent_row_std, resolve_init
from .lbfgs import BatchedLBFGS
from .problem import Problem
from .schedule import latent_noise_scale, projector_lr
from .scoring import score_inversion
from .variables import Variables, base_space, default_space, optimizable_spaces

DEFAULT_LOSS = "mse=1,perceptual=1"


def auto_defaults(G: Generator) -> dict[str, object]:
    """What ``auto`` means for ``G``. Style-space generators (StyleGAN2) get NVIDIA's projector
    recipe: one start from the mean latent, lr ramp, decaying latent noise. Generators with only z
    (DCGAN, MLP GANs) have many poor local minima and dead-ReLU plateaus: several random starts and a
    constant learning rate did best there (measured on real faces and MNIST digits: see the README)."""
    if isinstance(G, StyleSpaces):
        return {"schedule": "projector", "latent_noise": 0.05, "restarts": 1, "loss": DEFAULT_LOSS}
    return {"schedule": "constant", "latent_noise": 0.0, "restarts": 8, "loss": GENERIC_LOSS}


GENERIC_LOSS = "mse=1"


def resolve_options(G: Generator, opts: OptimizeOptions) -> OptimizeOptions:
    """``opts`` with every ``auto`` / None field replaced by its value for ``G``."""
    auto = auto_defaults(G)
    changes = {}
    if opts.schedule == "auto":
        changes["schedule"] = auto["schedule"]
    for name in ("latent_noise", "restarts", "loss"):
        if is_auto(getattr(opts, name)):
            changes[name] = auto[name]
    if opts.adam_kernel == "auto":  # resolved here so that run.json records the kernel that ran
        changes["adam_kernel"] = "fused" if fused_available(G.device) else "reference"
    elif opts.adam_kernel == "fused" and not fused_available(G.device):  # refused before any work
        raise ConfigError(f"adam_kernel=fused: PyTorch has no fused Adam kernel for {G.device.type} here; "
                          "use adam_kernel=reference (or auto)")
    if is_auto(opts.restart_steps) or opts.restart_steps == 0:
        changes["restart_steps"] = max(1, opts.steps // 20)
    return dataclasses.replace(opts, **changes)


@dataclass(frozen=True)
class OptimizeOptions(Options):
    """Options of ``optimize`` (these defaults are the API's and the CLI's)."""

    space: str = option("auto", "latent space: auto (w+ for StyleGAN2, z otherwise), z, z-sphere, w, w+, s, p, pn, or f:LAYER (layerwise)")
    steps: int = option(300, "optimiser steps per image", min=1)
    optimizer: str = option("adam", "adam, or lbfgs (batched per-image L-BFGS)", choices=("adam", "lbfgs"))
    adam_kernel: str = option("auto", "Adam's update: auto (fused on CPU and CUDA), fused (torch.optim.Adam(fused=True)'s kernel) or reference (torch.optim.Adam()'s op by op, NVIDIA's projector bit for bit)",
                              choices=("auto", "fused", "reference"))
    lr: float = option(0.1, "learning rate (peak of the projector schedule; L-BFGS: first step length)", min=0, min_exclusive=True)
    schedule: str = option("auto", "learning-rate schedule: auto (projector for StyleGAN2, constant otherwise), projector (NVIDIA's ramp up / cosine down) or constant",
                           choices=("auto", "projector", "constant"))
    lr_rampup: float = option(0.05, "fraction of the steps spent ramping the learning rate up", min=0, max=1)
    lr_rampdown: float = option(0.25, "fraction of the steps spent ramping it down", min=0, max=1)
    latent_noise: float | Auto = option("auto", "projector's initial latent noise, times the latent's row std (auto: 0.05 for StyleGAN2, else 0)", min=0)
    latent_noise_ramp: float = option(0.75, "fraction of the steps over which the latent noise decays to 0", min=0, max=1)
    loss: str = option("auto", "weighted terms, e.g. mse=1,perceptual=1 (auto: that for StyleGAN2, mse=1 otherwise); terms: mse, l1, perceptual, lpips, lpips-vgg, prior, noise, nscd, spread")
    init: str = option("auto", "start: auto (mean for StyleGAN2, random otherwise), mean, random or given", choices=("auto", "mean", "random", "given"))
    restarts: int | Auto = option("auto", "K seeded starts per image, the best kept after restart_steps (auto: 1 for StyleGAN2, 8 otherwise)", min=1)
    restart_steps: int | Auto = option("auto", "steps of the K-start phase, part of steps (auto: steps // 20)", min=0)
    noise: bool = option(False, "also optimise the noise maps (StyleGAN2; adds the noise regulariser, 1e5 scaled to the pixel terms: noise=6.15 for mse=1, unless the loss names it)")
    target_loss: float | None = option(None, "per-image early stop when the loss falls below this (unset: never)")
    target_psnr: float | None = option(None, "per-image early stop when PSNR against the observation reaches this, dB (unset: never)")
    check_every: int = option(10, "steps between early-stop checks", min=1)
    seed: int = option(0, "run seed; each image's starts derive from it and the image's position")
    log_every: int = option(1, "record the loss curve every k steps", min=1)


def resolve_space(G: Generator, space: str | None) -> str:
    space = default_space(G) if is_auto(space) else str(space)
    if not space.startswith("f:"):
        if space not in optimizable_spaces(G):
            raise ConfigError(f"space {space!r} is not available for {G.name}; choose one of: {', '.join(optimizable_spaces(G))}")
    base_space(G, space)
    return space


NOISE_WEIGHT = 1e5  # NVIDIA projector's regularize_noise_weight, against its squared VGG16 LPIPS distance
# NVIDIA's weight is balanced against a distance of its own units. A pixel term here is on [-1, 1]
# images; the same error on NVIDIA's [0, 255] images is this factor larger. Dividing the weight by it
# keeps NVIDIA's balance (its projector loop with a pixel loss in place of the VGG distance); 1e5
# against an MSE on [-1, 1] (about 1e-3 once the fit is good) pins the maps to their start and they
# fit nothing (benchmarks/noise_maps.py measures both).
PIXEL_TERM_UNITS = {"mse": 127.5**2, "l1": 127.5}


def default_noise_weight(terms: dict[str, float]) -> float:
    """The noise regulariser's weight for a loss of these weighted image terms (``{"mse": 1.0, ...}``).

    The regulariser keeps the optimised noise maps white; what it is balanced against is the part of
    the loss that can pull them toward the target's pixel detail, the pixel terms (a feature distance
    is nearly blind to which white noise texture is drawn). So the weight is NVIDIA's 1e5 divided by
    each pixel term's unit factor (:data:`PIXEL_TERM_UNITS`), summed over the pixel terms: 6.15 for
    ``mse=1``. A loss with no pixel term (``lpips=1``, as NVIDIA's own) keeps NVIDIA's 1e5.
    """
    pixel = sum(w / PIXEL_TERM_UNITS[name] for name, w in terms.items() if name in PIXEL_TERM_UNITS)
    return NOISE_WEIGHT * pixel if pixel > 0 else NOISE_WEIGHT


def loss_with_noise(loss: str, noise: bool) -> str:
    """The loss spec actually minimised: ``loss`` plus the noise regulariser at
    :func:`default_noise_weight` when noise maps are optimised and ``loss`` does not weigh the
    ``noise`` term itself (``noise=0`` included: no regulariser)."""
    named = {part.partition("=")[0].strip() for part in loss.split(",")}  # zero weights count as named
    terms = parse_loss_spec(loss)  # a malformed spec is refused here, with its own message
    if noise and "noise" not in named:
        return f"{loss},noise={default_noise_weight(terms):.4g}"
    return loss


def build_problem(G: Generator, images: Tensor, space: str, loss: str, ctx: RunContext, noise: bool) -> Problem:
    objective = Objective.build(loss_with_noise(loss, noise), device=G.device)
    for name, (weight, fn) in ctx.extra_terms.items():
        objective.add_term(name, weight, fn)
    return Problem.build(G, space, images, objective, ctx.degradation)


def _adam_phase(
    problem: Problem,
    var: Variables,
    opts: OptimizeOptions,
    steps: int,
    image_index: Tensor | None,
    rngs: list[torch.Generator],
    log: list[Tensor],
    early_stop: bool = False,
    phase: Phase = QUIET,
) -> tuple[Tensor, Tensor]:
    """Adam over ``steps`` with the projector schedule; returns (final per-candidate loss, evaluations per candidate).
    ``phase`` is told every step (the loss passed lazily: no host read unless its reporter wants one)."""
    prepared = problem.prepared_for(image_index)
    params = var.tensors()
    adam = Adam(params, betas=(0.9, 0.999), kernel=None if opts.adam_kernel == "auto" else opts.adam_kernel)  # type: ignore[arg-type]
    row_std = latent_row_std(problem.G, base_space(problem.G, problem.space)) if opts.latent_noise > 0 else 0.0
    b = var.batch
    device = var.latent.device
    # Without early stopping nothing is ever done: the per-step masking, counting and copying below
    # is then skipped (each is a tensor op, and at a 0.7 ms step a few of them show).
    done = torch.zeros(b, dtype=torch.bool, device=device) if early_stop else None
    evals = torch.zeros(b, device=device)
    frozen = var.snapshot() if early_stop else None
    last = torch.zeros(b, device=device)
    taken = 0
    constrained = var.constrained
    for step in range(steps):
        t = step / max(steps, 1)
        lr = projector_lr(t, opts.lr, opts.lr_rampup, opts.lr_rampdown) if opts.schedule == "projector" else opts.lr
        scale = latent_noise_scale(t, opts.latent_noise, opts.latent_noise_ramp) * row_std
        perturb = _row_noise(rngs, var.latent) * scale if scale > 0 else None
        total, parts, images = problem.loss(var, prepared, perturb)
        check = early_stop and (step + 1) % opts.check_every == 0
        before = var.snapshot() if check else None  # the variables the checked loss and images belong to
        adam.step(torch.autograd.grad(total.sum(), params, allow_unused=True), lr)
        if constrained:
            var.project_()
        taken += 1
        if done is None:
            last = total.detach()  # a fresh tensor every step: no copy needed to log it
            if step % opts.log_every == 0:
                log.append(last)
            phase.step(last)
            continue
        evals += (~done).float()
        last = torch.where(done, last, total.detach())
        if step % opts.log_every == 0:
            log.append(last.clone())
        phase.step(last)
        if before is not None:
            reached = _reached(problem, opts, total.detach(), images.detach(), image_index)
            newly = reached & ~done
            frozen.assign_where(newly, before)  # an image that reached its target keeps the latent that reached it
            done |= newly
            if bool(done.all()):  # one sync every check_every steps
                break
        var.assign_where(done, frozen)
    if done is None:
        evals += taken
    phase.end()
    return last, evals


def _row_noise(rngs: list[torch.Generator], like: Tensor) -> Tensor:
    """Standard normal noise shaped like ``like``, row b drawn from ``rngs[b]`` (batch-independent)."""
    return torch.stack([torch.randn(like.shape[1:], generator=g, device=like.device) for g in rngs])


def _reached(problem: Problem, opts: OptimizeOptions, total: Tensor, images: Tensor, image_index: Tensor | None) -> Tensor:
    reached = torch.zeros_like(total, dtype=torch.bool)
    if opts.target_loss is not None:
        reached |= total <= opts.target_loss
    if opts.target_psnr is not None:
        obs = problem.observation if image_index is None else problem.observation[image_index]
        observed = problem.observe(images)
        if observed.shape == obs.shape:
            reached |= psnr(observed, obs) >= opts.target_psnr
    return reached


def _lbfgs_phase(
    problem: Problem, var: Variables, opts: OptimizeOptions, steps: int, image_index: Tensor | None, log: list[Tensor],
    phase: Phase = QUIET,
) -> tuple[Tensor, Tensor]:
    prepared = problem.prepared_for(image_index)
    params = var.tensors()
    sizes = [p[0].numel() for p in params]
    b = var.batch

    def unflatten(x: Tensor) -> None:
        with torch.no_grad():
            for p, chunk in zip(params, x.split(sizes, dim=1)):
                p.copy_(chunk.view(p.shape))

    def flat() -> Tensor:
        return torch.cat([p.detach().reshape(b, -1) for p in params], dim=1)

    def loss_and_grad() -> tuple[Tensor, Tensor]:
        for p in params:
            p.grad = None
        total = problem.loss(var, prepared)[0]
        total.sum().backward()
        return total.detach(), torch.cat([p.grad.reshape(b, -1) for p in params], dim=1)

    def f(x: Tensor) -> Tensor:
        unflatten(x)
        var.project_()
        return problem.loss(var, prepared)[0].detach()

    solver = BatchedLBFGS(lr=opts.lr)
    x = flat()
    loss, grad = loss_and_grad()
    evals = torch.ones(b, device=x.device)
    for _ in range(steps):
        new_x, n_eval = solver.step(x, f, loss, grad)
        unflatten(new_x)
        var.project_()
        new_x = flat()
        new_loss, new_grad = loss_and_grad()
        solver.update(new_x - x, new_grad - grad)
        x, loss, grad = new_x, new_loss, new_grad
        evals += n_eval + 1
        log.append(loss.clone())
        phase.step(loss)
    phase.end()
    return loss, evals


def optimize(G: Generator, images: Tensor, opts: OptimizeOptions, ctx: RunContext | None = None) -> LatentInversion:
    """Invert ``images`` (``N x C x H x W`` observations in [-1, 1]) by gradient-based optimisation."""
    ctx = ctx or RunContext()
    opts = resolve_options(G, opts)
    if opts.schedule not in ("projector", "constant"):
        raise ConfigError(f"schedule must be auto, projector or constant, got {opts.schedule!r}")
    if opts.optimizer not in ("adam", "lbfgs"):
        raise ConfigError(f"optimizer must be adam or lbfgs, got {opts.optimizer!r}")
    if opts.steps < 0 or opts.restarts < 1:
        raise ConfigError("steps must be >= 0 and restarts >= 1")
    space = resolve_space(G, opts.space)
    base = base_space(G, space)
    n = images.shape[0]
    ids = ctx.image_ids if ctx.image_ids is not None else list(range(n))
    init = resolve_init(G, opts.init)
    k = opts.restarts
    problem = build_problem(G, images.float(), space, opts.loss, ctx, opts.noise)
    # every random draw of a row comes from that row's own generator: results do not depend on batching
    rngs = [torch.Generator(device=G.device).manual_seed(derive_seed(opts.seed, i, c, 7)) for i in ids for c in range(k)]
    noise_seeds = [derive_seed(opts.seed, i, c, 11) for i in ids for c in range(k)] if opts.noise else None
    start = time.perf_counter()
    log: list[Tensor] = []
    evals = torch.zeros(n, device=G.device)

    latents = initial_latents(G, base, ids, k, init=init, seed=opts.seed, given=ctx.init_latent)
    var = Variables.create(G, space, latents, noise_seeds=noise_seeds)
    want_stop = opts.target_loss is not None or opts.target_psnr is not None
    main_steps = opts.steps
    if k > 1:
        # phase 1: all N*K starts for a few steps, keep the best start of each image
        idx = torch.arange(n, device=G.device).repeat_interleave(k)
        # the starts' short phase is part of the step budget: every image still takes `steps` steps
        r_steps = min(int(opts.restart_steps), max(opts.steps - 1, 1))
        main_steps = opts.steps - r_steps
        short = OptimizeOptions(**{**opts.__dict__, "latent_noise": 0.0, "schedule": "constant"})
        phase_log: list[Tensor] = []
        starts = track(ctx.progress, f"{k} starts ({opts.optimizer})", r_steps, "loss")
        if opts.optimizer == "adam":
            last, ev = _adam_phase(problem, var, short, r_steps, idx, rngs, phase_log, phase=starts)
        else:
            last, ev = _lbfgs_phase(problem, var, short, r_steps, idx, phase_log, phase=starts)
        best = last.view(n, k).argmin(dim=1)
        pick = torch.arange(n, device=G.device) * k + best
        evals += ev.view(n, k).sum(1)
        # fresh leaves from the best start (the projector schedule restarts for the main phase)
        var = var.take(pick)
        rngs = [rngs[int(j)] for j in pick.tolist()]
    main = track(ctx.progress, opts.optimizer, main_steps, "loss")
    if opts.optimizer == "adam":
        _, ev = _adam_phase(problem, var, opts, main_steps, None, rngs, log, early_stop=want_stop, phase=main)
    else:
        _, ev = _lbfgs_phase(problem, var, opts, main_steps, None, log, phase=main)
    evals += ev
    seconds = time.perf_counter() - start
    result = finish(G, problem, var, log, evals, seconds, opts.steps, ctx)
    result.config = {**dataclasses.asdict(opts), "loss": loss_with_noise(opts.loss, opts.noise)}  # the resolved values, for run.json
    return result


def finish(G: Generator, problem: Problem, var: Variables, log: list[Tensor], evals: Tensor, seconds: float, steps: int, ctx: RunContext) -> LatentInversion:
    """Render the final latents, score them and package the result (each image's seconds: ``seconds``
    shared in proportion to ``evals``, see ``results.Timings``)."""
    with torch.inference_mode():
        recon = var.render()
    base = base_space(G, var.space)
    latent = var.latent.detach()
    metrics, filled = score_inversion(G, recon, problem.observation, ctx, space=base,
                                      latents=latent if not var.space.startswith("f:") else None)
    history = {"loss": torch.stack(log).float().cpu() if log else torch.zeros(0, recon.shape[0])}
    layer_state = None
    if var.split is not None:
        layer_state = LayerState(var.split.name, tuple(None if t is None else t.detach() for t in var.state), base)
    return LatentInversion(
        latents=latent,
        space=var.space,
        reconstructions=recon.detach(),
        history=history,
        metrics=metrics,
        timings=Timings(seconds=seconds, steps=steps, evaluations=[float(e) for e in evals.detach().cpu()]),
        noise={k: v.detach() for k, v in var.noise.items()} if var.noise else None,
        layer_state=layer_state,
        composite=None if filled is None else filled.detach(),
    )


METHODS.add("optimize", MethodSpec(run=optimize, options=OptimizeOptions,
                                summary="gradient-based: Adam with NVIDIA's projector schedule, or batched L-BFGS, in any space"))
