"""Alignment geometry in pure torch/numpy: FFHQ's oriented square from five face points, the warp of a
photograph onto that square, and the inverse warp (paste-back) with a feathered mask.

Coordinates: ``(x, y)`` image pixels, pixel ``i``'s centre at ``i`` (landmark convention); the square
("quad") is four corners in the order top-left, bottom-left, bottom-right, top-right of the aligned
crop, as FFHQ's ``recreate_aligned_images`` builds it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .landmarks import FacePoints


def ffhq_quad(points: FacePoints) -> np.ndarray:
    """FFHQ's crop square for a face: ``4 x 2`` corners (top-left, bottom-left, bottom-right, top-right).

    The x axis is the eye-to-eye vector minus the eye-to-mouth vector turned by 90 degrees (so a tilted
    head or a foreshortened eye line both count), its half-length ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``;
    the centre is the eyes' midpoint moved 0.1 of the way to the mouth (Karras et al. 2019, FFHQ's
    alignment on dlib landmarks)."""
    eye_avg = (points.eye_left + points.eye_right) * 0.5
    eye_to_eye = points.eye_right - points.eye_left
    eye_to_mouth = (points.mouth_left + points.mouth_right) * 0.5 - eye_avg
    turned = np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # eye_to_mouth rotated by -90 degrees in image axes
    x = eye_to_eye - turned
    norm = math.hypot(*x)
    if not math.isfinite(norm) or norm < 1e-6:
        raise ValueError("face points are degenerate (eyes and mouth coincide)")
    x = x / norm * max(math.hypot(*eye_to_eye) * 2.0, math.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y]).astype(np.float64)


def quad_side(quad: np.ndarray) -> float:
    """Side length of the square in source pixels."""
    return float(math.hypot(*(quad[3] - quad[0])))


def _frame(quad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin and the two edge vectors of the quad in continuous coordinates (pixel ``i`` spans [i, i+1])."""
    q = np.asarray(quad, dtype=np.float64) + 0.5
    return q[0], q[3] - q[0], q[1] - q[0]


def sample_parallelogram(image: Tensor, origin: np.ndarray, ex: np.ndarray, ey: np.ndarray, height: int, width: int) -> Tensor:
    """Bilinear samples of ``image`` (``N x C x H x W``) on a ``height x width`` grid spanning the parallelogram
    ``origin + a ex + b ey`` (a, b in [0, 1]; continuous pixel coordinates). Outside the image: reflected
    (FFHQ pads with reflection too)."""
    h, w = image.shape[-2:]
    dev, dt = image.device, image.dtype
    a = (torch.arange(width, device=dev, dtype=torch.float64) + 0.5) / width
    b = (torch.arange(height, device=dev, dtype=torch.float64) + 0.5) / height
    bb, aa = torch.meshgrid(b, a, indexing="ij")
    px = origin[0] + aa * float(ex[0]) + bb * float(ey[0])
    py = origin[1] + aa * float(ex[1]) + bb * float(ey[1])
    grid = torch.stack([px / w * 2 - 1, py / h * 2 - 1], dim=-1).to(dt).unsqueeze(0).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def warp_quad(image: Tensor, quad: np.ndarray, size: int) -> Tensor:
    """The aligned crop: ``image`` (``1 x C x H x W``, any range) resampled onto the square ``quad`` at
    ``size x size``. A square much larger than ``size`` is first box-filtered (like FFHQ's shrink step)
    so that the bilinear samples do not alias."""
    if size < 1:
        raise ValueError(f"alignment size must be >= 1, got {size}")
    quad = np.asarray(quad, dtype=np.float64)
    h, w = image.shape[-2:]
    # crop a margin around the square first: the box filter then costs the face, not the whole photo
    border = max(int(round(quad_side(quad) * 0.1)), 3)
    x0 = max(int(math.floor(quad[:, 0].min())) - border, 0)
    y0 = max(int(math.floor(quad[:, 1].min())) - border, 0)
    x1 = min(int(math.ceil(quad[:, 0].max())) + border + 1, w)
    y1 = min(int(math.ceil(quad[:, 1].max())) + border + 1, h)
    if x1 - x0 >= 2 and y1 - y0 >= 2:
        image, quad = image[..., y0:y1, x0:x1], quad - np.array([x0, y0])
    shrink = int(math.floor(quad_side(quad) / size * 0.5))
    if shrink > 1 and min(image.shape[-2:]) >= shrink:
        image = F.avg_pool2d(image, shrink, ceil_mode=True, count_include_pad=False)
        quad = (quad + 0.5) / shrink - 0.5
    image, quad = _pad_blurred(image, quad)
    origin, ex, ey = _frame(quad)
    return sample_parallelogram(image, origin, ex, ey, size, size)


