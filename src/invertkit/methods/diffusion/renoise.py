"""``renoise``: DDIM inversion whose every step solves its implicit equation by fixed-point iteration
(Garibi et al. 2024, "ReNoise"; Pan et al. 2023, "AIDI"): ``x_j = (x_{j+1} - b eps(x_j)) / a``.
When the iteration converges the inversion is the exact inverse of DDIM sampling; each iteration
costs one more model evaluation per step. (ReNoise also averages late iterations and adds noise
regularisers for distilled few-step models; the plain fixed point is implemented here.)"""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.ddim import ddim_invert
from ...diffusion.results import StepHook
from ...errors import ConfigError
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register
from .ddim import sample


@dataclass(frozen=True)
class RenoiseOptions(DiffusionOptions):
    """Options of ``renoise``."""

    iterations: int = option(4, "extra evaluations per step (ReNoise's renoising iterations)", min=0)


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    k = s.options.iterations
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"iterations={k!r} must be a non-negative integer")
    out = ddim_invert(s.denoiser, s.x0, s.grid, prediction_type=s.prediction_type, guidance=s.guidance, fixed_point_iters=k, on_step=on_step)
    return DiffusionState(out.x, out.nfe)


register("renoise", RenoiseOptions, "diffusion", invert, sample)
