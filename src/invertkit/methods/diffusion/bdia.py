"""``bdia``: Bi-directional Integration Approximation (Zhang et al. 2024, "Exact Diffusion Inversion via
Bi-directional Integration Approximation"). Each step combines a forward and a backward DDIM update
from one model evaluation, so sampling is exactly invertible at DDIM's cost; the state is two
consecutive levels (the noise latent and the level after it).

``first_step`` (how inversion gets the level after the clean image, from one model call at the image):
``"bdia"`` (default) evaluates the model with the clean level's own time, as the authors' reference
code does, so latents match theirs; ``"ddim"`` uses the next level's time, as DDIM inversion does.
Both round-trip exactly (see ``invertkit.diffusion.bdia``)."""

from __future__ import annotations

from dataclasses import dataclass

from ...diffusion.bdia import bdia_invert, bdia_sample
from ...diffusion.guidance import Guidance
from ...diffusion.results import StepHook
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class BdiaOptions(DiffusionOptions):
    """Options of ``bdia``."""

    gamma: float = option(1.0, "weight of the backward update (1: the exactly invertible case of the paper)")
    first_step: str = option("bdia", "the first inversion step's model time: bdia (the clean level's, as the authors' code) or ddim (the next level's)",
                             choices=("bdia", "ddim"))


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    out = bdia_invert(s.denoiser, s.x0, s.grid, gamma=s.options.gamma, first_step=s.options.first_step,
                      prediction_type=s.prediction_type, guidance=s.guidance, on_step=on_step)
    return DiffusionState(out.x, out.nfe, {"x_next": out.y})


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = bdia_sample(s.denoiser, state.x_T, s.grid, x_next=state.tensors["x_next"], gamma=s.options.gamma,
                      prediction_type=s.prediction_type, guidance=g, on_step=on_step)
    return out.x, out.nfe


register("bdia", BdiaOptions, "diffusion", invert, sample)
