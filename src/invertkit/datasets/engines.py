"""Engines: how batches of entries become rows.

- ``local``: one process. A background thread reads and decodes the next batches (at most
  ``prefetch`` ahead, so memory stays bounded) while the model works on the current one.
- ``ray``: Ray Data. Decoding is a Ray Data ``map`` (tasks), inversion a ``map_batches`` over an
  actor pool (one model per actor, ``workers`` actors with ``cpus_per_worker`` / ``gpus_per_worker``
  each); rows stream back to the driver, which is the only writer (``runner``), so shards are
  written whole and resume works the same as locally.

Both call the same ``decode_batch`` and ``BatchInverter`` on the same batches, so they give the same
rows. Ray Data's own checkpointing is not used: resume is the runner's (ids already in the shards are
never submitted), which avoids the reported deadlocks of that feature on small clusters; and a local
cluster is started with one logical CPU more than the actors take, so read tasks are never starved
by an actor pool that holds every CPU (both pitfalls reported on Ray's issue tracker).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..io.sources import Entry
from ..runs.table import rows_table
from .job import JobSpec
from .worker import BatchInverter, DecodedBatch, decode_batch

Rows = list[dict[str, Any]]
Sink = Callable[[Any], None]  # receives each batch's rows as a pyarrow Table (runs.table's schema)

# Images per Ray actor call: a call costs Ray about 50 ms whatever it holds (measured on 2 CPUs), so a
# call carries several batches (never splitting one); small enough that work spreads over the actors.
CALL_IMAGES = 128
# Actor calls per Ray Data execution: the driver lists at most this many calls ahead, so its memory
# and Ray's object store do not grow with the dataset (each window starts its actor pool afresh).
WINDOW_CALLS = 256


@dataclass(frozen=True)
class RayOptions:
    """``--workers``, ``--cpus-per-worker``, ``--gpus-per-worker``, ``--address``."""

    workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    address: str | None = None


def run_local(batches: Iterable[list[Entry]], spec: JobSpec, sink: Sink, *, prefetch: int = 2,
              inverter: BatchInverter | None = None) -> None:
    """Invert ``batches`` in this process; ``sink`` receives each batch's rows as soon as they exist."""
    worker = inverter or BatchInverter(spec)
    todo: queue.Queue = queue.Queue(maxsize=max(prefetch, 1))
    stop = threading.Event()
    END = object()

    def read() -> None:
        try:
            for entries in batches:
                item = decode_batch(entries, spec.size, spec.channels, spec.max_pixels)
                while not stop.is_set():
                    try:
                        todo.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
            todo.put(exc)
            return
        todo.put(END)

    reader = threading.Thread(target=read, name="invertkit-decode", daemon=True)
    reader.start()
    try:
        while True:
            item = todo.get()
            if item is END:
                break
            if isinstance(item, BaseException):
                raise item
            sink(rows_table(worker(item)))
    finally:
        stop.set()
        reader.join(timeout=5)


# ---- ray -----------------------------------------------------------------------------------------
def _encode(entries: list[Entry]) -> list[dict[str, Any]]:
    return [asdict(e) for e in entries]


def _entries(dicts: list[dict[str, Any]]) -> list[Entry]:
    return [Entry(e["id"], e["source"], e["path"], tuple(e["parquet"]) if e["parquet"] else None) for e in dicts]


def _calls(batches: Iterable[list[Entry]]) -> Iterator[list[list[Entry]]]:
    """Consecutive batches grouped into actor calls of at least ``CALL_IMAGES`` images (a batch is
    never split: it is what the model inverts together, on either engine)."""
    call: list[list[Entry]] = []
    for b in batches:
        call.append(b)
        if sum(len(x) for x in call) >= CALL_IMAGES:
            yield call
            call = []
    if call:
        yield call


