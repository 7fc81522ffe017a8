"""Files of a run folder written so that a crash, a signal or a full disk never leaves a partial file
under its final name: write a temporary sibling, flush it to disk, then rename it over the target
(``os.replace`` is atomic on POSIX and Windows within one file system)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvertkitError

TMP_MARK = ".tmp-"  # every temporary file of a run folder has this in its name; readers skip such files

# errno values that mean "the storage cannot take more": reported as one line, never a traceback chain
_STORAGE_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS, errno.EFBIG}


class StorageError(InvertkitError, OSError):
    """The run folder's storage refused a write (disk full, quota, read-only): the run stops there,
    everything finished before stays readable."""


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`temporary_name`'s (an unfinished write; readers skip it)."""
    return name.startswith(TMP_MARK)


def temporary_name(path: Path) -> Path:
    """A sibling of ``path`` that readers ignore, unique to this process."""
    return path.with_name(f"{TMP_MARK}{os.getpid()}-{path.name}")


@contextmanager
def storage_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk / quota / read-only file system during a write of ``path`` into one
    :class:`StorageError` line naming the file and the fix."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if exc.errno in _STORAGE_FULL:
            raise StorageError(f"{path}: cannot write ({os.strerror(exc.errno or 0)}); free space or use another --out, "
                               "then run the same command again to continue") from None
        raise


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write ``path`` by calling ``write(tmp)`` on a temporary sibling, then renaming it over ``path``.
    On any failure the temporary file is removed and ``path`` keeps its old content (or stays absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    with storage_errors(path):
        try:
            write(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """``data`` into ``path``, atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """``text`` as UTF-8 into ``path``, atomically (see :func:`write_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def remove_temporaries(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files an interrupted writer left in ``folder`` (not recursive); returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    gone = 0
    for f in folder.iterdir():
        if is_temporary(f.name) and f.is_file():
            f.unlink(missing_ok=True)
            gone += 1
    return gone
