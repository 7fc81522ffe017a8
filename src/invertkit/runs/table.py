"""The rows of a dataset run (``OUT/results/part-*.parquet``): one row per input image.

Schema (Arrow types; every Parquet reader maps them: pandas, pyarrow, DuckDB, Spark, Polars):

==================== ================= =============================================================
column               type              meaning
==================== ================= =============================================================
id                   string            the input's stable id (path relative to the dataset, or id column)
source               string            where it was read from (a file, or ``<parquet file>:<row>``)
status               string            ``ok`` or ``error``
error                string (null)     why an input failed: one line naming it and the cause
method               string            the inversion method
space                string            the latent space of ``latent``
kind                 string (null)     the result type: ``latent``, ``tuned`` (pti) or ``diffusion``
latent               list<float32>     the latent, flattened (row-major); null for errors
latent_shape         list<int32>       its shape without the batch dimension (``[18, 512]`` for W+)
latent_dtype         string            ``float32``
state                binary (null)     what re-renders the row besides the latent: the bytes of the
                                       small-run latent file (``results.files``: noise maps, layerwise
                                       state, loss curve), a ``.npz``
state_extra          binary (null)     pti: the image's weight delta; diffusion methods: the sampling
                                       state (safetensors bytes, as ``latents/<stem>_delta|_state``)
seconds              float64           the image's share of its batch's wall time (results.Timings.image_seconds)
evaluations          float64           network evaluations of the image (NFE for diffusion methods)
config_fingerprint   string            the run configuration's fingerprint (``run.json``)
reconstruction       binary (null)     PNG of the reconstruction (only with ``--save-images parquet``)
<metric>             float64 (null)    every metric of the run: psnr, ssim, mse, mae, psnr_observed,
                                       nscd, lpips, ... (a row of a failed or non-finite result: null)
==================== ================= =============================================================
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from torch import Tensor

from ..generators.base import Generator
from ..io.images import tensor_to_pil
from ..results import InversionResult
from ..results.health import diverged_message, nonfinite_images

BASE_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("method", pa.string()),
    pa.field("space", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("latent", pa.list_(pa.float32())),
    pa.field("latent_shape", pa.list_(pa.int32())),
    pa.field("latent_dtype", pa.string()),
    pa.field("state", pa.binary()),
    pa.field("state_extra", pa.binary()),
    pa.field("seconds", pa.float64()),
    pa.field("evaluations", pa.float64()),
    pa.field("config_fingerprint", pa.string()),
    pa.field("reconstruction", pa.binary()),
]
BASE_NAMES = tuple(f.name for f in BASE_FIELDS)
OK, ERROR = "ok", "error"


def schema(metric_names: Sequence[str]) -> pa.Schema:
    """The run's schema: the base columns, then one float64 column per metric (in the given order)."""
    return pa.schema([*BASE_FIELDS, *(pa.field(m, pa.float64()) for m in metric_names)])


def png_bytes(image: Tensor) -> bytes:
    buf = io.BytesIO()
    tensor_to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def result_rows(result: InversionResult, G: Generator, ids: Sequence[str], sources: Sequence[str], *,
                fingerprint: str, seconds: Sequence[float], with_png: bool = False) -> list[dict[str, Any]]:
    """One row per image of ``result`` (ids/sources in the same order). An image whose latent,
    reconstruction or metrics are not finite becomes an ``error`` row: a NaN is never a score."""
    rows: list[dict[str, Any]] = []
    diverged = nonfinite_images(result)
    with tempfile.TemporaryDirectory(prefix="invertkit-row-") as tmp:
        folder = Path(tmp)
        for i, ident in enumerate(ids):
            latent = result.latents[i].detach().float().cpu()
            recon = result.reconstructions[i]
            metrics = dict(result.metrics[i]) if result.metrics else {}
            row: dict[str, Any] = {"id": ident, "source": sources[i], "method": result.method, "space": result.space,
                                   "kind": result.kind, "seconds": float(seconds[i]),
                                   "evaluations": float(result.timings.evaluations[i]) if result.timings.evaluations else None,
                                   "config_fingerprint": fingerprint}
            if i in diverged:
                rows.append({**row, "status": ERROR, "error": diverged_message(sources[i], diverged[i])})
                continue
            names = result.save_item(i, folder, f"r{i}", G, image=ident)
            files = [(folder / n).read_bytes() for n in names]
            for n in names:
                (folder / n).unlink()
            row.update(status=OK, error=None, latent=latent.numpy().ravel(), latent_shape=list(latent.shape),
                       latent_dtype="float32", state=files[0], state_extra=files[1] if len(files) > 1 else None,
                       reconstruction=png_bytes(recon) if with_png else None)
            row.update({k: _finite(float(v)) for k, v in metrics.items()})
            rows.append(row)
    return rows


def error_row(ident: str, source: str, message: str, *, method: str, fingerprint: str) -> dict[str, Any]:
    """The row of an input that could not be inverted (unreadable, refused, diverged)."""
    return {"id": ident, "source": source, "status": ERROR, "error": message, "method": method,
            "config_fingerprint": fingerprint}


def to_table(rows: Sequence[dict[str, Any]], metric_names: Sequence[str]) -> pa.Table:
    """Rows -> an Arrow table of the run's schema (absent values are null; metrics outside the
    schema are a programming error, caught here)."""
    sch = schema(metric_names)
    extra = {k for r in rows for k in r} - set(sch.names)
    if extra:
        raise ValueError(f"row columns outside the run's schema: {sorted(extra)}")
    columns = {}
    for f in sch:
        values = [r.get(f.name) for r in rows]
        if f.name == "latent":
            values = [None if v is None else np.asarray(v, dtype=np.float32) for v in values]
        columns[f.name] = pa.array(values, type=f.type)
    return pa.table(columns, schema=sch)


def conform(tables: Sequence[pa.Table], metric_names: Sequence[str]) -> pa.Table:
    """Tables of rows (each with the metric columns its rows had) as one table of the run's schema:
    missing metric columns are null, the columns in schema order."""
    sch = schema(metric_names)
    parts = []
    for t in tables:
        columns = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in sch]
        parts.append(pa.Table.from_arrays(columns, schema=sch))
    return pa.concat_tables(parts)


def rows_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) -> a table with exactly the metric columns they have."""
    return to_table(rows, metric_names_of(rows))


def metric_names_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The metric columns of rows, in first-seen order."""
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in BASE_NAMES and k not in names]
    return names


def safe_name(ident: str) -> str:
    """A relative file path for an id (``a/b/x.jpg`` -> ``a/b/x.jpg``): folders kept, unsafe characters,
    ``..`` and absolute roots removed; a hash suffix when anything had to change, so two ids never share a file."""
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", p) for p in ident.replace("\\", "/").split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")] or ["image"]
    name = "/".join(parts)
    if name != ident:
        name += "-" + hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return name
