"""PIE-Bench evaluation of a folder of edited images (Ju et al., ICLR 2024, "PnP Inversion").

A PIE-Bench folder holds ``mapping_file.json`` (per entry id: ``image_path``, ``original_prompt``,
``editing_prompt``, ``editing_type_id``, ``mask`` as run-length pairs over 512 x 512, ...) and the
source images under ``annotation_images/<image_path>``. The edited images are looked up under the
same relative path in the edited folder. As the official ``evaluate.py``, an edited image that is not
square is cropped to its bottom-right 512 x 512 (the edit in a ``[source | reconstruction | edit]``
strip).

Entries are scored one at a time (memory does not grow with the benchmark). A missing or unreadable
edited image, a damaged entry or a mask that does not decode is that entry's row with ``status``
``missing`` / ``error`` and the reason in ``note``; it never stops the run.

Command line::

    python -m invertkit.metrics.pie_bench --bench PIE_BENCH_DIR --edited EDITED_DIR --out scores.csv \\
        [--dino-weights dino_vitbase8_pretrain.pth] [--clip-model CLIP_DIR] [--categories 0 1 ...]

writes one CSV row per entry (the official column names, ``nan`` where undefined), a
``<out>.summary.json`` (means over the finite values, counts of NaN per column, per editing type, and
why a column is unavailable) and prints one summary line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ImageError, InvertkitError
from ..untrusted import one_line, short_repr
from .edit_masks import PIE_SIZE, decode_rle
from .edit_scores import COLUMNS, HIGHER_IS_BETTER, EditScorers, score_edit

MAPPING_FILE = "mapping_file.json"
IMAGES_FOLDER = "annotation_images"
MAX_MAPPING_BYTES = 256 * 1024**2  # the real file is ~ 20 MB (700 entries of RLE masks)
ID_COLUMNS = ("id", "image_path", "editing_type_id", "status", "note")


def read_mapping(path: str | os.PathLike[str], max_bytes: int = MAX_MAPPING_BYTES) -> dict[str, dict]:
    """Read PIE-Bench's ``mapping_file.json`` -> ``{entry id: entry dict}``.

    Raises:
        ConfigError: missing, larger than ``max_bytes``, not JSON, or not an object of objects (one
            line naming the file and the fix). Entries themselves are checked when scored.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such mapping file; --bench must be the PIE-Bench folder holding {MAPPING_FILE}")
    size = p.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"{p}: {size:,} bytes, over the limit of {max_bytes:,} for a mapping file (PIE-Bench's is ~20 MB); wrong file?")
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; expected PIE-Bench's JSON mapping file") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix or re-download the file") from None
    except RecursionError:
        raise ConfigError(f"{p}: JSON nested too deeply; not a PIE-Bench mapping file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object of entries (id -> entry), got a {type(data).__name__}")
    return data


def _entry_fields(key: str, item: object) -> tuple[str, str, str, str, list]:
    """``(image_path, original_prompt, editing_prompt, editing_type_id, mask)`` of an entry, checked."""
    where = f"{MAPPING_FILE} entry {short_repr(key, 40)}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [k for k in ("image_path", "mask") if k not in item]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    texts = []
    for k in ("image_path", "original_prompt", "editing_prompt", "editing_type_id"):
        v = item.get(k, "")
        if not isinstance(v, str):
            raise ConfigError(f"{where}: {k} must be a string, got {short_repr(v, 40)}")
        texts.append(v)
    rel = PurePosixPath(texts[0].replace("\\", "/"))
    if not texts[0] or rel.is_absolute() or ".." in rel.parts or any(ord(c) < 32 for c in texts[0]):
        raise ConfigError(f"{where}: image_path {short_repr(texts[0], 60)} must be a relative path inside the folder")
    return texts[0], texts[1], texts[2], texts[3], item["mask"]


