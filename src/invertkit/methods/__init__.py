"""Inversion methods, registered by name; ``invert`` is the one entry point.

A method is a callable ``method(G, images, options, context) -> InversionResult`` (one of the typed
results of ``invertkit.results``) with a frozen options dataclass whose declared fields (defaults,
help, choices: ``invertkit.optionfields``) are the single source for the API and the CLI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..degradations import Degradation
from ..errors import ConfigError, ImageError
from ..generators.base import Generator
from ..io.images import check_images
from ..metrics.requested import check_extra_metrics
from ..optionfields import declared_options, renamed_options
from ..progress import Reporter
from ..registry import Registry
from ..results import InversionResult
from .context import RunContext


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function, its options dataclass and a one-line summary (CLI help)."""

    run: Callable[[Generator, Tensor, Any, RunContext], InversionResult]
    options: type
    summary: str = ""


METHODS: Registry[MethodSpec] = Registry("inversion method")


def _help(cls: type, name: str) -> str:
    return next((o.help for o in declared_options(cls) if o.name == name), "")


def make_options(method: str, **kwargs: Any) -> Any:
    """Build the method's options dataclass from keyword arguments; unknown names, and values outside
    an option's declared choices or range (``optionfields.option``), are a ConfigError line."""
    cls = METHODS.get(method).options
    names = {f.name for f in dataclasses.fields(cls)}
    for old, new in renamed_options(cls).items():
        if old in kwargs:
            raise ConfigError(f"method {method!r}: option {old!r} is now {new!r}; pass {new}= ({new}: {_help(cls, new)})")
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"method {method!r} has no option(s) {unknown}; its options are {sorted(names)}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"method {method!r}: {exc}") from exc


def invert(
    G: Generator,
    images: Tensor,
    method: str = "optimize",
    *,
    degradation: Degradation | None = None,
    init_latent: Tensor | None = None,
    image_ids: list[int] | None = None,
    reference: Tensor | None = None,
    extra_metrics: tuple[str, ...] = (),
    progress: Reporter | None = None,
    **options: Any,
) -> InversionResult:
    """Find latents that make ``G`` reproduce ``images``.

    Args:
        G: any Generator.
        images: the observations, float ``N x C x H x W`` in [-1, 1]: ``G.channels x G.resolution^2``, or
            the degradation's output size when ``degradation`` is given. Integer (uint8) tensors,
            non-finite values and 0..255 floats are refused with an ImageError saying how to convert
            them (``x.float() / 127.5 - 1``); see :func:`invertkit.io.images.check_images`.
        method: a registered method name (``invertkit.methods.METHODS.names()``).
        degradation: restoration by inversion: the loss compares ``degradation(G(latent))`` with
            ``images`` and the result holds the restored full images; pixels the operator does not
            observe (a mask's hole) are hidden in ``images`` first (``Degradation.hide_unknown``), so a
            whole photo can be given with its mask.
        init_latent: starting latents for ``init="given"`` (hybrid methods).
        image_ids: positions of the images in the whole run (seeds derive from them).
        reference: clean images to score against (when ``images`` is a simulated degradation).
        extra_metrics: more metric names to score: image metrics (``invertkit.metrics.METRICS``:
            perceptual, lpips, ...) and latent metrics (``invertkit.metrics.LATENT_METRICS``: ``nscd``,
            LSAP's NSCD of the result's latent, StyleGAN2 only). Checked before any work: an unknown
            name is a ConfigError, ``nscd`` for a generator without style spaces a CapabilityError.
        progress: a reporter (``invertkit.progress.Reporter``, e.g. the command line's
            ``progress.terminal.TerminalReporter``) shown every step of the method's phases; the
            result is the same with or without it. None (the default): no reporting, no cost.
        **options: fields of the method's options dataclass (e.g. ``space``, ``steps``, ``seed``).
    """
    want = (G.channels, G.resolution, G.resolution)
    if degradation is not None:
        want = (degradation.observed_channels(G.channels), degradation.observed_size(G.resolution), degradation.observed_size(G.resolution))
    if images.dim() != 4 or tuple(images.shape[1:]) != want:
        raise ImageError(
            f"images must be N x {want[0]} x {want[1]} x {want[2]} for {G.name}"
            f"{' after ' + degradation.describe() if degradation else ''}, got {list(images.shape)}; "
            "read files with invertkit.io.images.read_images(paths, size, channels)"
        )
    check_images(images, "images")
    if reference is not None:
        check_images(reference, "reference")
    if image_ids is not None and len(image_ids) != images.shape[0]:
        raise ConfigError(f"image_ids has {len(image_ids)} entries for {images.shape[0]} images")
    spec = METHODS.get(method)
    opts = make_options(method, **options)
    extra_metrics = check_extra_metrics(G, extra_metrics)
    ctx = RunContext(
        degradation=degradation,
        init_latent=init_latent.to(G.device) if init_latent is not None else None,
        image_ids=image_ids,
        reference=reference.to(G.device).float() if reference is not None else None,
        extra_metrics=tuple(extra_metrics),
        progress=progress,
    )
    observation = images.to(G.device).float()
    if degradation is not None:  # a real photo given with a mask: its hole is not part of what was observed
        observation = degradation.hide_unknown(observation)
    result = spec.run(G, observation, opts, ctx)
    # methods may resolve "auto" options; their resolved values win in the recorded config
    result.config = {"method": method, **dataclasses.asdict(opts), **result.config, "space": result.space}
    if degradation is not None:
        result.config["degradation"] = degradation.describe()
    return result


from . import basincma as _basincma  # noqa: E402,F401  (registers "basincma")
from . import cma as _cma  # noqa: E402,F401  (registers "cma")
from . import diffusion as _diffusion  # noqa: E402,F401  (registers the diffusion and flow methods)
from . import encoder as _encoder  # noqa: E402,F401  (registers "encoder" and "restyle")
from . import hybrid as _hybrid  # noqa: E402,F401  (registers "hybrid")
from . import hyperstyle as _hyperstyle  # noqa: E402,F401  (registers "hyperstyle", hypernetwork refinement)
from . import optimize as _optimize  # noqa: E402,F401  (registers "optimize")
from . import plain as _plain  # noqa: E402,F401  (registers "plain", the baseline)
from . import pti as _pti  # noqa: E402,F401  (registers "pti", pivotal tuning)

__all__ = ["METHODS", "InversionResult", "MethodSpec", "RunContext", "invert", "make_options"]
