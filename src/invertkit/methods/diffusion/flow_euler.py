"""``flow-euler``: inversion of a rectified flow by Euler steps of its ODE from data (t = 0) to noise
(t = sigma_max), the flow counterpart of DDIM inversion; first order. ``iterations > 0`` solves each
implicit step by fixed-point iteration, which makes it the exact inverse of Euler sampling when it
converges (the flow analogue of ReNoise)."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.flow import flow_euler_invert, flow_euler_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class FlowEulerOptions(DiffusionOptions):
    """Options of ``flow-euler``."""

    steps: int = option(28, "SD3's default number of sampling steps", min=1)
    iterations: int = option(0, "fixed-point iterations per inversion step", min=0)


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = flow_euler_invert(s.denoiser, s.x0, s.grid, guidance=s.guidance, fixed_point_iters=s.options.iterations, on_step=on_step)
    return DiffusionState(out.x, out.nfe)


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = flow_euler_sample(s.denoiser, state.x_T, s.grid, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("flow-euler", FlowEulerOptions, "flow", invert, sample)
