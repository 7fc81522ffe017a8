"""Where a dataset's images come from, listed as a stream of entries with stable ids.

A DATASET argument is one of:

- a folder, walked recursively in sorted order (image suffixes only; hidden files and folders skipped;
  symbolic links to folders followed, except back into a folder being walked: loops end); an entry's id
  is its path relative to the folder (``a/b/x.png``). Entries named like images that are no regular
  files (dangling links, link loops, FIFOs, devices, sockets) are listed too and fail by name when read;
- a glob pattern (``data/**/*.jpg``; ``**`` crosses folders); id: the path as matched;
- a text file of paths (``.txt``/``.lst``/``.list``, one per line, ``#`` comments; relative paths are
  relative to the text file's folder); id: the line as written;
- a Parquet file or a folder of Parquet files with a column of image bytes (binary, or a struct with a
  ``bytes`` field as Hugging Face datasets write it) or of paths; id: the ``--id-column`` value, else the
  path column's value, else ``<file name>:<row>``;
- an image file; id: the path as given.

Nothing here holds more than one directory listing, one Parquet row group or one entry at a time:
listing a million-image folder costs memory for the ids the caller keeps, not for the images.
Several arguments are listed one after the other; their ids must not collide (a repeated id is
skipped: each id is inverted once).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ImageError
from .images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst", ".list")
IMAGE_COLUMNS = ("image", "img", "bytes", "image_bytes", "png", "jpg", "jpeg")
PATH_COLUMNS = ("path", "file", "filename", "file_name", "image_path")


@dataclass(frozen=True)
class Entry:
    """One input image.

    Attributes:
        id: stable across runs of the same command (results are keyed by it).
        source: where it comes from, for people: a file path, or ``<parquet file>:<row>``.
        path: the image file to read (None for image bytes inside a Parquet file).
        parquet: ``(file, row group, row in group, column)`` of the image bytes inside a Parquet file.
    """

    id: str
    source: str
    path: str | None = None
    parquet: tuple[str, int, int, str] | None = None


@dataclass(frozen=True)
class ParquetColumns:
    """Column names of a Parquet dataset (None: detect from the usual names)."""

    image: str | None = None
    path: str | None = None
    id: str | None = None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def walk_folder(root: Path, _ancestors: frozenset[tuple[int, int]] = frozenset()) -> Iterator[Path]:
    """Image entries under ``root``, recursively, in sorted order, one directory listing at a time.

    Every entry named like an image that is not a folder is yielded, regular file or not: a dangling
    link, a symbolic-link loop, a FIFO, a device or a socket named ``x.png`` becomes an input that
    fails with its reason (:func:`invertkit.io.images.open_regular` never opens it), never a silent gap.
    Symbolic links to folders are followed (an entry's id is the path as it appears, so a folder linked
    in twice is listed twice), except a link to a folder that is being walked already (one of its own
    ancestors, tracked by device and inode): such a loop is not entered.
    """
    try:
        st = os.stat(root)
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise ImageError(f"{root}: cannot list the folder ({exc.strerror})") from None
    here = _ancestors | {(st.st_dev, st.st_ino)}
    for name in names:
        if name.startswith("."):
            continue
        p = root / name
        if p.is_dir():  # follows a link to a folder; a link loop or a dangling link is no folder
            try:
                sub = os.stat(p)
            except OSError:
                continue  # gone since the listing
            if (sub.st_dev, sub.st_ino) not in here:
                yield from walk_folder(p, here)
        elif _is_image(name):
            yield p


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
    return [path]


def is_parquet(path: Path) -> bool:
    """A Parquet file, or a folder holding Parquet files and no images directly."""
    if path.is_file():
        return path.suffix.lower() in (".parquet", ".pq")
    if path.is_dir():
        try:
            names = os.listdir(path)
        except OSError:
            return False
        return any(n.endswith(".parquet") for n in names) and not any(_is_image(n) for n in names)
    return False


def _pick(names: Sequence[str], wanted: str | None, usual: Sequence[str], what: str, where: Path, option: str) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise ImageError(f"{where}: no column {wanted!r} for the {what} (columns: {', '.join(names)}); check {option}")
        return wanted
    return next((n for n in usual if n in names), None)


def _parquet_entries(path: Path, columns: ParquetColumns) -> Iterator[Entry]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in _parquet_files(path):
        try:
            pf = pq.ParquetFile(f)
        except (OSError, pa.ArrowException) as exc:
            raise ImageError(f"{f}: not a readable Parquet file ({str(exc)[:120]})") from None
        names = pf.schema_arrow.names
        image = _pick(names, columns.image, IMAGE_COLUMNS, "image bytes", f, "--image-column")
        path_col = _pick(names, columns.path, PATH_COLUMNS, "image paths", f, "--path-column")
        id_col = _pick(names, columns.id, ("id",), "ids", f, "--id-column")
        if image is None and path_col is None:
            raise ImageError(f"{f}: no image-bytes or path column found (columns: {', '.join(names)}); "
                             "name one with --image-column or --path-column")
        wanted = [c for c in (path_col, id_col) if c is not None]
        for g in range(pf.num_row_groups):
            table = pf.read_row_group(g, columns=wanted) if wanted else None  # never the image bytes here
            rows = pf.metadata.row_group(g).num_rows
            paths = table.column(path_col).to_pylist() if path_col else [None] * rows
            ids = table.column(id_col).to_pylist() if id_col else [None] * rows
            base = sum(pf.metadata.row_group(k).num_rows for k in range(g))
            for k in range(rows):
                row = base + k
                ident = str(ids[k]) if ids[k] is not None else (str(paths[k]) if paths[k] is not None else f"{f.name}:{row}")
                if image is not None:
                    yield Entry(ident, f"{f}:{row}", parquet=(str(f), g, k, image))
                else:
                    p = Path(str(paths[k]))
                    p = p if p.is_absolute() else f.parent / p
                    yield Entry(ident, str(p), path=str(p))


def _list_entries(path: Path) -> Iterator[Entry]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                item = line.strip()
                if item and not item.startswith("#"):
                    p = Path(item)
                    p = p if p.is_absolute() else path.parent / p
                    yield Entry(item, str(p), path=str(p))
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the list of images ({exc.strerror})") from None


def entries(argument: str, *, columns: ParquetColumns = ParquetColumns(), prefix: str = "") -> Iterator[Entry]:
    """The entries of one DATASET argument, in a deterministic order; ``prefix`` is put before folder-relative ids."""
    path = Path(argument)
    if is_parquet(path):
        yield from _parquet_entries(path, columns)
    elif path.is_dir():
        for p in walk_folder(path):
            yield Entry(prefix + p.relative_to(path).as_posix(), str(p), path=str(p))
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        yield from _list_entries(path)
    elif path.is_file() or not glob.has_magic(argument):
        yield Entry(argument, argument, path=argument)  # a missing file becomes its own error row
    else:
        for match in sorted(glob.iglob(argument, recursive=True)):
            if _is_image(match) and not os.path.isdir(match):  # a non-regular one fails by name when read
                yield Entry(match, match, path=match)


def dataset_entries(arguments: Sequence[str], *, columns: ParquetColumns = ParquetColumns()) -> Iterator[Entry]:
    """The entries of all DATASET arguments in order, each id once (later repeats are dropped).

    With several folder arguments, folder-relative ids are prefixed by the folder as given, so that
    ``a/x.png`` and ``b/x.png`` stay apart."""
    seen: set[str] = set()
    several = len(arguments) > 1
    for arg in arguments:
        prefix = (Path(arg).as_posix().rstrip("/") + "/") if several and Path(arg).is_dir() else ""
        for e in entries(arg, columns=columns, prefix=prefix):
            if e.id not in seen:
                seen.add(e.id)
                yield e


@lru_cache(maxsize=2)
def _row_group(file: str, group: int, column: str) -> list:
    import pyarrow.parquet as pq

    col = pq.ParquetFile(file).read_row_group(group, columns=[column]).column(column)
    return col.to_pylist()


def entry_bytes(entry: Entry) -> bytes:
    """The image bytes of a Parquet entry (one row group is read and kept at a time per process)."""
    assert entry.parquet is not None
    file, group, row, column = entry.parquet
    value = _row_group(file, group, column)[row]
    if isinstance(value, dict):  # Hugging Face's Image feature: {"bytes": ..., "path": ...}
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)):
        raise ImageError(f"{entry.source}: column {column!r} holds {type(value).__name__}, not image bytes")
    return bytes(value)
