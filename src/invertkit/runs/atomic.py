"""Atomic writes of run-folder files: the primitives live in :mod:`invertkit.io.atomic` (a lower
room) so that the files written by ``results`` and ``io`` (latents, states, deltas, images, reports)
use the same temporary names and the same one-line storage errors; run code imports them from here."""

from ..io.atomic import (
    TMP_MARK,
    StorageError,
    is_temporary,
    remove_temporaries,
    storage_errors,
    temporary_name,
    write_atomic,
    write_bytes_atomic,
    write_text_atomic,
)

__all__ = ["TMP_MARK", "StorageError", "is_temporary", "remove_temporaries", "storage_errors", "temporary_name", "write_atomic",
           "write_bytes_atomic", "write_text_atomic"]
