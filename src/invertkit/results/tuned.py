"""``TunedInversion``: a pivot latent per image plus that image's own tuned weights (PTI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.tuning import apply_delta, read_delta, save_delta
from .base import select_rows
from .latent import LatentInversion

DELTA_SUFFIX = "_delta.safetensors"


@dataclass(frozen=True)
class DeltaBase:
    """What the weight deltas were made from: the base generator's name, weight fingerprint and class."""

    name: str
    digest: str
    cls: str

    def meta(self) -> dict[str, str]:
        return {"base": self.name, "base_digest": self.digest, "base_class": self.cls}


@dataclass
class Pivot:
    """The pivot method's own outcome, before tuning.

    Attributes:
        method: the method that found the pivots (``hybrid``, ``optimize`` ...).
        reconstructions: the base generator's images of the pivots ``N x C x H x W`` (None when read back
            from a run folder without them).
        metrics: its per-image scores (also kept in the result's rows as ``<name>_pivot``).
        config: its resolved options.
        seconds: its wall time.
    """

    method: str
    reconstructions: Tensor | None = None
    metrics: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class TunedInversion(LatentInversion):
    """Pivots (``latents``, in ``space``) and, per image, a weight delta: image ``i`` is drawn by
    ``G + deltas[i]`` at ``latents[i]`` (a layerwise pivot, ``f:LAYER``: by the tail of ``G + deltas[i]``
    from ``layer_state``).

    Attributes:
        deltas: per image, ``{weight name: tuned - base}`` for the tensors tuning changed (float32, CPU).
        base: the generator the deltas belong to.
        pivot: the pivot method's outcome.
        tuning_steps: per image, the tuning steps taken (early stop can end them before the budget).
    """

    deltas: list[dict[str, Tensor]] = field(default_factory=list)
    base: DeltaBase | None = None
    pivot: Pivot | None = None
    tuning_steps: list[int] = field(default_factory=list)

    kind: ClassVar[str] = "tuned"

    def generator(self, G: Generator, i: int) -> Generator:
        """Image ``i``'s tuned generator: a copy of ``G`` (the base) plus ``deltas[i]``.

        Raises:
            ConfigError: ``i`` out of range. CheckpointError: ``G`` is not the base generator.
        """
        if not 0 <= i < len(self.deltas):
            raise ConfigError(f"image index {i} is out of range for a result of {len(self.deltas)} images")
        meta = self.base.meta() if self.base is not None else None
        return apply_delta(G, self.deltas[i], meta=meta, source=f"the weight delta of image {i}")

    def generators(self, G: Generator) -> list[Generator]:
        """Every image's tuned generator (each a full copy of ``G``: for a few images at a time)."""
        return [self.generator(G, i) for i in range(self.n)]

    @torch.inference_mode()
    def render(self, G: Generator) -> Tensor:
        """Image ``i`` drawn by its tuned generator: from its pivot latent, or, for a layerwise pivot
        (``layer_state``: hyperstyle on an fs encoder's pivots), by the tuned tail from the state at the cut."""
        out = []
        for i in range(self.n):
            T = self.generator(G, i)
            one = LatentInversion(latents=self.latents[i : i + 1], space=self.space, reconstructions=self.reconstructions[:0],
                                  noise=None if self.noise is None else {k: v[i : i + 1] for k, v in self.noise.items()},
                                  layer_state=None if self.layer_state is None else self.layer_state.select([i]))
            out.append(one.render(T))
            del T  # one tuned copy alive at a time
        return torch.cat(out) if out else self.reconstructions[:0]

    def select(self, index: Sequence[int]) -> TunedInversion:
        index = list(index)
        pivot = None
        if self.pivot is not None:
            pivot = Pivot(self.pivot.method, select_rows(self.pivot.reconstructions, index),
                          [self.pivot.metrics[i] for i in index] if self.pivot.metrics else [], dict(self.pivot.config),
                          self.pivot.seconds * len(index) / max(self.n, 1))
        return TunedInversion(**self._common_select(index), **self._own_select(index),
                              deltas=[self.deltas[i] for i in index], base=self.base, pivot=pivot,
                              tuning_steps=[self.tuning_steps[i] for i in index] if self.tuning_steps else [])

    @classmethod
    def concat(cls, parts: Sequence[TunedInversion]) -> TunedInversion:  # type: ignore[override]
        first = parts[0]
        pivot = None
        if first.pivot is not None:
            recons = [p.pivot.reconstructions for p in parts if p.pivot is not None]
            pivot = Pivot(first.pivot.method, torch.cat(recons) if all(r is not None for r in recons) else None,  # type: ignore[misc]
                          [m for p in parts if p.pivot for m in p.pivot.metrics], dict(first.pivot.config),
                          sum(p.pivot.seconds for p in parts if p.pivot))
        return cls(**cls._common_concat(parts), **cls._own_concat(parts), deltas=[d for p in parts for d in p.deltas],
                   base=first.base, pivot=pivot, tuning_steps=[s for p in parts for s in p.tuning_steps])

    # ---- files -----------------------------------------------------------------------------------
    def save_item(self, i: int, folder: Path, stem: str, G: Generator, *, image: str | None = None) -> list[str]:
        """``<stem>.npz`` (the pivot) and ``<stem>_delta.safetensors`` (the image's weight delta)."""
        names = super().save_item(i, folder, stem, G, image=image)
        base = self.base or DeltaBase(G.name, G.fingerprint(), type(G).__name__)
        meta = {**base.meta(), "method": self.method, "space": self.space, "pivot_file": f"{stem}.npz",
                **({"image": image} if image is not None else {})}
        save_delta(folder / f"{stem}{DELTA_SUFFIX}", self.deltas[i], meta)
        return [*names, f"{stem}{DELTA_SUFFIX}"]

    @classmethod
    def with_deltas(cls, latent: LatentInversion, delta_files: Sequence[Path]) -> TunedInversion:
        """A result read from latent files plus each image's ``<stem>_delta.safetensors``."""
        deltas, base = [], None
        for path in delta_files:
            tensors, meta = read_delta(path)
            deltas.append(tensors)
            base = DeltaBase(str(meta.get("base", "")), str(meta.get("base_digest") or ""), str(meta.get("base_class", "")))
        fields = {k: getattr(latent, k) for k in ("latents", "space", "reconstructions", "metrics", "history", "timings",
                                                  "config", "noise", "layer_state", "composite")}
        return cls(**fields, deltas=deltas, base=base)
