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
    (rows of real images are zero, or their pseudo-labels); ``known`` ``[N]`` bool, True where the
    latent is the true one (generated images); ``inputs``: what the encoder sees (``images``, or an
    augmented copy); ``paired`` ``[N]`` bool or None: True for real images whose row of ``latents`` is a
    pseudo-label (an inversion of that image, see ``real_latents`` of :class:`TrainingData`)."""

    images: Tensor
    latents: Tensor
    known: Tensor
    inputs: Tensor | None = None
    paired: Tensor | None = None

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


def jitter(images: Tensor, rng: torch.Generator, *, scale: float = 0.08, shift: float = 0.06) -> Tensor:
    """Random geometry for real images (the generator's faces sit where its training set put them; a
    photo's crop varies): per image a zoom by ``1 +- scale`` and a translation by up to ``shift`` of
    the width on each axis, borders filled by replicating the edge. ``N x C x R x R`` -> same shape."""
    n = images.shape[0]
    u = torch.rand(n, 3, generator=rng).to(images.device, images.dtype)
    zoom = 1 + scale * (2 * u[:, 0] - 1)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = 2 * shift * (2 * u[:, 1:] - 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp(-1, 1)


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
        real_jitter: :func:`jitter` the real images (inputs and targets alike) by this zoom share
            (translations up to 3/4 of it); 0 leaves them in place. Jittered images lose their pseudo-labels.
        real_latents: pseudo-labels for ``real_images``: ``M x *shape`` latents (in ``space``) that
            reproduce them, or a pair (latents, latents of the mirrored images); a flipped real image
            without a mirrored latent goes unpaired.
    """

    def __init__(self, G: Generator, space: str, batch: int, seed: int, *,
                 real_images: Tensor | None = None, real_fraction: float = 0.0, augment: bool = False, real_jitter: float = 0.0,
                 real_latents: Tensor | tuple[Tensor, Tensor | None] | None = None) -> None:
        self.G, self.space, self.batch, self.augment = G, space, batch, augment
        self.real_jitter = real_jitter
        if isinstance(real_latents, Tensor):
            real_latents = (real_latents, None)
        if real_latents is not None:
            shape = (0 if real_images is None else real_images.shape[0], *G.latent_shape(space))
            for t in real_latents:
                if t is not None and tuple(t.shape) != shape:
                    raise ValueError(f"real_latents must be {list(shape)} (one per real image, {space} space), got {list(t.shape)}")
        self.real_latents = real_latents
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
            if self.real_jitter:
                real = jitter(real, self.rng, scale=self.real_jitter, shift=0.75 * self.real_jitter)
            real_latents = latents.new_zeros((self.n_real, *latents.shape[1:]))
            if self.real_latents is not None:
                plain, mirrored = self.real_latents
                real_latents = plain[idx].to(latents)
                has = ~flip
                if mirrored is not None:
                    real_latents = torch.where(flip.view(-1, *[1] * (real_latents.dim() - 1)).to(latents.device),
                                               mirrored[idx].to(latents), real_latents)
                    has = torch.ones_like(flip)
                if self.real_jitter:
                    has = torch.zeros_like(flip)
                paired = torch.cat([torch.zeros(n_gen, dtype=torch.bool), has])
            images = torch.cat([images, real])
            latents = torch.cat([latents, real_latents])
            known = torch.cat([known, torch.zeros(self.n_real, dtype=torch.bool)])
        inputs = augment(images, self.rng) if self.augment else None
        batch = Batch(images, latents, known.to(images.device), inputs)
        if self.n_real and self.real_latents is not None:
            batch.paired = paired.to(images.device)
        return batch


def eval_batch(G: Generator, space: str, n: int) -> Batch:
    """The fixed held-out images (seeds ``EVAL_SEED .. EVAL_SEED + n - 1``) scored during training."""
    with torch.no_grad():
        latents = torch.cat([G.sample_latent(1, space, seed=EVAL_SEED + i) for i in range(n)])
        images = G.synthesize(latents, space).clamp(-1, 1)
    return Batch(images, latents, torch.ones(n, dtype=torch.bool, device=images.device))


def save_real_latents(path: str, latents: Tensor, mirrored: Tensor | None = None) -> None:
    """Write pseudo-labels for ``train-encoder --real-latents``: ``latents`` ``M x *shape``, one per
    image that ``--images`` loads (in its order), and optionally those of the mirrored images."""
    from safetensors.torch import save_file

    tensors = {"latents": latents.detach().float().cpu().contiguous()}
    if mirrored is not None:
        if mirrored.shape != latents.shape:
            raise ValueError(f"mirrored latents {list(mirrored.shape)} differ from latents {list(latents.shape)}")
        tensors["mirrored"] = mirrored.detach().float().cpu().contiguous()
    save_file(tensors, path)


def load_real_latents(path: str) -> tuple[Tensor, Tensor | None]:
    """The (latents, mirrored latents or None) that :func:`save_real_latents` wrote."""
    from safetensors.torch import load_file

    from ..errors import ConfigError

    try:
        tensors = load_file(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read pseudo-label latents ({exc})") from exc
    if "latents" not in tensors:
        raise ConfigError(f"{path}: no 'latents' tensor (write it with invertkit.encoders.data.save_real_latents)")
    return tensors["latents"], tensors.get("mirrored")
