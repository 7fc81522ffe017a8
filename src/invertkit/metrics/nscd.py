"""NSCD as a metric: how far inverted StyleGAN2 codes sit from the synthetic style distribution.

``nscd(G, latents, space)`` scores each latent (``mean_l 1 - cos(s_l, mu_l)`` over the modulated
convolutions and the last ToRGB; see ``objectives.nscd``). Report it beside
``nscd_of_samples(G)``, the same score for latents sampled from the generator: the gap is the
misalignment LSAP talks about (Cao et al., arXiv 2209.12746).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, require
from ..generators.stylegan2.nscd import nscd_from_styles

__all__ = ["nscd", "nscd_of_samples"]


def nscd(G: Generator, latents: Tensor, space: str, *, batch: int = 256) -> Tensor:
    """NSCD of each latent in ``space`` (z, w, w+, s, p, pn), ``[N]`` float32 on G's device (no grad)."""
    S = require(G, StyleSpaces, "NSCD")
    anchors = S.style_anchors()
    layers = S.row_layers()
    with torch.inference_mode():
        latents = G.check_latent(latents, space)
        out = [nscd_from_styles(S.styles(latents[i:i + batch], space), anchors, layers)
               for i in range(0, latents.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, device=G.device)


def nscd_of_samples(G: Generator, n: int = 1000, seed: int = 0, *, truncation_psi: float = 1.0) -> float:
    """Mean NSCD of ``n`` latents sampled through the mapping (the baseline to print beside inversions).

    The draws (``G.sample_latent(n, "w", seed=seed)``) are independent of the anchors' draws.
    Conditional generators get labels ``0, 1, 2, ...`` cycled over the batch.
    """
    S = require(G, StyleSpaces, "NSCD")
    kw = {"c": torch.arange(n) % S.label_dim} if S.label_dim > 0 else {}
    w = S.sample_latent(n, "w", seed=seed, truncation_psi=truncation_psi, **kw)
    return float(nscd(G, w, "w").mean())


