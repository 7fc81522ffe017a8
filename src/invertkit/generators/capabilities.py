"""Capabilities: what a generator can do beyond the minimal :class:`~.base.Generator`, as types.

A generator class declares a capability by subclassing it (``class StyleGAN2Generator(Generator,
StyleSpaces, LayerSplitting, NoiseMaps, Tunable)``) and implementing its abstract methods. Code that
needs one asks for it with :func:`require`, which returns the generator typed as that capability or
raises one line naming what is missing and which generators have it; code that only adapts to one
(a default that differs for StyleGAN) tests ``isinstance(G, Capability)``. Nothing probes attributes.

| capability | what it offers | who has it |
|---|---|---|
| :class:`StyleSpaces` | W, W+ rows and S layers: styles of any latent, truncation, labels | StyleGAN2, StyleGAN3 |
| :class:`LayerSplitting` | cutting the network at a layer (``f:LAYER`` inversion) | StyleGAN2, wrapped ``nn.Sequential`` |
| :class:`NoiseMaps` | per-layer noise inputs that can be set and optimised | StyleGAN2 (with noise layers) |
| :class:`Tunable` | a weight subset to tune per image (PTI) | StyleGAN2 and StyleGAN3 (synthesis), wrapped modules |

The diffusion / flow model interface (``invertkit.diffusion.model.DiffusionModel``) is a capability
of the same kind, defined in the diffusion package, above this one.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from torch import Tensor, nn

from ..errors import CapabilityError
from .base import GENERATOR_CLASSES, Generator
from .layers import LayerSplit

__all__ = [
    "Capability",
    "LayerSplitting",
    "NoiseMaps",
    "StyleAffine",
    "StyleSpaces",
    "Tunable",
    "capabilities_of",
    "providers",
    "require",
]

C = TypeVar("C", bound="Capability")


class Capability(abc.ABC):
    """Base of every capability. ``about`` names it in messages."""

    about: ClassVar[str] = "a capability"


# every capability class, for capabilities_of (filled as they are defined, here and in higher packages)
CAPABILITIES: list[type[Capability]] = []


def _register(cls: type[C]) -> type[C]:
    CAPABILITIES.append(cls)
    return cls


def providers(capability: type[Capability]) -> list[str]:
    """How messages name the generator families that have ``capability`` (their ``family_label``)."""
    return [cls.family_label for cls in GENERATOR_CLASSES if issubclass(cls, capability) and not getattr(cls, "__abstractmethods__", None)]


def capabilities_of(G: Generator) -> list[str]:
    """Names of the capabilities ``G`` has (for ``invertkit info`` and run.json)."""
    return [cls.__name__ for cls in CAPABILITIES if isinstance(G, cls)]


def require(G: Generator, capability: type[C], purpose: str) -> C:
    """``G`` as ``capability``, or a CapabilityError: ``"<purpose> needs <about>; <G> has none; generators that have it: ..."``.

    Args:
        G: the generator.
        capability: the capability class.
        purpose: what needs it, as the start of a sentence (``"layerwise inversion (f:16)"``).
    """
    if isinstance(G, capability):
        return G
    have = providers(capability)
    where = f"; generators that have it: {'; '.join(have)}" if have else ""
    raise CapabilityError(f"{purpose} needs {capability.about}; {G.name} ({type(G).__name__}) has none{where}")


@dataclass(frozen=True)
class StyleAffine:
    """One style layer's affine map from w to its style vector.

    Attributes:
        name: the layer (``"b8.conv0"``).
        row: the W+ row it reads.
        weight: effective weight ``[style_dim, w_dim]`` (gains applied), float32, detached.
        bias: effective bias ``[style_dim]``.
    """

    name: str
    row: int
    weight: Tensor
    bias: Tensor


@_register
class StyleSpaces(Capability):
    """A mapping network z -> w and per-layer style vectors: the spaces ``w``, ``w+`` (one w per
    synthesis row), ``s`` (the styles, flat) and their relatives (StyleGAN2's ``p``, ``pn``).

    Its ``convert`` / ``sample_latent`` / ``synthesize`` also take ``truncation_psi`` (applied in W)
    and, for conditional models, a label ``c``.
    """

    about: ClassVar[str] = "style spaces (W, W+ rows and S layers of a mapping network)"

    @property
    @abc.abstractmethod
    def num_ws(self) -> int:
        """Rows of a w+ latent."""

    @property
    @abc.abstractmethod
    def style_layer_names(self) -> list[str]:
        """Modulated layers in S order."""

    @property
    @abc.abstractmethod
    def style_dims(self) -> list[int]:
        """Length of each layer's style vector, in ``style_layer_names`` order."""

    @property
    @abc.abstractmethod
    def label_dim(self) -> int:
        """Size of the label ``c`` of a conditional model (0: unconditional)."""

    @abc.abstractmethod
    def styles(self, latent: Tensor, space: str) -> list[Tensor]:
        """Per-layer style vectors ``[N, style_dims[l]]`` of latents in any space (differentiable)."""

    @abc.abstractmethod
    def split_styles(self, flat: Tensor) -> list[Tensor]:
        """``[N, sum(style_dims)]`` -> one ``[N, style_dims[l]]`` per layer."""

    @abc.abstractmethod
    def join_styles(self, styles: Sequence[Tensor]) -> Tensor:
        """Inverse of :meth:`split_styles`."""

    @abc.abstractmethod
    def style_affines(self) -> list[StyleAffine]:
        """The affine map of every style layer, in ``style_layer_names`` order."""

    @abc.abstractmethod
    def row_layers(self) -> list[int]:
        """Indices (into ``style_layer_names``) of the layers that stand for the W+ rows, one per row:
        the modulated convolutions and the last ToRGB (the layers LSAP's NSCD and SeFa read)."""

    @abc.abstractmethod
    def style_anchors(self) -> list[Tensor]:
        """NSCD anchors: per style layer, the mean of ``s_l / ||s_l||`` over mapped samples (cached)."""

    @abc.abstractmethod
    def w_variance(self) -> Tensor:
        """The mapping output's per-dimension variance averaged over dimensions (a scalar tensor)."""

    @abc.abstractmethod
    def truncated(self, latent: Tensor, space: str, psi: float) -> Tensor:
        """``w_avg + psi (w - w_avg)`` applied in W to latents of ``space`` (result in ``space``)."""


@_register
class LayerSplitting(Capability):
    """The network can be cut at an intermediate layer: layerwise inversion (``f:LAYER``) optimises
    the state there (see ``generators.layers``)."""

    about: ClassVar[str] = "a network that can be cut at a layer (f:LAYER)"

    @abc.abstractmethod
    def split_layers(self) -> list[str]:
        """Valid ``LAYER`` names, shallow to deep."""

    @abc.abstractmethod
    def layer_split(self, layer: str) -> LayerSplit:
        """The network cut after ``layer``."""

    def layer_sequence(self) -> nn.Sequential | None:
        """The network as a sequence whose split layer ``"k"`` cuts before module ``k`` (sequential
        generators), or None when the split layers are not module indices (StyleGAN2's blocks)."""
        return None


@_register
class NoiseMaps(Capability):
    """Per-layer noise inputs (StyleGAN2): they can be drawn, validated and passed to the renderer,
    so methods can optimise them (Image2StyleGAN++, NVIDIA's projector)."""

    about: ClassVar[str] = "noise maps (per-layer noise inputs)"

    @abc.abstractmethod
    def noise_shapes(self) -> dict[str, tuple[int, int]]:
        """``{layer: (H, W)}`` of every layer that takes a noise map, shallow to deep."""

    @abc.abstractmethod
    def initial_noise(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """Unit-Gaussian maps ``{layer: [n, 1, H, W]}`` drawn from ``seed``."""

    @abc.abstractmethod
    def check_noise(self, noise: Mapping[str, Tensor] | None, n: int) -> None:
        """Raise LatentSpaceError unless ``noise`` holds known layers with maps ``[1|n, 1, H, W]``."""

    @abc.abstractmethod
    def synthesize_with_noise(self, latent: Tensor, space: str, noise: Mapping[str, Tensor]) -> Tensor:
        """Images of ``latent`` with the given unit noise maps (missing layers: the constant noise)."""


@_register
class Tunable(Capability):
    """Weights that may be tuned per image (PTI): :meth:`tunable_module` is the sub-network to tune;
    a tuned copy is kept as a difference of :meth:`~.base.Generator.weights` (``generators.tuning``)."""

    about: ClassVar[str] = "tunable weights"

    @abc.abstractmethod
    def tunable_module(self) -> nn.Module:
        """The sub-network whose parameters tuning may change (its names are a subset of ``weights``)."""
