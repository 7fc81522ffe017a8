"""Edit-friendly DDPM inversion: stochastic (eta > 0) DDPM noise maps that reproduce an image exactly.

Huberman-Spiegelglas, Kulikov and Michaeli, "An Edit Friendly DDPM Noise Space: Inversion and
Manipulations" (CVPR 2024). Instead of one deterministic path, the noisy levels of the clean latent
``x_0`` are drawn independently:

    x_j = sqrt(ab_j) x_0 + sqrt(1 - ab_j) n_j,   n_j ~ N(0, I),  j = 0 .. S-1 (noisiest first),

and the clean end of the chain is ``x_0`` itself. A DDPM step with eta > 0 is the DDIM-form step plus
noise, ``x_{j+1} = mu_j(x_j) + eta sqrt(v_j) z_j`` with DDPM's posterior variance ``v_j`` and

    mu_j = sqrt(ab_{j+1}) x0_pred + sqrt(1 - ab_{j+1} - eta v_j) eps(x_j),
    v_j = (1 - ab_{j+1}) / (1 - ab_j) (1 - ab_j / ab_{j+1}),

(``eta v_j`` in the direction term, not DDIM's ``eta^2 v_j``, as the authors' code has it; the two
agree at their default eta = 1),
so each step's noise is solved for: ``eta sqrt(v_j) z_j = x_{j+1} - mu_j(x_j)``. Sampling from ``x_0``'s
level-0 draw with the stored terms and the same guidance lands on every ``x_j`` again and on ``x_0``
at the end (exact up to rounding); with another prompt the same noise maps carry the image's
structure into the edit, which is what makes the space "edit friendly". The paper's maps are
``z_j``; invertkit stores the scaled terms ``w_j = eta sqrt(v_j) z_j`` (the same information, and
defined where v_j is 0, e.g. a final level of alpha-bar 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from invertkit.diffusion.ddim import _levels
from invertkit.diffusion.guidance import Guidance, evaluate_eps
from invertkit.diffusion.parameterisation import Denoiser
from invertkit.diffusion.results import StepHook, Trajectory
from invertkit.diffusion.schedules import DiffusionGrid
from invertkit.errors import ConfigError


@dataclass(frozen=True)
class DDPMInversion:
    """``x_T``: the noisiest level's draw ``[N, ...]``; ``noise``: S tensors like ``x_T`` in sampling
    order (step j adds ``noise[j] = eta sqrt(v_j) z_j``); ``nfe``: model evaluations (a guided one counts 2)."""

    x_T: Tensor
    noise: list[Tensor]
    nfe: int


def _mean(denoiser: Denoiser, x: Tensor, grid: DiffusionGrid, j: int, eta: float, prediction_type: str,
          guidance: Guidance | None) -> tuple[Tensor, int]:
    """The DDPM step's mean ``mu_j(x)`` (without its noise) and the evaluations it took."""
    t, ab, ab_next = _levels(grid, j)
    eps, n = evaluate_eps(denoiser, x, t, ab, prediction_type, guidance)
    ab_t, ab_n = float(ab), float(ab_next)
    variance = (1 - ab_n) / (1 - ab_t) * (1 - ab_t / ab_n)
    x0_pred = (x - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
    return ab_n**0.5 * x0_pred + max(1 - ab_n - eta * variance, 0.0) ** 0.5 * eps, n


def draw_levels(x_0: Tensor, grid: DiffusionGrid, generators: list[torch.Generator]) -> list[Tensor]:
    """The independent noisy levels ``sqrt(ab_j) x_0 + sqrt(1 - ab_j) n_j`` (S tensors like ``x_0``,
    noisiest first), image i's noise drawn from ``generators[i]`` level by level, so an image's draws do
    not depend on the batch it is in."""
    if len(generators) != x_0.shape[0]:
        raise ConfigError(f"draw_levels: {len(generators)} generators for {x_0.shape[0]} images")
    out = []
    for j in range(grid.steps):
        ab = grid.alpha_bar[j].item()
        n = torch.stack([torch.randn(x_0.shape[1:], generator=g, dtype=x_0.dtype) for g in generators]).to(x_0.device)
        out.append(ab**0.5 * x_0 + (1 - ab) ** 0.5 * n)
    return out


def ddpm_ef_inversion(denoiser: Denoiser, x_0: Tensor, grid: DiffusionGrid, *, guidance: Guidance | None,
                      eta: float = 1.0, prediction_type: str = "epsilon", generator: torch.Generator | None = None,
                      levels: list[Tensor] | None = None, skip: int = 0, on_step: StepHook | None = None) -> DDPMInversion:
    """Edit-friendly DDPM inversion of clean latents ``x_0 [N, ...]`` for sampling with ``guidance``;
    the noisy levels are drawn with ``generator`` (seeded by the caller), or given: ``levels``, S
    tensors like ``x_0``, noisiest first (e.g. another implementation's draws). ``skip``: the first
    steps are left out (the paper's T_skip): ``x_T`` is then level ``skip`` and there are S - skip
    noise maps, so sampling starts ``skip`` steps in and an edit keeps more of the image's layout.
    NFE = S - skip (x2 for guidance). ``on_step(j, x)`` runs after each step (progress)."""
    if not 0.0 < eta <= 1.0:
        raise ConfigError(f"eta must be in (0, 1] for edit-friendly DDPM inversion, got {eta}")
    if not 0 <= skip < grid.steps:
        raise ConfigError(f"skip must be in 0..{grid.steps - 1} for {grid.steps} steps, got {skip}")
    if levels is None:
        abs_ = [grid.alpha_bar[j].item() for j in range(grid.steps)]
        levels = [ab**0.5 * x_0 + (1 - ab) ** 0.5 * torch.randn(x_0.shape, generator=generator, dtype=x_0.dtype).to(x_0.device)
                  for ab in abs_]
    elif len(levels) != grid.steps or any(t.shape != x_0.shape for t in levels):
        raise ConfigError(f"levels: pass {grid.steps} tensors shaped like x_0 {list(x_0.shape)}, noisiest first")
    noisy = [*levels, x_0]
    noise, nfe = [], 0
    for j in range(skip, grid.steps):
        mu, n = _mean(denoiser, noisy[j], grid, j, eta, prediction_type, guidance)
        noise.append(noisy[j + 1] - mu)
        nfe += n
        if on_step is not None:
            on_step(j, noisy[j + 1])
    return DDPMInversion(x_T=noisy[skip], noise=noise, nfe=nfe)


def ddpm_ef_sample(denoiser: Denoiser, x_T: Tensor, grid: DiffusionGrid, noise: list[Tensor], *, guidance: Guidance | None,
                   eta: float = 1.0, prediction_type: str = "epsilon", on_step: StepHook | None = None) -> Trajectory:
    """DDPM sampling from ``x_T`` adding the k-th noise map after the k-th step's mean, over the last
    ``len(noise)`` steps of ``grid`` (all of them, or S - skip): with the inversion's maps and guidance
    it returns ``x_0`` up to rounding; with another prompt it edits. NFE = len(noise) (x2 for guidance)."""
    if not 1 <= len(noise) <= grid.steps:
        raise ConfigError(f"noise has {len(noise)} entries; pass one per step taken (1..{grid.steps}) from ddpm_ef_inversion")
    x, nfe, start = x_T, 0, grid.steps - len(noise)
    for j in range(start, grid.steps):
        mu, n = _mean(denoiser, x, grid, j, eta, prediction_type, guidance)
        x, nfe = mu + noise[j - start], nfe + n
        if on_step is not None:
            x = on_step(j, x)
    return Trajectory(x, nfe)
