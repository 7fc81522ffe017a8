"""The free variables of an optimisation and how they become images.

One class covers every space a method can optimise:

- a space of the generator (``z``, ``w``, ``w+``, ``s``, ``p``, ``pn``): the latent itself;
- ``z-sphere`` (PULSE): z projected back onto the sphere of radius sqrt(d) after every step;
- ``f:LAYER`` (layerwise inversion, Bau et al. / BDInvert's F/W+): the intermediate state at LAYER,
  plus, for StyleGAN2, the w+ code that drives the layers after it;
- optionally the generator's per-layer noise maps (capability ``NoiseMaps``; Image2StyleGAN++),
  renormalised after every step as in NVIDIA's projector. With ``f:LAYER`` only the maps of the
  layers after the cut are variables: the others no longer reach the image.

Every tensor is batch-first, one row per candidate, so candidates can be selected (``take``) and
frozen independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor

from ..errors import LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, NoiseMaps, StyleSpaces, require
from ..generators.layers import LayerSplit

SPHERE = "z-sphere"


def base_space(G: Generator, space: str) -> str:
    """The generator space a variable lives in: ``z`` for ``z-sphere``, the head space for ``f:LAYER``
    (``w+`` for style-space generators, whose tail reads w+ rows; else the generator's first space)."""
    if space == SPHERE:
        G.check_space("z")
        return "z"
    if space.startswith("f:"):
        require(G, LayerSplitting, f"layerwise inversion ({space})")
        return "w+" if isinstance(G, StyleSpaces) else G.spaces[0]
    return G.check_space(space)


def default_space(G: Generator) -> str:
    """``w+`` for style-space generators (StyleGAN2), else the generator's first space (``z``)."""
    return "w+" if isinstance(G, StyleSpaces) else G.spaces[0]


def optimizable_spaces(G: Generator) -> list[str]:
    """Every space name ``optimize`` accepts for ``G`` (layerwise ones listed as ``f:LAYER``)."""
    spaces = list(G.spaces)
    if "z" in spaces:
        spaces.insert(spaces.index("z") + 1, SPHERE)
    if isinstance(G, LayerSplitting):
        spaces.append("f:LAYER")
    return spaces


def project_sphere(z: Tensor) -> Tensor:
    """Rescale each row onto the sphere of radius sqrt(d)."""
    flat = z.flatten(1)
    return (flat * (math.sqrt(flat.shape[1]) / flat.norm(dim=1, keepdim=True).clamp_min(1e-8))).view_as(z)


@dataclass
class Variables:
    """Leaf tensors under optimisation for ``space``; ``render()`` turns them into images."""

    G: Generator
    space: str
    latent: Tensor  # [B, ...] in base_space(G, space) (the tail w+ for f:LAYER on StyleGAN2)
    state: tuple[Tensor, ...] = ()  # f:LAYER intermediate state
    noise: dict[str, Tensor] = field(default_factory=dict)  # noise maps [B, 1, H, W] (after the cut for f:LAYER)
    split: LayerSplit | None = None

    @classmethod
    def create(cls, G: Generator, space: str, init: Tensor, *, noise_seeds: list[int] | None = None) -> Variables:
        """Leaf variables from ``init`` (``[B, ...]`` in ``base_space(G, space)``); with ``noise_seeds``
        (one per row) StyleGAN2's noise maps are optimised too, each row's drawn from its own seed."""
        base = base_space(G, space)
        latent = G.check_latent(init.detach(), base).clone()
        state: tuple[Tensor, ...] = ()
        split = None
        if space.startswith("f:"):
            split = require(G, LayerSplitting, f"layerwise inversion ({space})").layer_split(space[2:])
            with torch.no_grad():
                state = tuple(t.detach().clone() if t is not None else None for t in split.head(latent, base))
        if space == SPHERE:
            latent = project_sphere(latent)
        noise: dict[str, Tensor] = {}
        if noise_seeds is not None:
            maps = require(G, NoiseMaps, "optimising noise maps (noise=True)")
            rows = [maps.initial_noise(1, seed=s) for s in noise_seeds]
            keep = set(split.tail_noise) if split is not None else set(maps.noise_shapes())
            noise = {k: torch.cat([r[k] for r in rows]).detach().clone() for k in rows[0] if k in keep}
            if not noise:
                where = f" after layer {split.name}" if split is not None else ""
                raise LatentSpaceError(f"{G.name} has no noise maps{where} to optimise; drop noise=True (--noise)")
        v = cls(G, space, latent, state, noise, split)
        for t in v.tensors():
            t.requires_grad_(True)
        return v

    def tensors(self) -> list[Tensor]:
        """All leaf tensors, main latent first."""
        return [self.latent, *[t for t in self.state if t is not None], *self.noise.values()]

    @property
    def batch(self) -> int:
        return self.latent.shape[0]

    def render(self, latent: Tensor | None = None) -> Tensor:
        """Images ``B x C x H x W`` of the variables; ``latent`` replaces the main latent (e.g. a
        noise-perturbed copy, as in the projector)."""
        latent = self.latent if latent is None else latent
        if self.split is not None:  # the noise maps of the layers after the cut reach the image through the tail
            return self.split.tail(self.state, latent if self.split.tail_space else None, noise=self.noise or None)
        if self.noise:
            return require(self.G, NoiseMaps, "noise maps").synthesize_with_noise(latent, self.base, self.noise)
        return self.G.synthesize(latent, self.base)

    @cached_property
    def base(self) -> str:
        """``base_space(G, space)``, worked out once (it is asked at every step)."""
        return base_space(self.G, self.space)

    @property
    def constrained(self) -> bool:
        """Whether :meth:`project_` does anything (the sphere, or noise maps)."""
        return self.space == SPHERE or bool(self.noise)

    @torch.no_grad()
    def project_(self) -> None:
        """Constraints after an optimiser step: the sphere, and unit-variance noise maps."""
        if self.space == SPHERE:
            self.latent.copy_(project_sphere(self.latent))
        for n in self.noise.values():
            n.sub_(n.mean(dim=(1, 2, 3), keepdim=True)).div_(n.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8))

    def take(self, index: Tensor) -> Variables:
        """New leaf variables holding rows ``index`` of each tensor (e.g. the best of K starts)."""
        v = Variables(
            self.G,
            self.space,
            self.latent.detach()[index].clone(),
            tuple(t.detach()[index].clone() if t is not None else None for t in self.state),
            {k: n.detach()[index].clone() for k, n in self.noise.items()},
            self.split,
        )
        for t in v.tensors():
            t.requires_grad_(True)
        return v

    @torch.no_grad()
    def assign_where(self, keep: Tensor, frozen: Variables) -> None:
        """Rows where ``keep`` [B] is True take ``frozen``'s values (early-stopped images stay put)."""
        for mine, theirs in zip(self.tensors(), frozen.tensors()):
            shape = (-1,) + (1,) * (mine.dim() - 1)
            mine.copy_(torch.where(keep.view(shape), theirs, mine))

    def snapshot(self) -> Variables:
        """A detached copy (no grad)."""
        return Variables(
            self.G, self.space, self.latent.detach().clone(),
            tuple(t.detach().clone() if t is not None else None for t in self.state),
            {k: n.detach().clone() for k, n in self.noise.items()}, self.split,
        )
