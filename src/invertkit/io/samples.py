"""Real photographs that ship inside installed wheels (no download), for the demo and tests.

- ``astronaut``: Eileen Collins' NASA portrait (public domain), from scikit-image, cropped to the face.
- ``lfw-K``: faces from the Labeled Faces in the Wild subset scikit-image ships (25 x 25 greyscale).

Also the MNIST test set as the project's ``shared/data/mnist`` folder holds it (IDX files, gzipped).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .images import array_to_tensor

# Square box (left, top, right, bottom) around the face in skimage.data.astronaut() (512 x 512),
# framed like the DCGAN's training faces: forehead to chin, little background.
ASTRONAUT_FACE_BOX = (165, 35, 315, 185)


def astronaut_face(size: int, channels: int) -> Tensor:
    """The astronaut portrait's face as ``1 x channels x size x size`` in [-1, 1]."""
    from skimage import data

    left, top, right, bottom = ASTRONAUT_FACE_BOX
    return array_to_tensor(data.astronaut()[top:bottom, left:right], size, channels)


def lfw_faces(indices: list[int], size: int, channels: int) -> Tensor:
    """LFW faces ``indices`` (0-99 are faces) as ``K x channels x size x size`` in [-1, 1]."""
    from skimage import data

    faces = data.lfw_subset()  # (200, 25, 25) float in [0, 1]; the first 100 are faces
    bad = [i for i in indices if not 0 <= i < 100]
    if bad:
        raise ValueError(f"LFW face indices must be in 0..99, got {bad}")
    return torch.cat([array_to_tensor(np.asarray(faces[i]), size, channels) for i in indices])


def demo_faces(size: int, channels: int, lfw: tuple[int, ...] = (0, 1, 2, 7)) -> tuple[Tensor, list[str]]:
    """The demo's real faces: the astronaut plus a few LFW faces; returns (images, names)."""
    images = torch.cat([astronaut_face(size, channels), lfw_faces(list(lfw), size, channels)])
    return images, ["astronaut"] + [f"lfw-{i}" for i in lfw]


def mnist_test(folder: str | os.PathLike[str], n: int = 10_000) -> tuple[Tensor, Tensor]:
    """The first ``n`` MNIST test digits from ``folder`` (``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte.gz``): images ``n x 1 x 28 x 28`` in [-1, 1] and labels ``[n]`` int64."""
    folder = Path(folder)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + n * 784), np.uint8, offset=16)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + n), np.uint8, offset=8)
    n = min(n, labels.shape[0], images.shape[0] // 784)
    x = torch.from_numpy(images[: n * 784].reshape(n, 1, 28, 28).astype(np.float32) / 127.5 - 1.0)
    return x, torch.from_numpy(labels[:n].astype(np.int64))
