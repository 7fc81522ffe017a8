"""``fireflow``: FireFlow (Deng et al. 2024, "FireFlow: Fast Inversion of Rectified Flow for Image
Semantic Editing"): a midpoint solver that reuses the previous step's midpoint velocity as this step's
start velocity, so it costs about one evaluation per step (S + 1) at close to second-order accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.flow import fireflow_invert, fireflow_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class FireFlowOptions(DiffusionOptions):
    """Options of ``fireflow``."""

    steps: int = option(28, "integration steps (the authors' default for FLUX: 28)", min=1)


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = fireflow_invert(s.denoiser, s.x0, s.grid, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe)


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = fireflow_sample(s.denoiser, state.x_T, s.grid, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("fireflow", FireFlowOptions, "flow", invert, sample)
