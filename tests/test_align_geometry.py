"""Face-alignment geometry without the detector: FFHQ's square from five points, the crop, paste-back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from invertkit.align import FacePoints, face_points_from_mesh, ffhq_quad, paste_back, warp_quad
from invertkit.align.align import align_points, paste_back_face
from invertkit.align.landmarks import EYE_LEFT_MESH, MOUTH_RIGHT_MESH

S = 64
# canonical points whose FFHQ square is exactly the S x S frame (pixel-centre convention: the frame spans
# -0.5 .. S-0.5): eye distance S/4 makes the half-side 2 * S/4; the centre sits 0.1 of eye-to-mouth below the eyes
EYE_Y, MOUTH_Y = S / 2 - 0.5 - 0.025 * S, S / 2 - 0.5 + 0.225 * S
CANON = FacePoints(eye_left=np.array([S / 2 - 0.5 - S / 8, EYE_Y]), eye_right=np.array([S / 2 - 0.5 + S / 8, EYE_Y]),
                   mouth_left=np.array([S / 2 - 0.5 - S / 10, MOUTH_Y]), mouth_right=np.array([S / 2 - 0.5 + S / 10, MOUTH_Y]))


def pattern(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A smooth colour pattern of canonical coordinates (in canonical pixels): 3 x ... in [-1, 1]."""
    return torch.stack([torch.sin(u / 7.0) * torch.cos(v / 9.0), torch.cos((u + v) / 11.0), torch.sin((u - 2 * v) / 13.0)]) * 0.9


def similarity(theta: float, scale: float, centre: tuple[float, float]):
    """canonical pixel coords -> photo pixel coords (the crop's centre lands on ``centre``), and its inverse,
    as numpy functions of N x 2 arrays."""
    r = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]) * scale
    t = np.array(centre) - r @ np.array([S / 2 - 0.5, S / 2 - 0.5])
    return (lambda p: np.asarray(p) @ r.T + t), (lambda q: (np.asarray(q) - t) @ np.linalg.inv(r).T)


def canonical_image() -> torch.Tensor:
    ax = torch.arange(S, dtype=torch.float64)
    v, u = torch.meshgrid(ax, ax, indexing="ij")
    return pattern(u, v).unsqueeze(0).float()


