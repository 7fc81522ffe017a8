"""The Generator interface every inversion method talks to.

A generator maps a latent code in one of its named spaces to an image batch ``N x C x H x W`` with
nominal range [-1, 1], on the generator's device. Space names used across invertkit:

- ``"z"``: the Gaussian input latent, N(0, I).
- ``"w"``: StyleGAN's mapping output, ``[N, w_dim]``.
- ``"w+"``: one w per synthesis layer, ``[N, num_ws, w_dim]``.
- ``"s"``: StyleGAN2's style vectors (affine outputs), flat ``[N, sum of style dims]``.

Methods never import a concrete generator; they use only this class.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from ..errors import ConfigError, LatentSpaceError

NOISE_MODES = ("random", "const", "none")


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
    """

    resolution: int
    channels: int
    spaces: tuple[str, ...]
    name: str = "generator"

    # ---- required -------------------------------------------------------------------------
    @abc.abstractmethod
    def latent_shape(self, space: str) -> tuple[int, ...]:
        """Shape of one latent in ``space`` (without the batch dimension)."""

    @abc.abstractmethod
    def sample_latent(self, n: int, space: str = "z", *, seed: int | None = None) -> Tensor:
        """Draw ``n`` latents in ``space`` (via z ~ N(0, I) and ``convert``), deterministic for a seed."""

    @abc.abstractmethod
    def convert(self, latent: Tensor, src: str, dst: str, **kw: object) -> Tensor:
        """Convert latents from space ``src`` to ``dst`` (only "downstream" conversions in general)."""

    @abc.abstractmethod
    def synthesize(self, latent: Tensor, space: str, **kw: object) -> Tensor:
        """Render latents in ``space`` to images ``N x C x H x W``, nominal range [-1, 1]."""

    @abc.abstractmethod
    def mean_latent(self, space: str) -> Tensor:
        """The mean latent of ``space`` with a leading batch dimension of 1."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device the generator's weights live on."""

    # ---- shared helpers -------------------------------------------------------------------
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

    # ---- weights (generator tuning, e.g. PTI; see ``generators.tuning``) -----------------------
    def state_dict(self) -> dict[str, Tensor]:
        """All weights and buffers, in the generator's own naming (shared with the live weights)."""
        raise ConfigError(f"generator {self.name} does not expose its weights ({type(self).__name__} has no state_dict)")

    def tunable_module(self) -> nn.Module:
        """The sub-network whose weights generator tuning may change (its names are a subset of
        ``state_dict``'s). Generators that cannot be tuned raise ConfigError."""
        raise ConfigError(f"generator {self.name} does not support weight tuning ({type(self).__name__} has no tunable_module)")

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary (used by ``invertkit info`` and run.json)."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "resolution": self.resolution,
            "channels": self.channels,
            "spaces": list(self.spaces),
            "latent_shapes": {s: list(self.latent_shape(s)) for s in self.spaces},
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, resolution={self.resolution}, channels={self.channels}, spaces={self.spaces})"
