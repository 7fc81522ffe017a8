"""``nulltext``: null-text inversion (Mokady et al. 2023, "Null-text Inversion for Editing Real Images
using Guided Diffusion Models"). DDIM inversion at guidance 1 gives a pivot trajectory; then, step by
step along guided sampling, the unconditional ("null") embedding is optimised (Adam, ``inner_steps``
iterations, early stop at ``early_stop``) so the guided step lands on the pivot. The result is the
pivot's noise latent plus one null embedding per step and image; editing re-samples with another
prompt and the optimised nulls. Needs a network whose conditioning is a tensor (UNet2DConditionModel).

``schedule="paper"`` (the default) is the authors' notebook: the learning rate decays as
``lr (1 - j / 100)`` and the early-stop threshold grows as ``early_stop + 2e-5 j`` over the sampling
steps j, tested after each Adam update; ``schedule="invertkit"`` keeps both constant and tests before
the update, keeping the embedding that met the threshold (``invertkit.diffusion.nulltext``). Each
image is optimised and stopped on its own, so its nulls are the same alone or in a batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...diffusion.guidance import Guidance
from ...diffusion.nulltext import null_text_optimize, null_text_sample
from ...diffusion.results import StepHook
from ...errors import ConfigError
from ...optionfields import option
from .common import DiffusionOptions, DiffusionState, Setup, register


@dataclass(frozen=True)
class NullTextOptions(DiffusionOptions):
    """Options of ``nulltext``."""

    guidance: float = option(7.5, "the guidance scale the nulls are tuned for (the paper's 7.5)")
    inner_steps: int = option(10, "Adam iterations per sampling step (paper: 10)", min=0)
    lr: float = option(0.01, "Adam learning rate on the null embedding (paper: 1e-2; decayed per step by the paper schedule)", min=0, min_exclusive=True)
    early_stop: float = option(1e-5, "stop a step's iterations once the latent MSE is below this (paper: 1e-5, growing per step by the paper schedule)", min=0)
    schedule: str = option("paper", "paper (lr and threshold change with the sampling step, as the authors' notebook) or invertkit (constant, checked before the update)",
                           choices=("paper", "invertkit"))


def _per_image(value: Tensor, n: int) -> Tensor:
    """A null embedding for every image (each image's nulls are optimised independently)."""
    return value.detach().unsqueeze(0).expand(n, *value.shape).clone() if value.dim() < 3 or value.shape[0] != n else value.detach().clone()


def invert(s: Setup, on_step: StepHook | None = None) -> DiffusionState:
    uncond = s.G.cond(s.options.negative, s.dtype)
    if not isinstance(uncond, Tensor) or not uncond.is_floating_point():  # class labels cannot be optimised
        raise ConfigError(f"nulltext needs a network conditioned on one embedding tensor (UNet2DConditionModel); {s.G.name} is not")
    n = s.x0.shape[0]
    # at guidance 1 the null branch has no effect: nothing to optimise (it is DDIM inversion)
    inner = 0 if s.options.guidance == 1.0 else s.options.inner_steps
    with torch.enable_grad():
        out = null_text_optimize(s.denoiser, s.x0, s.grid, cond=s.guidance.cond, uncond=_per_image(uncond, n),
                                 scale=s.options.guidance, prediction_type=s.prediction_type,
                                 inner_steps=inner, lr=s.options.lr, early_stop=s.options.early_stop,
                                 schedule=s.options.schedule, on_step=on_step)
    return DiffusionState(out.x_T, out.nfe, {"uncond": [u.detach() for u in out.uncond]},
                          {"backward_passes": out.backward, "ode_latent": False}, out.nfe_per_image)


def sample(s: Setup, state: DiffusionState, g: Guidance, on_step: StepHook | None = None) -> tuple:
    out = null_text_sample(s.denoiser, state.x_T, s.grid, cond=g.cond, uncond_per_step=state.tensors["uncond"],
                           scale=g.scale, prediction_type=s.prediction_type, on_step=on_step)
    return out.x, out.nfe


register("nulltext", NullTextOptions, "diffusion", invert, sample)
