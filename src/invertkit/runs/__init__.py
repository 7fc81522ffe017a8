"""Run folders: written while a run goes on (:class:`RunWriter`), read back into typed results
(:func:`load_run`)."""

from typing import Any

from .reader import Run, load_items, load_run
from .writer import RunWriter, write_run


def load_results(out: Any, **kwargs: Any) -> Any:
    """A dataset run's rows (pyarrow Table or pandas DataFrame) or, with ``G`` and ``ids``, their typed
    results: ``runs.dataset_reader.load_results`` (imported on first use: it needs pyarrow)."""
    from .dataset_reader import load_results as read

    return read(out, **kwargs)


__all__ = ["Run", "RunWriter", "load_items", "load_results", "load_run", "write_run"]
