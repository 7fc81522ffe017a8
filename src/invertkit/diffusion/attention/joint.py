"""Joint (MMDiT) attention of SD3 and FLUX transformers that a controller can see and change.

SD3's ``Attention`` modules run diffusers' ``JointAttnProcessor2_0``; FLUX's ``FluxAttention`` modules
run ``FluxAttnProcessor``. :class:`JointProcessor` and :class:`FluxProcessor` compute the same attention
as those (projections, the q/k RMS norms, FLUX's rotary embeddings, ``scaled_dot_product_attention``,
output projections; checked equal in the tests) and hand the whole sequence's queries, keys and values
to :meth:`~.processor.AttentionHooks.joint` after the q/k norms, with the positions of the image tokens:

- SD3 joint blocks: image tokens first, then the prompt's (``image = [0, L_img)``);
- FLUX double-stream blocks: prompt tokens first, then the image's;
- FLUX single-stream blocks: the block has already concatenated prompt and image tokens; the prompt's
  length comes from the block's own ``encoder_hidden_states`` (a forward pre-hook on the block, which
  :func:`.install.attention_control` adds and removes with the processor).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .processor import AttentionHooks, Site


def _heads(t: Tensor, heads: int) -> Tensor:
    """``[B, L, heads * d]`` -> ``[B, heads, L, d]``."""
    return t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


def _merge(t: Tensor) -> Tensor:
    """``[B, heads, L, d]`` -> ``[B, L, heads * d]``."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1)


class JointProcessor:
    """diffusers' ``JointAttnProcessor2_0`` (SD3 / SD3.5) with :meth:`AttentionHooks.joint` on q/k/v."""

    def __init__(self, hooks: AttentionHooks, site: Site) -> None:
        self.hooks = hooks
        self.site = site

    def __call__(self, attn: Any, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        # as diffusers' processor, the mask is not used (SD3 attends to every token)
        heads, n_img = attn.heads, hidden_states.shape[1]
        q, k, v = (_heads(p(hidden_states), heads) for p in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        joint = encoder_hidden_states is not None
        if joint:
            eq, ek, ev = (_heads(p(encoder_hidden_states), heads) for p in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
            if attn.norm_added_q is not None:
                eq = attn.norm_added_q(eq)
            if attn.norm_added_k is not None:
                ek = attn.norm_added_k(ek)
            q, k, v = torch.cat([q, eq], 2), torch.cat([k, ek], 2), torch.cat([v, ev], 2)
        q, k, v = self.hooks.joint(self.site, q, k, v, slice(0, n_img))
        out = _merge(F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)).to(q.dtype)
        context = None
        if joint:
            out, context = out[:, :n_img], out[:, n_img:]
            if not attn.context_pre_only:
                context = attn.to_add_out(context)
        out = attn.to_out[1](attn.to_out[0](out))
        return (out, context) if joint else out


class FluxProcessor:
    """diffusers' ``FluxAttnProcessor`` (native attention backend) with :meth:`AttentionHooks.joint` on
    q/k/v. ``text``: the prompt tokens at the front of a single-stream block's sequence (set before each
    call by :func:`count_text`); a double-stream block gets them as ``encoder_hidden_states``."""

    def __init__(self, hooks: AttentionHooks, site: Site) -> None:
        self.hooks = hooks
        self.site = site
        self.text: int | None = None

    def __call__(self, attn: Any, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, image_rotary_emb: Any = None) -> Any:
        if getattr(attn, "fused_projections", False):
            raise ConfigError(f"{self.site.name}: attention control needs FLUX's separate q/k/v projections; "
                              "call unfuse_qkv_projections() on the transformer first")
        heads = attn.heads
        q, k, v = (_heads(p(hidden_states), heads) for p in (attn.to_q, attn.to_k, attn.to_v))
        q, k = attn.norm_q(q), attn.norm_k(k)
        joint = encoder_hidden_states is not None and attn.added_kv_proj_dim is not None
        if joint:
            eq, ek, ev = (_heads(p(encoder_hidden_states), heads) for p in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
            eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
            q, k, v = torch.cat([eq, q], 2), torch.cat([ek, k], 2), torch.cat([ev, v], 2)
            n_txt = encoder_hidden_states.shape[1]
        else:
            if self.text is None:
                raise ConfigError(f"{self.site.name}: the prompt's token count of this single-stream block is unknown "
                                  "(its block was called without encoder_hidden_states)")
            n_txt = self.text
        q, k, v = self.hooks.joint(self.site, q, k, v, slice(n_txt, q.shape[2]))
        if image_rotary_emb is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            q, k = apply_rotary_emb(q, image_rotary_emb, sequence_dim=2), apply_rotary_emb(k, image_rotary_emb, sequence_dim=2)
        out = _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)).to(q.dtype)
        if encoder_hidden_states is None:
            return out
        context, out = out[:, :n_txt], out[:, n_txt:]
        return attn.to_out[1](attn.to_out[0](out.contiguous())), attn.to_add_out(context.contiguous())


def count_text(block: nn.Module, processor: FluxProcessor) -> Any:
    """A forward pre-hook on FLUX single-stream ``block`` telling ``processor`` the prompt's token count
    (its handle: ``.remove()`` takes it off)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        processor.text = None if context is None else int(context.shape[1])

    return block.register_forward_pre_hook(hook, with_kwargs=True)
