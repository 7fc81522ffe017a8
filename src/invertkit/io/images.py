"""Image files <-> tensors.

All conversions between image files (any size, mode or common format) and the tensors invertkit
works with (float ``N x C x H x W`` in [-1, 1]) happen here and nowhere else.

Reading policy (documented in the README): the image is converted to the generator's channel count
(RGBA is composited on white, palette and CMYK images become RGB, RGB becomes greyscale by ITU-R
601-2 luma for 1-channel generators), centre-cropped to a square, then resized with Lanczos
filtering to the generator's resolution.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert a PIL image to ``L`` (channels=1) or ``RGB`` (channels=3); alpha is composited on white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    if channels == 1:
        return img.convert("L")
    if channels == 3:
        return img.convert("RGB")
    raise ImageError(f"cannot convert images to {channels} channels; only 1 (greyscale) and 3 (RGB) are supported")


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to the largest square, then Lanczos-resize to ``size`` x ``size``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


def pil_to_tensor(img: Image.Image) -> Tensor:
    """PIL ``L``/``RGB`` image -> float tensor ``1 x C x H x W`` in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


def array_to_tensor(arr: np.ndarray, size: int, channels: int) -> Tensor:
    """A uint8 (or [0,1] float) ``H x W`` / ``H x W x C`` array -> ``1 x C x size x size`` in [-1, 1]."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return pil_to_tensor(center_crop_resize(to_mode(Image.fromarray(a), channels), size))


# Largest image (width x height) decoded by default: Pillow's own warning threshold (about 89 megapixels,
# a 9459 x 9459 photograph); a file declaring more is refused before any pixel is decoded
# (a decompression bomb: a few KB of PNG can declare 50000 x 50000 pixels, 7.5 GB decoded).
MAX_PIXELS = 89_478_485


def read_image(path: str | os.PathLike[str], size: int, channels: int, *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Read one image file as ``1 x channels x size x size`` in [-1, 1].

    Raises:
        ImageError: missing file, not an image, truncated, otherwise unreadable, or declaring more
            than ``max_pixels`` pixels; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    return decode_image(path, size, channels, name=str(path), max_pixels=max_pixels)


def decode_image(source: str | os.PathLike[str] | bytes, size: int, channels: int, *, name: str,
                 max_pixels: int = MAX_PIXELS) -> Tensor:
    """Decode an image file or its bytes as ``1 x channels x size x size`` in [-1, 1].

    The declared size is checked against ``max_pixels`` from the header, before decoding; only the
    first frame of animated or multi-page files is used. ``name`` is what error messages call it.

    Raises:
        ImageError: one line naming ``name`` and the cause.
    """
    import io

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"{name}: declares {w} x {h} pixels, over the limit of {max_pixels:,} "
                                 "(raise it with --max-pixels if the image is genuine)")
            if w < 1 or h < 1:
                raise ImageError(f"{name}: declares an empty image ({w} x {h})")
            img.load()  # decode now so truncation is caught here
            img = to_mode(img, channels)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own check (twice its threshold) fired before ours could
        import re

        declared = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
        raise ImageError(f"{name}: declares {count}, over the limit of {max_pixels:,} (a decompression bomb, or raise "
                         "--max-pixels if the image is genuine)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (PNG, JPEG, PGM, ... expected); skip or replace it") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageError(f"{name}: cannot decode image ({str(exc)[:160]}); the file may be truncated or corrupt") from None
    return pil_to_tensor(center_crop_resize(img, size))


@dataclass
class ImageBatch:
    """Images read from files: the ones that worked, and one-line errors for the ones that did not."""

    images: Tensor  # N x C x H x W in [-1, 1]
    names: list[str]
    failures: dict[str, str]  # file name -> error message


def read_images(paths: Iterable[str | os.PathLike[str]], size: int, channels: int) -> ImageBatch:
    """Read many images; unreadable ones are recorded in ``failures`` instead of aborting the batch."""
    tensors, names, failures = [], [], {}
    for p in paths:
        try:
            tensors.append(read_image(p, size, channels))
            names.append(Path(p).name)
        except ImageError as exc:
            failures[str(p)] = str(exc)
    images = torch.cat(tensors) if tensors else torch.zeros(0, channels, size, size)
    return ImageBatch(images, names, failures)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Files in ``folder`` (not recursive) whose suffix is an image suffix, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder of images")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_uint8(images: Tensor) -> np.ndarray:
    """``N x C x H x W`` in [-1, 1] -> uint8 ``N x H x W x C`` (clamped, rounded: what users see)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def tensor_to_pil(image: Tensor) -> Image.Image:
    """One image ``C x H x W`` (or ``1 x C x H x W``) in [-1, 1] -> PIL image."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    arr = to_uint8(image)[0]
    return Image.fromarray(arr[:, :, 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr, mode="RGB")


def save_image(image: Tensor, path: str | os.PathLike[str]) -> Path:
    """Write one image in [-1, 1] to ``path`` (format from the suffix); returns the path.

    Atomic (:func:`~invertkit.io.atomic.write_atomic`): a full disk or a kill never leaves a truncated
    image under the final name; a full disk raises one :class:`~invertkit.io.atomic.StorageError` line."""
    from .atomic import write_atomic

    pil = tensor_to_pil(image)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())  # the temporary name must not decide the format
    return write_atomic(path, lambda tmp: pil.save(tmp, format=fmt))


def make_grid(rows: Sequence[Tensor], *, scale: int = 1, pad: int = 2) -> Image.Image:
    """Tile images into a grid: ``rows[i]`` is ``N x C x H x W`` (same N, H, W), one grid row per tensor.

    ``scale`` enlarges each image by an integer factor (nearest neighbour, so pixels stay honest).
    """
    n, c, h, w = rows[0].shape
    hs, ws = h * scale, w * scale
    grid = Image.new("RGB", (n * (ws + pad) + pad, len(rows) * (hs + pad) + pad), (255, 255, 255))
    for r, batch in enumerate(rows):
        for i in range(batch.shape[0]):
            tile = tensor_to_pil(batch[i]).convert("RGB")
            if scale != 1:
                tile = tile.resize((ws, hs), Image.Resampling.NEAREST)
            grid.paste(tile, (pad + i * (ws + pad), pad + r * (hs + pad)))
    return grid


def slug(text: str, default: str = "image") -> str:
    """A file-name-safe form of a name (``"b16.conv0 c12"`` -> ``"b16.conv0_c12"``; ``default`` if nothing is left)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or default