def photo_of(inverse, h: int, w: int) -> torch.Tensor:
    """The photo: every photo pixel shows the pattern at the canonical point it maps from."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    canon = inverse(np.stack([xs.numpy().ravel(), ys.numpy().ravel()], axis=1))
    u, v = torch.from_numpy(canon[:, 0]).reshape(h, w), torch.from_numpy(canon[:, 1]).reshape(h, w)
    return pattern(u, v).unsqueeze(0).float()


def test_upright_face_square_matches_ffhq_recipe():
    quad = ffhq_quad(CANON)
    expected = np.array([[-0.5, -0.5], [-0.5, S - 0.5], [S - 0.5, S - 0.5], [S - 0.5, -0.5]])
    np.testing.assert_allclose(quad, expected, atol=1e-9)


def test_mouth_far_below_eyes_sets_the_size():
    # a long face: 1.8 |eye_to_mouth| > 2 |eye_to_eye|, so the mouth distance decides the square
    p = FacePoints(np.array([40.0, 50.0]), np.array([60.0, 50.0]), np.array([45.0, 80.0]), np.array([55.0, 80.0]))
    quad = ffhq_quad(p)
    assert math.hypot(*(quad[3] - quad[0])) == pytest.approx(2 * 1.8 * 30.0)
    assert quad.mean(axis=0) == pytest.approx([50.0, 53.0])  # centre 0.1 of the way from the eyes to the mouth


@pytest.mark.parametrize("theta,scale", [(0.35, 2.5), (-0.6, 1.7), (2.0, 3.0)])
def test_square_turns_and_scales_with_the_face(theta, scale):
    forward, _ = similarity(theta, scale, (123.0, 77.0))
    moved = FacePoints.from_array(forward(CANON.as_array()))
    np.testing.assert_allclose(ffhq_quad(moved), forward(ffhq_quad(CANON)), atol=1e-9)


@pytest.mark.parametrize("theta,scale", [(0.35, 2.5), (-0.3, 1.3)])
def test_a_turned_scaled_face_is_aligned_back_to_the_canonical_crop(theta, scale):
    h, w = 300, 260
    forward, inverse = similarity(theta, scale, (130.0, 150.0))
    photo = photo_of(inverse, h, w)
    points = FacePoints.from_array(forward(CANON.as_array()))
    aligned = align_points(photo, points, S)
    err = (aligned.image - canonical_image()).abs()
    assert err.mean() < 0.01 and err.max() < 0.06  # only the box filter and bilinear sampling differ


def test_paste_back_of_the_crop_restores_the_photo_inside_the_mask_and_leaves_the_rest():
    h, w = 260, 240
    forward, inverse = similarity(0.4, 2.2, (120.0, 120.0))
    photo = photo_of(inverse, h, w)
    aligned = align_points(photo, FacePoints.from_array(forward(CANON.as_array())), 128)
    pasted = paste_back_face(aligned, aligned.image)
    # photo pixels well inside the square (its unit frame 0.15..0.85, past the feather)
    ys, xs = np.mgrid[0:h, 0:w]
    _, inv = similarity(0.4, 2.2, (120.0, 120.0))
    canon = inv(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(h, w, 2)
    ab = (canon + 0.5) / S
    core = torch.from_numpy(((ab > 0.15) & (ab < 0.85)).all(axis=-1))
    outside = torch.from_numpy(((ab < -0.01) | (ab > 1.01)).any(axis=-1))
    assert core.sum() > 5000
    assert (pasted - photo).abs()[0][:, core].max() < 0.03
    assert torch.equal(pasted[0][:, outside], photo[0][:, outside])


def test_paste_back_puts_the_output_inside_and_feathers_the_edge():
    photo = torch.zeros(1, 3, 100, 100)
    quad = np.array([[19.5, 19.5], [19.5, 79.5], [79.5, 79.5], [79.5, 19.5]])  # the square 20..80
    out = paste_back(photo, torch.ones(1, 3, 16, 16), quad, feather=0.1)
    assert out[0, :, 50, 50].tolist() == [1.0, 1.0, 1.0]
    assert out[0, :, 10, 10].tolist() == [0.0, 0.0, 0.0]
    ramp = out[0, 0, 50, 20:30]
    assert 0 < ramp[1] < ramp[4] < 1 and torch.all(ramp[1:] >= ramp[:-1])


def test_huge_square_is_box_filtered_before_sampling():
    # a fine checkerboard seen through a square 32x the output: sampled without a filter it aliases to +-1
    board = ((torch.arange(512)[:, None] + torch.arange(512)[None, :]) % 2).float() * 2 - 1
    photo = board.expand(1, 3, 512, 512).contiguous()
    crop = warp_quad(photo, np.array([[0.0, 0.0], [0.0, 511.0], [511.0, 511.0], [511.0, 0.0]]), 16)
    assert crop.abs().max() < 0.1


def test_mesh_indices_give_eye_centres_and_mouth_corners():
    mesh = np.zeros((468, 3))
    mesh[list(EYE_LEFT_MESH), :2] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]
    mesh[MOUTH_RIGHT_MESH, :2] = [40, 60]
    p = face_points_from_mesh(mesh)
    assert p.eye_left.tolist() == [13.0, 20.0] and p.mouth_right.tolist() == [40.0, 60.0]
    with pytest.raises(ValueError, match="468"):
        face_points_from_mesh(np.zeros((68, 2)))


def test_degenerate_points_are_refused():
    same = np.array([5.0, 5.0])
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad(FacePoints(same, same, same, same))


def test_greyscale_alignment_uses_luma():
    photo = torch.zeros(1, 3, 128, 128)
    photo[:, 0] = 1.0  # weights summing to 1 commute with the [0, 1] -> [-1, 1] map: luma of (1, 0, 0) is 0.299
    aligned = align_points(photo, CANON, 32, channels=1)
    assert aligned.image.shape == (1, 1, 32, 32)
    assert aligned.image.mean().item() == pytest.approx(0.299 * 1 + 0.587 * 0 + 0.114 * 0, abs=1e-5)
