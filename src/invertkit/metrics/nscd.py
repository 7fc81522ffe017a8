"""NSCD as a metric: how far inverted StyleGAN2 codes sit from the synthetic style distribution.

``nscd(G, latents, space)`` scores each latent (``mean_l 1 - cos(s_l, mu_l)`` over the modulated
convolutions and the last ToRGB; see ``objectives.nscd``). Report it beside
``nscd_of_samples(G)``, the same score for latents sampled from the generator: the gap is the
misalignment LSAP talks about (Cao et al., arXiv 2209.12746).

Reference statistics: the anchors ``mu_l`` are the mean unit style vectors of ``ANCHOR_SAMPLES``
(10^4) latents ``w = mapping(z)``, ``z ~ N(0, I)`` drawn from seed 0 (a stream of its own, see
``generators.stylegan2.nscd``; the authors draw 10^5 unseeded), computed once per generator and
cached (in memory on the generator, and on disk keyed by its weights), never per image.

A latent with a NaN or inf entry has no NSCD: its value is NaN (never a number such as the 1.0 a
zero style vector would give), so the run writer records its image as failed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, require
from ..generators.stylegan2.nscd import nscd_from_styles

__all__ = ["nscd", "nscd_of_samples", "nscd_defined"]

STYLE_SPACES = ("w", "w+", "s", "p", "pn")  # latents that fix every style vector on their own


def nscd_defined(G: Generator, space: str) -> bool:
    """Whether latents of ``space`` determine ``G``'s style vectors on their own, so that NSCD is
    defined for them: w, w+, s, p, pn, and z of an unconditional generator (a conditional one maps z
    with a label that an inversion result does not keep). False for every space of a generator
    without :class:`StyleSpaces` and for ``f:LAYER`` / diffusion ``noise`` spaces."""
    if not isinstance(G, StyleSpaces) or space not in G.spaces:
        return False
    return space in STYLE_SPACES or (space == "z" and G.label_dim == 0)


def nscd(G: Generator, latents: Tensor, space: str, *, batch: int = 256) -> Tensor:
    """NSCD of each latent in ``space`` (z, w, w+, s, p, pn), ``[N]`` float32 on G's device (no grad).

    ``mean_l 1 - cos(s_l, mu_l)`` over the modulated convolutions and the last ToRGB, in [0, 2]
    (0: every style points along its anchor). Rows with a NaN or inf entry are NaN.
    """
    S = require(G, StyleSpaces, "NSCD")
    anchors = S.style_anchors()
    layers = S.row_layers()
    with torch.inference_mode():
        latents = G.check_latent(latents, space)
        out = [nscd_from_styles(S.styles(latents[i:i + batch], space), anchors, layers)
               for i in range(0, latents.shape[0], batch)]
        if not out:
            return torch.zeros(0, device=G.device)
        values = torch.cat(out)
        # not a score: a NaN in a style NSCD does not read (an intermediate ToRGB's) would leave a finite value
        finite = torch.isfinite(latents.reshape(latents.shape[0], -1)).all(dim=1)
        return torch.where(finite, values, torch.full_like(values, float("nan")))


def nscd_of_samples(G: Generator, n: int = 1000, seed: int = 0, *, truncation_psi: float = 1.0) -> float:
    """Mean NSCD of ``n`` latents sampled through the mapping (the baseline to print beside inversions).

    The draws (``G.sample_latent(n, "w", seed=seed)``) are independent of the anchors' draws.
    Conditional generators get labels ``0, 1, 2, ...`` cycled over the batch.
    """
    S = require(G, StyleSpaces, "NSCD")
    kw = {"c": torch.arange(n) % S.label_dim} if S.label_dim > 0 else {}
    w = S.sample_latent(n, "w", seed=seed, truncation_psi=truncation_psi, **kw)
    return float(nscd(G, w, "w").mean())


