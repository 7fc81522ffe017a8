"""Reading a dataset run (``OUT/results/part-*.parquet``) back.

``load_results(OUT)`` returns every row as a pyarrow Table (``as_pandas=True``: a pandas DataFrame);
``load_results(OUT, ids=[...], G=G)`` returns the typed result of those rows (a :class:`Run`, the
same thing ``load_run`` returns for a small run), which edit, interpolate, regenerate and bench
accept. The table is read shard by shard with only the columns asked for, so a million-row run's
ids and metrics read in seconds without its latents.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import ConfigError
from ..generators.base import Generator
from ..io.images import pil_to_tensor
from ..results.diffusion import STATE_SUFFIX
from ..results.tuned import DELTA_SUFFIX
from .reader import Run, load_items
from .shards import RESULTS, ShardStore
from .table import BASE_NAMES, OK, safe_name

LAYOUT = "dataset"  # run.json "layout" of a dataset run


def is_dataset_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a dataset run folder (``results/`` of Parquet shards, or run.json saying so)."""
    p = Path(path)
    doc = p / "run.json"
    if doc.is_file():
        try:
            return json.loads(doc.read_text(encoding="utf-8")).get("layout") == LAYOUT
        except (OSError, ValueError, AttributeError):
            pass
    return (p / RESULTS).is_dir() and bool(ShardStore(p).shards())


def load_results(out: str | os.PathLike[str], *, ids: Sequence[str] | None = None, G: Generator | None = None,
                 columns: Sequence[str] | None = None, as_pandas: bool = False) -> Any:
    """A dataset run's rows, or the typed result of some of them.

    Args:
        out: the run folder (``invertkit invert ... --format parquet --out OUT``).
        ids: with ``G``: the rows to return as a typed result; without: filter the table to them.
        G: the run's generator: the typed result of ``ids`` (a :class:`Run`) is returned.
        columns: read only these columns (default all).
        as_pandas: a pandas DataFrame instead of a pyarrow Table.

    Returns:
        ``pyarrow.Table`` (columns ``id``, ``status``, ``error``, ``latent``, ``latent_shape``, metrics
        ...: ``runs.table``), a pandas DataFrame, or a :class:`Run` when ``G`` is given.
    """
    p = Path(out)
    if not is_dataset_run(p):
        raise ConfigError(f"{p}: not a dataset run (no results/part-*.parquet); small runs read with invertkit.load_run")
    if G is not None:
        return dataset_run(p, G, ids)
    table = ShardStore(p).read(columns, ids)
    return table.to_pandas() if as_pandas else table


def run_doc(folder: Path) -> dict[str, Any]:
    """``folder/run.json`` as a dict (empty when absent or unreadable: the shards still read)."""
    try:
        doc = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def dataset_run(folder: Path, G: Generator, ids: Sequence[str] | None, *, limit: int = 1000) -> Run:
    """The typed result of rows ``ids`` (all ok rows when None and there are at most ``limit``) of a
    dataset run, in the order of ``ids``. Reconstructions: the saved PNGs, else ``G``'s rendering."""
    store = ShardStore(folder)
    if ids is None:
        status = store.read(["id", "status"])
        ids = [i for i, s in zip(status.column("id").to_pylist(), status.column("status").to_pylist()) if s == OK]
        if len(ids) > limit:
            raise ConfigError(f"{folder}: {len(ids)} results; choose the ones to read (load_results(OUT, ids=[...], G=G), --ids on the CLI)")
    ids = list(ids)
    table = store.read(None, ids)
    rows = {r["id"]: r for r in table.to_pylist()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ConfigError(f"{folder}: no result with id {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    failed = [i for i in ids if rows[i]["status"] != OK]
    if failed:
        raise ConfigError(f"{folder}: {failed[0]!r} failed ({rows[failed[0]]['error']}); it has no result (--retry-failed re-runs it)")
    doc = run_doc(folder)
    chosen = [rows[i] for i in ids]
    with tempfile.TemporaryDirectory(prefix="invertkit-rows-") as tmp:
        latents = Path(tmp) / "latents"
        latents.mkdir()
        files = []
        for k, row in enumerate(chosen):
            f = latents / f"r{k}.npz"
            f.write_bytes(row["state"])
            if row.get("state_extra") is not None:
                suffix = STATE_SUFFIX if row["kind"] == "diffusion" else DELTA_SUFFIX
                (latents / f"r{k}{suffix}").write_bytes(row["state_extra"])
            files.append(f)
        pngs = [row.get("reconstruction") for row in chosen]
        recon = torch.cat([_png(b) for b in pngs]) if all(b is not None for b in pngs) else None
        result = load_items(files, G, config=dict(doc.get("config") or {}), reconstructions=recon)
    skip = {"seconds", "evaluations"}
    metric_names = [k for k in table.column_names if k not in BASE_NAMES and k not in skip]
    result.metrics = [{m: float(r[m]) for m in metric_names if r.get(m) is not None} for r in chosen]
    stems = [safe_name(i).replace("/", "_") for i in ids]  # what outputs made from a row are named after
    run = Run(folder, ids, stems, result, dict(doc.get("config") or {}),
              dict(doc.get("generator") or {}), {})
    run.check_generator(G)
    return run


def _png(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return pil_to_tensor(img)


__all__ = ["LAYOUT", "dataset_run", "is_dataset_run", "load_results", "run_doc"]
