"""invertkit's own ``.safetensors`` files (checkpoints, encoders, directions, weight deltas): written
atomically, read with their JSON header checked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import CheckpointError
from ..untrusted import check_parameter_count, numel, one_line, safetensors_header, shape_problems, short_repr
from .atomic import StorageError, write_atomic


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, Tensor], metadata: dict[str, str], what: str) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) with string ``metadata`` to ``path`` via a temporary
    file, so an interrupted write never leaves a half file under the real name.

    Raises:
        StorageError: the disk is full (or quota, read-only): one line, the temporary file removed.
        CheckpointError: the folder or file cannot be written otherwise (``what`` names the file's kind).
    """
    from safetensors.torch import save_file  # local: keeps `import invertkit` light

    p = Path(path)
    try:
        write_atomic(p, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(p, 0o666 & ~umask)  # safetensors writes private files; these are meant to be shared
    except StorageError:
        raise  # a full disk: its own one line (free space, run again)
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot write the {what} ({exc.strerror or exc})") from None
    return p


def read_header(path: str | os.PathLike[str], key: str, what: str, hint: str, *,
                format_version: int | None = None) -> tuple[dict[str, tuple[str, tuple[int, ...]]], Any]:
    """The checked tensor entries (name -> (dtype, shape), every byte range inside the file) and the
    parsed JSON header entry ``key`` of an invertkit ``.safetensors`` file; no tensor is read.

    Args:
        key: the metadata entry that marks this kind of file.
        what: the kind, for messages ("encoder file").
        hint: how such a file is made, for messages ("train one with `invertkit train-encoder`").
        format_version: when given, the header must be a JSON object with this ``format_version``.
    Raises:
        CheckpointError: missing or unreadable file, no ``key`` entry, an entry that is not JSON, or
            another format version.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such {what}; {hint}, or check the path")
    entries, metadata = safetensors_header(p, what)
    raw = metadata.get(key)
    if raw is None:
        raise CheckpointError(f"{p}: a safetensors file without the header of an invertkit {what} ({key!r}); {hint}")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p}: the {what}'s header is not valid JSON ({exc.msg}); the file is damaged") from exc
    if format_version is not None and (not isinstance(header, dict) or header.get("format_version") != format_version):
        version = short_repr(header.get("format_version")) if isinstance(header, dict) else "?"
        raise CheckpointError(f"{p}: unsupported {what} format version {version} (this invertkit reads {format_version})")
    return entries, header


def check_weights_fit(path: str | os.PathLike[str], expected: dict[str, tuple[int, ...]],
                      entries: dict[str, tuple[str, tuple[int, ...]]], kind: str) -> None:
    """Refuse a file whose tensor entries (from :func:`read_header`) do not fit the network its config
    declares (``expected``: name -> shape, built on the meta device) before any tensor is read: the
    declared size is bounded, names and shapes match exactly, and weights are float32 or float16.
    ``kind`` names the network in messages ("encoder")."""
    p = Path(path)
    check_parameter_count(sum(numel(s) for s in expected.values()), p, f"its {kind} config")
    problems = shape_problems(expected, {k: shape for k, (_, shape) in entries.items()})
    problems += [f"{k}: dtype {dt}" for k, (dt, _) in entries.items() if k in expected and dt not in ("F32", "F16")]
    if problems:
        raise CheckpointError(f"{p}: the {kind} weights do not fit its config ({'; '.join(problems[:4])}); "
                              "the file is damaged or was edited")


def read_safetensors(path: str | os.PathLike[str], key: str, what: str, hint: str) -> tuple[dict[str, Tensor], Any]:
    """Tensors and the JSON header entry ``key`` of an invertkit ``.safetensors`` file (encoder,
    directions, weight delta). Only tensor bytes and a JSON header are read: nothing executes.

    Args: as :func:`read_header`.
    Returns:
        ``(tensors on CPU, the parsed header entry)``.
    Raises:
        CheckpointError: missing or unreadable file, no ``key`` entry, or an entry that is not JSON.
    """
    from safetensors import safe_open  # local: keeps `import invertkit` light

    p = Path(path)
    # the header first: every tensor's shape must match bytes the file holds (nothing is read before)
    _, header = read_header(p, key, what, hint)
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in list(f.keys())}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError ...: a damaged or foreign file
        first = one_line(exc, 200) or type(exc).__name__
        raise CheckpointError(f"{p}: not a readable {what} ({first}); the file is damaged, or not a .safetensors file") from exc
    return tensors, header
