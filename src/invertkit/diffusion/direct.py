"""Direct Inversion: exact guided reconstruction by storing per-step corrections.

Ju et al. 2024, "PnP Inversion: Boosting Diffusion-based Editing with 3 Lines of Code". Invert the
image with DDIM at guidance scale 1 (conditional only), keeping every level ``pivot[0..S]`` (as
null-text inversion does), then walk the sampling order j = 0 .. S-1 and record how far the guided
DDIM step from the pivot misses the next pivot:

    corrections[j] = pivot[j+1] - guided_step(pivot[j]).

Sampling adds ``corrections[j]`` after each guided step, so from ``x_T = pivot[0]`` with the same
guidance every step lands on the pivot again: the reconstruction is exact up to float rounding,
with no optimisation (compare null-text inversion's per-step Adam loop).

Editing: PnP Inversion runs the source (reconstruction) and target branches in one batch and adds
the corrections to the *source branch only*; the target branch is tied to it through attention
injection (Prompt-to-Prompt, MasaCtrl ...). A generic denoiser has no attention to share, so
:func:`direct_sample` applies the stored source-branch corrections to whatever guidance it is given:
for the source guidance this is exactly PnP's source branch; for a target ``cond`` it is the
simplification "the editing branch reuses the source corrections".
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from invertkit.diffusion.ddim import _levels, ddim_coefficients
from invertkit.diffusion.guidance import Guidance, evaluate_eps
from invertkit.diffusion.nulltext import ddim_inversion_path
from invertkit.diffusion.parameterisation import Denoiser
from invertkit.diffusion.results import StepHook, Trajectory
from invertkit.diffusion.schedules import DiffusionGrid
from invertkit.errors import ConfigError


@dataclass(frozen=True)
class DirectResult:
    """``x_T``: the noisiest pivot latent ``[N, ...]``; ``corrections``: S tensors like x_T in sampling
    order (step j adds ``corrections[j]``); ``nfe``: S for the scale-1 path plus the guided evaluations."""

    x_T: Tensor
    corrections: list[Tensor]
    nfe: int


def _guided_step(denoiser: Denoiser, x: Tensor, grid: DiffusionGrid, j: int, prediction_type: str,
                 guidance: Guidance | None) -> tuple[Tensor, int]:
    t, ab, ab_next = _levels(grid, j)
    eps, n = evaluate_eps(denoiser, x, t, ab, prediction_type, guidance)
    a, b = ddim_coefficients(ab, ab_next)
    return a * x + b * eps, n


def direct_inversion(
    denoiser: Denoiser, x_0: Tensor, grid: DiffusionGrid, *, guidance: Guidance | None,
    prediction_type: str = "epsilon", on_step: StepHook | None = None,
) -> DirectResult:
    """Direct Inversion of ``x_0 [N, ...]`` for sampling with ``guidance`` (any cond/uncond/scale).

    The pivot path uses ``guidance.cond`` at scale 1. NFE = S + S x (cost of one guided evaluation:
    1 at scale 1, else 2, batched or not). ``on_step(j, x) -> x`` runs after each corrected step (progress).
    """
    cond = guidance.cond if guidance is not None else None
    pivot, nfe = ddim_inversion_path(denoiser, x_0, grid, prediction_type=prediction_type, guidance=Guidance(cond=cond))
    corrections = []
    for j in range(grid.steps):
        # Every corrected step lands on the pivot, so the guided step always starts from pivot[j].
        x_next, n = _guided_step(denoiser, pivot[j], grid, j, prediction_type, guidance)
        corrections.append(pivot[j + 1] - x_next)
        nfe += n
        if on_step is not None:
            on_step(j, x_next)
    return DirectResult(x_T=pivot[0], corrections=corrections, nfe=nfe)


def direct_sample(
    denoiser: Denoiser, x_T: Tensor, grid: DiffusionGrid, corrections: list[Tensor], *,
    guidance: Guidance | None, prediction_type: str = "epsilon", on_step: StepHook | None = None,
) -> Trajectory:
    """Guided DDIM from ``x_T [N, ...]`` adding ``corrections[j]`` after step j.

    With :func:`direct_inversion`'s ``x_T``, corrections and the same guidance this returns the image
    up to rounding; with another ``guidance.cond`` it edits (see the module docstring).
    NFE = S (x2 for guidance with scale != 1).
    """
    if len(corrections) != grid.steps:
        raise ConfigError(f"corrections has {len(corrections)} entries; pass one per step ({grid.steps}) from direct_inversion")
    x, nfe = x_T, 0
    for j in range(grid.steps):
        x_next, n = _guided_step(denoiser, x, grid, j, prediction_type, guidance)
        x, nfe = x_next + corrections[j], nfe + n
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)
