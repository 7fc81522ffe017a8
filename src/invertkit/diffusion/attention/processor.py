"""Attention that a controller can see and change, installed through diffusers' attention-processor hooks.

diffusers routes every ``Attention`` module's computation through a processor object
(``model.set_attn_processor``). :class:`ControlProcessor` computes attention the plain way (as diffusers'
``AttnProcessor``: ``softmax(q k^T / sqrt(d)) v``) but hands the queries, keys and values and then the
attention probabilities to a controller first (:class:`AttentionHooks`), which Prompt-to-Prompt and
plug-and-play editing use to copy the source branch's attention into the target branch.
:func:`.install.attention_control` installs the processors (this one for UNets, :mod:`.joint`'s for SD3 /
FLUX transformers) for the duration of a ``with`` block and puts the model's own back afterwards. No
diffusers code is copied or patched: only the public processor interface is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Site:
    """One attention module: its processor ``name`` in the model (``up_blocks.0.attentions.0.transformer_
    blocks.0.attn2.processor``), ``place`` (``"down"``, ``"mid"`` or ``"up"`` in a UNet; ``"joint"`` or
    ``"single"`` in SD3 / FLUX transformers) and ``index`` (its position
    in the model's processor order)."""

    name: str
    place: str
    index: int


class AttentionHooks:
    """What a controller may change; the base class changes nothing.

    Shapes: ``B`` rows of the call (see ``control.CallLayout``), ``heads``, ``Q`` query tokens (pixels of
    the feature map, ``h * w``), ``K`` key tokens (prompt tokens for cross-attention, pixels for self-attention),
    ``d`` channels per head.
    """

    def qkv(self, site: Site, cross: bool, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``[B, heads, Q, d]``, keys and values ``[B, heads, K, d]`` before the scores."""
        return q, k, v

    def attention(self, site: Site, cross: bool, probs: Tensor) -> Tensor:
        """Attention probabilities ``[B, heads, Q, K]`` (rows sum to 1) before they weight the values."""
        return probs

    def joint(self, site: Site, q: Tensor, k: Tensor, v: Tensor, image: slice) -> tuple[Tensor, Tensor, Tensor]:
        """Joint (MMDiT) attention of SD3 / FLUX blocks: queries, keys and values ``[B, heads, L, d]`` of
        the whole sequence (text and image tokens, in the model's order; ``image``: the image tokens'
        positions), after the q/k norms and before rotary embeddings."""
        return q, k, v

    def bind(self, network: nn.Module, sites: list[Site]) -> None:
        """Called once when installed on ``network`` with its attention ``sites`` (nothing by default)."""

    def feature_modules(self, network: nn.Module) -> list[tuple[str, nn.Module]]:
        """Modules of ``network`` whose outputs :meth:`feature` may change (none by default)."""
        return []

    def feature(self, name: str, output: Tensor) -> Tensor:
        """The output of module ``name`` (one of :meth:`feature_modules`) as the network goes on with it."""
        return output


def _place(name: str) -> str:
    head = name.split(".", 1)[0]
    return {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up", "transformer_blocks": "joint",
            "single_transformer_blocks": "single"}.get(head, head)


class ControlProcessor:
    """diffusers' plain attention computation with ``hooks`` called on q/k/v and on the probabilities."""

    def __init__(self, hooks: AttentionHooks, site: Site) -> None:
        self.hooks = hooks
        self.site = site

    def __call__(self, attn: Any, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, *args: Any, **kwargs: Any) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        cross = encoder_hidden_states is not None
        batch, length, _ = hidden_states.shape if not cross else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        context = hidden_states if not cross else (attn.norm_encoder_hidden_states(encoder_hidden_states)
                                                   if attn.norm_cross else encoder_hidden_states)
        key, value = attn.to_k(context), attn.to_v(context)
        heads = attn.heads

        def split(t: Tensor) -> Tensor:  # [B, L, heads * d] -> [B, heads, L, d]
            return t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)

        q, k, v = self.hooks.qkv(self.site, cross, split(query), split(key), split(value))
        B, _, Q, d = q.shape

        def flat(t: Tensor) -> Tensor:  # [B, heads, L, d] -> [B * heads, L, d], diffusers' head-to-batch layout
            return t.reshape(B * heads, t.shape[2], d)

        probs = attn.get_attention_scores(flat(q), flat(k), attention_mask)  # [B*heads, Q, K], softmax in float32 if upcast
        probs = self.hooks.attention(self.site, cross, probs.view(B, heads, Q, -1))
        out = torch.bmm(probs.reshape(B * heads, Q, -1).to(v.dtype), flat(v))  # [B*heads, Q, d]
        out = out.view(B, heads, Q, d).transpose(1, 2).reshape(B, Q, heads * d)
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
