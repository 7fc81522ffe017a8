"""``coupled-flow``: an exactly invertible flow integrator: EDICT's coupling applied to a rectified
flow's Euler steps (two sequences, each updated with the other's velocity, then mixed with weight
``p``). Inversion followed by sampling returns the input to float rounding; 2 evaluations per step."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.coupled_flow import coupled_flow_invert, coupled_flow_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class CoupledFlowOptions(DiffusionOptions):
    """Options of ``coupled-flow``."""

    steps: int = option(14, "integration steps (each costs two model evaluations)", min=1)
    p: float = option(1.0, "mixing weight (1: no mixing; the two sequences stay close on a smooth flow)", min=0, max=1, min_exclusive=True)


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = coupled_flow_invert(s.denoiser, s.x0, s.grid, p=s.options.p, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe, {"y_T": out.y})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = coupled_flow_sample(s.denoiser, state.x_T, s.grid, y_T=state.tensors["y_T"], p=s.options.p, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("coupled-flow", CoupledFlowOptions, "flow", invert, sample)
