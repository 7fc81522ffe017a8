"""``ddim``: DDIM inversion (Song et al. 2021; Dhariwal & Nichol 2021, sec. F): run the deterministic
sampler backwards, using the noise prediction at the current point for the unknown next one. First
order in the step size; with guidance > 1 the error grows (why null-text inversion exists)."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.ddim import ddim_invert, ddim_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class DDIMOptions(DiffusionOptions):
    """Options of ``ddim`` (see DiffusionOptions)."""


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = ddim_invert(s.denoiser, s.x0, s.grid, prediction_type=s.prediction_type, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe)


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = ddim_sample(s.denoiser, state.x_T, s.grid, prediction_type=s.prediction_type, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("ddim", DDIMOptions, "diffusion", invert, sample)
