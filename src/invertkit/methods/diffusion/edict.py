"""``edict``: Exact Diffusion Inversion via Coupled Transformations (Wallace et al. 2023). Two coupled
sequences updated alternately, then mixed with weight ``p`` (0.93 in the paper); every update is
invertible in closed form, so inversion followed by sampling returns the input to float rounding.

``leapfrog`` (default True, the authors' ``leapfrog_steps``): odd steps update the second sequence
first, as the reference code does, so latents are interchangeable with theirs; False updates the first
sequence first on every step (the order invertkit used before this option existed). Both are exact; a saved state regenerates
with the variant it was inverted with."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.edict import edict_invert, edict_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class EdictOptions(DiffusionOptions):
    """Options of ``edict``."""

    p: float = option(0.93, "mixing weight of the averaging layers", min=0, max=1, min_exclusive=True)
    leapfrog: bool = option(True, "alternate the update order on odd sampling steps (the authors' default)")


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = edict_invert(s.denoiser, s.x0, s.grid, p=s.options.p, leapfrog=s.options.leapfrog,
                       prediction_type=s.prediction_type, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe, {"y_T": out.y})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = edict_sample(s.denoiser, state.x_T, s.grid, y_T=state.tensors["y_T"], p=s.options.p,
                       leapfrog=s.options.leapfrog, prediction_type=s.prediction_type, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("edict", EdictOptions, "diffusion", invert, sample)
