"""The fields every inversion result has, and its timings.

Units: images are ``N x C x H x W`` float tensors in [-1, 1]; ``timings.seconds`` is the wall time
of the whole call (all N images), ``timings.image_seconds()[i]`` image ``i``'s share of it (see
:class:`Timings`), ``timings.evaluations[i]`` the network evaluations image ``i``
needed: generator forward passes for GAN methods (every start and line-search trial included),
model evaluations (NFE) of the inversion for diffusion methods, a guided evaluation counting 2.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor

from ..generators.base import Generator

R = TypeVar("R", bound="InversionResult")


@dataclass
class Timings:
    """How long a call took and how much it evaluated.

    Attributes:
        seconds: wall time of the whole call, all images together.
        steps: the method's step budget (optimiser steps, encoder passes, sampling steps).
        evaluations: per image, the network evaluations it needed (see the module docstring).
        phases: wall time of named phases of the call (``"pivot"``, ``"tuning"``, ``"encoder"``,
            ``"invert"``), seconds.
        per_image: each image's own seconds where the method measured them (PTI tunes one image
            at a time: its share of the batched pivot plus its own tuning), else empty; see
            :meth:`image_seconds`.

    An image's seconds (:meth:`image_seconds`, the ``seconds`` column of metrics.csv) are its share of
    the call's wall time: ``per_image`` where measured, else ``seconds`` split in proportion to the
    evaluations each image needed. The images of a batch are optimised together, one forward pass per
    step, so a step's time is theirs alike; an image that stops early (``target_psnr``, null-text's
    early stop) needed fewer evaluations and gets a smaller share. Equal evaluations give equal shares
    (the batch's time over its size); the shares of a call always sum to ``seconds``.
    """

    seconds: float = 0.0
    steps: int = 0
    evaluations: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    per_image: list[float] = field(default_factory=list)

    def image_seconds(self) -> list[float]:
        """Each image's seconds (see the class docstring); one per entry of ``evaluations``."""
        n = len(self.evaluations)
        if len(self.per_image) == n:
            return list(self.per_image)
        total = float(sum(self.evaluations))
        if total <= 0 or not all(math.isfinite(e) and e >= 0 for e in self.evaluations):
            return [self.seconds / max(n, 1)] * n
        return [self.seconds * e / total for e in self.evaluations]

    def seconds_per_image(self) -> float:
        """``seconds`` over the number of images (the mean of :meth:`image_seconds`)."""
        return self.seconds / max(len(self.evaluations), 1)

    def mean_evaluations(self) -> float:
        return float(np.mean(self.evaluations)) if self.evaluations else 0.0

    def select(self, index: Sequence[int]) -> Timings:
        """The timings of images ``index``: their evaluations and seconds (``seconds`` is the sum of their
        :meth:`image_seconds`), phases shared pro rata."""
        if not self.evaluations:  # nothing recorded (a result built by hand, or read without its tables)
            return Timings(0.0, self.steps, [], {})
        own = self.image_seconds()
        mine = [own[i] for i in index]
        share = len(index) / len(self.evaluations)
        return Timings(float(sum(mine)), self.steps, [self.evaluations[i] for i in index],
                       {k: v * share for k, v in self.phases.items()}, mine)

    @staticmethod
    def concat(parts: Sequence[Timings]) -> Timings:
        phases: dict[str, float] = {}
        for p in parts:
            for k, v in p.phases.items():
                phases[k] = phases.get(k, 0.0) + v
        return Timings(sum(p.seconds for p in parts), max((p.steps for p in parts), default=0),
                       [e for p in parts for e in p.evaluations], phases, [s for p in parts for s in p.image_seconds()])

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "steps": self.steps, "evaluations": list(self.evaluations), "phases": dict(self.phases),
                "image_seconds": self.image_seconds()}


def select_rows(x: Tensor | None, index: Sequence[int]) -> Tensor | None:
    """Rows ``index`` of a batch-first tensor (None stays None)."""
    return None if x is None else x[torch.as_tensor(list(index), dtype=torch.long, device=x.device)]


