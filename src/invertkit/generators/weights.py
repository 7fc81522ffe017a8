"""Safe reading of plain ``torch.save`` state dicts (zoo weights, user modules).

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


def load_into(module: nn.Module, state_dict: Mapping[str, Tensor], path: str | os.PathLike[str]) -> nn.Module:
    """``module.load_state_dict(state_dict, strict=True)`` with a one-line CheckpointError on mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    bad = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        if bad:
            parts.append(
                "shape mismatch " + ", ".join(f"{k} {list(state_dict[k].shape)} != {list(own[k].shape)}" for k in bad[:3])
            )
        raise CheckpointError(f"{path}: weights do not fit {type(module).__name__}: {'; '.join(parts)}")
    module.load_state_dict(state_dict, strict=True)
    return module
