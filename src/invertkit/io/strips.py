"""Image strips and animated GIFs of edits and interpolations (Pillow only).

A strip is one PNG row of frames (``S x C x H x W`` in [-1, 1]) with an optional small label under
each frame (the edit strength, the interpolation weight); a GIF plays the same frames, by default
forward then back so the loop has no jump.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..errors import ImageError
from .images import tensor_to_pil

AUTO_MIN_SIDE = 64  # auto scale: small generators' frames are enlarged to at least this many pixels
LABEL_GAP = 3  # pixels between a frame and its label


def auto_scale(resolution: int, min_side: int = AUTO_MIN_SIDE) -> int:
    """The integer enlargement that makes a ``resolution`` px frame at least ``min_side`` px wide
    (1 for 64 px and larger)."""
    return max(1, math.ceil(min_side / max(resolution, 1)))


def _check(images: Tensor, what: str) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] < 1 or images.shape[1] not in (1, 3):
        got = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ImageError(f"{what}: expected frames [S, C, H, W] with S >= 1 and C in (1, 3), got {got}")


def _frames(images: Tensor, scale: int) -> list[Image.Image]:
    """Each frame as an RGB PIL image, enlarged by ``scale`` (nearest neighbour: pixels stay honest)."""
    if scale < 1:
        raise ImageError(f"scale must be an integer >= 1, got {scale}")
    out = []
    for frame in images:
        tile = tensor_to_pil(frame).convert("RGB")
        if scale != 1:
            tile = tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST)
        out.append(tile)
    return out


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def label_height() -> int:
    """Height in pixels of the label band under a strip's frames (text plus gaps)."""
    top, bottom = _font().getbbox("-0.9Ag")[1::2]
    return int(bottom) + 2 * LABEL_GAP


def save_strip(images: Tensor, path: str | os.PathLike[str], *, labels: Sequence[str] | None = None,
               scale: int = 1, pad: int = 2) -> Path:
    """Write frames ``[S, C, H, W]`` in [-1, 1] as one PNG row on white; returns the path.

    Args:
        labels: one short text per frame, drawn small and centred under it (None: no label band).
        scale: integer enlargement of every frame (nearest neighbour).
        pad: white pixels around and between frames.

    The image is ``S * (W * scale + pad) + pad`` wide and ``H * scale + 2 * pad`` high, plus
    :func:`label_height` with labels.
    """
    _check(images, "save_strip")
    if labels is not None and len(labels) != images.shape[0]:
        raise ImageError(f"save_strip: {len(labels)} labels for {images.shape[0]} frames")
    tiles = _frames(images, scale)
    tw, th = tiles[0].size
    band = label_height() if labels is not None else 0
    strip = Image.new("RGB", (len(tiles) * (tw + pad) + pad, th + 2 * pad + band), (255, 255, 255))
    for i, tile in enumerate(tiles):
        strip.paste(tile, (pad + i * (tw + pad), pad))
    if labels is not None:
        draw, font = ImageDraw.Draw(strip), _font()
        for i, text in enumerate(labels):
            left, _, right, _ = draw.textbbox((0, 0), text, font=font)
            x = pad + i * (tw + pad) + (tw - (right - left)) / 2 - left
            draw.text((x, th + pad + LABEL_GAP), text, fill=(40, 40, 40), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path)
    return path


def save_gif(images: Tensor, path: str | os.PathLike[str], *, duration_ms: int = 120, bounce: bool = True,
             scale: int = 1, loop: int = 0) -> Path:
    """Write frames ``[S, C, H, W]`` in [-1, 1] as an animated GIF; returns the path.

    Args:
        duration_ms: display time of each frame.
        bounce: play forward then back (``S + max(S - 2, 0)`` frames, the ends not repeated), so a
            looping GIF has no jump from the last frame to the first.
        scale: integer enlargement (nearest neighbour).
        loop: GIF loop count, 0 = forever.

    Pillow stores two identical consecutive frames as one frame shown twice as long, so a GIF of an
    edit that changes nothing has fewer frames than ``images``.
    """
    _check(images, "save_gif")
    if duration_ms < 1:
        raise ImageError(f"save_gif: duration_ms must be >= 1, got {duration_ms}")
    frames = _frames(images, scale)
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # optimize=False and disposal 1: every frame is stored whole, so readers show exactly these frames
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=loop,
                   optimize=False, disposal=1)
    return path
