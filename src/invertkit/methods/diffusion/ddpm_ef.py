"""``ddpm-ef``: edit-friendly DDPM inversion (Huberman-Spiegelglas et al., CVPR 2024): independent
noisy levels of the image and the per-step DDPM noise that links them (eta > 0), stored so sampling
reproduces the image exactly and another prompt edits it with the same noise maps
(``invertkit.diffusion.ddpm_ef``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...diffusion.ddpm_ef import ddpm_ef_inversion, ddpm_ef_sample, draw_levels
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from ...seeds import derive_seed
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class DDPMEFOptions(DiffusionOptions):
    """Options of ``ddpm-ef``."""

    guidance: float = option(3.5, "the source prompt's guidance scale (the paper's inversion uses 3.5)")
    eta: float = option(1.0, "DDPM stochasticity: 1 = DDPM's posterior variance (the paper's), smaller = closer to DDIM",
                        min=0, min_exclusive=True, max=1)
    skip: int = option(0, "steps left out at the noisy end (the paper's T_skip, 36 of 100 in its edits): "
                       "sampling starts there, so an edit keeps more of the layout", min=0)
    seed: int = option(0, "seeds the independent noisy levels of each image (with its position in the run: the same in any batch)")


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    assert s.x0 is not None
    ids = s.image_ids if s.image_ids is not None else list(range(s.x0.shape[0]))
    gens = [torch.Generator().manual_seed(derive_seed(int(s.options.seed), i)) for i in ids]
    out = ddpm_ef_inversion(s.denoiser, s.x0, s.grid, guidance=s.guidance, eta=float(s.options.eta),
                            prediction_type=s.prediction_type, levels=draw_levels(s.x0, s.grid, gens), skip=int(s.options.skip), on_step=on_step)
    return DiffusionState(out.x_T, out.nfe, {"noise": out.noise}, {"ode_latent": False, "eta": float(s.options.eta), "skip": int(s.options.skip)})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = ddpm_ef_sample(s.denoiser, state.x_T, s.grid, state.tensors["noise"], guidance=g, eta=float(s.options.eta),
                         prediction_type=s.prediction_type, on_step=on_step)
    return out.x, out.nfe


register("ddpm-ef", DDPMEFOptions, "diffusion", invert, sample,
         summary="edit-friendly DDPM inversion: stochastic noise maps, exact reconstruction, edits keep structure")
