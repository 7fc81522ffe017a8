"""``pti``: Pivotal Tuning Inversion (Roich, Mokady, Bermano, Cohen-Or: "Pivotal Tuning for
Latent-based Editing of Real Images", ACM TOG 2022), for any generator that can be tuned.

1. **Pivot.** Another registered method inverts the images. ``pivot="auto"`` takes ``hybrid`` when
   an encoder exists for this generator and the images are clean, else ``optimize`` (a damaged or
   mismatching encoder is reported, not silently replaced); for StyleGAN2 the pivot lives in W, PTI's choice: edits of a W pivot stay where the
   generator behaves well. The pivot's latents are the result's latents.
2. **Pivotal tuning.** Each image gets its own copy of the generator (StyleGAN2: the synthesis
   network is tuned, the mapping stays frozen; a ``wrap``-ped network: all of it), tuned with Adam
   (PTI: lr 3e-4, 350 steps) so that ``G_tuned(pivot)`` reproduces the image under ``loss``
   (PTI: L2 + LPIPS; here by default ``mse=1,perceptual=1``), plus PTI's **locality regulariser**:
   every step a random latent ``x_r`` is drawn (StyleGAN2: w with truncation 0.5, as PTI, converted
   to the pivot's space; z-only generators: z), the point ``x = pivot + alpha (x_r - pivot) / |x_r -
   pivot|`` is taken, and ``locality_loss(G_tuned(x), G(x))`` (PTI: L2 0.1 + LPIPS 0.1) keeps the
   generator unchanged away from the pivot. ``alpha`` defaults to the median distance between two
   such samples in the pivot's space (measured on 256 pairs), a scale-free stand-in for PTI's 30 in
   FFHQ's W+. Tuning of an image stops early when its perceptual term falls below
   ``target_perceptual`` (PTI: LPIPS 0.06).

**Compact PTI** (``rank``, default 4). Each weight matrix ``W`` (a tensor's first dimension by the
others) is tuned as ``W + B @ A``, B zero-initialised and A random (LoRA, Hu et al. 2021), and only
the factors are kept: on ``dcgan-digiface64`` rank 4 keeps 98.6% of the full delta's PSNR gain over
the pivot in 1.9% of its bytes (8 unseen LFW faces, ``benchmarks/pti_rank.py``; the factors learn
at ``lr`` 1e-3, A 30x faster: at PTI's 3e-4 rank 4 kept 94.9%). Biases, 1-D tensors and matrices where
the factors would not be smaller are tuned and kept in full. ``rank=0`` tunes and keeps the full
weights, as PTI does.

The result's reconstructions come from the tuned generators (low-rank: rebuilt from the kept
factors, so they are exactly what loading the delta draws); each image's tuned weights are kept as
a delta (``result.deltas[i]``: tuned minus base for the tensors that changed, or their factors, see
``generators.tuning``); ``tuned_generator(G, result, i)`` rebuilds image i's generator, e.g. to render
an edited pivot. Metrics are scored as for every method (the pivot's own scores are kept as
``psnr_pivot`` / ``perceptual_pivot`` and in ``extras["pivot"]``). A tuned result has no latent of
its own beyond the pivot: its ``nscd`` (LSAP, ``--metrics nscd``) is the NSCD of the pivot under
the *base* generator's anchors (tuning moves the weights, not the latent), so it equals the
pivot method's ``nscd`` and says nothing about how far tuning moved the generator.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..encoders.shipped import find_encoder
from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, Tunable, require
from ..generators.tuning import MAX_RANK, apply_delta, generator_digest, lowrank_copy, tunable_copy, weight_delta
from ..objectives.combined import Objective, index_prepared
from ..objectives.image_losses import IMAGE_LOSSES, perceptual_distance
from ..optionfields import Auto, Options, is_auto, option
from ..optiontext import parse_key_values
from ..progress import QUIET, Phase, prefixed, track
from ..results import DeltaBase, InversionResult, LatentInversion, Pivot, Timings, TunedInversion
from . import METHODS, MethodSpec, invert
from .context import RunContext
from .hybrid import ENCODER_PREFERENCE
from .init import derive_seed
from .scoring import score_inversion
from .variables import base_space

LOCALITY_TRUNCATION = 0.5  # PTI samples the regulariser's w with truncation psi 0.5
ALPHA_PAIRS = 256  # sample pairs measuring the typical distance (auto alpha)
OWN_SPACE_METHODS = ("hybrid", "encoder")  # pivots from an encoder come in the encoder's space
PIVOT_METRICS = ("psnr", "ssim", "perceptual", "lpips")  # kept per image as <name>_pivot
PTI_LR = 3e-4  # PTI's learning rate, tuning the full weights
LOWRANK_LR = 1e-3  # with rank > 0 (benchmarks/pti_rank.py: rank 4 keeps 94.9% of the full gain at 3e-4, 98.6% at 1e-3)
DEFAULT_RANK = 4  # benchmarks/pti_rank.py: the smallest rank measured to keep >= 95% of the full gain at <= 2% of its size


@dataclass(frozen=True)
class PTIOptions(Options):
    """Options of ``pti`` (defaults: PTI's published hyper-parameters where it has them)."""

    pivot: str = option("auto", "method finding the pivots: auto (hybrid when usable, else optimize) or any registered method")
    space: str = option("auto", "the pivot's latent space (auto: w for StyleGAN2, as PTI; else the pivot method's default)")
    pivot_steps: int | Auto = option("auto", "steps of the pivot method (auto: its own default)", min=1)
    pivot_options: str = option("", "more options for the pivot method, key=value;key=value (e.g. restarts=4;lr=0.05)")
    steps: int = option(350, "tuning steps per image (PTI: 350)", min=1)
    lr: float | Auto = option("auto", "Adam learning rate of the generator's weights (auto: PTI's 3e-4 for rank 0, 1e-3 for rank > 0; "
                              "with rank > 0 the rate of the B factors and full tensors, A learns 30x faster)", min=0, min_exclusive=True)
    loss: str = option("mse=1,perceptual=1", "image terms fitting G_tuned(pivot) to the image (PTI: L2 + LPIPS)")
    locality: bool = option(True, "PTI's locality regulariser: keep G unchanged at latents alpha away from the pivot")
    locality_alpha: float | Auto = option("auto", "distance moved from the pivot toward a random latent (auto: the median distance between two samples of the space)", min=0, min_exclusive=True)
    locality_loss: str = option("mse=0.1,perceptual=0.1", "loss between original and tuned images there (PTI: L2 0.1, LPIPS 0.1)")
    rank: int = option(DEFAULT_RANK, "rank of each tuned weight matrix's change B @ A, stored as the two factors (0: tune and store the full weights)",
                       min=0, max=MAX_RANK)
    target_perceptual: float | None = option(0.02, "stop tuning an image once its perceptual distance is below this (unset or 0: never; see README)", min=0)
    check_every: int = option(10, "steps between early-stop checks", min=1)
    seed: int = option(0, "run seed; pivot starts and locality draws derive from it and the image's position")


def _pivot_kwargs(G: Generator, method: str, opts: PTIOptions) -> dict[str, Any]:
    """Options handed to the pivot method: seed, space, steps, then ``pivot_options`` (which win)."""
    fields = {f.name for f in dataclasses.fields(METHODS.get(method).options)}
    kw: dict[str, Any] = {}
    if "seed" in fields:
        kw["seed"] = opts.seed
    space = None if is_auto(opts.space) else opts.space
    if space is None and "space" in fields and method not in OWN_SPACE_METHODS and isinstance(G, StyleSpaces):
        space = "w"
    if space is not None:
        kw["space"] = space
    if not is_auto(opts.pivot_steps):
        kw["steps"] = opts.pivot_steps
    kw.update(parse_key_values(opts.pivot_options, where="pivot_options"))
    return kw


def auto_pivot(G: Generator, opts: PTIOptions, ctx: RunContext) -> tuple[str, str | None]:
    """What ``pivot="auto"`` means here: ``(method, why not hybrid or None)``. ``hybrid`` when an
    encoder for ``G`` exists (given in ``pivot_options`` or found by name) and the images are clean;
    ``optimize`` otherwise. A damaged or mismatching encoder is not a reason to fall back: hybrid then
    fails with that encoder's own error, so the user learns about it."""
    if "hybrid" not in METHODS:
        return "optimize", "hybrid is not registered"
    if ctx.degradation is not None:
        return "optimize", "hybrid's encoder needs clean, whole images (this is a restoration)"
    encoder = _pivot_kwargs(G, "hybrid", opts).get("encoder", "auto")
    if encoder == "auto" and find_encoder(G, ENCODER_PREFERENCE) is None:
        return "optimize", f"no encoder for {G.name} (train one with invertkit train-encoder --install)"
    return "hybrid", None


def run_pivot(G: Generator, images: Tensor, opts: PTIOptions, ctx: RunContext) -> tuple[str, LatentInversion, str | None]:
    """Invert ``images`` with the pivot method; returns (method used, its result, why auto did not take hybrid or None)."""
    if opts.pivot == "pti":
        raise ConfigError("pti cannot be its own pivot; choose e.g. pivot=optimize")
    method, fallback = auto_pivot(G, opts, ctx) if opts.pivot == "auto" else (opts.pivot, None)
    result = invert(G, images, method, degradation=ctx.degradation, init_latent=ctx.init_latent, image_ids=ctx.image_ids,
                    reference=ctx.reference, extra_metrics=ctx.extra_metrics, progress=prefixed(ctx.progress, f"pivot ({method})"),
                    **_pivot_kwargs(G, method, opts))
    if not isinstance(result, LatentInversion) or isinstance(result, TunedInversion):
        raise ConfigError(f"pti needs a pivot method that finds latents of the generator; {method!r} returns a {result.kind} result")
    return method, result, fallback


def image_objective(spec: str, device: torch.device, what: str) -> Objective:
    """An Objective of image terms only (latent terms do not depend on the weights being tuned)."""
    obj = Objective.build(spec, device=device)
    if obj.latent_fns:
        raise ConfigError(
            f"pti's {what} takes image terms only ({', '.join(IMAGE_LOSSES.names())}), got {', '.join(obj.latent_fns)}; "
            "latent terms belong to the pivot (pivot_options=loss=...)"
        )
    return obj


def locality_samples(G: Generator, space: str, n: int, seed: int) -> Tensor:
    """``n`` random latents in ``space`` as PTI's regulariser draws them: z ~ N(0, I) for ``z``;
    otherwise (style-space generators) w with truncation 0.5, converted to ``space``."""
    if space != "z" and isinstance(G, StyleSpaces):
        w = G.truncated(G.sample_latent(n, "w", seed=seed), "w", LOCALITY_TRUNCATION)
        return G.convert(w, "w", space).detach()
    return G.sample_latent(n, space, seed=seed).detach()


@torch.no_grad()
def typical_distance(G: Generator, space: str, pairs: int = ALPHA_PAIRS, seed: int = 0) -> float:
    """Median Euclidean distance (whole latent flattened) between two :func:`locality_samples`."""
    x = locality_samples(G, space, 2 * pairs, seed).flatten(1).float()
    return float((x[0::2] - x[1::2]).norm(dim=1).median())


def toward(pivot: Tensor, targets: Tensor, alpha: float) -> Tensor:
    """Points at distance ``alpha`` from ``pivot`` ``[1, ...]`` in the directions of ``targets`` ``[S, ...]`` (PTI's morphed codes)."""
    d = targets - pivot
    norm = d.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, *([1] * (d.dim() - 1)))
    return pivot + alpha * d / norm


