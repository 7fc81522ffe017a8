"""Cutting a generator in two at an intermediate layer (layerwise inversion).

Layerwise inversion (Bau et al., "Seeing What a GAN Cannot Generate", 2019; BDInvert's F/W+ space,
Kang et al. 2021) optimises the intermediate state of a generator instead of (or besides) its
input latent. A :class:`LayerSplit` is the pair of functions that makes that possible:

- ``head(latent, space, **kw) -> tuple[Tensor | None, ...]``: the state at the cut, computed from a
  latent of the generator;
- ``tail(state, latent_tail, **kw) -> image``: the rest of the network, from that state (and, for
  StyleGAN2, a w+ latent driving the layers after the cut) to an ``N x C x H x W`` image in the
  generator's nominal [-1, 1] range.

``tail(head(latent, space), latent_as_tail_space)`` equals ``G.synthesize(latent, space)``. What a
layer name means is up to the generator: StyleGAN2 uses block resolutions (``"16"`` = after block
b16), simple sequential generators use module indices (``"3"`` = after ``module[:3]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..errors import LatentSpaceError

__all__ = ["LayerSplit", "check_split_layer", "layer_split_of"]


@dataclass(frozen=True)
class LayerSplit:
    """A generator cut at layer ``name``.

    Attributes:
        name: the split point (one of ``G.layer_names_for_split()``).
        head: ``(latent, space, **kw) -> state``, a tuple of tensors (entries may be None, e.g.
            StyleGAN2's skip image for non-skip architectures).
        tail: ``(state, latent_tail, **kw) -> image [N, C, H, W]``.
        tail_space: the space ``latent_tail`` lives in (``"w+"`` for StyleGAN2), or None when the
            tail takes no latent (sequential generators: pass None).
    """

    name: str
    head: Callable[..., tuple[Tensor | None, ...]]
    tail: Callable[..., Tensor]
    tail_space: str | None


def check_split_layer(G: Any, layer: object, names: Sequence[str]) -> str:
    """``str(layer)`` when it is one of ``names``, else a LatentSpaceError listing the valid names."""
    key = str(layer)
    if key not in names:
        valid = ", ".join(names) if names else "none"
        raise LatentSpaceError(
            f"unknown split layer {layer!r} for {getattr(G, 'name', type(G).__name__)}; valid layers: {valid}")
    return key


def layer_split_of(G: Any, layer: object) -> LayerSplit:
    """``G.layer_split(layer)``, or a LatentSpaceError when ``G`` cannot be cut."""
    if not hasattr(G, "layer_split"):
        raise LatentSpaceError(
            f"{getattr(G, 'name', type(G).__name__)} does not support layerwise inversion "
            "(it needs a layer_split method: StyleGAN2, or a wrapped nn.Sequential / module with as_sequence())")
    return G.layer_split(layer)
