"""The report of a dataset run: distributions, extremes, throughput and failures, not one row per image.

A run of a million images gets a page that answers "how good is it and what went wrong": per metric
the count, mean, quantiles and a histogram; the best and worst images (target and reconstruction
where they can be shown); throughput per session; failures grouped by cause with examples.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from .images import tensor_to_pil
from .report import CSS, png_data_uri


@dataclass
class Extreme:
    """One of the best or worst images: id, the ranking metric's value, images (``C x H x W`` in [-1, 1]).

    Restoration runs add the observation as the model saw it (``observed``, enlarged nearest to the
    generator's size) and the delivered inpainting composite (``delivered``); ``target`` is then the
    clean image of a simulated observation (None for a real one)."""

    id: str
    value: float
    reconstruction: Tensor | None = None
    target: Tensor | None = None
    observed: Tensor | None = None
    delivered: Tensor | None = None


@dataclass
class DatasetReport:
    """What the page shows (``write``'s argument)."""

    title: str
    summary: dict[str, str]
    metrics: dict[str, np.ndarray]  # metric -> values of the ok rows (finite)
    ranked_by: str | None = None
    best: list[Extreme] = field(default_factory=list)
    worst: list[Extreme] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, error), all of them
    sessions: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def svg_histogram(values: np.ndarray, *, label: str, bins: int = 30, width: int = 420, height: int = 150) -> str:
    """An inline SVG histogram of ``values`` with the x range labelled."""
    if values.size == 0:
        return ""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1e-9
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    pad, w, h = 30, width - 40, height - 40
    bw = w / bins
    bars = "".join(f"<rect x='{pad + k * bw:.1f}' y='{10 + h - c / top * h:.1f}' width='{max(bw - 1, 1):.1f}' "
                   f"height='{c / top * h:.1f}' fill='#1f77b4'><title>{c}</title></rect>" for k, c in enumerate(counts))
    axis = (f"<line x1='{pad}' y1='{10 + h}' x2='{pad + w}' y2='{10 + h}' stroke='#444'/>"
            f"<text x='{pad}' y='{height - 12}' font-size='11'>{lo:.3g}</text>"
            f"<text x='{pad + w}' y='{height - 12}' font-size='11' text-anchor='end'>{hi:.3g}</text>"
            f"<text x='{pad + w / 2}' y='{height - 12}' font-size='11' text-anchor='middle'>{html.escape(label)}</text>"
            f"<text x='2' y='18' font-size='11'>{top}</text>")
    return f"<svg width='{width}' height='{height}' role='img' aria-label='histogram of {html.escape(label)}'>{bars}{axis}</svg>"


def _fmt(v: float) -> str:
    return "" if not math.isfinite(v) else (f"{v:.0f}" if abs(v) >= 1000 or float(v).is_integer() else f"{v:.4g}")


def cause(error: str) -> str:
    """An error line without the file it names (``"x.png: not an image file ..."`` -> ``"not an image file ..."``)."""
    text = error.split(": ", 1)[1] if ": " in error else error
    return text[:90]


def render(rep: DatasetReport) -> str:
    h = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{h(rep.title)}</title><style>{CSS}"
           ".hist{display:inline-block;margin:0 18px 12px 0;vertical-align:top}</style></head><body>",
           f"<h1>{h(rep.title)}</h1>",
           "<div class='tablebox'><table class='summary'>" + "".join(f"<tr><th>{h(k)}</th><td>{h(v)}</td></tr>" for k, v in rep.summary.items())
           + "</table></div>"]
    if rep.metrics:
        out.append("<h2>Metrics over the images inverted</h2><div class='tablebox'><table><tr><th>metric</th><th>images</th><th>mean</th>"
                   "<th>min</th><th>5%</th><th>median</th><th>95%</th><th>max</th></tr>")
        for name, v in rep.metrics.items():
            if v.size == 0:
                continue
            q = np.quantile(v, [0.05, 0.5, 0.95])
            out.append(f"<tr><td>{h(name)}</td>" + "".join(f"<td class='num'>{_fmt(x)}</td>" for x in
                                                            (v.size, v.mean(), v.min(), q[0], q[1], q[2], v.max())) + "</tr>")
        out.append("</table></div>")
        out.append("".join(f"<div class='hist'>{svg_histogram(v, label=k)}</div>" for k, v in rep.metrics.items()
                           if k in ("psnr", "ssim", "psnr_composite", "psnr_observed", "lpips", "nscd") and v.size))
    for label, items in (("Worst", rep.worst), ("Best", rep.best)):
        if not items:
            continue
        out.append(f"<h2>{label} {len(items)} by {h(rep.ranked_by or '')}</h2><div class='pairs'>")
        for e in items:
            panels = (("target", e.target), ("observed", e.observed), ("reconstruction", e.reconstruction), ("delivered", e.delivered))
            imgs = "".join(f"<figure><img alt='{a}' src='{png_data_uri(tensor_to_pil(t))}'><figcaption>{a}</figcaption></figure>"
                           for a, t in panels if t is not None)
            out.append(f"<div class='pair'>{imgs}"
                       f"<div class='cap'><b>{h(e.id)}</b><br>{h(rep.ranked_by or '')} {_fmt(e.value)}</div></div>")
        out.append("</div>")
    if rep.sessions:
        out.append("<h2>Sessions</h2><div class='tablebox'><table><tr><th>started</th><th>engine</th><th>workers</th><th>rows written</th><th>failed</th>"
                   "<th>seconds</th><th>start-up s</th><th>images/s</th><th>images/s after start-up</th><th>stopped by</th></tr>")
        for s in rep.sessions:
            out.append("<tr>" + "".join(f"<td>{h(str(s.get(k) if s.get(k) is not None else ''))}</td>" for k in
                                        ("started", "engine", "workers", "written", "failed", "seconds", "startup_seconds",
                                         "images_per_second", "steady_images_per_second", "interrupted")) + "</tr>")
        out.append("</table></div>")
    if rep.failures:
        groups = Counter(cause(e) for _, e in rep.failures)
        out.append(f"<h2>Failed inputs ({len(rep.failures)})</h2><div class='tablebox'><table><tr><th>cause</th><th>inputs</th><th>example</th></tr>")
        for c, n in groups.most_common(20):
            example = next(i for i, e in rep.failures if cause(e) == c)
            out.append(f"<tr><td>{h(c)}</td><td class='num'>{n}</td><td>{h(example)}</td></tr>")
        out.append("</table></div><p class='sub'>every failed input with its full error: the rows with status 'error' "
                   "(load_results(OUT).filter(...), or DuckDB: SELECT id, error FROM 'OUT/results/*.parquet' WHERE status = 'error')</p>")
    if rep.notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{h(n)}</li>" for n in rep.notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def ranking_metric(names: Sequence[str]) -> str | None:
    """The metric the extremes are chosen by: PSNR against the clean image, else the observed fit."""
    return next((m for m in ("psnr", "psnr_observed", "ssim") if m in names), None)
