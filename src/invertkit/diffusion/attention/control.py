"""The two-branch batch of an attention-controlled edit, and the denoiser that tells a controller its layout.

An edit runs a **source branch** (the inverted image's own prompt: the reconstruction) and a **target
branch** (the edit prompt) side by side in one batch: rows ``[:n]`` source, rows ``[n:2n]`` target, for
``n`` images. The conditioning of such a batch is a :class:`Branches` (one condition per branch). With
classifier-free guidance the sampler doubles the batch again (``guidance.CondPair``: unconditional rows
first), so one network call holds one or two **blocks** of ``2n`` rows; :class:`CallLayout` says which
blocks are conditional, because Prompt-to-Prompt and plug-and-play editing change only the conditional
block's attention (the unconditional one is left alone, as in the authors' code).

:class:`ControlledDenoiser` wraps a method's denoiser: it turns :class:`Branches` into per-row
conditioning, sets the controller's layout for the call and runs the network. :class:`Controller` is the
base of every controller: it counts sampling steps through the samplers' ``on_step`` hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..guidance import CondPair, PairedDenoiser
from .processor import AttentionHooks


@dataclass(frozen=True)
class Branches:
    """The condition of an edit batch: rows ``[:n]`` take ``source``, rows ``[n:2n]`` take ``target``
    (each in the form the network takes for one batch: an embedding ``[tokens, width]``, or SD3's
    ``(embeds, pooled)``). ``conditional``: whether this is the prompt branch of guidance."""

    source: Any
    target: Any
    conditional: bool = True


@dataclass(frozen=True)
class CallLayout:
    """One network call: ``n`` images per branch, ``conditional[b]`` for each block of ``2n`` rows."""

    n: int
    conditional: tuple[bool, ...]

    def conditional_blocks(self) -> list[int]:
        """First row of every conditional block."""
        return [b * 2 * self.n for b, c in enumerate(self.conditional) if c]


class Controller(AttentionHooks):
    """Base controller: knows the current sampling step (``step``: 0 = noisiest, advanced by
    :meth:`on_step`, which the samplers call after every step) and the current call's layout."""

    def __init__(self) -> None:
        self.step = 0
        self.layout: CallLayout | None = None

    def begin_call(self, layout: CallLayout) -> None:
        self.layout = layout

    def on_step(self, j: int, x: Tensor) -> Tensor:
        """After sampling step j with the new state ``x [2n, ...]`` (source rows, then target rows)."""
        self.step = j + 1
        return x


def _rows(value: Any, m: int) -> Any:
    """``value`` for ``m`` rows: an unbatched embedding (or class label) expanded, a batched one kept;
    tuples element-wise."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_rows(v, m) for v in value)
    if not value.is_floating_point():  # class labels of a class-conditional UNet2DModel: [1] or [m]
        return value.reshape(-1).expand(m) if value.numel() == 1 else value.reshape(-1)
    if value.dim() in (1, 2):
        return value.unsqueeze(0).expand(m, *value.shape)
    return value.expand(m, *value.shape[1:]) if value.shape[0] == 1 else value


def _branch_rows(value: Any, m: int) -> Any:
    """A :class:`Branches` as one condition for ``m = 2n`` rows (source rows, then target rows)."""
    if not isinstance(value, Branches):
        return value
    s, t = _rows(value.source, m // 2), _rows(value.target, m // 2)
    if isinstance(s, tuple):
        return tuple(torch.cat(p) for p in zip(s, t, strict=True))
    return torch.cat([s, t])


def _conditional(value: Any) -> bool:
    return isinstance(value, Branches) and value.conditional


class ControlledDenoiser(PairedDenoiser):
    """``denoiser`` (a method's, with the controller's processors installed on its network) that sets
    ``controller``'s :class:`CallLayout` before each call and resolves :class:`Branches` conditions."""

    def __init__(self, denoiser: Any, controller: Controller) -> None:
        super().__init__(denoiser)
        self.controller = controller

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        m = x.shape[0]
        if isinstance(cond, CondPair):
            half = m // 2
            layout = CallLayout(half // 2, (_conditional(cond.uncond), _conditional(cond.cond)))
            cond = CondPair(_branch_rows(cond.uncond, half), _branch_rows(cond.cond, half))
        else:
            layout = CallLayout(m // 2, (_conditional(cond),))
            cond = _branch_rows(cond, m)
        self.controller.begin_call(layout)
        return self.fn(x, t, cond)
