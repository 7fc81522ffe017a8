"""Evaluating a denoiser with classifier-free guidance, counting model evaluations.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance":
``out = out(x, uncond) + scale * (out(x, cond) - out(x, uncond))``. ``scale == 1`` needs only the
conditional call. A guided evaluation runs both branches as one call on a doubled batch when it can
(``batched``: ``"auto"``, the default), which is faster than two calls at twice the activation memory;
it falls back to two calls when the denoiser cannot take a pair of conditions or memory runs out.
Either way a guided evaluation counts as two model evaluations (NFE): the count says how much
network work an image needed, not how it was batched, so NFE columns compare across settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from invertkit.diffusion.parameterisation import Denoiser, output_to_eps_x0
from invertkit.errors import ConfigError


@dataclass(frozen=True)
class Guidance:
    """Conditioning for a denoiser call.

    ``cond`` / ``uncond``: whatever the denoiser takes as ``cond`` (None allowed); ``scale``: guidance
    weight w (1 = plain conditional); ``batched``: run both branches as one doubled batch: ``"auto"``
    when the denoiser is a :class:`PairedDenoiser` (invertkit's diffusers denoisers are) and memory allows, ``True`` to require it (a denoiser without pairs then gets cond
    and uncond tensors with batch dimension N concatenated along dim 0), ``False`` for two calls.
    """

    cond: Any = None
    uncond: Any = None
    scale: float = 1.0
    batched: bool | Literal["auto"] = "auto"


@dataclass(frozen=True)
class CondPair:
    """The condition of a doubled batch: rows ``[:N]`` take ``uncond``, rows ``[N:]`` take ``cond``
    (each in the form the denoiser takes for one batch); a :class:`PairedDenoiser` accepts it."""

    uncond: Any
    cond: Any


class PairedDenoiser:
    """A denoiser ``(x [M, ...], t [M], cond) -> output`` that also takes a :class:`CondPair` for a
    doubled batch (``M = 2N``), so a guided evaluation is one call (invertkit's diffusers denoisers)."""

    def __init__(self, fn: Denoiser) -> None:
        self.fn = fn

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return self.fn(x, t, cond)


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def evaluate(denoiser: Denoiser, x: Tensor, t: Tensor | float, guidance: Guidance | None = None) -> tuple[Tensor, int]:
    """Evaluate ``denoiser`` at ``x [N, ...]`` and time ``t`` (scalar or ``[N]``); returns ``(output, nfe)``."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    g = guidance or Guidance()
    if g.scale == 1.0:
        return denoiser(x, tt, g.cond), 1
    pairs = isinstance(denoiser, PairedDenoiser)
    if g.batched is True or (g.batched == "auto" and pairs):
        xx, t2 = torch.cat([x, x]), torch.cat([tt, tt])
        try:
            if pairs:
                both = denoiser(xx, t2, CondPair(g.uncond, g.cond))
            elif isinstance(g.cond, Tensor) and isinstance(g.uncond, Tensor):
                both = denoiser(xx, t2, torch.cat([g.uncond, g.cond]))
            else:
                raise ConfigError("Guidance(batched=True) needs cond and uncond tensors to concatenate "
                                  "(or a denoiser taking a CondPair); pass batched=False")
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if g.batched is True or not _out_of_memory(exc):
                raise
            both = None  # twice the activations did not fit: the two branches one after the other
        if both is not None:
            out_u, out_c = both.chunk(2)
            return out_u + g.scale * (out_c - out_u), 2
    out_u = denoiser(x, tt, g.uncond)
    out_c = denoiser(x, tt, g.cond)
    return out_u + g.scale * (out_c - out_u), 2


def evaluate_eps(
    denoiser: Denoiser, x: Tensor, t: Tensor | float, alpha_bar: Tensor | float, prediction_type: str,
    guidance: Guidance | None = None,
) -> tuple[Tensor, int]:
    """Guided noise prediction ``eps`` at ``x`` (model told level ``alpha_bar``); returns ``(eps, nfe)``."""
    out, nfe = evaluate(denoiser, x, t, guidance)
    return output_to_eps_x0(out, x, alpha_bar, prediction_type)[0], nfe
