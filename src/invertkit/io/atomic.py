"""Files of a run folder written so that a crash, a signal or a full disk never leaves a partial file
under its final name: write a temporary sibling, flush it to disk, then rename it over the target
(``os.replace`` is atomic on POSIX and Windows within one file system)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError, InvertkitError

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


# kernel file systems: they hold no user files (creating one fails with a misleading "No such file")
_PSEUDO_ROOTS = (Path("/proc"), Path("/sys"))


def _write_probe(folder: Path) -> None:
    """Create, fill (4 KiB, flushed to disk) and delete a temporary file in ``folder``: a read-only
    or full file system fails here, before any work, rather than after the first result."""
    probe = folder / f"{TMP_MARK}{os.getpid()}-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def _unwritable(where: str, exc: OSError) -> InvertkitError:
    """One line for an OSError met while preparing ``where`` (flag and path) for writing."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in _STORAGE_FULL and exc.errno != errno.EROFS:
        return StorageError(f"{where}: cannot write there ({reason}); free space or choose another place")
    if exc.errno == errno.EROFS:
        return ConfigError(f"{where}: the file system is read-only; choose a writable place")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ConfigError(f"{where}: no permission to write there ({reason}); choose a folder you can write to")
    return ConfigError(f"{where}: cannot write there ({reason}); choose another place")


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _prepare_folder(folder: Path, where: str, what: str) -> None:
    """Check that ``folder`` can be made and written: a probe file in it, or, while it does not
    exist yet, in its nearest existing ancestor (nothing is created for a command that then fails
    on another argument). ``where`` (flag and path) starts every message, ``what`` names the thing
    that cannot be made under a file ("no folder", "no file")."""
    absolute = Path(os.path.abspath(folder))
    root = next((r for r in _PSEUDO_ROOTS if absolute == r or r in absolute.parents), None)
    if root is not None:
        raise ConfigError(f"{where}: {root} is a kernel file system that holds no files; choose a folder on disk")
    existing = _first_existing(folder)
    if not existing.is_dir():
        raise ConfigError(f"{where}: {existing} is a file, so {what} can be made under it; choose another place")
    try:
        _write_probe(existing)
    except OSError as exc:
        raise _unwritable(where, exc) from exc


def _where(flag: str, path: Path) -> str:
    return f"{flag} {path}" if flag else str(path)


def check_writable_folder(path: str | os.PathLike[str], *, flag: str = "--out") -> Path:
    """Make sure ``path`` is, or can be made, a folder this process can write to, before any work
    starts (nothing is created): a path that is a file or lies under one, a kernel file system (/proc, /sys), a
    read-only, full or forbidden place is one :class:`~invertkit.errors.ConfigError` (a full disk:
    :class:`StorageError`) line naming ``flag``, the path and the fix. Returns the path."""
    path = Path(path)
    where = _where(flag, path)
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{where}: is a broken symbolic link; remove it or choose another folder")
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(f"{where}: is a file, not a folder; choose a new or existing folder")
    _prepare_folder(path, where, "no folder")
    return path


def check_writable_file(path: str | os.PathLike[str], *, flag: str = "") -> Path:
    """Make sure the file ``path`` can be written (its folder made and writable, ``path`` itself no
    folder), as :func:`check_writable_folder`; ``flag`` names the argument in the message. Returns the path."""
    path = Path(path)
    where = _where(flag, path)
    if path.is_dir():
        raise ConfigError(f"{where}: is a folder; give a file name")
    _prepare_folder(path.parent, where, "no file")
    return path
