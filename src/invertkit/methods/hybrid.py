"""``hybrid``: an encoder's guess refined by the optimisation engine (Zhu et al., "Generative Visual
Manipulation on the Natural Image Manifold", 2016), optionally with IDInvert's domain regulariser
``domain * ||latent - E(G(latent))||^2`` that keeps the code where the encoder maps the generator's
own images (Zhu et al., "In-Domain GAN Inversion for Real Image Editing", 2020).

Every option of ``optimize`` applies; the defaults differ where the start is already close: a third
of the steps, a single start, and L-BFGS, whose quasi-Newton steps suit a local refinement (on 17
real faces with dcgan-digiface64 it beat Adam from the same guess by 0.6 dB at 100 steps).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..encoders.inference import encode
from ..encoders.shipped import encoder_iterations, resolve_encoder
from ..errors import ConfigError
from ..generators.base import Generator
from ..optionfields import Auto, is_auto, option
from ..results import LatentInversion
from . import METHODS, MethodSpec
from .context import RunContext
from .optimize import OptimizeOptions, optimize
from .variables import base_space

ENCODER_PREFERENCE = ("restyle", "psp", "e4e")


@dataclass(frozen=True)
class HybridOptions(OptimizeOptions):
    """Options of ``hybrid``: those of ``optimize`` plus the encoder and the domain regulariser."""

    space: str = option("auto", "latent space: auto (the encoder's), or one reachable from it (e.g. w+ -> p, pn, s)")
    steps: int = option(100, "optimiser steps after the encoder's guess (a third of optimize's default)", min=1)
    optimizer: str = option("lbfgs", "lbfgs (default here: a local refinement) | adam")
    lr: float = option(1.0, "L-BFGS: first step length; Adam: learning rate (0.1 is optimize's)", min=0, min_exclusive=True)
    init: str = option("auto", "start: auto (the encoder's guess), or given (the caller's init_latent, API only)", choices=("auto", "given"))
    restarts: int | Auto = option(1, "starts per image; extra ones perturb the encoder's guess", min=1)
    encoder: str = option("auto", "encoder file from train-encoder, or auto: the cached/shipped one (restyle, psp, e4e)")
    iterations: int | Auto = option("auto", "restyle encoders: refinement passes for the guess (auto: as trained)", min=1)
    domain: float = option(0.0, "IDInvert's domain regulariser weight on mean ||latent - E(G(latent))||^2 (0: off)", min=0)


def run_hybrid(G: Generator, images: Tensor, opts: HybridOptions, ctx: RunContext) -> LatentInversion:
    if opts.init not in ("auto", "given"):
        raise ConfigError(f"hybrid starts from the encoder's guess; init={opts.init!r} belongs to --method optimize")
    if ctx.degradation is not None:
        raise ConfigError("hybrid's encoder needs clean, whole images; for restoration use --method optimize or pti "
                          "(pti --pivot optimize)")
    if opts.domain < 0:
        raise ConfigError(f"domain must be >= 0, got {opts.domain}")
    enc = resolve_encoder(G, opts.encoder, ENCODER_PREFERENCE)
    iters = encoder_iterations(enc, None if is_auto(opts.iterations) else opts.iterations)
    enc_space = enc.config.space
    space = enc_space if is_auto(opts.space) else opts.space
    start = time.perf_counter()
    with torch.inference_mode():
        guess = encode(enc, G, images, iterations=iters)
        base = base_space(G, space)
        if base != enc_space:
            guess = G.convert(guess, enc_space, base)
    encode_seconds = time.perf_counter() - start
    terms = dict(ctx.extra_terms)
    if opts.domain > 0:
        if base != enc_space:
            raise ConfigError(f"the domain regulariser compares latents in the encoder's space ({enc_space}); "
                              f"optimise in {enc_space} or set domain=0")

        def domain_term(latent: Tensor, rendered: Tensor) -> Tensor:
            # gradients flow through the frozen encoder and the generator back to the latent
            return (latent - encode(enc, G, rendered, iterations=iters)).square().flatten(1).mean(1)

        terms["domain"] = (opts.domain, domain_term)
    inner = OptimizeOptions(**{f.name: getattr(opts, f.name) for f in dataclasses.fields(OptimizeOptions)})
    inner = dataclasses.replace(inner, space=space, init="given")
    sub = dataclasses.replace(ctx, init_latent=guess.clone(), extra_terms=terms)
    result = optimize(G, images, inner, sub)
    result.timings.seconds += encode_seconds
    result.timings.phases["encoder"] = encode_seconds
    result.config.update({"encoder": enc.source, "encoder_arch": enc.config.arch, "iterations": iters,
                          "domain": opts.domain, "init": "encoder"})
    return result


METHODS.add("hybrid", MethodSpec(run=run_hybrid, options=HybridOptions,
                                summary="an encoder's guess refined by optimisation (optionally IDInvert's domain regulariser)"))
