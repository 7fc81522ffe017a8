"""``report.html`` of a run folder, built from the folder alone (run.json, metrics.json, images/ and the
loss curves kept in latents/), so the writer at the end of a run and ``invertkit report OUT`` (after an
interruption, or to refresh an old report) produce the same page; ``history.csv`` (the curves as
data, :mod:`invertkit.runs.history`) is written beside it from the same files.

A restoration run's page shows per image the clean target (when the observation was simulated from
it), the observation as the model saw it, the reconstruction G(latent) and, for inpainting, the
delivered composite, and scores the composite beside the reconstruction. A run whose rows name
groups (the demo: real photographs and controls) gets each group's means apart."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import ConfigError
from ..io.images import pil_to_tensor
from ..io.report import GroupMeans, ReportItem, write_report
from .history import read_curves, write_history_csv
from .writer import TIMING_COLUMNS, read_json

SUBTITLE = "files beside this report: images/, latents/, metrics.csv, metrics.json, history.csv (loss per step), run.json"


def _png(path: Path) -> Tensor | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_tensor(img)[0]
    except (OSError, UnidentifiedImageError):
        return None


def _finite_mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return sum(vals) / len(vals) if vals else None


def group_means(rows: Sequence[dict[str, Any]]) -> list[GroupMeans]:
    """Each group's mean metrics (rows with a ``group``, in the order the groups first appear);
    empty when no row names a group."""
    order = list(dict.fromkeys(str(r["group"]) for r in rows if r.get("group") is not None))
    out = []
    for g in order:
        mine = [r for r in rows if r.get("group") == g]
        keys = {k for r in mine for k, v in r.items() if k not in TIMING_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        means = {k: m for k in keys if (m := _finite_mean(mine, k)) is not None}
        out.append(GroupMeans(g, len(mine), means))
    return out


def delivered_text(degradation: str, composite: bool) -> str:
    """What a restoration run delivers, in words: the inpainting composite, else the reconstruction itself."""
    if composite:
        return "the composite: observed pixels kept where the mask is known, the generator's pixels in the hole (images/<name>_restored.png)"
    return (f"the reconstruction G(latent) itself: under {degradation} no pixel is observed exactly, so nothing of the "
            "observation is pasted back")


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
    restoration = doc.get("restoration") if isinstance(doc.get("restoration"), dict) else None
    if restoration is not None:
        degradation = str(restoration.get("degradation", "?"))
        summary["restoration"] = degradation + (
            ": observations simulated from the clean targets, scored against them" if restoration.get("clean_reference")
            else ": real observations, no clean image known (only the fit to the observation is scored)")
        summary["delivered result"] = delivered_text(degradation, any("psnr_composite" in r for r in rows)
                                                     or any(isinstance(e, dict) and "delivered" in e for e in doc.get("items") or []))
    groups = group_means(rows)
    scope = [("", rows)] if len(groups) < 2 else [(f" ({g.group})", [r for r in rows if r.get("group") == g.group]) for g in groups]
    for key, label in (("psnr", "mean PSNR"), ("ssim", "mean SSIM"), ("psnr_composite", "mean PSNR of the delivered composite"),
                       ("ssim_composite", "mean SSIM of the delivered composite"),
                       ("psnr_observed", "mean PSNR of the observation fit"), ("nscd", "mean NSCD")):
        unit = " dB" if key.startswith("psnr") else ""
        # groups (real photographs, controls) are never averaged together: one value per group
        parts = [f"{mean:.3f}{unit}{suffix}" for suffix, mine in scope if (mean := _finite_mean(mine, key)) is not None]
        if parts:
            summary[label] = ", ".join(parts)
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
    restoration = doc.get("restoration") if isinstance(doc.get("restoration"), dict) else None
    clean = restoration is None or bool(restoration.get("clean_reference"))
    items, curves, notes, histories = [], {}, list(doc.get("notes") or []), []
    for k, entry in enumerate(entries):
        name, stem = str(entry.get("image", entry["stem"])), str(entry["stem"])
        own = read_curves(folder, stem)
        if own:
            histories.append((name, own))
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
        observed = _png(folder / str(entry["observed"])) if entry.get("observed") else None
        delivered = _png(folder / str(entry["delivered"])) if entry.get("delivered") else None
        group = str(row["group"]) if row.get("group") is not None else None
        # without a clean image the saved target is the observation itself: shown once, as the observation
        items.append(ReportItem(name, target if clean or observed is None else None, recon, metrics, extras,
                                observed=observed, delivered=delivered, group=group))
        if own.get("loss"):
            curves[name] = own["loss"]
    groups = group_means(rows)
    log_every = (doc.get("config") or {}).get("log_every", 1)
    write_history_csv(folder, histories, log_every=log_every if isinstance(log_every, int) and log_every > 0 else 1)
    recon_label = "reconstruction"
    if restoration is not None:  # without a composite, the reconstruction is what the run delivers
        recon_label = "reconstruction G(w)" if any(it.delivered is not None for it in items) else "reconstruction G(w) = delivered"
    labels = ("clean target" if restoration is not None else "target", recon_label)
    return write_report(folder / "report.html", title=str(doc.get("title") or "invertkit inversion"), subtitle=SUBTITLE,
                        items=items, summary=summary_of(doc, rows), curves=curves, failures=dict(doc.get("failures") or {}),
                        notes=notes, pair_labels=labels, restoration_labels=("observed (as the model saw it)", "delivered composite"),
                        groups=groups if len(groups) > 1 else ())
