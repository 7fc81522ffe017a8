"""``hyperstyle``: a pivot latent plus per-image generator weights predicted by a hypernetwork in a
few forward passes (Alaluf et al., "HyperStyle", CVPR 2022); PTI's result without PTI's tuning loop.

1. **Pivot.** ``pivot="auto"``: the pivots of the encoder the hypernetwork was trained on (its
   bootstrap encoder, stored beside its file): a pSp/e4e encoder's latents, or an fs encoder's
   layerwise pivots (latent plus a residual of the generator's features at its layer, ``f:LAYER``);
   or any registered method's latents (``pivot=restyle``, ``pivot=optimize``, ``pivot=fs-encoder``
   ...), in the space the method finds them.
2. **Refinement.** ``iterations`` passes (default: as many as the network was trained with, else
   HyperStyle's 5); each sees the image and the
   current reconstruction and adds low-rank multiplicative offsets ``W * A B^T`` to the chosen layers
   (``invertkit.encoders.hyper``).

The result is a ``TunedInversion``: per image the weight delta ``W * D`` of the offset layers, saved
as ``latents/<stem>_delta.safetensors`` like PTI's, so ``load_run``, ``edit`` and ``generate --delta``
render it; edits of the pivot go through the image's offset generator. On a layerwise pivot the result
is layerwise too (space ``f:LAYER``, the pivot's ``layer_state``): the offsets are the tail's layers,
which render the pivot's state at the cut, and edits keep its residual there (``editing.apply``).
Its ``nscd`` (LSAP) is the NSCD of the pivot latent under the base generator's anchors, as for pti.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..encoders.hyper import HyperNet, check_split, check_targets, pivot_start, refine, weight_deltas
from ..encoders.shipped import find_encoder, resolve_encoder, shipped_encoders
from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, Tunable, require
from ..generators.tuning import generator_digest
from ..metrics import psnr
from ..optionfields import Auto, Options, is_auto, option
from ..optiontext import parse_key_values
from ..progress import prefixed, track
from ..results import DeltaBase, LatentInversion, Pivot, Timings, TunedInversion
from ..results.latent import LayerState
from . import METHODS, MethodSpec, invert
from .context import RunContext
from .encoder import no_degradation
from .pti import PIVOT_METRICS
from .scoring import score

DEFAULT_ITERATIONS = 5  # HyperStyle's inference passes


@dataclass(frozen=True)
class HyperStyleOptions(Options):
    """Options of ``hyperstyle``."""

    hypernet: str = option("auto", "hypernetwork file from train-encoder --arch hyperstyle, or auto: the installed or shipped one")
    iterations: int | Auto = option("auto", f"refinement passes (auto: as many as the network was trained with, else {DEFAULT_ITERATIONS}, HyperStyle's)", min=1)
    pivot: str = option("auto", "method finding the pivots: auto (the hypernetwork's own pSp/e4e/fs encoder) or any registered method")
    pivot_options: str = option("", "more options for the pivot method, key=value;key=value")
    chunk: int = option(64, "images per hypernetwork forward pass and batched render (memory)", min=1)


def resolve_hypernet(G: Generator, spec: str) -> HyperNet:
    """The hypernetwork ``spec`` names for ``G`` (a file or ``auto``); one line saying how to train one when none exists."""
    if spec == "auto" and find_encoder(G, ("hyperstyle",)) is None:
        shipped = ", ".join(k for k, v in shipped_encoders().items() if "hyperstyle" in v) or "none"
        psp = find_encoder(G, ("fs", "psp", "e4e"))  # the encoder whose pivots it would refine, when there is one
        raise ConfigError(
            f"no hyperstyle network for {G.name} (shipped ones: {shipped}); train one with `invertkit train-encoder "
            f"--generator {G.name} --arch hyperstyle --bootstrap {psp or 'ENCODER.safetensors'} --out DIR --install` "
            "(or pass --hypernet DIR/encoder.safetensors)")
    net = resolve_encoder(G, spec, ("hyperstyle",))
    check_targets(net.config, G, net.source or spec)
    return net  # type: ignore[return-value]


def trained_iterations(net: HyperNet) -> int:
    """The passes the network was trained with (more overshoot: the offsets keep growing), else HyperStyle's 5."""
    options = net.meta.get("options") if isinstance(net.meta, dict) else None
    trained = options.get("iterations") if isinstance(options, dict) else None
    return trained if type(trained) is int and 0 < trained <= 100 else DEFAULT_ITERATIONS


@dataclass
class _Pivots:
    method: str
    latent: Tensor
    space: str  # the latents' generator space
    recon: Tensor
    metrics: list  # per image (the encoder's pivots: filled in after the timed part)
    config: dict
    layer_state: LayerState | None = None  # a layerwise pivot's state at its cut


