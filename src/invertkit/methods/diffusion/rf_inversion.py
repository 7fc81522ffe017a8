"""``rf-inversion``: RF-Inversion (Rout et al. 2025, "Semantic Image Inversion and Editing using
Rectified Stochastic Differential Equations"). Inversion follows a controlled ODE pulled (weight
``gamma``) toward a fixed noise sample; sampling is pulled (weight ``eta``, on the first ``stop``
share of the steps) back toward the source image, trading faithfulness for editability. With
``gamma = eta = 0`` it is plain Euler flow inversion."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...diffusion.rf_inversion import rf_invert, rf_sample
from ...errors import ConfigError
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class RFInversionOptions(DiffusionOptions):
    """Options of ``rf-inversion``."""

    steps: int = option(28, "integration steps (the authors' default for FLUX: 28)", min=1)
    gamma: float = option(0.5, "pull of the inversion toward the noise sample (paper: 0.5)", min=0, max=1)
    eta: float = option(0.9, "pull of sampling toward the source image (paper: 0.9)", min=0, max=1)
    stop: float = option(0.25, "share of the sampling steps that are controlled (diffusers: stop_timestep 0.25)", min=0, max=1)
    seed: int = option(0, "seed of the target noise sample")


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    if not 0 <= s.options.stop <= 1:
        raise ConfigError(f"stop={s.options.stop} must be a share of the steps in [0, 1]")
    out = rf_invert(s.denoiser, s.x0, s.grid, gamma=s.options.gamma, seed=s.options.seed, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe, {"y_0": s.x0}, {"ode_latent": s.options.gamma == 0})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    stop = int(s.options.stop * s.grid.steps)
    out = rf_sample(s.denoiser, state.x_T, s.grid, y_0=state.tensors["y_0"], eta=s.options.eta, stop_step=stop, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("rf-inversion", RFInversionOptions, "flow", invert, sample)
