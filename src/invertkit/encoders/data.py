"""Training batches for encoders: images the generator draws (with their true latents) and,
optionally, real images (no latent known)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from ..generators.base import Generator

# held-out seeds: evaluation images are drawn with G.sample_latent(seed=EVAL_SEED + i); training
# draws from its own stream (a torch.Generator seeded from the run's seed), never from these seeds
EVAL_SEED = 1_000_000


@dataclass
class Batch:
    """``images`` ``N x C x R x R`` in [-1, 1] (the reconstruction targets); ``latents`` ``[N, *shape]``
    (rows of real images are zero); ``known`` ``[N]`` bool, True where the latent is the true one
    (generated images); ``inputs``: what the encoder sees (``images``, or an augmented copy)."""

    images: Tensor
    latents: Tensor
    known: Tensor
    inputs: Tensor | None = None

    @property
    def encoder_inputs(self) -> Tensor:
        return self.images if self.inputs is None else self.inputs


def augment(images: Tensor, rng: torch.Generator) -> Tensor:
    """Photographic nuisances the generator never draws, so an encoder trained on its images copes
    with real ones: per image, with probability 1/2 a blur (downsample by 1.5-3x and back, as a small
    upscaled photo looks), 1/3 greyscale (many photographs to invert are), and brightness +-0.1 / contrast x0.85-1.15. ``N x C x R x R``
    in [-1, 1] -> same shape and range."""
    n, c, r = images.shape[0], images.shape[1], images.shape[-1]
    u = torch.rand(n, 5, generator=rng).to(images.device)
    out = images.clone()
    for i in torch.nonzero(u[:, 0] < 0.5).flatten().tolist():
        size = max(4, round(r / (1.5 + 1.5 * float(u[i, 1]))))
        small = F.interpolate(images[i:i + 1], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + 1] = F.interpolate(small, size=(r, r), mode="bicubic", align_corners=False)
    if c == 3:
        grey = (u[:, 2] < 1 / 3)[:, None, None, None]
        out = torch.where(grey, out.mean(1, keepdim=True).expand_as(out), out)
    contrast = (0.85 + 0.3 * u[:, 3])[:, None, None, None]
    brightness = (0.2 * u[:, 4] - 0.1)[:, None, None, None]
    mean = out.mean((1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean + brightness).clamp(-1, 1)


class TrainingData:
    """Draws batches: ``batch - real`` generated images plus ``real`` images from ``real_images``.

    Args:
        G: the generator; its latents are drawn as z ~ N(0, I) and converted to ``space``.
        space: the encoder's latent space.
        batch: images per batch.
        seed: seeds this stream (its state is saved with training checkpoints for exact resume).
        real_images: ``M x C x R x R`` in [-1, 1] or None.
        real_fraction: share of each batch taken from ``real_images`` (flipped at random).
        augment: give the encoder :func:`augment`-ed inputs (targets stay clean).
    """

    def __init__(self, G: Generator, space: str, batch: int, seed: int, *,
                 real_images: Tensor | None = None, real_fraction: float = 0.0, augment: bool = False) -> None:
        self.G, self.space, self.batch, self.augment = G, space, batch, augment
        self.rng = torch.Generator().manual_seed(seed)
        self.real = real_images
        self.n_real = 0 if real_images is None else min(batch - 1, round(batch * real_fraction))
        self.z_shape = G.latent_shape("z")

    def state(self) -> Tensor:
        return self.rng.get_state()

    def set_state(self, state: Tensor) -> None:
        self.rng.set_state(state)

    @torch.no_grad()
    def next(self) -> Batch:
        n_gen = self.batch - self.n_real
        z = torch.randn((n_gen, *self.z_shape), generator=self.rng).to(self.G.device)
        latents = self.G.convert(z, "z", self.space)
        images = self.G.synthesize(latents, self.space).clamp(-1, 1)
        known = torch.ones(n_gen, dtype=torch.bool)
        if self.n_real:
            idx = torch.randint(0, self.real.shape[0], (self.n_real,), generator=self.rng)
            real = self.real[idx].to(images.device)
            flip = torch.rand(self.n_real, generator=self.rng) < 0.5
            real = torch.where(flip[:, None, None, None].to(real.device), real.flip(-1), real)
            images = torch.cat([images, real])
            latents = torch.cat([latents, latents.new_zeros((self.n_real, *latents.shape[1:]))])
            known = torch.cat([known, torch.zeros(self.n_real, dtype=torch.bool)])
        inputs = augment(images, self.rng) if self.augment else None
        return Batch(images, latents, known.to(images.device), inputs)


def eval_batch(G: Generator, space: str, n: int) -> Batch:
    """The fixed held-out images (seeds ``EVAL_SEED .. EVAL_SEED + n - 1``) scored during training."""
    with torch.no_grad():
        latents = torch.cat([G.sample_latent(1, space, seed=EVAL_SEED + i) for i in range(n)])
        images = G.synthesize(latents, space).clamp(-1, 1)
    return Batch(images, latents, torch.ones(n, dtype=torch.bool, device=images.device))
