"""The five points FFHQ's alignment uses (two eye centres, two mouth corners), from MediaPipe's
468-point face mesh.

FFHQ (NVlabs/ffhq-dataset) computes each eye centre as the mean of dlib's six eye-contour points
(68-point scheme: 36-41 and 42-47) and takes the outer mouth corners (48 and 54). The face-mesh
points that correspond (canonical face-mesh numbering; "right" is the subject's right, which is the
image's left in a photo facing the camera):

- image-left eye (subject's right), dlib 36-41: 33 (outer corner), 160, 158 (upper lid), 133 (inner
  corner), 153, 144 (lower lid)
- image-right eye (subject's left), dlib 42-47: 362 (inner corner), 385, 387 (upper lid), 263 (outer
  corner), 373, 380 (lower lid)
- mouth corners, dlib 48 / 54: 61 (image-left) and 291 (image-right)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MESH_POINTS = 468
EYE_LEFT_MESH = (33, 160, 158, 133, 153, 144)  # image-left eye (subject's right), dlib 36-41
EYE_RIGHT_MESH = (362, 385, 387, 263, 373, 380)  # image-right eye (subject's left), dlib 42-47
MOUTH_LEFT_MESH = 61  # dlib 48
MOUTH_RIGHT_MESH = 291  # dlib 54


@dataclass(frozen=True)
class FacePoints:
    """The points the alignment needs, ``(x, y)`` in source-image pixels (pixel ``i``'s centre is ``i``).

    ``eye_left`` / ``mouth_left`` are on the image's left (the subject's right)."""

    eye_left: np.ndarray  # (2,)
    eye_right: np.ndarray  # (2,)
    mouth_left: np.ndarray  # (2,)
    mouth_right: np.ndarray  # (2,)

    def as_array(self) -> np.ndarray:
        """``4 x 2``: eye_left, eye_right, mouth_left, mouth_right."""
        return np.stack([self.eye_left, self.eye_right, self.mouth_left, self.mouth_right]).astype(np.float64)

    @staticmethod
    def from_array(points: np.ndarray) -> FacePoints:
        p = np.asarray(points, dtype=np.float64).reshape(4, 2)
        return FacePoints(p[0], p[1], p[2], p[3])


def face_points_from_mesh(mesh: np.ndarray) -> FacePoints:
    """``mesh``: ``468 x 2`` (or ``x 3``) face-mesh landmarks in image pixels -> :class:`FacePoints`."""
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.ndim != 2 or mesh.shape[0] != MESH_POINTS or mesh.shape[1] < 2:
        raise ValueError(f"face mesh: expected {MESH_POINTS} x 2 landmarks, got {tuple(mesh.shape)}")
    xy = mesh[:, :2]
    return FacePoints(eye_left=xy[list(EYE_LEFT_MESH)].mean(axis=0), eye_right=xy[list(EYE_RIGHT_MESH)].mean(axis=0),
                      mouth_left=xy[MOUTH_LEFT_MESH].copy(), mouth_right=xy[MOUTH_RIGHT_MESH].copy())
