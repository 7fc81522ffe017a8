"""Latent files: one ``.npz`` per image, holding its latent under the space's own key, ``w`` as
``[1, num_ws, w_dim]`` for W-type spaces (NVIDIA's projector layout, so their tools read it) and
``space`` naming which key is the optimised one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import LatentSpaceError


def space_key(space: str) -> str:
    """The npz key of a space name (``w+`` -> ``wplus``, ``z-sphere`` -> ``z_sphere``, ``f:16`` -> ``f_16``)."""
    return space.replace("+", "plus").replace(":", "_").replace("-", "_")


def save_latent_file(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], space: str) -> Path:
    """Write one image's latent arrays (each ``[1, ...]``) and the space name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays, space=np.asarray(space))
    return path


def load_latent_file(path: str | os.PathLike[str]) -> tuple[Tensor, str]:
    """Read a file written by :func:`save_latent_file`: ``(latent [1, ...], space)``; NaN/inf is refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "space" not in f.files:
                raise LatentSpaceError(f"{path}: no 'space' entry; not an invertkit latent file")
            space = str(f["space"])
            key = space_key(space)
            if key not in f.files:
                raise LatentSpaceError(f"{path}: holds no array for its space {space!r}")
            arr = np.asarray(f[key], dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise LatentSpaceError(f"{path}: not a readable latent .npz file ({exc})") from None
    if space == "w" and arr.ndim == 3:
        # a W latent's key is also NVIDIA's "w" ([1, num_ws, w_dim]: the same w on every row)
        arr = arr[:, 0]
    if not np.isfinite(arr).all():
        raise LatentSpaceError(f"{path}: latent contains NaN or infinity; re-run the inversion that wrote it")
    return torch.from_numpy(arr), space
