"""Align a photograph's face the FFHQ way and paste a generated face back: the typed result and the
steps that need a detector (:func:`align_photo`, :func:`align_image`) or do not (:func:`paste_back_face`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import ImageError
from .geometry import ffhq_quad, paste_back, warp_quad
from .landmarks import FacePoints, face_points_from_mesh

# ITU-R 601 luma, the weights Pillow's "L" conversion uses: a greyscale generator sees what read_image would give it
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class AlignedFace:
    """One face aligned FFHQ-style.

    Attributes:
        image: the aligned crop, ``1 x C x size x size`` in [-1, 1] (C: the requested channels).
        quad: ``4 x 2`` corners of the crop square in the photo (top-left, bottom-left, bottom-right,
            top-right; pixel ``i``'s centre at ``i``): the whole transform, forward and back.
        points: the eye centres and mouth corners the square was built from (photo pixels).
        photo: the whole photograph, ``1 x 3 x H x W`` in [-1, 1] (RGB, what the detector saw): paste-back's canvas.
        mesh: the face mesh (``468 x 3``) or None when the points were given, not detected.
        box: the detection box ``(x0, y0, x1, y1)`` or None.
        face: which face (1 = the largest) of ``faces`` detected.
        source: the file (or name) the photo came from.
    """

    image: Tensor
    quad: np.ndarray
    points: FacePoints
    photo: Tensor
    mesh: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    face: int = 1
    faces: int = 1
    source: str = "image"

    @property
    def size(self) -> int:
        return int(self.image.shape[-1])

    def to_json(self) -> dict[str, Any]:
        """What the sidecar file stores: enough to redo the crop or paste any output back (no pixels)."""
        h, w = self.photo.shape[-2:]
        # the absolute path: `invertkit edit --paste-back` reads the photo again, maybe from another folder
        return {"source": os.path.abspath(self.source), "photo_size": [int(w), int(h)], "size": self.size, "face": self.face,
                "faces": self.faces, "quad": self.quad.round(4).tolist(), "points": self.points.as_array().round(4).tolist(),
                "points_order": ["eye_left", "eye_right", "mouth_left", "mouth_right"],
                "box": None if self.box is None else [round(v, 4) for v in self.box],
                "convention": "x, y in photo pixels, pixel i's centre at i; quad corners top-left, bottom-left, bottom-right, top-right"}


def _channels(rgb: Tensor, channels: int) -> Tensor:
    if channels == 3:
        return rgb
    if channels == 1:
        return sum(wt * rgb[:, i : i + 1] for i, wt in enumerate(_LUMA))
    raise ValueError(f"alignment gives 1 or 3 channels, not {channels}")


def align_points(photo: Tensor, points: FacePoints, size: int, channels: int = 3, *, source: str = "image") -> AlignedFace:
    """Align ``photo`` (``1 x 3 x H x W`` in [-1, 1]) on given face points (no detector needed)."""
    quad = ffhq_quad(points)
    crop = warp_quad(photo, quad, size).clamp(-1, 1)
    return AlignedFace(image=_channels(crop, channels), quad=quad, points=points, photo=photo, source=source)


def align_image(photo: Tensor, size: int, channels: int = 3, *, face: int | None = None, source: str = "image",
                threads: int | None = None) -> AlignedFace:
    """Detect the faces in ``photo`` (``1 x C x H x W`` in [-1, 1]), take the largest (or the ``face``-th
    largest, 1-based) and align it at ``size`` px.

    Raises:
        ImageError: no face found, or fewer faces than ``face``; the message names ``source``.
        ConfigError: the optional extra is not installed.
    """
    from .detector import detect_faces

    rgb = photo if photo.shape[1] == 3 else photo.expand(-1, 3, -1, -1)
    found = sorted(detect_faces(rgb, threads=threads), key=lambda f: -f.area)
    if not found:
        raise ImageError(f"{source}: no face found (alignment needs a visible, roughly frontal face); "
                         "leave out --align for this image or crop it by hand")
    k = 1 if face is None else face
    if k < 1 or k > len(found):
        raise ImageError(f"{source}: --face {k} asked, but {len(found)} face(s) found; choose 1 to {len(found)}")
    chosen = found[k - 1]
    out = align_points(rgb, face_points_from_mesh(chosen.mesh), size, channels, source=source)
    out.mesh, out.box, out.face, out.faces = chosen.mesh, chosen.box, k, len(found)
    return out


def align_photo(path: str | os.PathLike[str], size: int, channels: int = 3, *, face: int | None = None,
                max_pixels: int | None = None, threads: int | None = None) -> AlignedFace:
    """Read an image file whole (within the image reader's pixel limit) and align its face; see :func:`align_image`."""
    from ..io.images import MAX_PIXELS, read_photo

    photo = read_photo(path, 3, max_pixels=MAX_PIXELS if max_pixels is None else max_pixels)
    return align_image(photo, size, channels, face=face, source=str(path), threads=threads)


def paste_back_face(aligned: AlignedFace, output: Tensor, *, feather: float = 0.1) -> Tensor:
    """``output`` (``1 x C x S x S`` in [-1, 1], a reconstruction or edit of ``aligned.image``, any S) warped back
    into the photo with a feathered mask: ``1 x 3 x H x W`` in [-1, 1]. A greyscale output is pasted as grey."""
    face = output.detach().float().cpu()
    if face.shape[1] == 1:
        face = face.expand(-1, 3, -1, -1)
    return paste_back(aligned.photo.float(), face, aligned.quad, feather=feather).clamp(-1, 1)