def _tune_one(
    G: Generator,
    pivot: Tensor,
    space: str,
    observation: Tensor,
    prepared: dict[str, Any],
    objective: Objective,
    regulariser: Objective | None,
    anchors: Tensor | None,
    opts: PTIOptions,
    ctx: RunContext,
    seed: int = 0,
    phase: Phase = QUIET,
) -> tuple[Generator, dict[str, Tensor], Tensor, Tensor, int]:
    """Tune a copy of ``G`` so that it draws ``observation`` ``[1, C', H', W']`` at ``pivot`` ``[1, ...]``.

    ``anchors`` ``[steps, ...]``: the regulariser's latents, one per step. ``opts.rank`` > 0 tunes
    the matrices through rank-r factors (``seed``: their random init). Returns (tuned generator,
    its delta, loss curve ``[steps_taken]``, locality curve ``[steps_taken]``, steps taken). ``phase``
    is told every step (the loss lazily).
    """
    if opts.rank > 0:
        T, groups, finish = lowrank_copy(G, opts.rank, seed=seed)
        params: list[Any] = [{"params": g["params"], "lr": opts.lr * g["lr_scale"]} for g in groups]
    else:
        T, params = tunable_copy(G)
        finish = None
    # PTI: Adam with default betas; the fused kernel is several times faster for millions of weights
    optim = torch.optim.Adam(params, lr=opts.lr, fused=pivot.device.type in ("cpu", "cuda"))
    observe = ctx.degradation if ctx.degradation is not None else (lambda x: x)
    losses: list[Tensor] = []
    local: list[Tensor] = []
    want_stop = bool(opts.target_perceptual)  # None or 0 (the CLI's way to say none): tune all steps
    chunk = max(1, min(16, 2**22 // max(G.channels * G.resolution**2, 1)))  # original images per batch, ~16 MB
    originals: dict[str, Any] = {}
    step = 0
    for step in range(opts.steps):
        # the pivot and the regulariser's latent in one forward pass of the tuned generator
        batch = pivot if anchors is None else torch.cat([pivot, anchors[step : step + 1]])
        images = T.synthesize(batch, space)
        total, parts = objective(observe(images[:1]), prepared, G=T, latent=pivot, space=space)
        if want_stop and step % opts.check_every == 0:
            p = parts.get("perceptual")
            if p is None:
                p = perceptual_distance(observe(images[:1]).detach(), observation)
            if float(p.detach()) < opts.target_perceptual:  # one sync every check_every steps
                break  # the current weights reached the target: keep them, no further update
        losses.append(total.detach())
        if regulariser is not None and anchors is not None:
            if step % chunk == 0:  # the original generator's images (and their features) for the next steps, batched
                with torch.no_grad():
                    originals = regulariser.prepare(G.synthesize(anchors[step : step + chunk], space))
            row = torch.tensor([step % chunk], device=pivot.device)
            reg, _ = regulariser(images[1:], index_prepared(originals, row), G=T, latent=anchors[step : step + 1], space=space)
            local.append(reg.detach())
            total = total + reg
        optim.zero_grad(set_to_none=True)
        total.sum().backward()
        optim.step()
        phase.step(losses[-1])
    else:
        step = opts.steps
    phase.end()
    empty = torch.zeros(0, device=pivot.device)
    curve = torch.cat(losses) if losses else empty
    if finish is None:
        delta = weight_delta(G, T)
    else:  # the tuned generator rebuilt from its stored factors: what loading the delta file draws
        delta = finish()
        del T
        T = apply_delta(G, delta, source="the low-rank weight delta")
    return T, delta, curve, torch.cat(local) if local else empty, step


def _image_seconds(pivot_own: list[float], pivot_seconds: float, tuning: list[float], seconds: float) -> list[float]:
    """Each image's seconds: its share of the batched pivot (as the pivot's timings share it), its own
    tuning, and an equal share of the rest (the locality scale); they sum to ``seconds``."""
    n = max(len(tuning), 1)
    rest = max(seconds - pivot_seconds - sum(tuning), 0.0) / n
    total = sum(pivot_own)
    pivot = [p * pivot_seconds / total for p in pivot_own] if total > 0 else [pivot_seconds / n] * len(tuning)
    return [p + t + rest for p, t in zip(pivot, tuning)]


def _pad(curves: list[Tensor], steps: int) -> Tensor:
    """Per-image curves of possibly different lengths -> ``[steps, N]`` (CPU), each padded with its last value."""
    cols = []
    for c in curves:
        c = c.float().cpu()
        fill = c[-1:] if c.numel() else torch.full((1,), float("nan"))
        cols.append(torch.cat([c, fill.expand(steps - c.numel())]) if c.numel() < steps else c[:steps])
    return torch.stack(cols, dim=1) if cols else torch.zeros(steps, 0)


def pti(G: Generator, images: Tensor, opts: PTIOptions, ctx: RunContext | None = None) -> InversionResult:
    """Invert ``images`` (``N x C x H x W`` observations in [-1, 1]) by a pivot plus per-image generator tuning."""
    ctx = ctx or RunContext()
    if is_auto(opts.lr):
        opts = dataclasses.replace(opts, lr=LOWRANK_LR if opts.rank > 0 else PTI_LR)
    if opts.steps < 0 or opts.lr <= 0 or opts.check_every < 1 or not 0 <= opts.rank <= MAX_RANK:
        raise ConfigError(f"pti needs steps >= 0, lr > 0, check_every >= 1 and 0 <= rank <= {MAX_RANK}")
    if not is_auto(opts.locality_alpha) and not float(opts.locality_alpha) > 0:
        raise ConfigError(f"locality_alpha must be > 0 (or auto), got {opts.locality_alpha}")
    require(G, Tunable, "pti (pivotal tuning)")  # a generator that cannot be tuned fails before the pivot's work
    objective = image_objective(opts.loss, G.device, "loss")
    regulariser = image_objective(opts.locality_loss, G.device, "locality_loss") if opts.locality else None
    n = images.shape[0]
    ids = ctx.image_ids if ctx.image_ids is not None else list(range(n))
    start = time.perf_counter()

    pivot_method, pivot, fallback = run_pivot(G, images, opts, ctx)
    if pivot.layer_state is not None or pivot.noise:
        raise ConfigError(f"pti needs pivots that are plain latents; the {pivot_method} pivot in {pivot.space!r} also carries "
                          "layer state or noise maps (drop f:LAYER spaces and noise=true from the pivot)")
    space = base_space(G, pivot.space)
    pivots = pivot.latents.detach()
    pivot_seconds = time.perf_counter() - start
    pivot_own = pivot.timings.image_seconds()

    alpha = None
    if opts.locality:
        alpha = typical_distance(G, space) if is_auto(opts.locality_alpha) else float(opts.locality_alpha)  # auto: a property of G, fixed seed
    prepared = objective.prepare(images)
    digest = generator_digest(G)
    recons, deltas, curves, local_curves, taken = [], [], [], [], []
    own: list[float] = []  # each image's tuning seconds (images are tuned one at a time)
    for i, image_id in enumerate(ids):
        tune_start = time.perf_counter()
        anchors = None
        if alpha is not None:
            draws = locality_samples(G, space, max(opts.steps, 1), derive_seed(opts.seed, image_id, 13))
            anchors = toward(pivots[i : i + 1], draws, alpha)
        index = torch.tensor([i], device=images.device)
        T, delta, curve, local, steps_taken = _tune_one(G, pivots[i : i + 1], space, images[i : i + 1], index_prepared(prepared, index),
                                                        objective, regulariser, anchors, opts, ctx, derive_seed(opts.seed, image_id, 17),
                                                        phase=track(ctx.progress, f"tuning image {i + 1}/{n}", opts.steps, "loss"))
        with torch.inference_mode():
            recons.append(T.synthesize(pivots[i : i + 1], space))
        deltas.append(delta)
        curves.append(curve)
        local_curves.append(local)
        taken.append(steps_taken)
        del T  # one tuned copy alive at a time
        own.append(time.perf_counter() - tune_start)
    seconds = time.perf_counter() - start
    recon = torch.cat(recons)

    metrics, composite = score_inversion(G, recon, images, ctx, latents=pivots, space=space)
    for m, pm in zip(metrics, pivot.metrics):
        m.update({f"{k}_pivot": pm[k] for k in PIVOT_METRICS if k in pm})
    per_step = 3 if alpha is not None else 1  # tuned(pivot), and tuned(x) + original(x) for the regulariser
    evals = [float(pe) + per_step * s for pe, s in zip(pivot.timings.evaluations, taken)]
    history = {"loss": _pad(curves, opts.steps)}
    if alpha is not None:
        history["locality"] = _pad(local_curves, opts.steps)
    config = {
        **dataclasses.asdict(opts),
        "pivot": pivot_method,
        "pivot_steps": pivot.config.get("steps", None if is_auto(opts.pivot_steps) else opts.pivot_steps),
        "locality_alpha": alpha,
        "pivot_config": pivot.config,
    }
    if fallback is not None and opts.pivot == "auto":
        config["pivot_auto"] = fallback
    return TunedInversion(
        latents=pivots,
        space=pivot.space,
        reconstructions=recon.detach(),
        history=history,
        metrics=metrics,
        timings=Timings(seconds=seconds, steps=opts.steps, evaluations=evals,
                        phases={"pivot": pivot_seconds, "tuning": seconds - pivot_seconds},
                        per_image=_image_seconds(pivot_own, pivot_seconds, own, seconds)),
        config=config,
        composite=composite,
        deltas=deltas,
        base=DeltaBase(G.name, digest, type(G).__name__),
        pivot=Pivot(pivot_method, pivot.reconstructions.detach(), pivot.metrics, pivot.config, pivot_seconds),
        tuning_steps=taken,
    )


def tuned_generator(G: Generator, result: InversionResult, i: int) -> Generator:
    """Image ``i``'s tuned generator from a ``pti`` result (``result.generator(G, i)``).

    Render it at the pivot (``result.latents[i : i + 1]`` in ``result.space``) or at an edited pivot.

    Raises:
        ConfigError: the result holds no tuned weights, or ``i`` is out of range.
        CheckpointError: ``G`` is not the generator the result was tuned from.
    """
    if not isinstance(result, TunedInversion):
        raise ConfigError(f"this {result.kind} result holds no tuned weights; only pti results (TunedInversion) have them")
    return result.generator(G, i)


METHODS.add("pti", MethodSpec(run=pti, options=PTIOptions,
                                summary="pivotal tuning: a pivot, then each image's own copy of the generator tuned around it"))
