"""Text edits of diffusion inversions with attention control: the source prompt's branch reconstructs
the image, the edit prompt's branch edits it, tied to the source through the chosen controller.

Controllers (``CONTROLLERS``):

- ``p2p``: Prompt-to-Prompt word swap (cross-attention replace; prompts of equal token count);
- ``p2p-refine``: Prompt-to-Prompt refinement (words added or removed, aligned);
- ``pnp``: plug-and-play (Tumanyan et al.): the source's decoder features and self-attention queries and
  keys injected into the target (any diffusers UNet);
- ``share``: RF-Solver-Edit / FireFlow value sharing: the source's attention values in the later
  transformer blocks for the first steps (FLUX, SD3 flow models);
- ``none``: both branches without control (the edit is the inverted state sampled with the new prompt,
  ``regenerate``'s edit, run beside its source).

Every controller composes with every diffusion method's saved state (``diffusion.attention.edit``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..diffusion.attention import (
    AttentionEditResult,
    Controller,
    P2POptions,
    PlugAndPlay,
    PnPOptions,
    PromptToPrompt,
    ShareOptions,
    ValueSharing,
    attention_edit,
)
from ..diffusion.model import DiffusionModel
from ..diffusion.state import DiffusionState, Setup
from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import require
from ..results import DiffusionInversion, InversionResult


@dataclass(frozen=True)
class PromptEditOptions:
    """What an attention-controlled edit is asked to do.

    ``controller``: a name of ``CONTROLLERS``; ``cross_steps`` / ``self_steps``: fractions of the sampling
    steps on which the source's cross- / self-attention is injected (P2P); ``blend``: local blending
    words ``(source words, target words)``; ``blend_threshold``; ``reweight``: ``{target word: scale}``;
    ``guidance``: the sampling scale (None: the inversion's). PnP: ``feature_steps`` / ``attention_steps``
    (fractions of the steps with injected features / self-attention) and ``feature_layer``; value
    sharing: ``inject_steps`` (steps with the source's values).
    """

    controller: str = "p2p"
    cross_steps: float = 0.8
    self_steps: float = 0.4
    blend: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    blend_threshold: float = 0.3
    reweight: dict[str, float] = field(default_factory=dict)
    guidance: float | None = None
    feature_steps: float = 0.8
    attention_steps: float = 0.5
    feature_layer: str = "up_blocks.1.resnets.1"
    inject_steps: int = 2


@dataclass(frozen=True)
class PromptEdit:
    """One edit: ``source`` (the source branch: the reconstruction) and ``edited`` images ``[n, C, H, W]``
    in [-1, 1], the local-blend ``mask`` ``[n, 1, h, w]`` of the latent (None without blending) and the
    sampling's ``nfe``."""

    source: Tensor
    edited: Tensor
    mask: Tensor | None
    nfe: int


def _tokens(cond: Any) -> int:
    embeds = cond[0] if isinstance(cond, tuple) else cond
    if not isinstance(embeds, Tensor) or not embeds.is_floating_point() or embeds.dim() < 2:
        raise ConfigError("attention control edits prompt-conditioned models (prompt embeddings); this model takes no prompt")
    return int(embeds.shape[-2])


@dataclass(frozen=True)
class EditContext:
    """What a controller builder gets: the model, steps, latent size, prompts and their words/token counts."""

    G: DiffusionModel
    steps: int
    latent_hw: tuple[int, int]
    source_prompt: str | None
    target_prompt: str
    tokens: tuple[int, int]
    source_words: list[str] | None
    target_words: list[str] | None


def _p2p(mode: str) -> Callable[[EditContext, PromptEditOptions], Controller]:
    def build(ctx: EditContext, o: PromptEditOptions) -> Controller:
        opts = P2POptions(mode=mode, cross_steps=o.cross_steps, self_steps=o.self_steps, blend=o.blend,  # type: ignore[arg-type]
                          blend_threshold=o.blend_threshold, reweight=dict(o.reweight))
        return PromptToPrompt(opts, ctx.steps, ctx.latent_hw, ctx.tokens, ctx.source_words, ctx.target_words)
    return build


CONTROLLERS: dict[str, tuple[str, Callable[[EditContext, PromptEditOptions], Controller]]] = {
    "p2p": ("Prompt-to-Prompt word swap (cross-attention replace, self-attention injection)", _p2p("replace")),
    "p2p-refine": ("Prompt-to-Prompt refinement (words added or removed)", _p2p("refine")),
    "pnp": ("plug-and-play: source decoder features and self-attention injected (diffusers UNets)",
            lambda ctx, o: PlugAndPlay(PnPOptions(feature_steps=o.feature_steps, attention_steps=o.attention_steps,
                                                  feature_layer=o.feature_layer), ctx.steps)),
    "share": ("RF-Solver-Edit / FireFlow: source attention values shared in the later blocks (FLUX, SD3)",
              lambda ctx, o: ValueSharing(ShareOptions(inject_steps=o.inject_steps))),
    "none": ("no attention control: the inverted state sampled with the edit prompt", lambda ctx, o: Controller()),
}


def build_controller(G: Generator, result: InversionResult, target_prompt: str, options: PromptEditOptions | None = None, *,
                     source_prompt: str | None = None) -> tuple[Controller, Setup, DiffusionState]:
    """The controller of an edit of ``result`` toward ``target_prompt`` and the setup / state it runs on
    (every check of the prompts and options happens here, before any sampling)."""
    o = options or PromptEditOptions()
    if o.controller not in CONTROLLERS:
        raise ConfigError(f"controller {o.controller!r} is not known; use one of {', '.join(CONTROLLERS)}")
    if not isinstance(result, DiffusionInversion) or result.state is None:
        raise ConfigError(f"prompt edits take diffusion inversions; got a {result.kind} result of {result.method!r}")
    D = require(G, DiffusionModel, "prompt edits")
    setup = result.sampling_setup(D)
    state = result.state_on(setup)
    source = setup.options.prompt if source_prompt is None else source_prompt
    if source != setup.options.prompt:
        setup = dataclasses.replace(setup, options=dataclasses.replace(setup.options, prompt=source))
    ctx = EditContext(D, setup.grid.steps, (int(state.x_T.shape[-2]), int(state.x_T.shape[-1])), source, target_prompt,
                      (_tokens(D.cond(source, setup.dtype)), _tokens(D.cond(target_prompt, setup.dtype))),
                      D.prompt_words(source), D.prompt_words(target_prompt))
    return CONTROLLERS[o.controller][1](ctx, o), setup, state


def prompt_edit(G: Generator, result: InversionResult, target_prompt: str, options: PromptEditOptions | None = None, *,
                source_prompt: str | None = None) -> PromptEdit:
    """Edit the images of a diffusion inversion ``result`` toward ``target_prompt`` under ``options``'
    controller. ``source_prompt`` (default: the inversion's prompt) is the source branch's prompt."""
    o = options or PromptEditOptions()
    controller, setup, state = build_controller(G, result, target_prompt, o, source_prompt=source_prompt)
    assert isinstance(result, DiffusionInversion)
    out: AttentionEditResult = attention_edit(setup.G, result.diffusion_method, setup, state, controller,
                                              target_prompt=target_prompt, guidance=o.guidance,
                                              source_prompt=setup.options.prompt)
    mask = controller.mask if isinstance(controller, PromptToPrompt) else None
    return PromptEdit(out.source, out.edited, mask, out.nfe)