def select_history(history: dict[str, Tensor], index: Sequence[int]) -> dict[str, Tensor]:
    """Columns ``index`` of per-image curves ``[steps, N]``."""
    idx = torch.as_tensor(list(index), dtype=torch.long)
    return {k: v[:, idx] for k, v in history.items()}


def concat_history(parts: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Curves of several batches side by side; shorter ones padded with their last value (or NaN)."""
    keys = [k for k in parts[0] if all(k in p for p in parts)]
    out = {}
    for k in keys:
        steps = max(p[k].shape[0] for p in parts)
        cols = []
        for p in parts:
            v = p[k].float()
            if v.shape[0] < steps:
                fill = v[-1:] if v.shape[0] else torch.full((1, v.shape[1]), float("nan"))
                v = torch.cat([v, fill.expand(steps - v.shape[0], v.shape[1])])
            cols.append(v)
        out[k] = torch.cat(cols, dim=1)
    return out


@dataclass
class InversionResult(abc.ABC):
    """Latents found for a batch of images, with everything needed to judge and reproduce them.

    Attributes:
        latents: ``[N, *latent_shape]`` in ``space`` (the method's result; see each type).
        space: the space name the method worked in (``"w+"``, ``"z-sphere"``, ``"f:16"``, ``"noise"`` ...).
        reconstructions: ``N x C x H x W`` in [-1, 1]: what the result renders to.
        metrics: one row per image, metric name -> value (protocol in ``invertkit.metrics``).
        history: per-step curves, name -> ``[steps, N]`` (CPU), e.g. ``"loss"``.
        timings: see :class:`Timings`.
        config: every option as resolved for this generator (written to run.json).
    """

    latents: Tensor
    space: str
    reconstructions: Tensor
    metrics: list[dict[str, float]] = field(default_factory=list)
    history: dict[str, Tensor] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    config: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "result"

    @property
    def n(self) -> int:
        """Number of images."""
        return int(self.latents.shape[0])

    @property
    def method(self) -> str:
        """The method that produced the result (from ``config``)."""
        return str(self.config.get("method", "?"))

    @abc.abstractmethod
    def render(self, G: Generator) -> Tensor:
        """Re-render the result with ``G`` (the generator it was made with): ``N x C x H x W``, nominal
        [-1, 1] (GANs are not clamped, diffusion samples are, as the run's own), equal to
        ``reconstructions`` up to float rounding."""

    @abc.abstractmethod
    def select(self: R, index: Sequence[int]) -> R:
        """The result of images ``index`` only (same type)."""

    @classmethod
    @abc.abstractmethod
    def concat(cls: type[R], parts: Sequence[R]) -> R:
        """One result of the images of several results of this type (e.g. the batches of a run)."""

    @abc.abstractmethod
    def save_item(self, i: int, folder: Path, stem: str, G: Generator, *, image: str | None = None) -> list[str]:
        """Write image ``i``'s files into ``folder`` (a run's ``latents/``) as ``<stem>.npz`` and
        siblings; returns the file names written. ``G`` is the generator of the run, ``image`` the
        name of the image (recorded in the files)."""

    def _common_select(self, index: Sequence[int]) -> dict[str, Any]:
        return {"latents": select_rows(self.latents, index), "space": self.space,
                "reconstructions": select_rows(self.reconstructions, index),
                "metrics": [dict(self.metrics[i]) for i in index] if self.metrics else [],
                "history": select_history(self.history, index), "timings": self.timings.select(index),
                "config": dict(self.config)}

    @staticmethod
    def _common_concat(parts: Sequence[InversionResult]) -> dict[str, Any]:
        first = parts[0]
        return {"latents": torch.cat([p.latents for p in parts]), "space": first.space,
                "reconstructions": torch.cat([p.reconstructions for p in parts]),
                "metrics": [m for p in parts for m in p.metrics],
                "history": concat_history([p.history for p in parts]) if first.history else {},
                "timings": Timings.concat([p.timings for p in parts]), "config": dict(first.config)}
