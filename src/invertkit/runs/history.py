"""``history.csv`` of a run folder: every image's per-step curves (the loss, and whatever else the
method recorded) as data, so they can be plotted or compared without parsing the report's SVG.

Long format, one row per image and recorded step, one column per curve::

    image,step,loss[,locality | psnr ...]
    face.png,0,0.4213
    face.png,1,0.3987

``image`` is the image's name as in metrics.csv; ``step`` the method's step of the record (records are
every step unless a method's ``log_every`` is larger: optimize records steps 0, k, 2k, ... of its main
phase, after a multi-start's short restart phase); a curve shorter than another of the same image
leaves its cells empty. Values are float32 written with 9 significant digits (they read back exactly).

The curves live in each image's ``latents/<stem>.npz`` (``history:<name>``, which ``load_run`` reads
into ``result.history``); this file is derived from them when the report is built, at the end of a run
and by ``invertkit report OUT``. Its size is bounded by images x steps.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import InvertkitError
from ..io.atomic import write_text_atomic
from ..results.files import read_item

HISTORY_FILE = "history.csv"


def read_curves(folder: Path, stem: str) -> dict[str, list[float]]:
    """The curves saved in ``folder/latents/<stem>.npz`` (name -> values per record); empty if the
    file is missing or unreadable (the report says so elsewhere)."""
    try:
        history = read_item(folder / "latents" / f"{stem}.npz").history
    except InvertkitError:
        return {}
    return {k: v.reshape(-1).tolist() for k, v in history.items()}


def write_history_csv(folder: Path, curves: Sequence[tuple[str, Mapping[str, Sequence[float]]]], *, log_every: int = 1) -> Path | None:
    """Write ``folder/history.csv`` (atomically) from ``(image name, curves)`` pairs in run order.

    Returns the path, or None when no image recorded any curve (no file is written then, and an
    old one is removed so the folder never shows curves of another run)."""
    path = folder / HISTORY_FILE
    terms: list[str] = []
    for _, c in curves:
        terms += [k for k in c if k not in terms]
    if not terms:
        path.unlink(missing_ok=True)
        return None
    text = io.StringIO(newline="")
    out = csv.writer(text)
    out.writerow(["image", "step", *terms])
    for name, c in curves:
        for k in range(max((len(v) for v in c.values()), default=0)):
            out.writerow([name, k * log_every, *(f"{c[t][k]:.9g}" if t in c and k < len(c[t]) else "" for t in terms)])
    return write_text_atomic(path, text.getvalue())
