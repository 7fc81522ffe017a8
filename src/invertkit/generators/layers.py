"""Cutting a generator in two at an intermediate layer (layerwise inversion).

Layerwise inversion (Bau et al., "Seeing What a GAN Cannot Generate", 2019; BDInvert's F/W+ space,
Kang et al. 2021) optimises the intermediate state of a generator instead of (or besides) its
input latent. A :class:`LayerSplit` is the pair of functions that makes that possible:

- ``head(latent, space, **kw) -> tuple[Tensor | None, ...]``: the state at the cut, computed from a
  latent of the generator;
- ``tail(state, latent_tail, noise=None) -> image``: the rest of the network, from that state (and,
  for StyleGAN2, a w+ latent driving the layers after the cut, and the noise maps of those layers)
  to an ``N x C x H x W`` image in the generator's nominal [-1, 1] range.

``tail(head(latent, space), latent_as_tail_space)`` equals ``G.synthesize(latent, space)``. What a
layer name means is up to the generator: StyleGAN2 uses block resolutions (``"16"`` = after block
b16), simple sequential generators use module indices (``"3"`` = after ``module[:3]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from ..errors import LatentSpaceError

__all__ = ["LayerSplit", "check_split_layer"]


@dataclass(frozen=True)
class LayerSplit:
    """A generator cut at layer ``name``.

    Attributes:
        name: the split point (one of ``G.layer_names_for_split()``).
        head: ``(latent, space, **kw) -> state``, a tuple of tensors (entries may be None, e.g.
            StyleGAN2's skip image for non-skip architectures).
        tail: ``(state, latent_tail, noise=None) -> image [N, C, H, W]``; ``noise``: unit noise maps
            of the layers after the cut (``tail_noise``), missing ones constant.
        tail_space: the space ``latent_tail`` lives in (``"w+"`` for StyleGAN2), or None when the
            tail takes no latent (sequential generators: pass None).
        tail_noise: the noise layers after the cut, the only ones that still reach the image.
    """

    name: str
    head: Callable[..., tuple[Tensor | None, ...]]
    tail: Callable[..., Tensor]
    tail_space: str | None
    tail_noise: tuple[str, ...] = ()


def check_split_layer(name: str, layer: object, names: Sequence[str]) -> str:
    """``str(layer)`` when it is one of ``names`` (the split layers of generator ``name``), else a
    LatentSpaceError listing the valid names."""
    key = str(layer)
    if key not in names:
        valid = ", ".join(names) if names else "none"
        raise LatentSpaceError(f"unknown split layer {layer!r} for {name}; valid layers: {valid}")
    return key
