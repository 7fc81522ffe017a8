"""Null-text inversion and negative-prompt inversion for guided DDIM.

Guided sampling at a large scale ``w`` does not retrace the DDIM inversion path computed at
``w = 1``, so the round trip invert -> guided sample drifts away from the image.

**Null-text inversion** (Mokady et al. 2023, "Null-text Inversion for Editing Real Images using
Guided Diffusion Models"): keep the scale-1 inversion path as a *pivot* ``pivot[0..S]`` (``pivot[S]``
the image, ``pivot[0]`` the noisiest latent) and, walking the sampling order j = 0 .. S-1, optimise a
per-step unconditional embedding ``u_j`` so that the guided DDIM step from the current latent lands
on ``pivot[j+1]``:

    min_u || ddim_step(x_j, out(x_j, u) + w (out(x_j, cond) - out(x_j, u))) - pivot[j+1] ||^2

with Adam, ``u_j`` initialised from ``u_{j-1}`` (the first from ``uncond``), then ``x_{j+1}`` is the
guided step with the optimised ``u_j``. The conditional branch does not depend on ``u`` and is
evaluated once per step.

Two inner-loop schedules (``schedule``), both with ``inner_steps`` Adam iterations at most per step j:

- ``"paper"``, the authors' notebook (google/prompt-to-prompt ``null_text_w_ptp.ipynb``): learning rate
  ``lr (1 - j / 100)`` (1e-2 decaying to 5.1e-3 over 50 steps); every iteration takes the Adam step and
  *then* stops if the loss of the forward it stepped from was below ``early_stop + 2e-5 j``: the
  threshold grows with the **outer** (sampling) step j, not with the inner iteration, and the kept
  embedding is the one after that last update.
- ``"invertkit"``: constant ``lr`` and threshold ``early_stop``; the loss is tested *before* the update
  and the embedding that achieved it is kept (no update past the threshold, so the last forward is
  already the step's result and the final evaluation is saved).

Each image of a batch is its own problem, as if inverted alone: its loss is its own mean squared
error, the summed losses drive Adam (element-wise, so one image's gradient never moves another's
embedding) and an image that met its threshold stops (its embedding is frozen) while the others go on.

**Negative-prompt inversion** (Miyake et al. 2023, "Negative-prompt Inversion: Fast Image Inversion
for Editing with Text-guided Diffusion Models"): use the conditional embedding itself as the
unconditional one at every step. Then ``out_u == out_c`` and the guided output is exactly the
conditional one for any scale, so reconstruction equals the scale-1 DDIM round trip at no
optimisation cost (:func:`negative_prompt_uncond`). For editing, pass the *source* embedding as the
per-step uncond and the target embedding as ``cond``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from invertkit.diffusion.ddim import _levels, ddim_coefficients
from invertkit.diffusion.guidance import Guidance, evaluate, evaluate_eps
from invertkit.diffusion.parameterisation import Denoiser, output_to_eps_x0
from invertkit.diffusion.results import StepHook, Trajectory
from invertkit.diffusion.schedules import DiffusionGrid
from invertkit.errors import ConfigError

SCHEDULES = ("paper", "invertkit")  # null_text_optimize's inner-loop schedules (module doc)
PAPER_THRESHOLD_GROWTH = 2e-5  # the notebook's early-stop threshold grows by this per outer (sampling) step


@dataclass(frozen=True)
class NullTextResult:
    """Outcome of :func:`null_text_optimize`.

    ``x_T``: the noisiest pivot latent ``[N, ...]`` (start of sampling). ``uncond``: S optimised
    unconditional embeddings in sampling order (step j uses ``uncond[j]``), each shaped like the
    ``uncond`` passed in. ``nfe``: every denoiser call (pivot inversion, cached conditional branch,
    every forward of the inner optimisation, final guided steps). ``reconstruction``: the end of the
    guided sampling with the optimised embeddings (equal to :func:`null_text_sample` from ``x_T``).
    ``backward``: number of backward passes (not counted in ``nfe``). ``nfe_per_image``: the
    evaluations each image needed on its own (an image that stopped early is counted as if inverted
    alone, so the count does not depend on the batch).
    """

    x_T: Tensor
    uncond: list[Tensor]
    nfe: int
    reconstruction: Tensor
    backward: int = 0
    nfe_per_image: list[int] | None = None


def ddim_inversion_path(
    denoiser: Denoiser, x_0: Tensor, grid: DiffusionGrid, *, prediction_type: str = "epsilon",
    guidance: Guidance | None = None,
) -> tuple[list[Tensor], int]:
    """Plain DDIM inversion of ``x_0 [N, ...]`` returning every level: ``(path, nfe)``.

    ``path`` has S+1 tensors, ``path[j]`` the latent at level ``grid.alpha_bar[j]``: ``path[S] = x_0``
    and ``path[0]`` equals ``ddim_invert(...).x`` (same arithmetic). NFE = S (x2 for guidance).
    """
    path, x, nfe = [x_0], x_0, 0
    for j in reversed(range(grid.steps)):
        t, ab, ab_next = _levels(grid, j)
        a, b = ddim_coefficients(ab, ab_next)
        eps, n = evaluate_eps(denoiser, x, t, ab, prediction_type, guidance)
        x, nfe = (x - b * eps) / a, nfe + n
        path.append(x)
    return path[::-1], nfe


def _guided_step(x: Tensor, out_c: Tensor, out_u: Tensor, scale: float, ab: float, ab_next: float,
                 prediction_type: str) -> Tensor:
    """DDIM step from level ab to ab_next with the classifier-free guided output (same formula as evaluate)."""
    eps = output_to_eps_x0(out_u + scale * (out_c - out_u), x, ab, prediction_type)[0]
    a, b = ddim_coefficients(ab, ab_next)
    return a * x + b * eps


def _branch(denoiser: Denoiser, x: Tensor, t: float, cond: Any) -> Tensor:
    return evaluate(denoiser, x, t, Guidance(cond=cond))[0]


def null_text_sample(
    denoiser: Denoiser, x_T: Tensor, grid: DiffusionGrid, *, cond: Any, uncond_per_step: list[Any],
    scale: float = 7.5, prediction_type: str = "epsilon", on_step: StepHook | None = None,
) -> Trajectory:
    """Guided DDIM from ``x_T [N, ...]`` using ``uncond_per_step[j]`` as the unconditional input at step j.

    With the embeddings of :func:`null_text_optimize` and the same ``cond`` this reconstructs the
    image; with another ``cond`` it edits. NFE = 2 S (unconditional and conditional call per step).
    """
    if len(uncond_per_step) != grid.steps:
        raise ConfigError(f"uncond_per_step has {len(uncond_per_step)} entries; pass one per step ({grid.steps})")
    x, nfe = x_T, 0
    for j in range(grid.steps):
        t, ab, ab_next = _levels(grid, j)
        out_u, out_c = _branch(denoiser, x, t, uncond_per_step[j]), _branch(denoiser, x, t, cond)
        x, nfe = _guided_step(x, out_c, out_u, scale, ab, ab_next, prediction_type), nfe + 2
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)


@dataclass(frozen=True)
class _Schedule:
    """One outer step's inner-loop settings: Adam's learning rate, the early-stop threshold, and whether
    the threshold is tested before the update (keeping the parameters that met it) or after it."""

    lr: float
    threshold: float
    check_before_update: bool


def _schedule(name: str, j: int, lr: float, early_stop: float) -> _Schedule:
    """Settings of outer step j (sampling order, 0 = noisiest) under schedule ``name``."""
    if name == "paper":  # null_text_w_ptp.ipynb: Adam(lr=1e-2 * (1 - i / 100)), break if loss < eps + i * 2e-5
        return _Schedule(lr * (1 - j / 100), early_stop + j * PAPER_THRESHOLD_GROWTH, check_before_update=False)
    return _Schedule(lr, early_stop, check_before_update=True)


def _check_optimize_args(uncond: Any, n: int, inner_steps: int, lr: float, schedule: str, steps: int) -> None:
    if not isinstance(uncond, Tensor) or not uncond.is_floating_point():
        raise ConfigError("null_text_optimize needs uncond as a floating tensor (the embedding to optimise); pass e.g. the empty-prompt embedding")
    if uncond.dim() == 0 or uncond.shape[0] != n:
        raise ConfigError(f"uncond has shape {tuple(uncond.shape)}; pass one embedding per image, shape [{n}, ...] (each image's null is optimised on its own)")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
        raise ConfigError(f"inner_steps={inner_steps!r} must be an integer >= 0")
    if not lr > 0:
        raise ConfigError(f"lr={lr} must be positive")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule={schedule!r} is not known; use one of {', '.join(SCHEDULES)}")
    if schedule == "paper" and inner_steps > 0 and steps > 100:
        raise ConfigError(f"schedule='paper' decays the learning rate as lr (1 - j / 100), which is not positive past 100 steps; "
                          f"use steps <= 100 or schedule='invertkit' (steps={steps})")


def _per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error of each image, ``[N]``: the notebook's ``mse_loss`` of a one-image batch."""
    return (a - b).pow(2).flatten(1).mean(1)