def _ray_decode(row: dict[str, Any], size: int, channels: int, max_pixels: int) -> dict[str, Any]:
    """A Ray Data ``map`` task: decode every batch of one call (pixels concatenated, errors per entry)."""
    batches = [decode_batch(_entries(b), size, channels, max_pixels) for b in json.loads(row["batches"])]
    return {"call": row["call"], "batches": row["batches"], "errors": json.dumps([d.errors for d in batches]),
            "pixels": b"".join(d.pixels.tobytes() for d in batches)}


class _RayInverter:
    """A Ray Data actor: one model, fed one call (several batches) at a time. The job is a class
    attribute of a subclass made per run, not a constructor argument: Ray keeps constructor arguments
    in its object store and warns that a restarted actor may lose them."""

    SPEC: JobSpec

    def __init__(self) -> None:
        self.spec = self.SPEC
        self.worker = BatchInverter(self.spec)

    def __call__(self, table: Any) -> Any:

        spec = self.spec
        per_image = spec.channels * spec.size * spec.size
        rows: Rows = []
        for row in table.to_pylist():
            pixels = np.frombuffer(row["pixels"], dtype=np.uint8)
            offset = 0
            for text, errors in zip(json.loads(row["batches"]), json.loads(row["errors"])):
                entries = _entries(text)
                n = len(entries)
                chunk = pixels[offset : offset + n * per_image].reshape(n, spec.channels, spec.size, spec.size).copy()
                offset += n * per_image
                rows += self.worker(DecodedBatch(entries, chunk, errors))
        return rows_table(rows)


def _start_ray(options: RayOptions) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'ray[data]' (make install includes it)") from None
    if ray.is_initialized():
        return ray
    import logging

    # Ray's own progress bars and execution banners would drown the one bar this run shows
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if options.address:
        ray.init(address=options.address, **quiet)
    else:
        # one logical CPU more than the actors hold: decode tasks always have room to run
        cpus = max(os.cpu_count() or 1, options.workers * options.cpus_per_worker) + 1
        ray.init(num_cpus=cpus, num_gpus=None if options.gpus_per_worker else 0, **quiet)
    return ray


def run_ray(batches: Iterable[list[Entry]], spec: JobSpec, sink: Sink, options: RayOptions) -> None:
    """Invert ``batches`` on a Ray cluster (a local one sized to this machine unless ``options.address``)."""
    _start_ray(options)
    import logging

    import ray.data

    for name in ("ray.data", "ray.data._internal"):  # Ray Data configures its loggers on import: quiet them after
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the runner shows one bar of images done
    ctx.print_on_execution_start = False
    calls = _calls(batches)
    while True:  # windows of calls: the driver never lists more than WINDOW_CALLS calls ahead
        window = [{"call": k, "batches": json.dumps([_encode(b) for b in c])} for k, c in enumerate(itertools.islice(calls, WINDOW_CALLS))]
        if not window:
            return
        ds = ray.data.from_items(window, override_num_blocks=len(window))
        ds = ds.map(_ray_decode, fn_kwargs={"size": spec.size, "channels": spec.channels, "max_pixels": spec.max_pixels},
                    num_cpus=0.5)
        actor = type("InvertkitInverter", (_RayInverter,), {"SPEC": spec})
        with warnings.catch_warnings():
            # max_restarts=0: a dead actor is not restarted (the run stops; running it again resumes it), and
            # Ray does not warn that a restart could lose the actor's constructor arguments. Ray 2.60 marks
            # passing it this way deprecated without a named replacement yet.
            warnings.simplefilter("ignore", DeprecationWarning)
            # no more actors than calls in the window: an idle actor would still load a model
            ds = ds.map_batches(actor, batch_size=1, batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(size=min(options.workers, len(window))), num_cpus=options.cpus_per_worker,
                                num_gpus=options.gpus_per_worker or None, max_restarts=0)
        for table in _batches(ds):
            sink(table)  # Arrow end to end: the driver only writes what the actors made


def _batches(ds: Any) -> Iterator[Any]:
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)


def shutdown_ray() -> None:
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
