"""Inputs of a run that are not options (they come from the caller, not from flags)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from ..degradations import Degradation
from ..progress import Reporter


@dataclass
class RunContext:
    """Per-run inputs shared by all methods.

    Attributes:
        degradation: operator applied to reconstructions inside the loss (restoration), or None.
        init_latent: latents for ``init="given"`` (``[N, ...]`` in the method's base space).
        image_ids: each image's position in the whole run (seeds derive from it; default 0..N-1).
        reference: clean images to score against when the observation is a simulated degradation.
        extra_metrics: names from ``invertkit.metrics.METRICS`` to add to the per-image scores.
        extra_terms: more loss terms, name -> (weight, fn); ``fn(latent, images) -> [B]`` gets the
            candidates' base-space latents and their rendered (undegraded) images; e.g. the hybrid
            method's domain regulariser ``||latent - E(G(latent))||^2``.
        progress: where the method reports its steps (``invertkit.progress``); None: nowhere, no work.
    """

    degradation: Degradation | None = None
    init_latent: Tensor | None = None
    image_ids: list[int] | None = None
    reference: Tensor | None = None
    extra_metrics: tuple[str, ...] = ()
    extra_terms: dict[str, tuple[float, Callable[[Tensor, Tensor], Tensor]]] = field(default_factory=dict)
    progress: Reporter | None = None