def _keep_rows(u: Tensor, frozen: Tensor, saved: Tensor) -> None:
    """Put back the rows of ``u`` whose images stopped (Adam's momentum would move them otherwise)."""
    with torch.no_grad():
        u[frozen] = saved[frozen]


def _optimize_step(
    denoiser: Denoiser, x: Tensor, target: Tensor, out_c: Tensor, u: Tensor, t: float, ab: float, ab_next: float,
    *, scale: float, prediction_type: str, inner_steps: int, settings: _Schedule,
) -> tuple[Tensor | None, int, int, Tensor, Tensor]:
    """Optimise ``u [N, ...]`` in place so that the guided step from ``x`` lands on ``target``, each image on its
    own: per-image losses (their sum drives Adam, which is element-wise, so images do not interact) and
    per-image early stopping (a stopped image's row is frozen while the others go on).

    Returns ``(x_next or None, forwards, backwards, used, reused)``: x_next when the last forward already
    used the final ``u`` of every image (so the caller need not evaluate the step again); ``used [N]``
    the forwards each image needed on its own; ``reused [N]`` whether, alone, the image's last forward
    would have served as its final step ("invertkit" schedule: it stopped before an update).
    """
    n = x.shape[0]
    opt = torch.optim.Adam([u], lr=settings.lr)
    stopped = torch.zeros(n, dtype=torch.bool, device=x.device)
    used = torch.zeros(n, dtype=torch.long, device=x.device)
    reused = torch.zeros(n, dtype=torch.bool, device=x.device)
    forwards = backwards = 0
    for _ in range(inner_steps):
        step = _guided_step(x, out_c, _branch(denoiser, x, t, u), scale, ab, ab_next, prediction_type)
        forwards += 1
        used += (~stopped).long()
        losses = _per_image_mse(step, target)
        below = losses.detach() < settings.threshold
        if settings.check_before_update:
            reused |= below & ~stopped
            stopped |= below  # keep the parameters that met the threshold
            if bool(stopped.all()):
                return step.detach(), forwards, backwards, used, reused
        saved = u.detach().clone()
        opt.zero_grad(set_to_none=True)
        (losses * (~stopped).to(losses.dtype)).sum().backward()
        opt.step()
        _keep_rows(u, stopped, saved)
        backwards += 1
        if not settings.check_before_update:
            stopped |= below  # the paper tests the loss of the forward it just updated from
            if bool(stopped.all()):
                break
    return None, forwards, backwards, used, reused


