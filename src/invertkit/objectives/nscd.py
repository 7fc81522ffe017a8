"""LSAP's alignment loss: the Normalized Style Space Cosine Distance (NSCD), differentiable.

For a latent, take the style vector ``s_l`` of every modulated convolution and of the last ToRGB
(``num_ws`` layers; see ``generators.stylegan2.nscd``) and compare its direction with the layer's
anchor ``mu_l`` (the mean normalised style of sampled latents):

    NSCD = mean_l ( 1 - cos(s_l, mu_l) )

in [0, 2]; sampled latents score low, misaligned inversions high. Reference: Cao et al., "LSAP:
Rethinking Inversion Fidelity, Perception and Editability in GAN Latent Space" (arXiv 2209.12746).

The authors' training code (caopulan/GANInverter) adds ``lambda * sum_l -(s_l/||s_l||) . mu_l``
with lambda = 0.5: the same gradient direction per layer, weighted by ``||mu_l||`` (close to 1 for
trained generators) and summed rather than averaged, so their lambda corresponds roughly to a
weight of ``lambda * num_ws`` on this (layer-averaged) NSCD.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, require
from ..generators.stylegan2.nscd import nscd_from_styles, style_anchors

__all__ = ["nscd_loss", "nscd_from_styles", "NSCDLoss"]


def nscd_loss(G: Generator, latent: Tensor, space: str, *, anchors: Sequence[Tensor] | None = None,
              layers: Sequence[int] | None = None) -> Tensor:
    """Differentiable NSCD of each latent, ``[N]``.

    Args:
        G: a StyleGAN2 generator.
        latent: latents in ``space`` (any of G's spaces: z, w, w+, s, p, pn), converted to styles.
        anchors: per-style-layer anchors (default ``style_anchors(G)``, computed once and cached);
            pass a fixed list to keep the anchors of an original generator while tuning it (PTI).
        layers: style-layer indices to average over (default ``nscd_layer_indices(G)``).
    """
    S = require(G, StyleSpaces, "the NSCD loss")
    if anchors is None:
        anchors = S.style_anchors()
    if layers is None:
        layers = S.row_layers()
    return nscd_from_styles(S.styles(latent, space), anchors, layers)


class NSCDLoss(nn.Module):
    """Module form of :func:`nscd_loss` with the anchors fixed at construction; returns ``[N]``."""

    def __init__(self, G: Generator, *, n: int | None = None, seed: int = 0) -> None:
        super().__init__()
        S = require(G, StyleSpaces, "the NSCD loss")
        self.G = S
        self.anchors = S.style_anchors() if n is None else style_anchors(S, n, seed)  # type: ignore[arg-type]
        self.layers = S.row_layers()

    def forward(self, latent: Tensor, space: str) -> Tensor:
        return nscd_loss(self.G, latent, space, anchors=self.anchors, layers=self.layers)
