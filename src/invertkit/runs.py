"""Writing a run directory: latents, images, metrics, run.json and report.html for one inversion."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from .generators.base import Generator
from .io.images import save_image
from .io.latents import save_latents
from .io.report import ReportItem, write_report
from .io.runinfo import write_run_json
from .methods.result import InversionResult
from .metrics import PROTOCOL


def write_run(
    out_dir: str | os.PathLike[str],
    G: Generator,
    result: InversionResult,
    targets: Tensor,
    names: Sequence[str],
    *,
    title: str = "invertkit inversion",
    failures: dict[str, str] | None = None,
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write everything a user needs to look at and reproduce ``result`` into ``out_dir``.

    Files: ``latents.npz`` (key = space), ``images/<name>_target.png`` and ``_recon.png``,
    ``metrics.json`` / ``metrics.csv`` (one row per image), ``run.json``, ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names)
    save_latents(out / "latents.npz", result.latents, result.space, names)
    for i, name in enumerate(names):
        stem = Path(name).stem
        save_image(targets[i], out / "images" / f"{stem}_target.png")
        save_image(result.reconstructions[i], out / "images" / f"{stem}_recon.png")

    per_image_seconds = result.timings.get("seconds", 0.0) / max(len(names), 1)
    rows = [{"image": n, **m, "seconds": per_image_seconds} for n, m in zip(names, result.metrics)]
    (out / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    with open(out / "metrics.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image"])
        writer.writeheader()
        writer.writerows(rows)

    write_run_json(
        out / "run.json",
        generator=G.describe(),
        config=result.config,
        timings=result.timings,
        metric_protocol={**PROTOCOL, "resolution": f"{G.resolution}x{G.resolution} (the generator's)"},
        images=names,
        failures=failures or {},
        **(extra or {}),
    )

    loss = result.history.get("loss")
    curves = {name: loss[:, i].tolist() for i, name in enumerate(names)} if loss is not None else None
    mean_psnr = sum(m.get("psnr", 0.0) for m in result.metrics) / max(len(result.metrics), 1)
    summary = {
        "generator": f"{G.name} ({G.resolution}x{G.resolution}, {G.channels} channel{'s' if G.channels > 1 else ''})",
        "method": f"{result.config.get('method', '?')} in space {result.space}",
        "options": ", ".join(f"{k}={v}" for k, v in result.config.items() if k != "method"),
        "images": str(len(names)),
        "mean PSNR": f"{mean_psnr:.2f} dB (uint8-quantised, [0, 1], at {G.resolution} px)",
        "time": f"{result.timings.get('seconds', 0.0):.1f} s for {int(result.timings.get('steps', 0))} steps, all images in one batch",
    }
    write_report(
        out / "report.html",
        title=title,
        subtitle=f"{len(names)} image(s) inverted into {G.name}; files beside this report: latents.npz, metrics.csv, run.json",
        items=[ReportItem(n, targets[i], result.reconstructions[i], m) for i, (n, m) in enumerate(zip(names, result.metrics))],
        summary=summary,
        curves=curves,
        failures=failures,
        notes=notes,
    )
    return out
