"""Latent files: ``.npz`` holding one array per space (plus image names)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import LatentSpaceError


def save_latents(path: str | os.PathLike[str], latents: Tensor, space: str, names: list[str]) -> Path:
    """Write ``latents`` (``[N, ...]``) under the key ``space`` with the image ``names`` beside them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = latents.detach().float().cpu().numpy()
    np.savez(path, **{space: arr, "names": np.asarray(names, dtype=str)})
    return path


def load_latents(path: str | os.PathLike[str], space: str) -> tuple[Tensor, list[str]]:
    """Read the ``space`` array of a latent file written by :func:`save_latents`; NaN/inf is refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if space not in f.files:
                raise LatentSpaceError(f"{path}: has no latents for space {space!r} (it holds {sorted(f.files)})")
            arr = np.asarray(f[space], dtype=np.float32)
            names = [str(s) for s in f["names"]] if "names" in f.files else [str(i) for i in range(len(arr))]
    except (OSError, ValueError) as exc:
        raise LatentSpaceError(f"{path}: not a readable latent .npz file ({exc})") from None
    if not np.isfinite(arr).all():
        raise LatentSpaceError(f"{path}: latents contain NaN or infinity; re-run the inversion that wrote it")
    return torch.from_numpy(arr), names
