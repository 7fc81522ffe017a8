"""Evaluating a denoiser with classifier-free guidance, counting model evaluations.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance":
``out = out(x, uncond) + scale * (out(x, cond) - out(x, uncond))``. ``scale == 1`` needs only the
conditional call; with ``batched=True`` both branches go through one call on a doubled batch and
count as one model evaluation (NFE); otherwise a guided evaluation costs two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from invertkit.diffusion.parameterisation import Denoiser, output_to_eps_x0
from invertkit.errors import ConfigError


@dataclass(frozen=True)
class Guidance:
    """Conditioning for a denoiser call.

    ``cond`` / ``uncond``: whatever the denoiser takes as ``cond`` (None allowed); ``scale``: guidance
    weight w (1 = plain conditional); ``batched``: run both branches as one doubled batch (then cond
    and uncond must be tensors with batch dimension N, concatenated along dim 0).
    """

    cond: Any = None
    uncond: Any = None
    scale: float = 1.0
    batched: bool = False


def evaluate(denoiser: Denoiser, x: Tensor, t: Tensor | float, guidance: Guidance | None = None) -> tuple[Tensor, int]:
    """Evaluate ``denoiser`` at ``x [N, ...]`` and time ``t`` (scalar or ``[N]``); returns ``(output, nfe)``."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    g = guidance or Guidance()
    if g.scale == 1.0:
        return denoiser(x, tt, g.cond), 1
    if g.batched:
        if not (isinstance(g.cond, Tensor) and isinstance(g.uncond, Tensor)):
            raise ConfigError("Guidance(batched=True) needs cond and uncond tensors to concatenate; pass batched=False")
        both = denoiser(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([g.uncond, g.cond]))
        out_u, out_c = both.chunk(2)
        return out_u + g.scale * (out_c - out_u), 1
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