def _pivots(G: Generator, net: HyperNet, images: Tensor, opts: HyperStyleOptions, ctx: RunContext) -> _Pivots:
    if opts.pivot == "auto":
        if net.start_encoder is None:
            raise ConfigError(f"{net.source}: this hyperstyle network names no bootstrap encoder; pass pivot=METHOD")
        latents, recons, states = [], [], []
        layer = None
        with torch.inference_mode():
            for s in range(0, images.shape[0], opts.chunk):
                lat, rec, split, state = pivot_start(net, G, images[s:s + opts.chunk])
                latents.append(lat)
                recons.append(rec)
                if split is not None:
                    layer = split.name
                    states.append(LayerState(split.name, state, net.config.space))
        latent, recon = torch.cat(latents), torch.cat(recons)
        # the bootstrap file's full path: editing finds an fs encoder's residual aligner beside it
        boot = Path(net.source).parent / str(net.config.bootstrap) if net.source else Path(str(net.config.bootstrap))
        config = {"encoder": str(boot), **({"layer": layer} if layer is not None else {})}
        # scored after the timed part (like the encoder methods, whose timings leave out scoring)
        return _Pivots("encoder", latent, net.config.space, recon, [], config, LayerState.concat(states) if states else None)
    if opts.pivot in ("hyperstyle", "pti"):
        raise ConfigError(f"hyperstyle's pivot must be a method that finds latents, not {opts.pivot}")
    res = invert(G, images, opts.pivot, image_ids=ctx.image_ids, reference=ctx.reference, extra_metrics=ctx.extra_metrics,
                 progress=prefixed(ctx.progress, f"pivot ({opts.pivot})"), **parse_key_values(opts.pivot_options, where="pivot_options"))
    if not isinstance(res, LatentInversion) or isinstance(res, TunedInversion) or res.noise:
        raise ConfigError(f"hyperstyle needs pivots that are latents of the generator (plain or layerwise); {opts.pivot!r} gives "
                          f"a {res.kind} result (or one with noise maps)")
    return _Pivots(opts.pivot, res.latents.detach(), res.latent_space, res.reconstructions.detach(), res.metrics, res.config,
                   res.layer_state)


def hyperstyle(G: Generator, images: Tensor, opts: HyperStyleOptions, ctx: RunContext) -> TunedInversion:
    """Invert ``images`` (``N x C x R x R`` in [-1, 1]): pivot, then hypernetwork weight offsets."""
    no_degradation(ctx, "hyperstyle")
    require(G, Tunable, "hyperstyle (per-image weight offsets)")
    net = resolve_hypernet(G, opts.hypernet)
    iters = trained_iterations(net) if is_auto(opts.iterations) else int(opts.iterations)
    start = time.perf_counter()
    pv = _pivots(G, net, images, opts, ctx)
    latent, space, pivot_recon = pv.latent, pv.space, pv.recon
    split = None
    if pv.layer_state is not None:
        split = require(G, LayerSplitting, "hyperstyle on a layerwise pivot").layer_split(pv.layer_state.layer)
        check_split(net.config, G, split, space)
    pivot_seconds = time.perf_counter() - start
    deltas, recons, curves = [], [], []
    chunks = range(0, images.shape[0], opts.chunk)
    phase = track(ctx.progress, f"hypernetwork ({iters} passes per chunk)", len(chunks))
    with torch.inference_mode():
        for s in chunks:
            sl = slice(s, s + opts.chunk)
            trace: list[Tensor] = []
            state = None if pv.layer_state is None else [None if t is None else t[sl] for t in pv.layer_state.tensors]
            D, recon = refine(net, G, images[sl], latent[sl], pivot_recon[sl], iters, trace=trace, split=split,
                              state=state, space=space)
            deltas += weight_deltas(G, net.config, D)
            recons.append(recon)
            curves.append(torch.stack([psnr(t, images[sl]) for t in trace]))
            phase.step()
    phase.end()
    seconds = time.perf_counter() - start
    recon = torch.cat(recons)
    reference = ctx.reference if ctx.reference is not None else images
    if opts.pivot == "auto":
        pv.metrics = score(G, pivot_recon, reference, latents=latent, space=space, extra=ctx.extra_metrics)
    metrics = score(G, recon, reference, latents=latent, space=space, extra=ctx.extra_metrics)
    for m, pm in zip(metrics, pv.metrics, strict=False):
        m.update({f"{k}_pivot": pm[k] for k in PIVOT_METRICS if k in pm})
    n = images.shape[0]
    # renders per image: the pivot's, then one per pass (a layerwise pivot's passes run only the tail)
    return TunedInversion(
        latents=latent, space=space if pv.layer_state is None else f"f:{pv.layer_state.layer}",
        reconstructions=recon.detach(), metrics=metrics, layer_state=pv.layer_state,
        history={"psnr": torch.cat(curves, 1).cpu()},
        timings=Timings(seconds=seconds, steps=iters, evaluations=[float(iters + 1)] * n,
                        phases={"pivot": pivot_seconds, "refinement": seconds - pivot_seconds}),
        config={**dataclasses.asdict(opts), "hypernet": net.source, "iterations": iters, "pivot": pv.method,
                "layers": [t[0] for t in net.config.targets], "rank": net.config.rank, "pivot_config": pv.config},
        deltas=deltas, base=DeltaBase(G.name, generator_digest(G), type(G).__name__),
        pivot=Pivot(pv.method, pivot_recon, pv.metrics, pv.config, pivot_seconds), tuning_steps=[iters] * n,
    )


METHODS.add("hyperstyle", MethodSpec(run=hyperstyle, options=HyperStyleOptions,
                                     summary="HyperStyle: a pivot plus per-image weight offsets predicted by a hypernetwork"))

__all__ = ["HyperStyleOptions", "hyperstyle", "resolve_hypernet"]
