"""The minimal Generator every model implements; what more a model can do is a capability
(``generators.capabilities``) it declares by subclassing, never guessed by probing attributes.

A generator maps a latent code in one of its named spaces to an image batch ``N x C x H x W`` with
nominal range [-1, 1], on the generator's device. Space names used across invertkit:

- ``"z"``: the Gaussian input latent, N(0, I).
- ``"w"``, ``"w+"``, ``"s"``, ``"p"``, ``"pn"``: StyleGAN's spaces (capability ``StyleSpaces``).
- ``"noise"``: a diffusion model's or rectified flow's noise latent (``invertkit.diffusion``).

Methods never import a concrete generator; they use this class and the capabilities.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import LatentSpaceError
from ..store.digest import memo_digest

NOISE_MODES = ("random", "const", "none")

# every concrete generator class, in definition order: who provides which capability (for messages)
GENERATOR_CLASSES: list[type[Generator]] = []


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A ``torch.Generator`` seeded with ``seed`` (on CPU, so results match across devices), or None."""
    if seed is None:
        return None
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


class Generator(abc.ABC):
    """Abstract base of all generators.

    Attributes:
        resolution: output height and width in pixels.
        channels: output channels (1 greyscale, 3 RGB).
        spaces: the latent space names this generator accepts, e.g. ``("z", "w", "w+", "s")``.
        name: a short human-readable identity (zoo name or checkpoint file name).
        family_label: how messages name the generators of a class ("StyleGAN2 checkpoints ..."):
            a generator lacking a capability is told which families have it.
    """

    resolution: int
    channels: int
    spaces: tuple[str, ...]
    name: str = "generator"
    family_label: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family_label:
            GENERATOR_CLASSES.append(cls)

    # ---- required -------------------------------------------------------------------------
    @abc.abstractmethod
    def latent_shape(self, space: str) -> tuple[int, ...]:
        """Shape of one latent in ``space`` (without the batch dimension)."""

    @abc.abstractmethod
    def sample_latent(self, n: int, space: str, *, seed: int | None = None) -> Tensor:
        """Draw ``n`` latents ``[n, *latent_shape(space)]`` (via z ~ N(0, I) and ``convert``), deterministic for a seed."""

    @abc.abstractmethod
    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        """Convert latents from space ``src`` to ``dst`` (only "downstream" conversions in general)."""

    @abc.abstractmethod
    def synthesize(self, latent: Tensor, space: str) -> Tensor:
        """Render latents ``[N, *latent_shape(space)]`` to images ``N x C x H x W``, nominal range [-1, 1].

        Subclasses may take keyword-only options of their own (StyleGAN2: noise mode, labels;
        diffusion models: steps, prompt, guidance); methods call it with ``(latent, space)`` only."""

    @abc.abstractmethod
    def mean_latent(self, space: str) -> Tensor:
        """The mean latent of ``space`` with a leading batch dimension of 1."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device the generator's weights live on."""

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> Generator:
        """Move the weights to ``device`` (in place); returns ``self``."""

    @abc.abstractmethod
    def weights(self) -> Mapping[str, Tensor]:
        """Every tensor that determines the generator's images, by name (shared with the live weights)."""

    # ---- shared helpers -------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of :meth:`weights` (names, dtypes, shapes, bytes): identifies the weights by content,
        so a checkpoint converted to another format keeps it and a tuned copy does not. Remembered
        until a weight changes."""
        return memo_digest(self, "weights", self.weights())

    def check_space(self, space: str) -> str:
        """Return ``space`` if this generator has it, else raise LatentSpaceError listing the valid ones."""
        if space not in self.spaces:
            raise LatentSpaceError(
                f"latent space {space!r} is not available for {self.name}; "
                f"choose one of: {', '.join(self.spaces)}"
            )
        return space

    def check_latent(self, latent: Tensor, space: str) -> Tensor:
        """Validate a batch of latents against ``latent_shape(space)`` and move it to the device."""
        self.check_space(space)
        if not isinstance(latent, Tensor):
            raise LatentSpaceError(f"latent for space {space!r} must be a torch.Tensor, got {type(latent).__name__}")
        want = self.latent_shape(space)
        if latent.dim() == len(want):  # a single latent without batch dimension
            latent = latent.unsqueeze(0)
        if tuple(latent.shape[1:]) != tuple(want):
            raise LatentSpaceError(
                f"latent for space {space!r} of {self.name} must have shape [N, {', '.join(map(str, want))}], "
                f"got {list(latent.shape)}"
            )
        return latent.to(self.device, torch.float32)

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary (used by ``invertkit info`` and run.json)."""
        from .capabilities import capabilities_of  # local: capabilities import this module

        return {
            "name": self.name,
            "class": type(self).__name__,
            "resolution": self.resolution,
            "channels": self.channels,
            "spaces": list(self.spaces),
            "latent_shapes": {s: list(self.latent_shape(s)) for s in self.spaces},
            "capabilities": capabilities_of(self),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, resolution={self.resolution}, channels={self.channels}, spaces={self.spaces})"
