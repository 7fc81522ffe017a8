"""One image's latent file in a run folder: ``latents/<stem>.npz`` (run format 2).

Keys (every array has a leading batch dimension of 1, float32 unless said):

- ``space`` (str): the space the method worked in; ``kind`` (str): the result type
  (``latent``, ``tuned``, ``diffusion``); ``format_version`` (int): 2;
- the latent under its space's key (``wplus``, ``z``, ``z_sphere``, ``f_16``, ``noise`` ...; see
  ``io.latents.space_key``) and, for W-type spaces of style-space generators, ``w`` as
  ``[1, num_ws, w_dim]`` (NVIDIA's projector layout, so their tools read it);
- ``latent_space`` (str): the generator space of that latent (``z`` for ``z-sphere``, ``w+`` or ``z``
  for a layerwise result's tail latent);
- ``noise:<layer>``: optimised noise maps ``[1, 1, H, W]``;
- ``layer`` (str) and ``state:<k>``: a layerwise result's intermediate state (the k-th tensor of the
  state tuple; missing k: None);
- ``history:<name>``: the image's curve ``[steps]``;
- ``image`` (str): the name of the image the latent was inverted from.

Run format 1 (invertkit 0.1.0) wrote only ``space`` and the latent: plain latent results read back
the same; layerwise and noise-map results of that version cannot be re-rendered (one-line error).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import LatentSpaceError
from ..io.atomic import write_atomic
from ..io.latents import space_key

FORMAT_VERSION = 2
NOISE, STATE, HISTORY = "noise:", "state:", "history:"
_TEXT = ("space", "kind", "latent_space", "layer", "image")


@dataclass
class ItemArrays:
    """The content of one latent file, as tensors (CPU, float32) and strings."""

    space: str
    latent: Tensor
    kind: str = "latent"
    format_version: int = 1
    latent_space: str | None = None
    noise: dict[str, Tensor] = field(default_factory=dict)
    layer: str | None = None
    state: dict[int, Tensor] = field(default_factory=dict)
    history: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    image: str | None = None


def _np(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def write_item(path: str | os.PathLike[str], item: ItemArrays) -> Path:
    """Write ``item`` to ``path`` (atomically: a half-written file never has the final name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {space_key(item.space): _np(item.latent), **item.extra}
    arrays.update({"space": np.asarray(item.space), "kind": np.asarray(item.kind),
                   "format_version": np.asarray(FORMAT_VERSION)})
    if item.latent_space is not None:
        arrays["latent_space"] = np.asarray(item.latent_space)
    if item.image is not None:
        arrays["image"] = np.asarray(item.image)
    arrays.update({NOISE + k: _np(v) for k, v in item.noise.items()})
    if item.layer is not None:
        arrays["layer"] = np.asarray(item.layer)
        arrays.update({f"{STATE}{k}": _np(v) for k, v in item.state.items()})
    arrays.update({HISTORY + k: _np(v) for k, v in item.history.items()})
    # np.savez given an open file appends no suffix, whatever the temporary is called
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return write_atomic(path, write)


def read_item(path: str | os.PathLike[str]) -> ItemArrays:
    """Read a latent file of run format 1 or 2; NaN or infinity anywhere is refused with the key named."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise LatentSpaceError(f"{path}: not a readable latent .npz file ({str(exc)[:120]})") from None
    if "space" not in data:
        raise LatentSpaceError(f"{path}: no 'space' entry; not an invertkit latent file")
    text = {k: str(data.pop(k)) for k in _TEXT if k in data}
    space = text["space"]
    version = int(data.pop("format_version")) if "format_version" in data else 1
    if version > FORMAT_VERSION:
        raise LatentSpaceError(f"{path}: latent file format {version} is newer than this invertkit reads ({FORMAT_VERSION}); upgrade invertkit")
    key = space_key(space)
    if key not in data:
        raise LatentSpaceError(f"{path}: holds no array for its space {space!r}")
    tensors: dict[str, Tensor] = {}
    for k, v in data.items():
        if v.dtype.kind not in "fiu":
            raise LatentSpaceError(f"{path}: entry {k!r} is not numeric; not an invertkit latent file")
        arr = np.asarray(v, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise LatentSpaceError(f"{path}: {k!r} contains NaN or infinity; re-run the inversion that wrote it")
        tensors[k] = torch.from_numpy(arr)
    latent = tensors.pop(key)
    if space == "w" and latent.dim() == 3:  # a W latent's key is also NVIDIA's "w" ([1, num_ws, w_dim])
        latent = latent[:, 0]
    item = ItemArrays(space, latent, text.get("kind", "latent"), version, text.get("latent_space"), layer=text.get("layer"),
                      image=text.get("image"))
    for k in list(tensors):
        if k.startswith(NOISE):
            item.noise[k[len(NOISE):]] = tensors.pop(k)
        elif k.startswith(STATE):
            item.state[int(k[len(STATE):])] = tensors.pop(k)
        elif k.startswith(HISTORY):
            item.history[k[len(HISTORY):]] = tensors.pop(k)
    item.extra = {k: v.numpy() for k, v in tensors.items()}
    return item


def stack_items(items: list[ItemArrays], attr: str) -> dict[Any, Tensor]:
    """``{key: [N, ...]}`` of a per-item dict attribute (``noise``, ``state``, ``history``) present in all items."""
    dicts: list[Mapping[Any, Tensor]] = [getattr(it, attr) for it in items]
    keys = [k for k in dicts[0] if all(k in d for d in dicts)]
    return {k: torch.cat([d[k] for d in dicts]) for k in keys}
