"""Inputs for the dataset-run tests: a tiny StyleGAN2 checkpoint and folders of small images, good and hostile."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def save_tiny_sg2(G, folder: Path) -> Path:
    from invertkit.generators.checkpoints import save_native

    return save_native(G, folder / "tiny.safetensors")


def write_images(folder: Path, n: int, *, size: int = 16, seed: int = 0, nested: bool = True) -> list[Path]:
    """``n`` small RGB PNGs (every third in a sub-folder when ``nested``); returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / ("sub" if nested and i % 3 == 0 else "") / f"img{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def png_bomb(width: int = 50000, height: int = 50000) -> bytes:
    """A valid PNG header declaring ``width x height`` greyscale pixels, with a tiny IDAT: a
    decompression bomb as far as a decoder that trusts the header is concerned."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def write_broken(folder: Path) -> dict[str, bytes]:
    """Hostile inputs by name: zero bytes, truncated, text named .png, a declared 50000 x 50000 PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "_good.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(good)
    data = good.read_bytes()
    good.unlink()
    files = {"zero.png": b"", "truncated.png": data[: len(data) // 2], "text.png": b"hello, not an image\n",
             "bomb.png": png_bomb()}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files
