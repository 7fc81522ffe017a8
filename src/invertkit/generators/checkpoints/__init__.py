"""Checkpoint files: format detection, safe readers and writers.

``read_checkpoint(path)`` reads any supported file into a :class:`LoadedCheckpoint` (config +
NVIDIA-named float32 state dict + meta); ``save_native`` and ``save_rosinality`` write one.
"""

from __future__ import annotations

import os

from .detect import FORMATS, NATIVE, NVIDIA_PKL, ROSINALITY_PT, LoadedCheckpoint, detect_format, nvidia_layout
from .native import read_native, save_native
from .nvidia_pkl import LoadedStyleGAN3, claims_stylegan3_pkl, read_nvidia_pkl, read_stylegan3_pkl
from .rosinality import read_rosinality, save_rosinality

__all__ = [
    "FORMATS",
    "NATIVE",
    "NVIDIA_PKL",
    "ROSINALITY_PT",
    "LoadedCheckpoint",
    "LoadedStyleGAN3",
    "claims_stylegan3_pkl",
    "detect_format",
    "nvidia_layout",
    "read_checkpoint",
    "read_native",
    "read_nvidia_pkl",
    "read_rosinality",
    "read_stylegan3_pkl",
    "save_native",
    "save_rosinality",
]

_READERS = {NVIDIA_PKL: read_nvidia_pkl, ROSINALITY_PT: read_rosinality, NATIVE: read_native}


def read_checkpoint(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Detect the format of ``path`` from its content and read it (nothing in the file is executed).

    Raises:
        CheckpointError: a one-line message naming the file, the problem and, where possible, the fix.
    """
    return _READERS[detect_format(path)](path)
