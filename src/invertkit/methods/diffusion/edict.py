"""``edict``: Exact Diffusion Inversion via Coupled Transformations (Wallace et al. 2023). Two coupled
sequences updated alternately, then mixed with weight ``p`` (0.93 in the paper); every update is
invertible in closed form, so inversion followed by sampling returns the input to float rounding."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.edict import edict_invert, edict_sample
from ...diffusion.guidance import Guidance
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class EdictOptions(DiffusionOptions):
    """Options of ``edict``."""

    p: float = option(0.93, "mixing weight of the averaging layers")


def invert(s: Setup) -> DiffusionState:
    out = edict_invert(s.denoiser, s.x0, s.grid, p=s.options.p, prediction_type=s.prediction_type, guidance=s.guidance)
    return DiffusionState(out.x, out.nfe, {"y_T": out.y})


def sample(s: Setup, state: DiffusionState, g: Guidance) -> tuple:
    out = edict_sample(s.denoiser, state.x_T, s.grid, y_T=state.tensors["y_T"], p=s.options.p,
                       prediction_type=s.prediction_type, guidance=g)
    return out.x, out.nfe


register("edict", EdictOptions, "diffusion", invert, sample)
