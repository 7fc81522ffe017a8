"""``flow-midpoint``: second-order (midpoint) inversion and sampling of a rectified flow, as in RF-Solver
(Wang et al. 2024, "Taming Rectified Flow for Inversion and Editing"): two evaluations per step, error
second order in the step size."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.flow import flow_midpoint_invert, flow_midpoint_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class FlowMidpointOptions(DiffusionOptions):
    """Options of ``flow-midpoint``."""

    steps: int = option(14, "half of flow-euler's 28: the same number of model evaluations", min=1)


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = flow_midpoint_invert(s.denoiser, s.x0, s.grid, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe)


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = flow_midpoint_sample(s.denoiser, state.x_T, s.grid, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("flow-midpoint", FlowMidpointOptions, "flow", invert, sample)
