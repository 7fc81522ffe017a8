"""Safe reading of plain ``torch.save`` state dicts (zoo weights, feature networks, user modules).

Only ``torch.load(..., weights_only=True)`` is used: a file that holds anything but tensors and
plain containers is refused instead of executed.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from ..untrusted import check_stored_bytes, one_line, shape_problems

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def torch_load_safe(source: str | os.PathLike[str] | BinaryIO, where: Any, *, map_location: Any = "cpu",
                    allow: Sequence[type] = (), mmap: bool = False) -> Any:
    """``torch.load(source, weights_only=True)`` with every failure as one CheckpointError line naming ``where``.

    A payload that a weights-only load refuses (objects other than tensors and plain containers,
    which a full load would construct and which could execute code) is named as such; torch's own
    message, which proposes switching the weights-only safety off, is never quoted. ``allow``: extra
    plain-data classes to accept (e.g. ``argparse.Namespace``). ``mmap``: map the tensors' bytes instead
    of reading them (only for a file path in torch's zip format; other files are read as usual), so
    nothing is allocated until the caller copies a tensor.
    """
    kw: dict[str, Any] = {}
    if mmap and isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                kw["mmap"] = f.read(4) == b"PK\x03\x04"  # torch's zip format; legacy files cannot be mapped
        except OSError:
            pass  # torch.load below names the problem
    try:
        if allow:
            with torch.serialization.safe_globals(list(allow)):
                return torch.load(source, map_location=map_location, weights_only=True, **kw)
        return torch.load(source, map_location=map_location, weights_only=True, **kw)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "weights only" in msg.lower() or "weights_only" in msg.lower() or _GLOBAL_RE.search(msg):
            m = _GLOBAL_RE.search(msg)
            what = f" ({one_line(m.group(1), 80)})" if m else ""
            raise CheckpointError(
                f"refusing to load {where}: it holds Python objects other than tensors{what}, which could execute "
                "code when loaded; invertkit reads only tensors and plain containers from PyTorch files, so re-save "
                "just the weights (a state dict) in a trusted environment"
            ) from exc
        raise CheckpointError(f"{where}: not a readable PyTorch file ({one_line(msg, 160)}); the file is truncated or corrupted") from exc
    except MemoryError as exc:
        raise CheckpointError(f"{where}: not enough memory to read this PyTorch file") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        first = one_line(exc, 160) or type(exc).__name__
        raise CheckpointError(
            f"{where}: cannot be read as a PyTorch file ({first}); the file is truncated or corrupted, copy it again"
        ) from exc


def read_state_dict(path: str | os.PathLike[str], key: str | None = None) -> dict[str, Tensor]:
    """Read a tensor dict from ``path`` (optionally the sub-dict ``key``), on CPU, without executing anything."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass the path of the weight file")
    obj = torch_load_safe(path, path)
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            raise CheckpointError(f"{path}: expected a dict with key {key!r}; is this the right weight file?")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
    check_stored_bytes(obj, path)
    return dict(obj)


def few(items: list[str], n: int = 4) -> str:
    """``"a, b, c, d (+3 more)"``: a short list for one-line error messages."""
    s = ", ".join(items[:n])
    return s + (f" (+{len(items) - n} more)" if len(items) > n else "")


def layout_problems(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, object]) -> list[str]:
    """What keeps ``state`` from fitting ``expected`` (key -> shape): missing, unexpected, non-tensor,
    mis-shaped entries, as short phrases (``untrusted.shape_problems`` for the tensors); empty when it fits."""
    not_tensor = [f"{k} ({type(state[k]).__name__})" for k in expected if k in state and not isinstance(state[k], Tensor)]
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, Tensor)}
    shapes.update({k: expected[k] for k in state if k in expected and not isinstance(state[k], Tensor)})  # named once, below
    shapes.update({k: () for k in state if k not in expected and not isinstance(state[k], Tensor)})  # unexpected all the same
    parts = shape_problems(expected, shapes)
    if not_tensor:
        parts.insert(len([p for p in parts if not p.startswith("wrong shape")]), f"not tensors {few(not_tensor)}")
    return parts


def load_into(module: nn.Module, state_dict: Mapping[str, Tensor], path: str | os.PathLike[str]) -> nn.Module:
    """``module.load_state_dict(state_dict, strict=True)`` with a one-line CheckpointError on mismatch."""
    problems = layout_problems({k: tuple(v.shape) for k, v in module.state_dict().items()}, state_dict)
    if problems:
        raise CheckpointError(f"{path}: weights do not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)
    return module
