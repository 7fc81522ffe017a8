"""Edit masks: PIE-Bench's run-length encoding, masks from files or arrays, and masking images.

PIE-Bench (Ju et al., ICLR 2024, "PnP Inversion") stores each entry's edit mask in
``mapping_file.json`` as a flat list ``[start_0, length_0, start_1, length_1, ...]``: runs of ones
over the row-major flattened 512 x 512 image (pixel ``(r, c)`` is index ``512 r + c``); 1 marks the
region to be edited. The official decoder (``evaluation/evaluate.py``, ``mask_decode``) then sets the
outermost row and column on every side to 1 ("to avoid annotation errors in boundary"), so those
pixels never count as background; :func:`decode_rle` does the same by default.

Where the official decoder silently clips a run that runs past the image (and ignores one that
starts past it), :func:`decode_rle` refuses it with one line unless ``clip_runs=True`` asks for the
official behaviour.

Masking follows the official metrics: an image is "restricted" to a region by multiplying it, on
[0, 1], by the region's 0/1 mask, i.e. pixels outside become black (0 on [0, 1], -1 on [-1, 1]), and
the metric is then computed over the *whole* image (see ``metrics.edit_background``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ImageError
from ..untrusted import short_repr

PIE_SIZE = (512, 512)  # height, width of every PIE-Bench image and mask


def decode_rle(rle: Sequence[int], shape: tuple[int, int] = PIE_SIZE, *, border: bool = True,
               clip_runs: bool = False, where: str = "mask") -> np.ndarray:
    """Decode a PIE-Bench run-length mask -> ``H x W`` bool array (True = edited region).

    Args:
        rle: ``[start, length, start, length, ...]`` non-negative integers over the row-major
            flattened ``shape``.
        border: set the outermost rows and columns to True, as the official decoder does.
        clip_runs: clip runs that end past the image and drop runs that start past it (the official
            decoder's silent behaviour); by default such a run is an error.
        where: what messages call the mask (e.g. ``"mapping_file.json entry '000000000000'"``).

    Raises:
        ConfigError: not a list of an even number of non-negative integers, or a run outside the image.
    """
    h, w = shape
    total = h * w
    if not isinstance(rle, (list, tuple)):
        raise ConfigError(f"{where}: mask must be a list of run starts and lengths, got {type(rle).__name__}")
    if len(rle) % 2:
        raise ConfigError(f"{where}: mask has {len(rle)} numbers; run-length masks are start/length pairs (an even count)")
    for i, v in enumerate(rle):
        if type(v) is not int or v < 0:  # bool is an int subclass: refused too
            raise ConfigError(f"{where}: mask value {i} is {short_repr(v, 40)}; expected a non-negative integer")
    runs = np.asarray(rle, dtype=np.int64).reshape(-1, 2) if rle else np.zeros((0, 2), np.int64)
    starts, lengths = runs[:, 0], runs[:, 1]
    ends = starts + lengths
    outside = np.flatnonzero(ends > total)
    if outside.size and not clip_runs:
        k = int(outside[0])
        raise ConfigError(
            f"{where}: mask run {k} (start {int(starts[k])}, length {int(lengths[k])}) runs past the {h}x{w} image "
            f"({total} pixels); fix the entry, or clip such runs as the official decoder does (clip_runs / --clip-mask-runs)"
        )
    keep = starts < total
    starts, ends = starts[keep], np.minimum(ends[keep], total)
    # difference array: +1 where a run starts, -1 where it ends; overlapping runs just stay positive
    diff = np.zeros(total + 1, dtype=np.int64)
    np.add.at(diff, starts, 1)
    np.add.at(diff, ends, -1)
    mask = (np.cumsum(diff[:total]) > 0).reshape(h, w)
    if border:
        mask[0, :] = mask[-1, :] = True
        mask[:, 0] = mask[:, -1] = True
    return mask


def encode_rle(mask: np.ndarray | Tensor) -> list[int]:
    """Inverse of :func:`decode_rle` (without the border): ``H x W`` bool -> ``[start, length, ...]``."""
    flat = np.asarray(mask.cpu() if isinstance(mask, Tensor) else mask, dtype=bool).reshape(-1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flat.astype(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2]
    return [int(v) for pair in zip(starts, ends - starts) for v in pair]


def load_mask(source: str | os.PathLike[str] | np.ndarray | Tensor, shape: tuple[int, int] | None = None) -> Tensor:
    """An edit mask as an ``H x W`` bool tensor (True = edited) from an array, a tensor, a ``.npy``
    file (read without pickle) or an image file (pixels > 127 in its grey levels are edited).

    ``shape``: the ``(H, W)`` the mask must have (ImageError otherwise; masks are never resized,
    since resizing would move the boundary the background metrics depend on)."""
    name = "mask array"
    if isinstance(source, Tensor):
        arr = source.detach().cpu().numpy()
    elif isinstance(source, np.ndarray):
        arr = source
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ImageError(f"{path}: no such mask file; pass a .npy array or an image of the edit region")
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise ImageError(f"{path}: not a readable .npy mask ({str(exc)[:120]})") from None
        else:
            from PIL import Image, UnidentifiedImageError

            from ..io.images import MAX_PIXELS, open_regular

            try:
                with open_regular(path, name) as f, Image.open(f) as img:
                    if img.size[0] * img.size[1] > MAX_PIXELS:
                        raise ImageError(f"{path}: declares {img.size[0]} x {img.size[1]} pixels, too many for a mask")
                    arr = np.asarray(img.convert("L")) > 127
            except UnidentifiedImageError:
                raise ImageError(f"{path}: not an image file; a mask is a .npy array or a grey/black-and-white image") from None
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise ImageError(f"{path}: cannot decode mask image ({str(exc)[:120]})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] in (1, 3):
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ImageError(f"{name}: a mask must be H x W, got shape {list(arr.shape)}")
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
        raise ImageError(f"{name}: a mask must hold finite numbers or booleans, got dtype {arr.dtype}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ImageError(f"{name}: mask is {arr.shape[0]}x{arr.shape[1]}, the image is {shape[0]}x{shape[1]}; "
                         "give a mask of the image's size")
    return torch.from_numpy(np.ascontiguousarray(arr != 0 if arr.dtype.kind == "b" else arr > 0.5))


def as_batch_mask(mask: Tensor | np.ndarray, images: Tensor) -> Tensor:
    """A mask (``H x W``, ``N x H x W`` or ``N x 1 x H x W``) as ``N x 1 x H x W`` bool on ``images``' device."""
    m = torch.as_tensor(mask)
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    n, _, h, w = images.shape
    if m.dim() != 4 or m.shape[1] != 1 or tuple(m.shape[-2:]) != (h, w) or m.shape[0] not in (1, n):
        raise ImageError(f"mask of shape {list(torch.as_tensor(mask).shape)} does not fit images {list(images.shape)}")
    return (m != 0).to(images.device).expand(n, 1, h, w)


def restrict(images: Tensor, region: Tensor | np.ndarray) -> Tensor:
    """``images`` (``N x C x H x W`` in [-1, 1]) with every pixel outside ``region`` set to black
    (-1, i.e. 0 on [0, 1]): the official ``image * mask`` on [0, 1]. NaN pixels stay NaN inside."""
    m = as_batch_mask(region, images)
    return torch.where(m, images, torch.full_like(images, -1.0))


def region_fraction(region: Tensor | np.ndarray, images: Tensor) -> Tensor:
    """``[N]`` fraction of each image's pixels inside ``region``."""
    return as_batch_mask(region, images).flatten(1).float().mean(dim=1)
