"""Degradation operators for restoration by inversion.

Each operator maps clean images (``N x C x H x W`` in [-1, 1], the generator's resolution) to what
was observed; the inversion minimises ``loss(D(G(latent)), observation)`` and returns the clean
``G(latent)`` (Bora et al. 2017; the surveys' "restoration by inversion"). Operators compose left to
right: ``Compose([Mask(m), Downsample(4)])``.

Spec strings (CLI ``--degrade``): ``downsample:4``, ``grayscale``, ``noise:0.1``, ``mask:PATH`` (or
``--mask PATH``), joined by ``+`` or ``,``.

Simulated observations (``observe``) draw each image's noise from a generator seeded by the run seed
and that image's id alone, so an image is observed the same whatever batch it is simulated in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError, ImageError
from .seeds import derive_seed

NOISE_PURPOSE = 17  # observation noise of image i: derive_seed(seed, i, 0, NOISE_PURPOSE); the methods use 3, 7, 11, 13


class Degradation:
    """Base class: ``__call__(x) -> observation``; ``observed_size(R)`` is the side of the output."""

    name = "identity"

    def __call__(self, x: Tensor) -> Tensor:
        return x

    def observed_size(self, resolution: int) -> int:
        return resolution

    def observed_channels(self, channels: int) -> int:
        return channels

    def observe(self, x: Tensor, *, ids: Sequence[int] | None = None, seed: int = 0) -> Tensor:
        """Simulate an observation of clean images ``x`` (adds noise where the operator has any).

        ``ids`` are the images' ids in the whole run (default: their rows, 0..N-1) and ``seed`` the run
        seed; row i's random draws depend on ``(seed, ids[i])`` only, never on the rest of the batch.
        """
        _check_ids(x, ids)
        return self(x)

    def describe(self) -> str:
        return self.name

    def composite(self, restored: Tensor, observation: Tensor) -> Tensor | None:
        """The delivered image when the observation holds exact pixels of it (inpainting: known
        pixels kept, the rest from the generator); None when no pixel is observed exactly."""
        return None

    def hide_unknown(self, observation: Tensor) -> Tensor:
        """The observation as the loss compares ``self(G(latent))`` with it: pixels the operator does
        not observe set as the operator sets them (a mask's hole zeroed). A real photo given with
        ``--mask`` still holds its hole's pixels; unmasked, they would enter perceptual losses and
        the observed fit, and show in the report as if the model had seen them."""
        return observation


@dataclass
class Downsample(Degradation):
    """Average-pool by an integer factor (a box anti-alias filter, as in PULSE's down-sampling)."""

    factor: int = 4
    name: str = field(default="downsample", init=False)

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ConfigError(f"downsample factor must be >= 1, got {self.factor}")

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.factor:
            raise ConfigError(f"downsample:{self.factor} needs a resolution divisible by {self.factor}, got {x.shape[-1]}")
        return F.avg_pool2d(x, self.factor) if self.factor > 1 else x

    def observed_size(self, resolution: int) -> int:
        return resolution // self.factor

    def describe(self) -> str:
        return f"downsample:{self.factor}"


@dataclass
class Grayscale(Degradation):
    """ITU-R 601-2 luma (colourisation: the observation has one channel)."""

    name: str = field(default="grayscale", init=False)

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            return x
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)

    def observed_channels(self, channels: int) -> int:
        return 1


@dataclass
class Mask(Degradation):
    """Keep known pixels (mask 1), zero the rest (inpainting: the loss sees only known pixels).

    ``mask`` is ``1 x 1 x H x W`` or ``N x 1 x H x W`` with values in [0, 1].
    """

    mask: Tensor
    name: str = field(default="mask", init=False)

    def __call__(self, x: Tensor) -> Tensor:
        m = self.mask.to(x.device, x.dtype)
        if m.shape[-2:] != x.shape[-2:]:
            m = F.interpolate(m, size=x.shape[-2:], mode="nearest")
        return x * m

    def describe(self) -> str:
        return f"mask({float(self.mask.mean()):.0%} known)"

    def hide_unknown(self, observation: Tensor) -> Tensor:
        return self(observation)

    def composite(self, restored: Tensor, observation: Tensor) -> Tensor | None:
        if observation.shape != restored.shape:
            return None
        m = self.mask.to(restored.device, restored.dtype)
        if m.shape[-2:] != restored.shape[-2:]:
            m = F.interpolate(m, size=restored.shape[-2:], mode="nearest")
        return m * observation + (1 - m) * restored


@dataclass
class AddNoise(Degradation):
    """Additive Gaussian noise of standard deviation ``sigma`` (in [-1, 1] units). Denoising: the
    operator itself is the identity inside the loss (noise is not differentiable structure); only
    ``observe`` adds the noise when simulating an observation."""

    sigma: float = 0.1
    name: str = field(default="noise", init=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.sigma) or self.sigma < 0:  # nan / inf noise would make every observation NaN
            raise ConfigError(f"noise:{self.sigma!r}: the noise level is a finite number >= 0, e.g. noise:0.1")

    def observe(self, x: Tensor, *, ids: Sequence[int] | None = None, seed: int = 0) -> Tensor:
        # drawn on the CPU, one generator per image: the same bits on every device and in every batch
        rows = [torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(derive_seed(seed, i, 0, NOISE_PURPOSE)))
                for i in _check_ids(x, ids)]
        noise = torch.stack(rows) if rows else torch.zeros(x.shape)
        return x + self.sigma * noise.to(x.device, x.dtype)

    def describe(self) -> str:
        return f"noise:{self.sigma:g}"


