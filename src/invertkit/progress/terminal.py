"""The command line's reporter: a live tqdm bar per phase on a terminal, plain lines elsewhere.

On a terminal (``stream.isatty()``) each phase is a bar with its steps, the value so far (loss, PSNR)
and tqdm's ETA, redrawn at most every ``interval`` seconds; the bar is removed when its phase ends (a
run of many batches does not scroll). Elsewhere (a log file, a CI job, a pipe) no carriage returns:
one line when a phase has run ``plain_every`` seconds, or another ``plain_fraction`` of its steps and at
least ``plain_gap`` seconds, since its last line, and one when it ends, e.g.::

    invertkit: images 1-8 of 12, adam: step 150/300 (50%), loss 0.0412, 21 s, ETA 21 s

``context`` (set by the command between batches or methods: ``"images 9-12 of 12"``,
``"method 2 of 4 (pti)"``) comes first on every bar and line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from . import StepUpdate


@dataclass
class _Open:
    """A phase being shown: its tqdm bar (terminal) or the state of its plain lines."""

    label: str
    total: int
    started: float
    bar: Any = None
    next_step: int = 0
    next_time: float = 0.0
    last_line: float = 0.0


class TerminalReporter:
    """Shows phases on ``stream`` (default stderr); see the module docstring."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 0.2,
                 plain_every: float = 10.0, plain_fraction: float = 0.1, plain_gap: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _has_width(self.stream) if tty is None else tty
        self.interval, self.plain_every, self.plain_fraction, self.clock = interval, plain_every, plain_fraction, clock
        self.plain_gap = plain_gap  # a fraction's line waits this long after the last line (short phases: the end line only)
        self.context = ""
        self._open: list[_Open] = []  # nested phases (null-text's inner steps inside a batch ...), innermost last

    def set_context(self, text: str) -> None:
        """What the command is at (shown before every label until changed)."""
        self.context = text

    def _title(self, label: str) -> str:
        return ", ".join(p for p in (self.context, label) if p)

    def start(self, label: str, total: int, unit: str = "step") -> None:
        now = self.clock()
        phase = _Open(label, total, now)
        if self.tty:
            from tqdm import tqdm

            phase.bar = tqdm(total=total, desc=self._title(label), unit=unit, file=self.stream, leave=False,
                             position=len(self._open), dynamic_ncols=True, mininterval=self.interval)
            phase.next_time = now + self.interval
        else:
            phase.next_time = now + self.plain_every
            phase.next_step = self._fraction_step(total, 1)
            phase.last_line = now
        self._open.append(phase)

    def _fraction_step(self, total: int, k: int) -> int:
        return max(1, int(total * self.plain_fraction * k + 0.999999)) if total > 0 else 1

    def _phase(self, label: str) -> _Open | None:
        for phase in reversed(self._open):
            if phase.label == label:
                return phase
        return None

    def due(self, step: int, total: int) -> bool:
        phase = self._open[-1] if self._open else None
        if phase is None:
            return False
        now = self.clock()
        if self.tty:
            return now >= phase.next_time
        if step >= total:  # the end line says it
            return False
        return now >= phase.next_time or (step >= phase.next_step and now - phase.last_line >= self.plain_gap)

    def update(self, update: StepUpdate) -> None:
        phase = self._phase(update.label)
        if phase is None:
            return
        now = self.clock()
        if self.tty:
            bar = phase.bar
            if update.value is not None:
                bar.set_postfix_str(f"{update.metric or 'value'} {update.value:.4g}", refresh=False)
            bar.update(update.step - bar.n)  # tqdm redraws here (at most every mininterval)
            phase.next_time = now + self.interval
            return
        self._line(phase, update, now)
        phase.last_line = now
        phase.next_time = now + self.plain_every
        k = 1
        while self._fraction_step(update.total, k) <= update.step and k < 11:
            k += 1
        phase.next_step = self._fraction_step(update.total, k)

    def _line(self, phase: _Open, update: StepUpdate, now: float, end: bool = False) -> None:
        elapsed = now - phase.started
        parts = [f"{update.unit} {update.step}/{update.total}" + (f" ({100 * update.step / update.total:.0f}%)" if update.total else "")]
        if update.value is not None:
            parts.append(f"{update.metric or 'value'} {update.value:.4g}")
        parts.append(f"{elapsed:.0f} s")
        if end:
            parts.append("done" if update.step >= update.total else "stopped early")
        elif 0 < update.step < update.total:
            parts.append(f"ETA {elapsed / update.step * (update.total - update.step):.0f} s")
        print(f"invertkit: {self._title(update.label)}: {', '.join(parts)}", file=self.stream, flush=True)

    def end(self, update: StepUpdate) -> None:
        phase = self._phase(update.label)
        if phase is None:
            return
        self._open.remove(phase)
        if self.tty:
            phase.bar.close()
            return
        self._line(phase, update, self.clock(), end=True)

    def close(self) -> None:
        """Close any phase still open (an error or an interrupt left it)."""
        for phase in self._open:
            if phase.bar is not None:
                phase.bar.close()
        self._open.clear()


def _has_width(stream: TextIO) -> bool:
    """A terminal a bar can be drawn on: a tty whose width is known and not 0 (a pseudo-terminal with no
    size, as some job wrappers make, would get an empty bar: it gets plain lines instead)."""
    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False


def terminal_reporter(enabled: bool, stream: TextIO | None = None) -> TerminalReporter | None:
    """The reporter of a command: a :class:`TerminalReporter` on stderr, or None for ``--no-progress``."""
    return TerminalReporter(stream) if enabled else None