def _pad_blurred(image: Tensor, quad: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """Where the square reaches past the photo, pad it as FFHQ does: a reflection that fades, away from the
    border, into a blur and then into the photo's median colour (a bare reflection shows mirrored faces)."""
    h, w = image.shape[-2:]
    qsize = quad_side(quad)
    border = max(int(round(qsize * 0.1)), 3)
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = [max(-lo[0] + border, 0), max(hi[0] - w + border, 0), max(-lo[1] + border, 0), max(hi[1] - h + border, 0)]
    if max(pad) <= border - 4:
        return image, quad
    pad = [max(p, int(round(qsize * 0.3))) for p in pad]  # left, right, top, bottom
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    padded = F.pad(image, pad, mode=mode)
    ph, pw = padded.shape[-2:]
    xs = torch.arange(pw, dtype=image.dtype, device=image.device)
    ys = torch.arange(ph, dtype=image.dtype, device=image.device)[:, None]
    fx = torch.minimum(xs / max(pad[0], 1), (pw - 1 - xs) / max(pad[1], 1))
    fy = torch.minimum(ys / max(pad[2], 1), (ph - 1 - ys) / max(pad[3], 1))
    mask = torch.maximum(1.0 - fx, 1.0 - fy).clamp(min=0)  # 0 inside the photo, 1 at the padding's outer edge
    blurred = _gaussian_blur(padded, max(qsize * 0.02, 0.5))
    padded = padded + (blurred - padded) * (mask * 3.0 + 1.0).clamp(0, 1) * (mask > 0)
    median = image.flatten(2).median(dim=2).values[:, :, None, None]
    padded = padded + (median - padded) * mask.clamp(0, 1)
    return padded, quad + np.array([pad[0], pad[2]])


def _gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    radius = max(int(math.ceil(sigma * 3)), 1)
    t = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = image.shape[1]
    x = F.pad(image, [radius, radius, 0, 0], mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, [0, 0, radius, radius], mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def feather_mask(a: Tensor, b: Tensor, feather: float) -> Tensor:
    """1 well inside the unit square, falling smoothly to 0 at its edges over ``feather`` (a fraction of the side)."""
    edge = torch.minimum(torch.minimum(a, 1 - a), torch.minimum(b, 1 - b))
    if feather <= 0:
        return (edge >= 0).to(a.dtype)
    t = (edge / feather).clamp(0, 1)
    return t * t * (3 - 2 * t)  # smoothstep: no visible seam where the ramp starts


def paste_back(photo: Tensor, face: Tensor, quad: np.ndarray, *, feather: float = 0.1) -> Tensor:
    """Warp ``face`` (``1 x C x S x S``, the aligned crop's frame, any S) back onto ``quad`` in ``photo``
    (``1 x C x H x W``, same range) and blend with a mask that is 1 inside the square and fades to the
    photo over the outer ``feather`` of its side. Returns the composited photo (``1 x C x H x W``)."""
    if photo.shape[:2] != face.shape[:2]:
        raise ValueError(f"paste_back: photo {tuple(photo.shape)} and face {tuple(face.shape)} differ in batch or channels")
    quad = np.asarray(quad, dtype=np.float64)
    h, w = photo.shape[-2:]
    x0 = max(int(math.floor(quad[:, 0].min())), 0)
    y0 = max(int(math.floor(quad[:, 1].min())), 0)
    x1 = min(int(math.ceil(quad[:, 0].max())) + 1, w)
    y1 = min(int(math.ceil(quad[:, 1].max())) + 1, h)
    out = photo.clone()
    if x1 <= x0 or y1 <= y0:
        return out  # the square lies wholly outside the photo
    origin, ex, ey = _frame(quad)
    # photo pixel centres -> (a, b) in the square's unit frame: invert [ex ey]
    inv = np.linalg.inv(np.stack([ex, ey], axis=1))
    ys = torch.arange(y0, y1, dtype=torch.float64) + 0.5
    xs = torch.arange(x0, x1, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    dx, dy = xx - origin[0], yy - origin[1]
    a = inv[0, 0] * dx + inv[0, 1] * dy
    b = inv[1, 0] * dx + inv[1, 1] * dy
    grid = torch.stack([a * 2 - 1, b * 2 - 1], dim=-1).to(face.dtype).unsqueeze(0).expand(face.shape[0], -1, -1, -1)
    warped = F.grid_sample(face.to(photo.device), grid.to(photo.device), mode="bilinear", padding_mode="border", align_corners=False)
    mask = feather_mask(a, b, feather).to(photo.dtype).to(photo.device)
    region = out[..., y0:y1, x0:x1]
    out[..., y0:y1, x0:x1] = region + mask * (warped - region)
    return out
