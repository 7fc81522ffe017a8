"""Safe reading of plain ``torch.save`` state dicts (zoo weights, feature networks, user modules).

Only ``torch.load(..., weights_only=True)`` is used: a file that holds anything but tensors and
plain containers is refused instead of executed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CheckpointError


def read_state_dict(path: str | os.PathLike[str], key: str | None = None) -> dict[str, Tensor]:
    """Read a tensor dict from ``path`` (optionally the sub-dict ``key``), on CPU, without executing anything."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass the path of the weight file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean "not a safe tensor file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable tensor checkpoint ({first[:200]})") from None
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            raise CheckpointError(f"{path}: expected a dict with key {key!r}; is this the right weight file?")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
    return dict(obj)


def few(items: list[str], n: int = 4) -> str:
    """``"a, b, c, d (+3 more)"``: a short list for one-line error messages."""
    s = ", ".join(items[:n])
    return s + (f" (+{len(items) - n} more)" if len(items) > n else "")


def layout_problems(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, object]) -> list[str]:
    """What keeps ``state`` from fitting ``expected`` (key -> shape): missing, unexpected, non-tensor,
    mis-shaped entries, as short phrases; empty when it fits."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    not_tensor = [f"{k} ({type(state[k]).__name__})" for k in expected if k in state and not isinstance(state[k], Tensor)]
    bad = [
        f"{k} {list(v.shape)} (expected {list(expected[k])})"
        for k in expected
        if isinstance(v := state.get(k), Tensor) and tuple(v.shape) != tuple(expected[k])
    ]
    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if extra:
        parts.append(f"unexpected {few(extra)}")
    if not_tensor:
        parts.append(f"not tensors {few(not_tensor)}")
    if bad:
        parts.append(f"wrong shape {few(bad, 3)}")
    return parts


def load_into(module: nn.Module, state_dict: Mapping[str, Tensor], path: str | os.PathLike[str]) -> nn.Module:
    """``module.load_state_dict(state_dict, strict=True)`` with a one-line CheckpointError on mismatch."""
    problems = layout_problems({k: tuple(v.shape) for k, v in module.state_dict().items()}, state_dict)
    if problems:
        raise CheckpointError(f"{path}: weights do not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)
    return module
