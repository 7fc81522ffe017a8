"""A self-contained HTML report: target | reconstruction pairs, per-image metrics, loss curves.

One file, images embedded as PNG data URIs and curves as inline SVG, so it opens anywhere and can be
mailed or attached to an issue as it is.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torch import Tensor

from .atomic import write_text_atomic
from .images import tensor_to_pil

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


@dataclass
class ReportItem:
    """One image of the report: name, target and reconstruction (``C x H x W`` in [-1, 1]), metrics,
    and optional further images shown after them (label -> ``C x H x W``, e.g. diffusion edits)."""

    name: str
    target: Tensor
    reconstruction: Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)


def _num(v: float, digits: int) -> str:
    """A metric for display: tiny non-zero values (round-trip errors) in scientific notation, not 0.00."""
    return f"{v:.1e}" if 0 < abs(v) < 10 ** -digits else f"{v:.{digits}f}"


def png_data_uri(img: Image.Image, min_size: int = 128) -> str:
    """PNG data URI; small images are enlarged by an integer factor (nearest) so pixels stay visible."""
    scale = max(1, math.ceil(min_size / max(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def svg_curves(curves: dict[str, Sequence[float]], *, width: int = 640, height: int = 260, log_y: bool = True, y_label: str = "loss") -> str:
    """An inline SVG line plot of named curves against step (log-scale y by default)."""
    series = {k: [float(v) for v in vals] for k, vals in curves.items() if len(vals) > 0}
    if not series:
        return "<p>(no curves recorded)</p>"
    tf = (lambda v: math.log10(max(v, 1e-12))) if log_y else (lambda v: v)
    ys = [tf(v) for vals in series.values() for v in vals]
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    n = max(len(v) for v in series.values())
    left, right, top, bottom = 60, 150, 12, 36
    pw, ph = width - left - right, height - top - bottom

    def px(i: int) -> float:
        return left + pw * (i / max(n - 1, 1))

    def py(v: float) -> float:
        return top + ph * (1 - (tf(v) - y0) / (y1 - y0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">']
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>')
    for k in range(5):  # y ticks
        t = y0 + (y1 - y0) * k / 4
        yy = top + ph * (1 - k / 4)
        label = f"{10**t:.3g}" if log_y else f"{t:.3g}"
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
    for k in range(5):  # x ticks
        i = round((n - 1) * k / 4)
        parts.append(f'<text x="{px(i):.1f}" y="{top + ph + 16}" text-anchor="middle">{i}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">step</text>')
    parts.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})">{html.escape(y_label)}{" (log)" if log_y else ""}</text>')
    for j, (name, vals) in enumerate(series.items()):
        color = PALETTE[j % len(PALETTE)]
        pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(vals))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        ly = top + 10 + 14 * j
        if ly < top + ph:
            parts.append(f'<line x1="{left + pw + 8}" x2="{left + pw + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
            parts.append(f'<text x="{left + pw + 28}" y="{ly}">{html.escape(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse} td,th{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:middle}
th{background:#f3f3f3} .num{text-align:right;font-variant-numeric:tabular-nums}
.pairs{display:flex;flex-wrap:wrap;gap:14px}
.pair{border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff}
.pair img{image-rendering:pixelated;display:inline-block;margin-right:4px}
.cap{font-size:12px;color:#444;margin-top:4px;max-width:270px;overflow-wrap:anywhere}
.lbl{font-size:11px;color:#888}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
"""


def render_report(
    *,
    title: str,
    subtitle: str,
    items: Sequence[ReportItem],
    summary: dict[str, str],
    curves: dict[str, Sequence[float]] | None = None,
    failures: dict[str, str] | None = None,
    notes: Sequence[str] = (),
    pair_labels: tuple[str, str] = ("target", "reconstruction"),
) -> str:
    """HTML text of the report (see :func:`write_report`); ``pair_labels`` name each item's first two
    images (the edit report: source image and source branch)."""
    h = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{h(title)}</title><style>{CSS}</style></head><body>"]
    out.append(f"<h1>{h(title)}</h1><p class='sub'>{h(subtitle)}</p>")
    out.append("<table>" + "".join(f"<tr><th>{h(k)}</th><td>{h(v)}</td></tr>" for k, v in summary.items()) + "</table>")

    first, second = (h(x) for x in pair_labels)
    heading = f"{first} | {second}" + (" | " + " | ".join(h(k) for k in items[0].extras) if items and items[0].extras else "")
    out.append(f"<h2>{heading[0].upper() + heading[1:]}</h2><div class='pairs'>")
    for it in items:
        caption = " · ".join(f"{k} {_num(v, 2)}" if isinstance(v, float) else f"{k} {v}" for k, v in it.metrics.items())
        out.append(
            "<div class='pair'>"
            f"<img alt='{first}' src='{png_data_uri(tensor_to_pil(it.target))}'>"
            f"<img alt='{second}' src='{png_data_uri(tensor_to_pil(it.reconstruction))}'>"
            + "".join(f"<img alt='{h(k)}' src='{png_data_uri(tensor_to_pil(v))}'>" for k, v in it.extras.items())
            + f"<div class='lbl'>{first} &nbsp;|&nbsp; {second}{''.join(' &nbsp;|&nbsp; ' + h(k) for k in it.extras)}</div>"
            f"<div class='cap'><b>{h(it.name)}</b><br>{h(caption)}</div></div>"
        )
    out.append("</div>")

    keys = sorted({k for it in items for k in it.metrics})
    if keys:
        out.append("<h2>Per-image metrics</h2><table><tr><th>image</th>" + "".join(f"<th>{h(k)}</th>" for k in keys) + "</tr>")
        for it in items:
            cells = "".join(
                f"<td class='num'>{_num(it.metrics[k], 3)}</td>" if isinstance(it.metrics.get(k), float) else f"<td>{h(str(it.metrics.get(k, '')))}</td>"
                for k in keys
            )
            out.append(f"<tr><td>{h(it.name)}</td>{cells}</tr>")
        out.append("</table>")

    if curves:
        out.append("<h2>Loss per step</h2>" + svg_curves(curves))
    if failures:
        out.append("<h2>Failed inputs</h2><table>" + "".join(f"<tr><td>{h(k)}</td><td>{h(v)}</td></tr>" for k, v in failures.items()) + "</table>")
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{h(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(path: str | os.PathLike[str], **kwargs: object) -> Path:
    """Write :func:`render_report`'s HTML to ``path`` (atomically); returns the path."""
    return write_text_atomic(path, render_report(**kwargs))  # type: ignore[arg-type]
