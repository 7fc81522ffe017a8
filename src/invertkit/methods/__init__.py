"""Inversion methods, registered by name; ``invert`` is the one entry point.

A method is a callable ``method(G, images, options) -> InversionResult`` with a frozen options
dataclass whose defaults are the single source of defaults for the API and the CLI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..errors import ConfigError, ImageError
from ..generators.base import Generator
from ..registry import Registry
from .result import InversionResult


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function and its options dataclass."""

    run: Callable[[Generator, Tensor, Any], InversionResult]
    options: type


METHODS: Registry[MethodSpec] = Registry("inversion method")


def make_options(method: str, **kwargs: Any) -> Any:
    """Build the method's options dataclass from keyword arguments; unknown names are a ConfigError."""
    cls = METHODS.get(method).options
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"method {method!r} has no option(s) {unknown}; its options are {sorted(names)}")
    return cls(**kwargs)


def invert(G: Generator, images: Tensor, method: str = "optimize", **options: Any) -> InversionResult:
    """Find latents that make ``G`` reproduce ``images``.

    Args:
        G: any Generator.
        images: ``N x C x H x W`` in [-1, 1] with ``C, H, W == G.channels, G.resolution, G.resolution``.
        method: a registered method name (``invertkit.methods.METHODS.names()``).
        **options: fields of the method's options dataclass (e.g. ``space``, ``steps``, ``seed``).
    """
    want = (G.channels, G.resolution, G.resolution)
    if images.dim() != 4 or tuple(images.shape[1:]) != want:
        raise ImageError(
            f"images must be N x {want[0]} x {want[1]} x {want[2]} for {G.name}, got {list(images.shape)}; "
            "read files with invertkit.io.images.read_images(paths, G.resolution, G.channels)"
        )
    spec = METHODS.get(method)
    opts = make_options(method, **options)
    result = spec.run(G, images.to(G.device, dtype=images.dtype if images.is_floating_point() else None), opts)
    result.config = {"method": method, **dataclasses.asdict(opts), "space": result.space}
    return result


from . import optimize as _optimize  # noqa: E402,F401  (registers "optimize")

__all__ = ["METHODS", "InversionResult", "MethodSpec", "invert", "make_options"]
