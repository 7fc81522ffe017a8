"""The extra metrics a run may ask for (``--metrics``, ``invert(..., extra_metrics=...)``), checked
before any work is done.

Two kinds of extra metric exist:

* image metrics (:data:`~.registry.METRICS`): a function of a reconstruction and its reference,
  ``fn(a, b) -> [N]``, available for every generator;
* latent metrics (:data:`LATENT_METRICS`): a function of the result's *latent* alone (never of its
  image), available only for generators with the capability they need. ``nscd`` (LSAP's Normalized
  Style Space Cosine Distance, :func:`.nscd.nscd`) needs :class:`StyleSpaces`.

:func:`check_extra_metrics` is called by ``invert`` and by the ``invert`` / ``bench`` commands right
after the generator is loaded, so a run that cannot deliver a metric is refused with one line (exit
status 2 on the command line) before an image is read or a run folder written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import Capability, StyleSpaces, require
from .registry import METRICS

__all__ = ["LATENT_METRICS", "LatentMetric", "check_extra_metrics", "known_metrics"]


@dataclass(frozen=True)
class LatentMetric:
    """A metric of the result's latent.

    Attributes:
        capability: what the generator must have for the metric to be defined.
        purpose: how a refusal names the request (the start of :func:`require`'s sentence).
    """

    capability: type[Capability]
    purpose: str


LATENT_METRICS: dict[str, LatentMetric] = {
    "nscd": LatentMetric(StyleSpaces, "--metrics nscd (LSAP's NSCD, computed from the inverted latent's style vectors)"),
}


def known_metrics() -> list[str]:
    """Every name ``--metrics`` accepts on some generator (image and latent metrics), sorted."""
    return sorted({*METRICS, *LATENT_METRICS})


def check_extra_metrics(G: Generator, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` without repeats, in order, once each is known and defined for ``G``.

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
        CapabilityError: a latent metric ``G`` cannot compute, e.g. ``nscd`` for a DCGAN or a diffusion
            model (one line naming the capability and the generators that have it).
    """
    out: list[str] = []
    for name in names:
        latent = LATENT_METRICS.get(name)
        if latent is not None:
            require(G, latent.capability, latent.purpose)
        elif name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}; known: {', '.join(known_metrics())}")
        if name not in out:
            out.append(name)
    return tuple(out)
