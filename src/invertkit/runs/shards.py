"""The Parquet shards of a dataset run: ``OUT/results/part-NNNNNN.parquet``.

A shard is written under a temporary name and renamed when complete (``runs.atomic``), so a shard
that exists is whole and a killed writer leaves at most a temporary file, which readers ignore and
the next run deletes. Each id is in at most one shard: a resumed run skips the ids already written,
and ``--retry-failed`` first rewrites the shards that hold error rows without them (again by rename),
so a crash in between only leaves those ids to be done again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError
from .atomic import remove_temporaries, write_atomic
from .table import ERROR, OK, schema

RESULTS = "results"
_SHARD = re.compile(r"^part-(\d+)\.parquet$")


class ShardStore:
    """The ``results/`` folder of a dataset run."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.folder = Path(out) / RESULTS

    def shards(self) -> list[Path]:
        """Complete shards, in write order."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _SHARD.match(p.name))]
        return [p for _, p in sorted(found)]

    def clean(self) -> int:
        """Delete temporary shards of an interrupted writer; returns how many."""
        return remove_temporaries(self.folder)

    def _next_index(self) -> int:
        shards = self.shards()
        return int(_SHARD.match(shards[-1].name).group(1)) + 1 if shards else 0  # type: ignore[union-attr]

    def write(self, table: pa.Table) -> Path:
        """Write ``table`` as the next shard (atomically); returns its path."""
        path = self.folder / f"part-{self._next_index():06d}.parquet"
        return write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))

    def read_status(self) -> tuple[set[str], set[str]]:
        """``(ids done ok, ids that failed)`` over all shards; reads only the id and status columns."""
        ok: set[str] = set()
        failed: set[str] = set()
        for p in self.shards():
            t = _read(p, ["id", "status"])
            for ident, status in zip(t.column("id").to_pylist(), t.column("status").to_pylist()):
                (ok if status == OK else failed).add(ident)
        return ok, failed

    def drop_errors(self) -> int:
        """Rewrite every shard holding error rows without them (``--retry-failed``); returns the rows dropped."""
        dropped = 0
        for p in self.shards():
            t = _read(p, None)
            keep = pc.equal(t.column("status"), OK)
            n = t.num_rows - int(pc.sum(keep).as_py() or 0)
            if n == 0:
                continue
            kept = t.filter(keep)
            if kept.num_rows:
                write_atomic(p, lambda tmp, kept=kept: pq.write_table(kept, tmp, compression="zstd"))
            else:
                p.unlink()
            dropped += n
        return dropped

    def read(self, columns: Iterable[str] | None = None, ids: Iterable[str] | None = None) -> pa.Table:
        """All rows (or those of ``ids``) as one table; shards written with other metric columns are
        unified by name (a column a shard lacks reads as null)."""
        wanted = None if ids is None else pa.array(sorted(set(ids)), type=pa.string())
        parts = []
        for p in self.shards():
            t = _read(p, None if columns is None else list(columns))
            if wanted is not None:
                t = t.filter(pc.is_in(t.column("id"), value_set=wanted))
            parts.append(t)
        if not parts:  # nothing written yet: the base columns, no rows
            empty = schema([]).empty_table()
            return empty if columns is None else empty.select([c for c in columns if c in empty.column_names])
        return pa.concat_tables(parts, promote_options="default")


def _read(path: Path, columns: list[str] | None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: damaged result shard ({str(exc)[:120]}); move it away and run the command again "
                          "to redo its images") from None


__all__ = ["ERROR", "OK", "RESULTS", "ShardStore"]
