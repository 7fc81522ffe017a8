"""``invertkit align``: FFHQ-style aligned face crops from photographs, with a JSON sidecar of each
transform; and the ``--align`` / ``--face`` / ``--paste-back`` flags that invert and bench share."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError, ImageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("align", help="FFHQ-style face alignment: aligned crops plus align.json (needs the [align] extra)",
                       description="Detect the face in each photo (MediaPipe's face mesh, run by LiteRT), crop the FFHQ "
                       "square (eyes and mouth at fixed positions) and write OUT/<stem>.png plus OUT/align.json, the "
                       "transforms that paste a result back.")
    p.add_argument("images", nargs="+", help="image files, folders, globs or text files of paths")
    p.add_argument("--out", "-o", default="runs/align", help="output folder (default runs/align)")
    p.add_argument("--size", type=int, default=256, help="aligned crop size in pixels (default 256)")
    p.add_argument("--face", type=int, default=None, metavar="K", help="with several faces, the K-th largest (default 1, the largest)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse images declaring more pixels (default: the image reader's limit)")
    p.set_defaults(func=run)


def add_align_flags(p: argparse.ArgumentParser, *, paste_back: bool) -> None:
    """``--align`` and ``--face`` (and ``--paste-back`` where the command writes per-image outputs)."""
    p.add_argument("--align", action="store_true",
                   help="align each photo's face FFHQ-style before inverting (needs pip install 'invertkit[align]')")
    p.add_argument("--face", type=int, default=None, metavar="K", help="with --align and several faces: the K-th largest (default 1)")
    if paste_back:
        p.add_argument("--paste-back", action="store_true",
                       help="with --align: also warp each reconstruction back into its photo (images/<stem>_pasted.png)")


def check_align_flags(args: argparse.Namespace) -> None:
    """Refuse inconsistent flags and a missing extra before any work (one line each)."""
    if getattr(args, "paste_back", False) and not args.align:
        raise ConfigError("--paste-back needs --align (it inverts the warp the alignment made)")
    if args.face is not None and not args.align:
        raise ConfigError("--face needs --align")
    if args.face is not None and args.face < 1:
        raise ConfigError(f"--face must be >= 1 (1 = the largest face), got {args.face}")
    if args.align:
        require_extra()


def require_extra() -> None:
    """One ConfigError line saying how to install the extra, when its interpreter or models are absent."""
    from ..align.detector import INSTALL_HINT, available

    if not available():
        raise ConfigError(INSTALL_HINT)


def _say_face(aligned) -> None:  # noqa: ANN001 - an AlignedFace
    if aligned.faces > 1:
        which = "the largest" if aligned.face == 1 else f"face {aligned.face} by size"
        print(f"invertkit: {aligned.source}: {aligned.faces} faces found, aligned {which} (choose with --face K)", flush=True)


def align_file(path: Path, size: int, channels: int, *, face: int | None, max_pixels: int | None):  # noqa: ANN201 - AlignedFace
    """Align one file for a command, saying which face it took when there were several."""
    from ..align import align_photo

    aligned = align_photo(path, size, channels, face=face, max_pixels=max_pixels)
    _say_face(aligned)
    return aligned


def write_sidecar(path: Path, entries: dict[str, dict]) -> None:
    """``align.json``: per output stem, the transform (:meth:`AlignedFace.to_json`); JSON, so nothing in it executes."""
    from ..io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps({"format": "invertkit-align-1", "faces": entries}, indent=1) + "\n")


def read_sidecar(path: Path) -> dict[str, dict]:
    """The entries of an existing ``align.json`` (a continued run adds to them); none when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    faces = data.get("faces") if isinstance(data, dict) else None
    return dict(faces) if isinstance(faces, dict) else {}


def run(args: argparse.Namespace) -> int:
    from ..io.filenames import display_name, distinct_names
    from ..io.images import save_image
    from ..runs.writer import unique_stem
    from .invert import expand_inputs

    if args.size < 1:
        raise ConfigError(f"--size must be >= 1, got {args.size}")
    if args.face is not None and args.face < 1:
        raise ConfigError(f"--face must be >= 1 (1 = the largest face), got {args.face}")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    require_extra()
    paths = expand_inputs(args.images)
    if not paths:
        raise ImageError("no images found in the given paths")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    failed: list[str] = []
    used: set[str] = set()
    for path, name in zip(paths, distinct_names(paths)):
        try:
            aligned = align_file(path, args.size, 3, face=args.face, max_pixels=args.max_pixels)
        except ImageError as exc:
            if len(paths) == 1:
                raise
            failed.append(str(exc))
            print(f"invertkit: skipped {display_name(str(exc))}", flush=True)
            continue
        stem = unique_stem(name, used)
        save_image(aligned.image[0], out / f"{stem}.png")
        entries[stem] = aligned.to_json()
    if not entries:
        raise ImageError(f"no face aligned in {len(paths)} image(s): {failed[0]}")
    write_sidecar(out / "align.json", entries)
    print(f"wrote {out}/align.json and {len(entries)} aligned face(s) at {args.size} px ({len(failed)} failed)")
    return 1 if failed else 0
