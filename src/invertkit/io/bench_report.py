"""The bench's HTML page: one table, a quality-versus-time plot, and a grid per method."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from .images import make_grid
from .report import CSS, PALETTE, png_data_uri


def svg_scatter(points: Sequence[tuple[str, float, float]], *, x_label: str, y_label: str, width: int = 820, height: int = 300) -> str:
    """Labelled points ``(name, x, y)``; x on a log scale (seconds span orders of magnitude)."""
    pts = [(n, x, y) for n, x, y in points if x > 0 and math.isfinite(y)]
    if not pts:
        return "<p>(nothing to plot)</p>"
    lx = [math.log10(x) for _, x, _ in pts]
    ys = [y for _, _, y in pts]
    x0, x1 = min(lx) - 0.15, max(lx) + 0.15
    y0, y1 = min(ys), max(ys)
    pad = max((y1 - y0) * 0.15, 0.5)
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 56, 350, 12, 40  # the legend names whole method specs (up to 54 characters)
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + pw * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top + ph * (1 - (v - y0) / (y1 - y0))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>']
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        out.append(f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e4e4e4"/>')
    for e in range(math.floor(x0), math.ceil(x1) + 1):
        for m in (1, 2, 5):
            v = math.log10(m) + e
            if x0 <= v <= x1:
                out.append(f'<text x="{px(v):.1f}" y="{top + ph + 16}" text-anchor="middle">{m * 10.0**e:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{html.escape(x_label)} (log)</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})">{html.escape(y_label)}</text>')
    for j, (name, x, y) in enumerate(pts):
        c = PALETTE[j % len(PALETTE)]
        out.append(f'<circle cx="{px(math.log10(x)):.1f}" cy="{py(y):.1f}" r="5" fill="{c}"/>')
        ly = top + 10 + 14 * j
        shown = name if len(name) <= 54 else name[:53] + "\u2026"
        out.append(f'<circle cx="{left + pw + 14}" cy="{ly - 4}" r="4" fill="{c}"/><text x="{left + pw + 22}" y="{ly}">{html.escape(shown)}</text>')
    out.append("</svg>")
    return "".join(out)


BENCH_CSS = """
.tablebox{max-width:100%;overflow-x:auto}
table.bench th{font-size:12px;line-height:1.25;max-width:7.5em;vertical-align:bottom}
table.bench td{font-size:12px} table.bench td.num{white-space:nowrap}
table.bench td,table.bench th{padding:4px 4px}
table.bench td.spec{max-width:16em}
"""


def format_number(v: float | int) -> str:
    """A table number: integers (and integral floats: counts, bytes, evaluations) without decimals and
    with thousands separators; other values with 3 decimals (4 significant digits below 0.01)."""
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) >= 1):
        return f"{int(v):,}"
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.3f}" if abs(v) >= 0.01 or v == 0 else f"{v:.4g}"


def _breakable(text: str) -> str:
    """``text`` HTML-escaped, with a line-break opportunity after ``_ + ; @ , :`` (long column names and
    method specs wrap there instead of widening the table)."""
    out = html.escape(text)
    for ch in ("_", "+", ";", "@", ",", ":"):
        out = out.replace(ch, ch + "<wbr>")
    return out


def write_bench_html(
    path: str | os.PathLike[str],
    *,
    title: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    targets: Tensor,
    recons: dict[str, Tensor],
    notes: Sequence[str] = (),
    strips: dict[str, Tensor] | None = None,
    strip_title: str = "",
) -> Path:
    """Write the bench page: table of ``rows`` (``columns``), plot, target + per-method grids and,
    when given, one edit strip per method (``strips``: method -> ``[S, C, H, W]`` frames of the first image)."""
    h = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{h(title)}</title><style>{CSS}{BENCH_CSS}</style></head><body>",
             f"<h1>{h(title)}</h1>"]
    # the table fits a 1280 px screen: headers and method specs break at "_" / "+" / ";" / "@" / ","
    # (a <wbr> after each), numbers stay on one line; what still does not fit scrolls inside its box
    parts.append("<div class='tablebox'><table class='bench'><tr>" + "".join(f"<th>{_breakable(c)}</th>" for c in columns) + "</tr>")
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if v is None:  # not finite, or no score (a method whose images diverged)
                cells.append("<td>n/a</td>")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f"<td class='num'>{format_number(v)}</td>")
            else:
                cells.append(f"<td class='spec'>{_breakable(str(v))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table></div>")
    parts.append("<h2>Quality versus time</h2>")
    parts.append(svg_scatter([(r["method"], r["seconds_per_image"], r["psnr_mean"]) for r in rows
                             if isinstance(r.get("psnr_mean"), float) and isinstance(r.get("seconds_per_image"), float)],
                             x_label="seconds per image", y_label="mean PSNR (dB)"))
    parts.append("<h2>Reconstructions</h2><p class='sub'>first row: targets; then one row per method, in table order</p>")
    n = min(targets.shape[0], 12)
    scale = max(1, 96 // targets.shape[-1])
    parts.append(f"<p><b>targets</b><br><img style='image-rendering:pixelated' src='{png_data_uri(make_grid([targets[:n]], scale=scale), 0)}'></p>")
    for name, rec in recons.items():
        parts.append(f"<p><b>{h(name)}</b><br><img style='image-rendering:pixelated' src='{png_data_uri(make_grid([rec[:n]], scale=scale), 0)}'></p>")
    if strips:
        parts.append(f"<h2>Edits of the first image</h2><p class='sub'>{h(strip_title)}</p>")
        for name, frames in strips.items():
            parts.append(f"<p><b>{h(name)}</b><br><img style='image-rendering:pixelated' src='{png_data_uri(make_grid([frames], scale=scale), 0)}'></p>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{h(x)}</li>" for x in notes) + "</ul>")
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
