"""Run folders: written while a run goes on (:class:`RunWriter`), read back into typed results
(:func:`load_run`)."""

from .reader import Run, load_items, load_run
from .writer import RunWriter, write_run

__all__ = ["Run", "RunWriter", "load_items", "load_run", "write_run"]
