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
    and optional further images shown after them (label -> ``C x H x W``, e.g. diffusion edits).

    Restoration items also carry the observation as the model saw it (``observed``, enlarged to the
    target's size) and the delivered result (``delivered``: the inpainting composite); they are shown
    in the order target | observed | reconstruction | delivered. ``target`` None: no clean image is
    known (a real observation), so none is shown. ``group``: the image's group (real / control).
    """

    name: str
    target: Tensor | None
    reconstruction: Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)
    observed: Tensor | None = None
    delivered: Tensor | None = None
    group: str | None = None


@dataclass
class GroupMeans:
    """One row of the report's "means by group" table: a group of images (e.g. real photographs and
    the generator's own samples as controls) and the mean of each metric over its images."""

    group: str
    images: int
    means: dict[str, float]


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
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse} td,th{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:middle}
th{background:#f3f3f3} .num{text-align:right;font-variant-numeric:tabular-nums}
.pairs{display:flex;flex-wrap:wrap;gap:14px}
.pair{border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff;max-width:100%;box-sizing:border-box}
.pair img{image-rendering:pixelated;display:inline-block;margin-right:4px;max-width:100%}
.pair figure{display:inline-block;margin:0 4px 0 0;vertical-align:top;max-width:100%}
.pair figure img{margin-right:0}
.pair figcaption{font-size:11px;color:#666;text-align:center;max-width:128px;margin:0 auto;overflow-wrap:anywhere}
.cap{font-size:12px;color:#444;margin-top:4px;width:0;min-width:100%;overflow-wrap:anywhere}
.lbl{font-size:11px;color:#888}
.tablebox{max-width:100%;overflow-x:auto}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
table.summary th{white-space:nowrap}
"""


def _figure(label: str, image: Tensor) -> str:
    """One image with its label under it."""
    h = html.escape
    return f"<figure><img alt='{h(label)}' src='{png_data_uri(tensor_to_pil(image))}'><figcaption>{h(label)}</figcaption></figure>"


def _metric_order(keys: set[str]) -> list[str]:
    """Metric columns, the ones a reader compares first leading."""
    first = ("psnr", "ssim", "psnr_composite", "ssim_composite", "psnr_observed")
    return [k for k in first if k in keys] + sorted(keys - set(first))


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
    restoration_labels: tuple[str, str] = ("observed", "delivered"),
    groups: Sequence[GroupMeans] = (),
) -> str:
    """HTML text of the report (see :func:`write_report`); ``pair_labels`` name each item's target and
    reconstruction (the edit report: source image and source branch), ``restoration_labels`` its
    observation and delivered result; ``groups``: a table of each group's mean metrics."""
    h = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{h(title)}</title><style>{CSS}</style></head><body>"]
    out.append(f"<h1>{h(title)}</h1><p class='sub'>{h(subtitle)}</p>")
    out.append("<div class='tablebox'><table class='summary'>" + "".join(f"<tr><th>{h(k)}</th><td>{h(v)}</td></tr>" for k, v in summary.items())
               + "</table></div>")
    if groups:
        cols = _metric_order({k for g in groups for k in g.means})
        out.append("<h2>Means by group</h2><div class='tablebox'><table><tr><th>group</th><th>images</th>"
                   + "".join(f"<th>{h(k)}</th>" for k in cols) + "</tr>")
        for g in groups:
            out.append(f"<tr><td>{h(g.group)}</td><td class='num'>{g.images}</td>"
                       + "".join(f"<td class='num'>{_num(g.means[k], 3) if k in g.means else ''}</td>" for k in cols) + "</tr>")
        out.append("</table></div>")

    target_l, recon_l = pair_labels
    observed_l, delivered_l = restoration_labels
    shown = ([target_l] if any(it.target is not None for it in items) else []) + \
        ([observed_l] if any(it.observed is not None for it in items) else []) + [recon_l] + \
        ([delivered_l] if any(it.delivered is not None for it in items) else []) + (list(items[0].extras) if items else [])
    heading = " | ".join(shown)
    out.append(f"<h2>{h(heading[0].upper() + heading[1:])}</h2><div class='pairs'>")
    for it in items:
        caption = " · ".join(f"{k} {_num(v, 2)}" if isinstance(v, float) else f"{k} {v}" for k, v in it.metrics.items())
        panels = [(label, img) for label, img in ((target_l, it.target), (observed_l, it.observed), (recon_l, it.reconstruction),
                                                  (delivered_l, it.delivered)) if img is not None]
        group = f" <span class='lbl'>({h(it.group)})</span>" if it.group else ""
        out.append(
            "<div class='pair'>"
            + "".join(_figure(label, img) for label, img in [*panels, *it.extras.items()])
            + f"<div class='cap'><b>{h(it.name)}</b>{group}<br>{h(caption)}</div></div>"
        )
    out.append("</div>")

    keys = _metric_order({k for it in items for k in it.metrics})
    if keys:
        with_group = any(it.group for it in items)
        out.append("<h2>Per-image metrics</h2><div class='tablebox'><table><tr><th>image</th>" + ("<th>group</th>" if with_group else "")
                   + "".join(f"<th>{h(k)}</th>" for k in keys) + "</tr>")
        for it in items:
            cells = "".join(
                f"<td class='num'>{_num(it.metrics[k], 3)}</td>" if isinstance(it.metrics.get(k), float) else f"<td>{h(str(it.metrics.get(k, '')))}</td>"
                for k in keys
            )
            group = f"<td>{h(it.group or '')}</td>" if with_group else ""
            out.append(f"<tr><td>{h(it.name)}</td>{group}{cells}</tr>")
        out.append("</table></div>")

    if curves:
        out.append("<h2>Loss per step</h2>" + svg_curves(curves))
    if failures:
        out.append("<h2>Failed inputs</h2><div class='tablebox'><table>"
                   + "".join(f"<tr><td>{h(k)}</td><td>{h(v)}</td></tr>" for k, v in failures.items()) + "</table></div>")
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{h(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(path: str | os.PathLike[str], **kwargs: object) -> Path:
    """Write :func:`render_report`'s HTML to ``path`` (atomically); returns the path."""
    return write_text_atomic(path, render_report(**kwargs))  # type: ignore[arg-type]
