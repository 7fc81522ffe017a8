"""Encoding images with a trained encoder (one pass, or ReStyle's iterations)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, require
from ..generators.layers import LayerSplit
from .nets import Encoder


def restyle_start(G: Generator, space: str, latent_shape: tuple[int, ...], n: int) -> tuple[Tensor, Tensor]:
    """ReStyle's starting point for ``n`` images: the mean latent and its image, rendered once and
    broadcast (``[n, *latent_shape]`` and ``n x C x R x R``)."""
    mean = G.mean_latent(space).reshape(1, *latent_shape)
    with torch.no_grad():
        image = G.synthesize(mean, space)
    return mean.expand(n, *latent_shape), image.expand(n, *image.shape[1:])


def start_point(encoder: Encoder, G: Generator, images: Tensor) -> tuple[Tensor, Tensor]:
    """Where a ReStyle encoder's refinement starts for ``images``: its bootstrap encoder's latents and
    their images when it has one (computed without gradients), else the mean latent and its image."""
    start = encoder.start_encoder
    if start is None:
        return restyle_start(G, encoder.config.space, encoder.config.latent_shape, images.shape[0])
    with torch.no_grad():
        latent = start(images)
        return latent, G.synthesize(latent, encoder.config.space)


def encode(encoder: Encoder, G: Generator, images: Tensor, *, iterations: int = 1,
           trace: list[Tensor] | None = None) -> Tensor:
    """Latents ``[N, *encoder.config.latent_shape]`` in ``encoder.config.space`` for ``images``
    (``N x C x R x R`` in [-1, 1]).

    pSp/e4e encoders take one pass. A ReStyle encoder starts from the mean latent and its image (or
    from its bootstrap encoder's latents, see :func:`start_point`) and adds ``iterations`` residuals, each computed from the image and the current reconstruction; the
    latents after each iteration are appended to ``trace`` when given.
    """
    space = encoder.config.space
    if encoder.config.arch != "restyle":  # fs: its latent branch (the residual: encode_features)
        latent = encoder(images)
        if trace is not None:
            trace.append(latent)
        return latent
    if iterations < 1:
        raise ConfigError(f"restyle needs iterations >= 1, got {iterations}")
    latent, recon = start_point(encoder, G, images)
    for i in range(iterations):
        latent = latent + encoder(images, recon)
        if trace is not None:
            trace.append(latent)
        if i + 1 < iterations:
            recon = G.synthesize(latent, space)
    return latent


@torch.no_grad()
def encode_batched(encoder: Encoder, G: Generator, images: Tensor, *, iterations: int = 1, batch: int = 64) -> Tensor:
    """:func:`encode` in chunks of ``batch`` images, without gradients."""
    return torch.cat([encode(encoder, G, images[i:i + batch], iterations=iterations)
                      for i in range(0, images.shape[0], batch)])


# ---- fs: latent plus a feature residual ------------------------------------------------------------
def feature_split(encoder: Encoder, G: Generator) -> LayerSplit:
    """``G`` cut at the layer an fs encoder corrects (capability ``LayerSplitting``)."""
    if encoder.config.layer is None:
        raise ConfigError(f"a {encoder.config.arch} encoder corrects no generator features (train one with --arch fs)")
    return require(G, LayerSplitting, "a feature-space (fs) encoder").layer_split(encoder.config.layer)


def tail_latent(G: Generator, split: LayerSplit, latent: Tensor, space: str) -> Tensor | None:
    """The latent the tail of ``split`` reads (``latent`` in its ``tail_space``), or None."""
    if split.tail_space is None:
        return None
    return latent if space == split.tail_space else G.convert(latent, space, split.tail_space)


def with_residual(state: tuple[Tensor | None, ...], residual: Tensor) -> tuple[Tensor | None, ...]:
    """The split state with ``residual`` added to its features (its first tensor); the rest (StyleGAN2's
    skip image) as the head computed it."""
    return (state[0] + residual, *state[1:])  # type: ignore[operator]


def render_features(G: Generator, split: LayerSplit, latent: Tensor, space: str, residual: Tensor,
                    head: tuple[Tensor | None, ...] | None = None) -> tuple[Tensor, tuple[Tensor | None, ...]]:
    """Image and feature state of ``latent`` with ``residual`` added at the cut: ``tail(head(latent) + residual)``
    (``head``: the head's state of ``latent`` when already computed, see :func:`encode_features`).

    This is also how an fs result is edited: the edited latent recomputes the head's features and the
    residual is added to them (HFGI's consistency: details the latent misses stay where they were).
    """
    state = with_residual(split.head(latent, space) if head is None else head, residual)
    return split.tail(state, tail_latent(G, split, latent, space)), state


def encode_features(encoder: Encoder, G: Generator, images: Tensor, *, split: LayerSplit | None = None,
                    detach_reconstruction: bool = True) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor | None, ...]]:
    """fs: ``(latent, residual, image of the latent alone, head state of the latent)`` for ``images``:
    the latent branch encodes the images, G renders that latent (head, then tail: the head's state is
    returned for :func:`render_features`, so the head runs once), and the feature branch sees image
    and render (HFGI's distortion consultation) to predict the residual. The render fed to the branch
    is detached unless ``detach_reconstruction`` is False (gradients then reach the latent branch
    through it too)."""
    split = split or feature_split(encoder, G)
    space = encoder.config.space
    latent = encoder(images)
    head = split.head(latent, space)
    plain = split.tail(head, tail_latent(G, split, latent, space))
    residual = encoder.residual(images, plain.detach() if detach_reconstruction else plain)
    return latent, residual, plain, head
