"""A dataset run from start to resume: plan, feed an engine, write shards, keep run.json current.

The runner is the only writer of ``OUT`` (``runs.lock``). It lists the inputs as a stream (ids only
are kept, to skip what is done and never write an id twice), hands batches to the engine, and
appends the rows that come back to an in-memory buffer written as one Parquet shard every
``shard_size`` rows or ``flush_seconds`` seconds, whichever comes first: a SIGKILL loses at most
that much finished work, a SIGINT/SIGTERM or a full disk loses none (the buffer is written first).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError
from ..generators.base import Generator
from ..io.sources import Entry, ParquetColumns, dataset_entries
from ..progress import Reporter, track
from ..runs.atomic import write_bytes_atomic, write_text_atomic
from ..runs.config import config_difference
from ..runs.dataset_reader import LAYOUT
from ..runs.interrupt import Interrupts
from ..runs.lock import RunLock
from ..runs.shards import ShardStore
from ..runs.table import BASE_NAMES, ERROR, conform, safe_name
from .engines import RayOptions, run_local, run_ray
from .job import JobSpec
from .worker import BatchInverter

DATASET_FORMAT = 1  # version of the dataset layout (run.json "dataset_format")


@dataclass
class RunSummary:
    """What one session of a dataset run did."""

    out: Path
    total: int  # inputs listed
    skipped: int  # already written by earlier sessions
    done: int  # rows written by this session
    failed: int  # error rows written by this session
    failed_total: int  # error rows in the whole run
    seconds: float
    interrupted: int | None = None  # the signal that stopped it
    startup_seconds: float | None = None  # until the first rows came back (listing, model, Ray start-up)
    steady_images_per_second: float | None = None  # after that

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DatasetRunner:
    """One session of a dataset run into ``out``.

    Attributes:
        out: the run folder.
        inputs: the DATASET arguments (folders, globs, lists, Parquet, files).
        spec: what decides the rows (``JobSpec``); ``config`` the run's identity (``runs.config``).
        engine: ``local`` or ``ray`` (``ray`` options in ``ray``).
        batch_size: images per batch (a batch is inverted together).
        shard_size, flush_seconds: when buffered rows are written as a shard.
        retry_failed: re-run the inputs whose rows are errors.
        save_images: None, ``files`` (``OUT/images/<id>.png``) or ``parquet`` (a ``reconstruction`` column).
        progress: where the images done are reported (``invertkit.progress``; the command line's bar on a
            terminal, plain lines otherwise), one update per batch of rows; None: nowhere.
        G: the generator already loaded here; the local engine inverts with it.
    """

    out: Path
    inputs: Sequence[str]
    spec: JobSpec
    config: dict[str, Any]
    generator: dict[str, Any]
    engine: str = "local"
    ray: RayOptions = field(default_factory=RayOptions)
    columns: ParquetColumns = field(default_factory=ParquetColumns)
    batch_size: int = 8
    shard_size: int = 1000
    flush_seconds: float = 60.0
    retry_failed: bool = False
    save_images: str | None = None
    progress: Reporter | None = None
    G: Generator | None = None  # the generator this process loaded (the local engine uses it, not a second copy)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.store = ShardStore(self.out)
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.last_flush = time.monotonic()
        self.metric_names: list[str] = []
        self.doc: dict[str, Any] = {}
        self.written = self.failed = 0

    # ---- run.json ----------------------------------------------------------------------------------
    def _open_doc(self) -> None:
        path = self.out / "run.json"
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{path}: not readable JSON ({exc}); the run folder is damaged: use another --out") from None
            if not isinstance(doc, dict) or doc.get("layout") != LAYOUT:
                raise ConfigError(f"{self.out} holds a run of the small layout (per-image files); use another --out for a dataset run")
            diff = config_difference(doc.get("config") or {}, self.config)
            if diff:
                raise ConfigError(f"{self.out} holds a run of another configuration ({diff}); use the same options to "
                                  "continue it, or another --out")
            self.doc = doc
            self.metric_names = list(doc.get("metric_columns") or [])
        else:
            from ..io.runinfo import environment
            from ..version import __version__

            self.doc = {"layout": LAYOUT, "dataset_format": DATASET_FORMAT, "invertkit": __version__,
                        "created": _now(), "environment": environment(), "inputs": list(self.inputs),
                        "config": self.config, "config_fingerprint": self.spec.fingerprint,
                        "generator": self.generator, "metric_columns": [], "sessions": [],
                        "schema": "see invertkit.runs.table (README: dataset runs)"}
            if self.spec.degrade or self.spec.mask:  # the report re-observes its best and worst images (the paths:
                # the config keeps only the mask files' digests)
                self.doc["restoration"] = {"degrade": self.spec.degrade, "mask": self.spec.mask, "simulate": bool(self.spec.simulate)}
        self._save_doc()

    def _save_doc(self) -> None:
        write_text_atomic(self.out / "run.json", json.dumps(self.doc, indent=2, default=str) + "\n")

    # ---- rows --------------------------------------------------------------------------------------
    def _take(self, table: pa.Table, stop: Interrupts) -> None:
        """Buffer a batch's rows (an Arrow table of ``runs.table``'s schema); write a shard when due."""
        with stop.critical():
            if self.save_images == "files":
                recon = table.column("reconstruction").to_pylist()
                for ident, data in zip(table.column("id").to_pylist(), recon):
                    if data is not None:
                        write_bytes_atomic(self.out / "images" / f"{safe_name(ident)}.png", data)
                k = table.schema.get_field_index("reconstruction")
                table = table.set_column(k, "reconstruction", pa.nulls(table.num_rows, pa.binary()))
            self.buffer.append(table)
            self.buffered += table.num_rows
            self.written += table.num_rows
            self.failed += int(pc.sum(pc.equal(table.column("status"), ERROR)).as_py() or 0)
            if self.buffered >= self.shard_size or time.monotonic() - self.last_flush >= self.flush_seconds:
                self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        for t in self.buffer:
            self.metric_names += [n for n in t.column_names if n not in BASE_NAMES and n not in self.metric_names]
        self.store.write(conform(self.buffer, self.metric_names))
        self.buffer, self.buffered = [], 0
        self.last_flush = time.monotonic()
        if self.doc.get("metric_columns") != self.metric_names:
            self.doc["metric_columns"] = list(self.metric_names)
            self._save_doc()

    # ---- the session -------------------------------------------------------------------------------
    def _batches(self, skip: set[str]) -> Iterator[list[Entry]]:
        batch: list[Entry] = []
        for e in dataset_entries(self.inputs, columns=self.columns):
            if e.id in skip:
                continue
            batch.append(e)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def run(self) -> RunSummary:
        """Run (or continue) the dataset run; returns what this session did. Raises ``Interrupted``
        after writing everything finished when a signal stops it."""
        start = time.perf_counter()
        with RunLock(self.out), Interrupts() as stop:
            self._open_doc()
            self.store.clean()
            if self.retry_failed:
                self.store.drop_errors()
            ok, failed = self.store.read_status()
            skip = ok | failed
            total = todo = 0
            for e in dataset_entries(self.inputs, columns=self.columns):  # one pass; ids are not kept
                total += 1
                todo += e.id not in skip
            session = {"started": _now(), "arguments": list(self.inputs), "engine": self.engine,
                       "workers": self.ray.workers if self.engine == "ray" else 1, "batch_size": self.batch_size, "inputs": total,
                       "skipped": total - todo, "retry_failed": self.retry_failed}
            session["planning_seconds"] = round(time.perf_counter() - start, 3)  # lock, status of the shards, listing
            self.doc["sessions"].append(session)
            self._save_doc()
            # per batch of rows, not per optimiser step: batches run in worker processes (Ray) or in turn (local)
            bar = track(self.progress, f"{self.spec.method}: images", todo, "failed", unit="img")
            interrupted = None

            first: list[float] = []  # when the first rows came back, and how many: start-up vs steady rate

            def sink(rows: pa.Table) -> None:
                if not first:
                    first.extend([time.perf_counter(), rows.num_rows])
                self._take(rows, stop)
                bar.step(self.failed, n=rows.num_rows)

            try:
                if self.engine == "ray":
                    spec = self.spec if self.spec.threads else _with_threads(self.spec, self.ray.cpus_per_worker)
                    run_ray(self._batches(skip), spec, sink, self.ray)
                else:
                    run_local(self._batches(skip), self.spec, sink, inverter=BatchInverter(self.spec, self.G))
            except KeyboardInterrupt as exc:
                interrupted = getattr(exc, "signum", 2)
                exc.detail = (f"after {self.written} of {todo} inputs this session (all written to {self.out}); "  # type: ignore[attr-defined]
                              "run the same command again to continue")
                raise
            finally:
                bar.end()
                with stop.critical():
                    self._flush()
                    seconds = time.perf_counter() - start
                    steady = time.perf_counter() - first[0] if first else 0.0
                    session.update(finished=_now(), seconds=round(seconds, 3), written=self.written, failed=self.failed,
                                   images_per_second=round(self.written / seconds, 4) if seconds > 0 else None,
                                   # start-up: listing, loading the model, starting Ray and its actors, the first batch
                                   startup_seconds=round(first[0] - start, 3) if first else None,
                                   steady_images_per_second=round((self.written - first[1]) / steady, 4) if steady > 0 and self.written > first[1] else None,
                                   interrupted=interrupted)
                    ok_now, failed_now = self.store.read_status()
                    self.doc["counts"] = {"inputs": total, "ok": len(ok_now), "failed": len(failed_now)}
                    self._save_doc()
        return RunSummary(self.out, total, total - todo, self.written, self.failed, len(failed_now), seconds, interrupted,
                          session.get("startup_seconds"), session.get("steady_images_per_second"))


def _with_threads(spec: JobSpec, threads: int) -> JobSpec:
    from dataclasses import replace

    return replace(spec, threads=threads)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


__all__ = ["DatasetRunner", "RunSummary"]
