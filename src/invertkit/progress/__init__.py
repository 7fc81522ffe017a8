"""The progress channel: long loops say how far they are, a reporter decides what to show.

A loop opens a :class:`Phase` with :func:`track` (a label, its step total, and what its value is:
``"loss"``, ``"psnr"``) and calls ``phase.step(value)`` once per step. The value is passed *lazily*: a
tensor (per-image ``[B]`` values, shown as their mean) or a callable, read only when the reporter wants
an update. The reporter is asked :meth:`Reporter.due` every step (a clock comparison), so a step costs
a function call, and a host read of the value (a device sync) happens only a few times per second at
most. With no reporter, :func:`track` returns :data:`QUIET`, whose ``step`` does nothing.

The reporter travels explicitly (``invert(..., progress=reporter)``, ``RunContext.progress``); there is
no global state. A reporter never changes a result: it only reads values the loop already computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor

LazyValue = Tensor | Callable[[], float] | float | None
"""A step's value as the loop has it: a tensor (read as its mean when shown), a callable, a number, or none."""


@dataclass(frozen=True)
class StepUpdate:
    """What a reporter is shown about one phase.

    Attributes:
        label: the phase, e.g. ``"adam"``, ``"pivot: adam"``, ``"tuning image 3/8"``, ``"invert"``.
        step: steps done in the phase, 0..total.
        total: the phase's step budget (a phase may end early: per-image early stopping).
        metric: what ``value`` is (``"loss"``, ``"psnr"``, ``"mse"``), or ``""``.
        value: the value so far (mean over the batch), or None when the loop has none.
        unit: what a step is (``"step"``, ``"img"`` for a command's images done).
    """

    label: str
    step: int
    total: int
    metric: str = ""
    value: float | None = None
    unit: str = "step"


@runtime_checkable
class Reporter(Protocol):
    """Receives the updates of the phases of long work (the terminal bar, a test's recorder)."""

    def start(self, label: str, total: int, unit: str = "step") -> None:
        """A phase of ``total`` steps (of ``unit``) begins."""

    def due(self, step: int, total: int) -> bool:
        """Whether an update at ``step`` is wanted now: called every step, so it must be cheap (a clock
        check); only when it says yes is the step's value read (a host sync on an accelerator)."""

    def update(self, update: StepUpdate) -> None:
        """Show ``update``."""

    def end(self, update: StepUpdate) -> None:
        """The phase ended at ``update.step`` (<= total; the value is read as for an update)."""


def _read(value: LazyValue) -> float | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        return float(value.detach().float().mean())
    if callable(value):
        return float(value())
    return float(value)


class Phase:
    """One phase of a loop reporting to a reporter (see the module docstring). Not thread-safe."""

    __slots__ = ("reporter", "label", "total", "metric", "unit", "done", "_value", "_last_j")

    def __init__(self, reporter: Reporter | None, label: str, total: int, metric: str = "", unit: str = "step") -> None:
        self.reporter, self.label, self.total, self.metric, self.unit = reporter, label, int(total), metric, unit
        self.done = 0
        self._value: LazyValue = None
        self._last_j: int | None = None
        if reporter is not None:
            reporter.start(label, self.total, unit)

    def step(self, value: LazyValue = None, n: int = 1) -> None:
        """``n`` more steps done; ``value``: the latest value (lazy, read only if the reporter wants it)."""
        r = self.reporter
        if r is None:
            return
        self.done += n
        self._value = value
        if r.due(self.done, self.total):
            r.update(StepUpdate(self.label, self.done, self.total, self.metric, _read(value), self.unit))

    def hook(self, j: int, x: Tensor) -> Tensor:
        """A sampler's ``on_step(j, x) -> x`` hook (``diffusion.results.StepHook``): one step per new
        ``j`` (two-sequence samplers call it twice with the same j); returns ``x`` unchanged."""
        if self.reporter is not None and j != self._last_j:
            self._last_j = j
            self.step()
        return x

    def end(self) -> None:
        """Close the phase (at the steps done: an early stop ends it before its total)."""
        if self.reporter is not None:
            self.reporter.end(StepUpdate(self.label, self.done, self.total, self.metric, _read(self._value), self.unit))
            self.reporter = None


QUIET = Phase(None, "", 0)
"""The phase of a loop nobody watches: ``step``, ``hook`` and ``end`` do nothing."""


def track(reporter: Reporter | None, label: str, total: int, metric: str = "", unit: str = "step") -> Phase:
    """A phase reporting to ``reporter``, or :data:`QUIET` when it is None (no work at all)."""
    return QUIET if reporter is None else Phase(reporter, label, total, metric, unit)


class Prefixed:
    """A reporter that passes everything on with ``prefix: `` before each label (a method run inside
    another, e.g. PTI's pivot inversion: ``"pivot: adam"``)."""

    def __init__(self, inner: Reporter, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def _label(self, label: str) -> str:
        return f"{self.prefix}: {label}" if label else self.prefix

    def start(self, label: str, total: int, unit: str = "step") -> None:
        self.inner.start(self._label(label), total, unit)

    def due(self, step: int, total: int) -> bool:
        return self.inner.due(step, total)

    def update(self, update: StepUpdate) -> None:
        self.inner.update(dataclasses.replace(update, label=self._label(update.label)))

    def end(self, update: StepUpdate) -> None:
        self.inner.end(dataclasses.replace(update, label=self._label(update.label)))


def prefixed(reporter: Reporter | None, prefix: str) -> Reporter | None:
    """``reporter`` with ``prefix`` before its labels (None stays None)."""
    return None if reporter is None else Prefixed(reporter, prefix)


__all__ = ["QUIET", "LazyValue", "Phase", "Prefixed", "Reporter", "StepUpdate", "prefixed", "track"]
