"""Run an attention-controlled edit of an inverted image: the source and target branches side by side.

``attention_edit`` takes a finished diffusion inversion (method name, its :class:`~invertkit.diffusion.
state.Setup` and :class:`~invertkit.diffusion.state.DiffusionState`), stacks the source branch's state
on the target branch's (``SamplerSpec.branch``: the source's own state, or for Direct Inversion the same
``x_T`` without the corrections, as PnP Inversion runs it) and samples both with the method's own
sampler, the prompt pair as :class:`~.control.Branches` and the controller's processors installed on the
network. The source branch is the method's reconstruction; the target branch is the edit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import ConfigError
from ..guidance import Guidance
from ..model import DiffusionModel
from ..state import SAMPLERS, DiffusionState, Setup
from .control import Branches, ControlledDenoiser, Controller
from .install import attention_control


@dataclass(frozen=True)
class AttentionEditResult:
    """``source``: the source branch's images ``[n, C, H, W]`` in [-1, 1] (the reconstruction);
    ``edited``: the target branch's; ``nfe``: model evaluations of the sampling (both branches in one
    batch count once, a guided evaluation twice)."""

    source: Tensor
    edited: Tensor
    nfe: int


def network_of(G: DiffusionModel, dtype: torch.dtype) -> torch.nn.Module:
    """The diffusers network ``G`` denoises with in ``dtype``, or a one-line error for other models."""
    from ..generator import DiffusionGenerator

    if not isinstance(G, DiffusionGenerator):
        raise ConfigError(f"attention control needs a diffusers model folder (diffusers:FOLDER, diffusion-faces32, "
                          f"diffusion-mnist32); {G.name} has no attention layers to control")
    return G.network_in(dtype)


@torch.no_grad()
def attention_edit(G: DiffusionModel, method: str, setup: Setup, state: DiffusionState, controller: Controller, *,
                   target_prompt: str | Tensor, guidance: float | None = None,
                   source_prompt: str | Tensor | None = None) -> AttentionEditResult:
    """Edit the images of ``state`` (inverted by ``method`` with ``setup``) toward ``target_prompt`` under
    ``controller``; ``guidance`` defaults to the inversion's scale. Prompts are names (or sentences of a
    word-table model) or embeddings, one ``[tokens, width]`` for all images or ``[n, tokens, width]`` one
    per image; ``source_prompt`` defaults to the inversion's prompt (its ``setup.guidance.cond``)."""
    spec = SAMPLERS.get(method)
    if spec.family != G.family:
        raise ConfigError(f"method {method!r} samples {spec.family} models; {G.name} is a {G.family} model")
    opts = setup.options
    scale = float(opts.guidance if guidance is None else guidance)
    dt = setup.dtype
    source = setup.guidance.cond if source_prompt is None else G.cond(source_prompt, dt)
    target = G.cond(target_prompt, dt)
    branches = Branches(source, target)
    g = Guidance(cond=branches) if scale == 1.0 else Guidance(cond=branches, uncond=G.cond(opts.negative, dt), scale=scale)
    both = DiffusionState.concat([state, spec.branch(state)])
    run = dataclasses.replace(setup, denoiser=ControlledDenoiser(setup.denoiser, controller))
    with attention_control(network_of(G, dt), controller):
        x0, nfe = spec.sample(run, both, g, on_step=controller.on_step)
    images = G.decode(x0).float().clamp(-1, 1)
    n = state.x_T.shape[0]
    return AttentionEditResult(source=images[:n], edited=images[n:], nfe=int(nfe))
