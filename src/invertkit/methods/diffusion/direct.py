"""``direct``: Direct Inversion (Ju et al. 2024, "PnP Inversion: Boosting Diffusion-based Editing with
3 Lines of Code"). DDIM inversion at guidance 1 gives the pivot trajectory; the difference between
each pivot level and the guided step that should reach it is stored, and guided sampling adds it back,
so the reconstruction is exact at any scale without optimisation. PnP keeps the source branch exact
this way while a target branch edits; invertkit's editing re-samples with the stored source
corrections (the same corrections PnP adds to its source branch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...diffusion.direct import direct_inversion, direct_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class DirectOptions(DiffusionOptions):
    """Options of ``direct``."""

    guidance: float = option(7.5, "the scale whose reconstruction the corrections make exact")


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = direct_inversion(s.denoiser, s.x0, s.grid, guidance=s.guidance, prediction_type=s.prediction_type, on_step=on_step)
    return DiffusionState(out.x_T, out.nfe, {"corrections": out.corrections}, {"ode_latent": False})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = direct_sample(s.denoiser, state.x_T, s.grid, state.tensors["corrections"], guidance=g, prediction_type=s.prediction_type, on_step=on_step)
    return out.x, out.nfe


def branch(state: DiffusionState) -> DiffusionState:
    """PnP Inversion's target branch: the same x_T, no corrections (they belong to the source prompt's path)."""
    return DiffusionState(state.x_T, state.nfe, {"corrections": [torch.zeros_like(c) for c in state.tensors["corrections"]]},
                          dict(state.info), state.nfe_per_image)


register("direct", DirectOptions, "diffusion", invert, sample, branch=branch)
