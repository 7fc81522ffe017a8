"""What a worker needs to invert batches: a picklable description, rebuilt in each worker process."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides a dataset run's rows (and how workers rebuild the model).

    Attributes:
        generator, weights, device: as ``load_generator(generator, device, weights=weights)``.
        method, options: the inversion method and the options given for it.
        degrade, mask, simulate: restoration settings, as ``invertkit invert``'s flags.
        metrics: extra metric names.
        prompt_embeds: diffusion models: a file of named prompt embeddings to add.
        size, channels: what each input is decoded to (the generator's, or the degraded observation's).
        max_pixels: inputs declaring more pixels are error rows, never decoded.
        save_png: put a PNG of each reconstruction into the rows (``--save-images parquet``).
        fingerprint: the run configuration's fingerprint, written into every row.
        threads: torch threads of a worker (None: leave torch's setting alone).
    """

    generator: str
    method: str
    size: int
    channels: int
    fingerprint: str
    weights: str | None = None
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    degrade: str | None = None
    mask: str | None = None
    simulate: bool = False
    metrics: tuple[str, ...] = ()
    prompt_embeds: str | None = None
    max_pixels: int = 89_478_485
    save_png: bool = False
    threads: int | None = None


def id_key(ident: str) -> int:
    """The integer an image's seeds derive from: a hash of its id, so an image gets the same random
    draws whatever batch, worker, engine or resumed session inverts it."""
    return int.from_bytes(hashlib.sha256(ident.encode("utf-8", "surrogateescape")).digest()[:4], "big") & 0x7FFFFFFF
