"""``negprompt``: negative-prompt inversion (Miyake et al. 2023, "Negative-prompt Inversion: Fast Image
Inversion for Editing with Text-guided Diffusion Models"). Null-text inversion's optimised nulls
approximate the source prompt's embedding, so use that embedding as the unconditional branch:
inversion is DDIM at guidance 1 (no optimisation), and guided sampling with ``uncond = source prompt``
equals conditional sampling, so the reconstruction is the guidance-1 DDIM round trip at any scale.
Editing samples with the new prompt as ``cond`` and the source prompt as ``uncond``."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.ddim import ddim_invert, ddim_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class NegPromptOptions(DiffusionOptions):
    """Options of ``negprompt``."""

    guidance: float = option(7.5, "the scale of the (edited) sampling; inversion itself runs at 1")


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = ddim_invert(s.denoiser, s.x0, s.grid, prediction_type=s.prediction_type, guidance=Guidance(cond=s.guidance.cond), on_step=on_step)
    return DiffusionState(out.x, out.nfe, info={"ode_latent": False})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    source = s.guidance.cond  # the source prompt replaces the null embedding
    guided = Guidance(cond=g.cond) if g.scale == 1.0 else Guidance(cond=g.cond, uncond=source, scale=g.scale)
    out = ddim_sample(s.denoiser, state.x_T, s.grid, prediction_type=s.prediction_type, guidance=guided, on_step=on_step)
    return out.x, out.nfe


register("negprompt", NegPromptOptions, "diffusion", invert, sample)
