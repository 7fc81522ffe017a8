"""``OUT/report.html`` of a dataset run, built from the folder alone (``invertkit report OUT`` rebuilds it).

Only the id, status, error and metric columns are read (never the latents), so the report of a
million-row run costs seconds; the best and worst few images are re-read from their sources and
rendered from their rows (their saved PNG, else the generator when one is given)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvertkitError
from ..generators.base import Generator
from ..io.dataset_report import DatasetReport, Extreme, ranking_metric, render
from ..io.images import decode_image
from ..runs.atomic import write_text_atomic
from ..runs.dataset_reader import dataset_run, run_doc
from ..runs.shards import ShardStore
from ..runs.table import OK, safe_name

SHOWN = 6  # best and worst images shown


def build(out: str | os.PathLike[str], G: Generator | None = None) -> DatasetReport:
    out = Path(out)
    doc = run_doc(out)
    store = ShardStore(out)
    names = list(doc.get("metric_columns") or [])
    table = store.read(None if not store.shards() else ["id", "status", "error", "source", *names])
    rows_ok = np.asarray([s == OK for s in table.column("status").to_pylist()], dtype=bool)
    metrics = {}
    for m in names:
        if m in table.column_names:
            v = np.asarray([np.nan if x is None else x for x in table.column(m).to_pylist()], dtype=np.float64)[rows_ok]
            metrics[m] = v[np.isfinite(v)]
    ids = table.column("id").to_pylist()
    failures = [(i, str(e)) for i, s, e in zip(ids, table.column("status").to_pylist(), table.column("error").to_pylist()) if s != OK]
    cfg = doc.get("config") or {}
    gen = doc.get("generator") or {}
    sessions = list(doc.get("sessions") or [])
    seconds = sum(float(s.get("seconds") or 0) for s in sessions)
    written = sum(int(s.get("written") or 0) for s in sessions)
    summary = {
        "generator": f"{gen.get('name', '?')} (weights {str(gen.get('fingerprint', '?'))[:12]})",
        "method": f"{cfg.get('method', '?')}: " + ", ".join(f"{k}={v}" for k, v in (cfg.get("options") or {}).items()),
        "inputs": ", ".join(str(i) for i in doc.get("inputs") or []),
        "rows": f"{len(ids)} ({int(rows_ok.sum())} ok, {len(failures)} failed)",
        "throughput": f"{written / seconds:.2f} images/s over {len(sessions)} session(s), {seconds:.0f} s" if seconds else "",
        "files": "results/part-*.parquet (one row per input; schema: README, dataset runs), run.json",
        "config fingerprint": str(doc.get("config_fingerprint", "")),
    }
    restoration = doc.get("restoration") if isinstance(doc.get("restoration"), dict) else None
    if restoration is not None:
        what = "+".join(x for x in (f"mask {restoration.get('mask')}" if restoration.get("mask") else "", restoration.get("degrade") or "") if x)
        summary["restoration"] = what + (": observations simulated from the clean inputs, scored against them" if restoration.get("simulate")
                                         else ": real observations, no clean image known (only the fit to the observation is scored)")
        summary["delivered result"] = ("the composite (observed pixels kept, the generator's in the hole): psnr_composite, ssim_composite"
                                       if "psnr_composite" in metrics or restoration.get("mask") else
                                       "the reconstruction itself (no pixel is observed exactly)")
    rep = DatasetReport(title=f"invertkit dataset run: {out.name}", summary=summary, metrics=metrics, failures=failures,
                        sessions=sessions)
    by = ranking_metric([m for m in names if m in metrics and metrics[m].size])
    if by is not None:
        v = np.asarray([np.nan if x is None else x for x in table.column(by).to_pylist()], dtype=np.float64)
        v[~rows_ok] = np.nan
        order = [int(k) for k in np.argsort(np.where(np.isfinite(v), v, np.inf)) if np.isfinite(v[k])]
        rep.ranked_by = by
        sources = table.column("source").to_pylist()
        rep.worst = [Extreme(ids[k], float(v[k])) for k in order[:SHOWN]]
        rep.best = [Extreme(ids[k], float(v[k])) for k in order[::-1][:SHOWN]]
        _attach_images(out, rep.worst + rep.best, {ids[k]: sources[k] for k in order[:SHOWN] + order[::-1][:SHOWN]}, G)
        if restoration is not None and G is not None:
            _attach_observations(rep, restoration, int((cfg.get("options") or {}).get("seed") or 0), {ids[k]: sources[k] for k in order}, G)
    if G is None:
        rep.notes.append("reconstructions of the best and worst images are shown when the report is built with the "
                         "run's generator (invertkit report OUT -g GENERATOR), or saved with --save-images")
    return rep


def _attach_images(out: Path, extremes: list[Extreme], sources: dict[str, str], G: Generator | None) -> None:
    """Targets re-read from their files; reconstructions from the rows (PNG) or rendered by ``G``."""
    wanted = list(dict.fromkeys(e.id for e in extremes))
    recon: dict[str, Any] = _saved_reconstructions(out, wanted)
    if G is not None and len(recon) < len(wanted):
        try:
            run = dataset_run(out, G, wanted)
            recon = {i: run.result.reconstructions[k] for k, i in enumerate(wanted)}
        except InvertkitError:
            recon = {}
    for e in extremes:
        e.reconstruction = recon.get(e.id)
        src = sources.get(e.id, "")
        if G is not None and os.path.isfile(src):
            try:
                e.target = decode_image(src, G.resolution, G.channels, name=src)[0]
            except InvertkitError:
                e.target = None


def _attach_observations(rep: DatasetReport, restoration: dict[str, Any], seed: int, sources: dict[str, str], G: Generator) -> None:
    """Restoration runs: each extreme's observation as the model saw it (re-simulated from the clean
    input with the run's seed and the image's id, or the observed file itself) and, for inpainting,
    the delivered composite; a simulated run's target stays the clean input, a real one's is dropped
    (it would repeat the observation). Nothing is added when the mask file is gone (a note says so)."""
    from ..degradations import parse_degradation, show_observation
    from .job import id_key

    try:
        degradation = parse_degradation(restoration.get("degrade"), G.resolution, restoration.get("mask"))
    except InvertkitError as exc:
        rep.notes.append(f"observations of the best and worst images not shown: {exc}")
        return
    if degradation is None:
        return
    simulate = bool(restoration.get("simulate"))
    for e in rep.worst + rep.best:
        src = sources.get(e.id, "")
        try:
            if simulate:
                if e.target is None:
                    continue
                observation = degradation.observe(e.target[None], ids=[id_key(e.id)], seed=seed)
            else:
                observation = decode_image(src, degradation.observed_size(G.resolution), degradation.observed_channels(G.channels), name=src)
                e.target = None
        except (InvertkitError, OSError):
            continue
        seen = degradation.hide_unknown(observation)
        e.observed = show_observation(seen, G.resolution, G.channels)[0]
        if e.reconstruction is not None:
            composite = degradation.composite(e.reconstruction[None], seen)
            e.delivered = None if composite is None else composite[0]


def _saved_reconstructions(out: Path, ids: list[str]) -> dict[str, Any]:
    """Reconstructions saved by ``--save-images``: ``OUT/images/<id>.png`` or the ``reconstruction`` column."""
    found: dict[str, Any] = {}
    for i in ids:
        f = out / "images" / f"{safe_name(i)}.png"
        if f.is_file():
            try:
                found[i] = decode_image(str(f), *_png_size(f), name=str(f))[0]
            except InvertkitError:
                pass
    rest = [i for i in ids if i not in found]
    if rest:
        try:
            table = ShardStore(out).read(["id", "reconstruction"], rest)
        except (InvertkitError, KeyError, ValueError):
            return found
        for i, data in zip(table.column("id").to_pylist(), table.column("reconstruction").to_pylist()):
            if data is not None:
                found[i] = decode_image(data, *_png_size(data), name=i)[0]
    return found


def _png_size(source: Path | bytes) -> tuple[int, int]:
    """``(size, channels)`` of a saved reconstruction, to decode it as it is."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        return img.size[0], 1 if img.mode == "L" else 3


def write_dataset_report(out: str | os.PathLike[str], G: Generator | None = None) -> Path:
    """Build and write ``OUT/report.html``; returns its path."""
    out = Path(out)
    return write_text_atomic(out / "report.html", render(build(out, G)))


__all__ = ["build", "write_dataset_report"]
