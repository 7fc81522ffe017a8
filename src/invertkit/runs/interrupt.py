"""SIGINT and SIGTERM during a run: stop soon, but never in the middle of writing a file.

``with Interrupts() as stop:`` installs handlers for both signals. Outside a critical section a
signal raises :class:`Interrupted` at once (a long optimisation stops within a step); inside
``stop.critical()`` (writing a batch's files, a shard, run.json) it is remembered and raised when the
section ends, so every file on disk is whole and the folder can be resumed. The CLI exits with
128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; ``signum`` says which (exit status 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.detail: str | None = None  # where the run stopped, for the command's one line ("after 12 of 40 images; ...")


class Interrupts:
    """Signal handling for one run (main thread only; elsewhere it does nothing)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: int | None = None
        self._depth = 0
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth > 0:
            self.pending = signum
            return
        raise Interrupted(signum)

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A section that a signal must not cut (files are written whole)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self.pending is not None:
            signum, self.pending = self.pending, None  # raised once: the cleanup after it may use critical() too
            raise Interrupted(signum)

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)  # type: ignore[arg-type]
        self._old.clear()