def null_text_optimize(
    denoiser: Denoiser, x_0: Tensor, grid: DiffusionGrid, *, cond: Any, uncond: Tensor, scale: float = 7.5,
    prediction_type: str = "epsilon", inner_steps: int = 10, lr: float = 1e-2, early_stop: float = 1e-5,
    schedule: str = "paper", pivot: list[Tensor] | None = None, on_step: StepHook | None = None,
) -> NullTextResult:
    """Null-text inversion of ``x_0 [N, ...]``: per-step unconditional embeddings that make guided DDIM retrace the pivot.

    ``uncond``: the initial unconditional embeddings, a floating tensor with one row per image
    ``[N, ...]`` (optimised, so it must be one); ``cond``: passed to the denoiser as-is. ``pivot``: S+1
    latents as from :func:`ddim_inversion_path` (computed with ``cond`` at scale 1 when None).
    Loss: each image's mean squared error on latents; each image stops on its own (see the module doc),
    so an image's nulls do not depend on the other images of the batch.

    ``schedule``: ``"paper"`` (Mokady et al.'s notebook: learning rate ``lr (1 - j / 100)`` and early-stop
    threshold ``early_stop + 2e-5 j`` at sampling step j, tested after each Adam update) or
    ``"invertkit"`` (constant ``lr`` and ``early_stop``, tested before the update, keeping the parameters
    that met it). ``lr`` and ``early_stop`` are the values at j = 0 in both.

    NFE = S (pivot, when computed) + per step: 1 (conditional branch, cached) + k (forwards of the
    inner loop, k <= inner_steps) + 1 (final guided step, omitted when every image stopped before an
    update, "invertkit" only, because the last forward already used the final embeddings). Either way
    this is S + 2 S + ``backward`` (the number of Adam steps; a batch's Adam step counts once).
    ``on_step(j, x)`` runs after each sampling step's optimisation (progress only: its return value is not used).
    """
    _check_optimize_args(uncond, x_0.shape[0], inner_steps, lr, schedule, grid.steps)
    x_0 = x_0.detach()
    nfe = backward = 0
    if pivot is None:
        pivot, nfe = ddim_inversion_path(denoiser, x_0, grid, prediction_type=prediction_type, guidance=Guidance(cond=cond))
    elif len(pivot) != grid.steps + 1:
        raise ConfigError(f"pivot has {len(pivot)} latents; pass grid.steps + 1 = {grid.steps + 1} (from ddim_inversion_path)")
    pivot = [p.detach() for p in pivot]
    x, u_prev, found = pivot[0], uncond.detach(), []
    per_image = torch.full((x_0.shape[0],), nfe, dtype=torch.long, device=x_0.device)
    for j in range(grid.steps):
        t, ab, ab_next = _levels(grid, j)
        with torch.no_grad():
            out_c = _branch(denoiser, x, t, cond)
        u = u_prev.clone().requires_grad_(True)
        with torch.enable_grad():
            x_next, forwards, backwards, used, reused = _optimize_step(
                denoiser, x, pivot[j + 1], out_c, u, t, ab, ab_next, scale=scale, prediction_type=prediction_type,
                inner_steps=inner_steps, settings=_schedule(schedule, j, lr, early_stop))
        nfe, backward, u_prev = nfe + 1 + forwards, backward + backwards, u.detach()
        per_image += 1 + used + (~reused).long()  # conditional branch, inner forwards, final step unless reused
        if x_next is None:
            with torch.no_grad():
                x_next = _guided_step(x, out_c, _branch(denoiser, x, t, u_prev), scale, ab, ab_next, prediction_type)
            nfe += 1
        found.append(u_prev)
        x = x_next
        if on_step is not None:
            on_step(j, x)
    return NullTextResult(x_T=pivot[0], uncond=found, nfe=nfe, reconstruction=x, backward=backward,
                          nfe_per_image=[int(v) for v in per_image.tolist()])


def negative_prompt_uncond(cond: Any, steps: int) -> list[Any]:
    """Negative-prompt inversion's per-step unconditional inputs: ``[cond] * steps``.

    With them :func:`null_text_sample` computes ``out_c + w (out_c - out_c) = out_c`` exactly, so from
    the scale-1 DDIM inversion latent it reproduces the scale-1 DDIM round trip for any scale,
    with no optimisation (Miyake et al. 2023). For editing keep these (source prompt) and change ``cond``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer (grid.steps)")
    return [cond] * steps