@dataclass
class Compose(Degradation):
    """Apply operators left to right."""

    ops: list[Degradation]
    name: str = field(default="compose", init=False)

    def __call__(self, x: Tensor) -> Tensor:
        for op in self.ops:
            x = op(x)
        return x

    def observe(self, x: Tensor, *, ids: Sequence[int] | None = None, seed: int = 0) -> Tensor:
        for op in self.ops:
            x = op.observe(x, ids=ids, seed=seed)
        return x

    def observed_size(self, resolution: int) -> int:
        for op in self.ops:
            resolution = op.observed_size(resolution)
        return resolution

    def observed_channels(self, channels: int) -> int:
        for op in self.ops:
            channels = op.observed_channels(channels)
        return channels

    def hide_unknown(self, observation: Tensor) -> Tensor:
        for op in self.ops:  # a mask before a down-sampling is applied at the observation's size (nearest)
            observation = op.hide_unknown(observation)
        return observation

    def describe(self) -> str:
        return "+".join(op.describe() for op in self.ops)


def show_observation(observation: Tensor, resolution: int, channels: int) -> Tensor:
    """Observations ``N x c x h x w`` shown at the generator's ``resolution`` and ``channels``: enlarged
    with nearest neighbour (each observed pixel a visible block, nothing invented) and a one-channel
    observation repeated over the colour channels."""
    x = observation
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="nearest")
    if x.shape[1] != channels:
        x = x.expand(-1, channels, -1, -1)
    return x


def _check_ids(x: Tensor, ids: Sequence[int] | None) -> list[int]:
    """The images' ids (default: their rows), one per row of ``x``."""
    if ids is None:
        return list(range(x.shape[0]))
    ids = [int(i) for i in ids]
    if len(ids) != x.shape[0]:
        raise ConfigError(f"observe got {len(ids)} image ids for {x.shape[0]} images")
    return ids


def load_mask(path: str | os.PathLike[str], resolution: int) -> Tensor:
    """A mask image -> ``1 x 1 x R x R`` in {0, 1} (white = known). Resized with nearest neighbour."""
    from .io.images import read_image  # local: io sits beside this module, not below it

    try:
        m = read_image(path, resolution, 1)
    except ImageError as exc:
        raise ImageError(f"mask {exc}") from None
    return (m > 0).float()


def parse_degradation(spec: str | None, resolution: int, mask: str | os.PathLike[str] | Tensor | None = None) -> Degradation | None:
    """Build a degradation from a spec like ``"downsample:4+grayscale"`` and an optional mask."""
    ops: list[Degradation] = []
    if mask is not None:
        ops.append(Mask(mask if isinstance(mask, Tensor) else load_mask(mask, resolution)))
    for part in (spec or "").replace(",", "+").split("+"):
        part = part.strip()
        if part:
            ops.append(_one_degradation(part, resolution))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else Compose(ops)


def _one_degradation(part: str, resolution: int) -> Degradation:
    name, _, arg = part.partition(":")
    try:
        if name == "downsample":
            return Downsample(int(arg or 4))
        if name == "noise":
            return AddNoise(float(arg or 0.1))
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"bad degradation argument in {part!r}; e.g. downsample:4, noise:0.1") from None
    if name in ("grayscale", "greyscale", "gray", "grey"):
        return Grayscale()
    if name == "mask":
        if not arg:
            raise ConfigError("mask needs a path: mask:PATH")
        return Mask(load_mask(Path(arg), resolution))
    raise ConfigError(f"unknown degradation {name!r}; use downsample:F, grayscale, noise:SIGMA or mask:PATH")
