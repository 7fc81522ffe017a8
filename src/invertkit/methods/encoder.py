"""``encoder``, ``restyle`` and ``fs-encoder``: inversion in one forward pass of a trained encoder
(pSp / e4e), a few passes of ReStyle's residual refinement, or one pass of a feature-space encoder (a
latent plus a residual of the generator's features at one layer, HFGI-style). No optimisation: the fast
end of the quality/time curve.

An ``fs-encoder`` result is a layerwise result (space ``f:LAYER``, like ``optimize`` in ``f:LAYER``):
``latents`` hold the encoder's latent, ``layer_state`` the features ``head(latent) + residual``, so a
run folder re-renders it with the generator's tail. Editing moves the latent and re-adds the residual
``layer_state - head(latent)`` to the head's features of the edited latent (``editing.apply``).

The encoder is a file written by ``invertkit train-encoder``, or ``"auto"``: the one cached or shipped
for the generator (``invertkit.encoders.shipped``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..encoders.inference import encode, encode_features, feature_split, render_features
from ..encoders.shipped import encoder_iterations, resolve_encoder
from ..errors import ConfigError
from ..generators.base import Generator
from ..metrics import psnr
from ..optionfields import Auto, Options, is_auto, option, renamed
from ..results import LatentInversion, Timings
from ..results.latent import LayerState
from . import METHODS, MethodSpec
from .context import RunContext
from .scoring import score


@renamed(batch="chunk")  # invertkit 0.1's "batch" read like the CLI's --batch-size
@dataclass(frozen=True)
class EncoderOptions(Options):
    """Options of ``encoder``."""

    encoder: str = option("auto", "encoder file from train-encoder, or auto: the installed or shipped one for the generator")
    chunk: int = option(64, "images per encoder forward pass (memory; --batch-size sets the images per call)", min=1)


@renamed(batch="chunk")
@dataclass(frozen=True)
class RestyleOptions(Options):
    """Options of ``restyle``."""

    encoder: str = option("auto", "restyle encoder file from train-encoder, or auto: the installed or shipped one")
    iterations: int | Auto = option("auto", "refinement passes (auto: as many as the encoder was trained with)", min=1)
    chunk: int = option(64, "images per encoder forward pass (memory; --batch-size sets the images per call)", min=1)


def no_degradation(ctx: RunContext, method: str) -> None:
    if ctx.degradation is not None:
        raise ConfigError(f"{method} inverts clean, whole images (encoders never saw degraded ones); "
                          "for restoration use --method optimize or pti")


def encoded_result(G: Generator, images: Tensor, encoder_spec: str, archs: tuple[str, ...], iterations: int | None,
                   batch: int, ctx: RunContext) -> LatentInversion:
    """Encode ``images`` in chunks of ``batch``, render, score; history holds PSNR after each iteration."""
    enc = resolve_encoder(G, encoder_spec, archs)
    iters = encoder_iterations(enc, iterations)
    if iters < 1 or batch < 1:
        raise ConfigError("iterations and batch must be >= 1")
    space = enc.config.space
    start = time.perf_counter()
    latents, recons, traces = [], [], []
    with torch.inference_mode():
        for s in range(0, images.shape[0], batch):
            trace: list[Tensor] = []
            latent = encode(enc, G, images[s:s + batch], iterations=iters, trace=trace)
            latents.append(latent)
            recons.append(G.synthesize(latent, space))
            traces.append(trace)
    seconds = time.perf_counter() - start
    history = {}
    if iters > 1:  # ReStyle's quality after each iteration (rendered outside the timed part)
        with torch.inference_mode():
            curves = [torch.stack([psnr(G.synthesize(t, space), images[s * batch:(s + 1) * batch]) for t in trace])
                      for s, trace in enumerate(traces)]
        history["psnr"] = torch.cat(curves, 1).cpu()
    latent, recon = torch.cat(latents), torch.cat(recons)
    reference = ctx.reference if ctx.reference is not None else images
    metrics = score(G, recon, reference, latents=latent, space=space, extra=ctx.extra_metrics)
    n = images.shape[0]
    # renders per image: one between passes and the final one; a bootstrapped start renders its latents
    # too (the mean latent's image is rendered once for the whole batch)
    evals = float(iters + (enc.start_encoder is not None))
    return LatentInversion(
        latents=latent, space=space, reconstructions=recon, history=history, metrics=metrics,
        timings=Timings(seconds=seconds, steps=iters, evaluations=[evals] * n),
        config={"encoder": enc.source, "encoder_arch": enc.config.arch, "iterations": iters},
    )


@renamed(batch="chunk")
@dataclass(frozen=True)
class FsEncoderOptions(Options):
    """Options of ``fs-encoder``."""

    encoder: str = option("auto", "fs encoder file from train-encoder --arch fs, or auto: the installed or shipped one")
    chunk: int = option(64, "images per encoder forward pass (memory; --batch-size sets the images per call)", min=1)


def run_fs_encoder(G: Generator, images: Tensor, opts: FsEncoderOptions, ctx: RunContext) -> LatentInversion:
    """One pass of an fs encoder: latent, its image, the feature residual, the image with it."""
    no_degradation(ctx, "fs-encoder")
    enc = resolve_encoder(G, opts.encoder, ("fs",))
    split = feature_split(enc, G)
    space = enc.config.space
    start = time.perf_counter()
    latents, recons, states = [], [], []
    with torch.inference_mode():
        for s in range(0, images.shape[0], opts.chunk):
            latent, residual, _, head = encode_features(enc, G, images[s:s + opts.chunk], split=split)
            recon, state = render_features(G, split, latent, space, residual, head)
            latents.append(latent)
            recons.append(recon)
            states.append(LayerState(split.name, state, space))
    seconds = time.perf_counter() - start
    latent, recon = torch.cat(latents), torch.cat(recons)
    reference = ctx.reference if ctx.reference is not None else images
    metrics = score(G, recon, reference, latents=latent, space=space, extra=ctx.extra_metrics)
    n = images.shape[0]
    return LatentInversion(
        latents=latent, space=f"f:{split.name}", reconstructions=recon, metrics=metrics,
        timings=Timings(seconds=seconds, steps=1, evaluations=[2.0] * n),  # the latent's render and a second tail
        config={"encoder": enc.source, "encoder_arch": "fs", "layer": split.name},
        layer_state=LayerState.concat(states) if states else None,
    )


def run_encoder(G: Generator, images: Tensor, opts: EncoderOptions, ctx: RunContext) -> LatentInversion:
    no_degradation(ctx, "encoder")
    return encoded_result(G, images, opts.encoder, ("psp", "e4e"), None, opts.chunk, ctx)


def run_restyle(G: Generator, images: Tensor, opts: RestyleOptions, ctx: RunContext) -> LatentInversion:
    no_degradation(ctx, "restyle")
    return encoded_result(G, images, opts.encoder, ("restyle",), None if is_auto(opts.iterations) else opts.iterations, opts.chunk, ctx)


METHODS.add("encoder", MethodSpec(run=run_encoder, options=EncoderOptions,
                                  summary="one forward pass of a trained pSp / e4e encoder"))
METHODS.add("restyle", MethodSpec(run=run_restyle, options=RestyleOptions,
                                  summary="ReStyle: an encoder adds residuals to its own reconstruction, a few passes"))
METHODS.add("fs-encoder", MethodSpec(run=run_fs_encoder, options=FsEncoderOptions,
                                     summary="feature-space encoder: a latent plus a residual of G's features at one layer (HFGI-like)"))
