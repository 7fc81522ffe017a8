"""``report.html`` of a run folder, built from the folder alone (run.json, metrics.json, images/ and the
loss curves kept in latents/), so the writer at the end of a run and ``invertkit report OUT`` (after an
interruption, or to refresh an old report) produce the same page."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import ConfigError, InvertkitError
from ..io.images import pil_to_tensor
from ..io.report import ReportItem, write_report
from ..results.files import read_item
from .writer import TIMING_COLUMNS, read_json

SUBTITLE = "files beside this report: images/, latents/, metrics.csv, metrics.json, run.json"


def _png(path: Path) -> Tensor | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_tensor(img)[0]
    except (OSError, UnidentifiedImageError):
        return None


def _loss_curve(folder: Path, stem: str) -> list[float]:
    try:
        loss = read_item(folder / "latents" / f"{stem}.npz").history.get("loss")
    except InvertkitError:
        return []
    return [] if loss is None else loss.reshape(-1).tolist()


def summary_of(doc: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The report's summary table from run.json (``doc``) and the metric rows of the images it lists."""
    gen = doc.get("generator") or {}
    config = doc.get("config") or {}
    failures = doc.get("failures") or {}
    res, channels = gen.get("resolution", "?"), gen.get("channels", 0)
    seconds = float((doc.get("timings") or {}).get("seconds", 0.0))
    n = len(rows)
    status = doc.get("status")
    summary = {
        "generator": f"{gen.get('name', '?')} ({res}x{res}, {channels} channel{'s' if channels != 1 else ''})",
        "method": f"{config.get('method', '?')} in space {config.get('space', '?')}",
        "options": ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("method", "space")),
        "images": f"{n} inverted" + (f", {len(failures)} failed" if failures else "")
        + ("" if status in (None, "complete") else f" (run {status}: run the same command again to continue)"),
    }
    for key, label in (("psnr", "mean PSNR"), ("ssim", "mean SSIM"), ("psnr_observed", "mean PSNR of the observation fit"), ("nscd", "mean NSCD")):
        vals = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if vals:
            unit = " dB" if key.startswith("psnr") else ""
            summary[label] = f"{sum(vals) / len(vals):.3f}{unit}"
    nfe = [r["nfe_invert"] for r in rows if "nfe_invert" in r]
    if nfe:  # diffusion methods: model evaluations per image, inversion and reconstruction
        back = [r["nfe_reconstruct"] for r in rows if "nfe_reconstruct" in r]
        spread = f" (images {min(nfe):.0f} to {max(nfe):.0f})" if min(nfe) != max(nfe) else ""
        summary["model evaluations (NFE)"] = (f"{sum(nfe) / len(nfe):.0f} to invert{spread}, "
                                              f"{sum(back) / max(len(back), 1):.0f} to reconstruct, per image (mean)")
    if doc.get("deltas"):
        summary["tuned weights"] = f"{len(doc['deltas'])} delta file(s): latents/<name>_delta.safetensors (load_generator(G, delta=...))"
    summary["metric protocol"] = f"uint8-quantised images on [0, 1] at {res} px; PSNR = 10 log10(1/MSE)"
    summary["time"] = f"{seconds:.1f} s ({seconds / max(n, 1):.2f} s per image)"
    return summary


def build_report(folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/report.html`` from what the run folder holds; returns its path.

    Raises:
        ConfigError: no run.json (not a run folder written by ``invertkit invert``), or a damaged one.
    """
    folder = Path(folder)
    if not (folder / "run.json").is_file():
        raise ConfigError(f"{folder}: no run.json; expected a run folder written by `invertkit invert`")
    doc = read_json(folder / "run.json", "run.json")
    if not isinstance(doc, dict):
        raise ConfigError(f"{folder / 'run.json'}: not a run description (expected a JSON object)")
    entries = [e for e in doc.get("items") or [] if isinstance(e, dict) and "stem" in e]
    table = read_json(folder / "metrics.json", "metrics.json") if (folder / "metrics.json").is_file() else []
    table = [r for r in table if isinstance(r, dict)] if isinstance(table, list) else []
    rows = table[: len(entries)]  # rows beyond run.json's items belong to a batch that did not finish
    items, curves, notes = [], {}, list(doc.get("notes") or [])
    for k, entry in enumerate(entries):
        name, stem = str(entry.get("image", entry["stem"])), str(entry["stem"])
        target, recon = _png(folder / "images" / f"{stem}_target.png"), _png(folder / "images" / f"{stem}_recon.png")
        if target is None or recon is None:
            notes.append(f"{name}: images/{stem}_target.png or _recon.png is missing or unreadable; not shown")
            continue
        row = rows[k] if k < len(rows) else {}
        metrics = {m: float(v) for m, v in row.items() if m not in TIMING_COLUMNS and isinstance(v, (int, float))}
        extras = {}
        for label, file in (entry.get("edits") or {}).items():
            edited = _png(folder / file)
            if edited is not None:
                extras[str(label)] = edited
        items.append(ReportItem(name, target, recon, metrics, extras))
        curve = _loss_curve(folder, stem)
        if curve:
            curves[name] = curve
    return write_report(folder / "report.html", title=str(doc.get("title") or "invertkit inversion"), subtitle=SUBTITLE,
                        items=items, summary=summary_of(doc, rows), curves=curves, failures=dict(doc.get("failures") or {}),
                        notes=notes)