def read_rgb(path: Path, max_pixels: int | None = None) -> Tensor:
    """An image file as ``1 x 3 x H x W`` in [-1, 1] at its own size (ImageError with one line otherwise)."""
    from PIL import Image, UnidentifiedImageError

    from ..io.images import MAX_PIXELS, open_regular, to_mode

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    name = str(path)
    try:
        with open_regular(path, name) as f, Image.open(f) as img:
            w, h = img.size
            if w * h > limit:
                raise ImageError(f"{name}: declares {w} x {h} pixels, over the limit of {limit:,}")
            img.load()
            arr = np.asarray(to_mode(img, 3, name), dtype=np.float32)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: declares too many pixels (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (PNG, JPEG, ... expected)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{name}: cannot decode image ({one_line(exc, 120)}); the file may be truncated or corrupt") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


def crop_like_official(edited: Tensor, size: tuple[int, int]) -> tuple[Tensor, str]:
    """The official rule: a non-square edited image -> its bottom-right ``size`` crop. Returns the
    image and a note ("" when nothing was done). Raises ImageError when the sizes cannot match."""
    h, w = edited.shape[-2:]
    if (h, w) == tuple(size):
        return edited, ""
    if h != w and h >= size[0] and w >= size[1]:
        return edited[..., h - size[0]:, w - size[1]:], f"edited image {w}x{h} cropped to its bottom-right {size[1]}x{size[0]}"
    raise ImageError(f"edited image is {w}x{h}, the source is {size[1]}x{size[0]}; save edits at the source's size")


def iter_pie_bench(bench_dir: str | os.PathLike[str], edited_dir: str | os.PathLike[str], scorers: EditScorers | None = None, *,
                   categories: Sequence[str] | None = None, clip_mask_runs: bool = False, mapping_file: str | os.PathLike[str] | None = None,
                   columns: Sequence[str] = COLUMNS) -> Iterator[dict[str, object]]:
    """Yield one row per mapping entry (id columns + score columns), scoring one image at a time."""
    bench = Path(bench_dir)
    edited_root = Path(edited_dir)
    if not edited_root.is_dir():
        raise ConfigError(f"{edited_root}: no such folder of edited images; --edited must hold <image_path> files as in {MAPPING_FILE}")
    mapping = read_mapping(mapping_file if mapping_file is not None else bench / MAPPING_FILE)
    scorers = scorers if scorers is not None else EditScorers()
    wanted = None if categories is None else {str(c) for c in categories}
    for key, item in mapping.items():
        if wanted is not None and isinstance(item, dict) and item.get("editing_type_id") not in wanted:
            continue  # another category: not scored, so not checked either
        row: dict[str, object] = {"id": key, "image_path": "", "editing_type_id": "", "status": "ok", "note": ""}
        row.update({c: math.nan for c in columns})
        try:
            image_path, source_prompt, target_prompt, type_id, rle = _entry_fields(key, item)
            row["image_path"], row["editing_type_id"] = image_path, type_id
            mask = decode_rle(rle, PIE_SIZE, clip_runs=clip_mask_runs, where=f"{MAPPING_FILE} entry {short_repr(key, 40)}")
            source = read_rgb(bench / IMAGES_FOLDER / image_path)
            if tuple(source.shape[-2:]) != PIE_SIZE:
                raise ImageError(f"{bench / IMAGES_FOLDER / image_path}: source is {source.shape[-1]}x{source.shape[-2]}, "
                                 f"PIE-Bench masks are {PIE_SIZE[1]}x{PIE_SIZE[0]}")
            edited_path = edited_root / image_path
            if not edited_path.exists() and not edited_path.is_symlink():
                row["status"], row["note"] = "missing", f"no edited image {edited_path}"
                yield row
                continue
            edited, note = crop_like_official(read_rgb(edited_path), PIE_SIZE)
            scores = score_edit(source, edited, torch.from_numpy(mask), [target_prompt], scorers,
                                source_prompts=[source_prompt], columns=columns)[0]
            row.update(scores)
            notes = [note] if note else []
            if not (~mask).any():
                notes.append("edit mask covers the whole image: no background, background columns NaN")
            row["note"] = "; ".join(notes)
        except InvertkitError as exc:
            row["status"], row["note"] = "error", one_line(exc, 300)
        yield row


def evaluate_pie_bench(bench_dir: str | os.PathLike[str], edited_dir: str | os.PathLike[str], scorers: EditScorers | None = None, *,
                       categories: Sequence[str] | None = None, clip_mask_runs: bool = False,
                       mapping_file: str | os.PathLike[str] | None = None, columns: Sequence[str] = COLUMNS) -> list[dict[str, object]]:
    """Score every edited image of a PIE-Bench run -> rows (see :func:`iter_pie_bench`).

    Args:
        bench_dir: the PIE-Bench folder (``mapping_file.json``, ``annotation_images/``).
        edited_dir: the edited images, at the same relative paths as ``image_path``.
        scorers: :meth:`EditScorers.create` (DINO / CLIP / LPIPS); None -> background metrics only.
        categories: editing_type_id values to score (None = all); entries of other types are skipped.
        clip_mask_runs: accept mask runs past the image by clipping them (the official decoder's way).
    Raises:
        ConfigError: the mapping file or the edited folder is unusable (per-entry problems are rows).
    """
    return list(iter_pie_bench(bench_dir, edited_dir, scorers, categories=categories, clip_mask_runs=clip_mask_runs,
                               mapping_file=mapping_file, columns=columns))


def summarize(rows: Sequence[dict[str, object]], columns: Sequence[str] = COLUMNS) -> dict[str, object]:
    """Means over the finite values of each column (NaN rows counted, excluded), overall and per editing type."""

    def stats(sub: Sequence[dict[str, object]]) -> dict[str, dict[str, float | int | None]]:
        out = {}
        for c in columns:
            vals = [float(r[c]) for r in sub if r.get("status") == "ok"]
            finite = [v for v in vals if math.isfinite(v)]
            out[c] = {"mean": (sum(finite) / len(finite)) if finite else None, "n": len(finite), "nan": len(vals) - len(finite)}
        return out

    by_status: dict[str, int] = {}
    for r in rows:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    types = sorted({str(r["editing_type_id"]) for r in rows if r.get("status") == "ok"})
    return {
        "entries": len(rows),
        "status": by_status,
        "overall": stats(rows),
        "by_editing_type": {t: stats([r for r in rows if str(r["editing_type_id"]) == t]) for t in types},
        "higher_is_better": {c: HIGHER_IS_BETTER[c] for c in columns},
    }


def rows_to_csv(rows: Sequence[dict[str, object]], columns: Sequence[str] = COLUMNS) -> str:
    """CSV text: id columns then score columns; NaN written as ``nan`` (as the official table)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*ID_COLUMNS, *columns])
    for r in rows:
        w.writerow([r[c] for c in ID_COLUMNS] + [("nan" if not math.isfinite(float(r[c])) else repr(float(r[c]))) for c in columns])
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m invertkit.metrics.pie_bench", description="PIE-Bench scores of a folder of edited images.")
    p.add_argument("--bench", required=True, help="PIE-Bench folder (mapping_file.json, annotation_images/)")
    p.add_argument("--edited", required=True, help="folder of edited images at the same relative paths")
    p.add_argument("--out", required=True, help="CSV file to write (a .summary.json is written beside it)")
    p.add_argument("--mapping", default=None, help="mapping file (default: BENCH/mapping_file.json)")
    p.add_argument("--dino-arch", default="vitb8", help="DINO ViT for the structure distance (vits8, vitb8, vits16, vitb16)")
    p.add_argument("--dino-weights", default=None, help="its dino_*_pretrain.pth / .safetensors (default: torch hub cache)")
    p.add_argument("--clip-model", default=None, help="local transformers CLIP folder (needs transformers); absent -> CLIP columns nan")
    p.add_argument("--lpips-net", default="squeeze", choices=("squeeze", "alex", "vgg"),
                   help="LPIPS backbone (default squeeze, as the official code; needs torchvision's squeezenet1_1-b8a52dc0.pth)")
    p.add_argument("--metrics", nargs="+", default=list(COLUMNS), choices=COLUMNS, metavar="METRIC",
                   help=f"columns to compute (default all: {', '.join(COLUMNS)})")
    p.add_argument("--categories", nargs="+", default=None, help="editing_type_id values to score (default all)")
    p.add_argument("--clip-mask-runs", action="store_true", help="clip mask runs past the image as the official decoder (default: error row)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: 0 when every entry scored, 1 when some are missing / errors, 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        from ..io.atomic import check_writable_file, write_text_atomic

        out = check_writable_file(args.out, flag="--out")
        scorers = EditScorers.create(dino_arch=args.dino_arch, dino_weights=args.dino_weights, clip_model=args.clip_model,
                                     lpips_net=args.lpips_net, device=args.device)
        rows = evaluate_pie_bench(args.bench, args.edited, scorers, categories=args.categories,
                                  clip_mask_runs=args.clip_mask_runs, mapping_file=args.mapping, columns=args.metrics)
        summary = summarize(rows, args.metrics)
        summary["unavailable"] = {c: why for c, why in scorers.unavailable.items() if c in args.metrics}
        write_text_atomic(out, rows_to_csv(rows, args.metrics))
        write_text_atomic(Path(str(out) + ".summary.json"), json.dumps(summary, indent=2, allow_nan=False) + "\n")
    except InvertkitError as exc:
        print(f"error: {one_line(exc, 500)}", file=sys.stderr)
        return 2
    ok = summary["status"].get("ok", 0)
    means = ", ".join(f"{c}={v['mean']:.4g}" for c, v in summary["overall"].items() if v["mean"] is not None)
    print(f"{ok} of {len(rows)} entries scored -> {out}; {means or 'no finite scores'}")
    for c, why in scorers.unavailable.items():
        if c not in args.metrics:
            continue
        print(f"  {c}: nan ({one_line(why, 200)})")
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
