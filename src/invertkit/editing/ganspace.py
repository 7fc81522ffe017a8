"""GANSpace: edit directions as principal components of the generator's own activations.

Härkönen, Hertzmann, Lehtinen & Paris, "GANSpace: Discovering Interpretable GAN Controls" (NeurIPS
2020). Sampled latents are pushed through the first part of the generator and PCA of the result
gives the directions along which generated images vary most.

- StyleGAN2: PCA of sampled W latents (the mapping output); the principal axes are W directions,
  their "units" the w coordinates. ``sigmas`` are the standard deviations along each axis.
- z-only generators (DCGAN, MLP GAN): PCA of the activations at an intermediate layer (the
  "units" are that layer's output values, flattened), then, as the paper does for BigGAN, each
  principal component is transferred to Z by least squares: ``U = argmin ||X U - Z||`` with ``X``
  the samples' PCA coordinates ``[n, components]`` and ``Z`` their latents ``[n, z_dim]``; row ``i``
  of ``U``, scaled to unit length, is the z direction that moves the ``i``-th coordinate.

PCA is exact (covariance eigendecomposition in float64) up to ``EXACT_PCA_MAX_DIM`` features; wider
features (a DCGAN's 512 x 4 x 4 first layer) use a seeded, streaming subspace iteration that never
holds more than one batch of features or a ``dim x q`` basis in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, StyleSpaces, require
from .directions import Directions, identity, latent_sigmas, unit_rows

EXACT_PCA_MAX_DIM = 2048  # covariance of 2048 float64 features: 32 MiB, a few seconds of eigh on a CPU
SUBSPACE_ITERATIONS = 8  # passes of the randomized PCA; ample for the decaying spectra of GAN features
_W_BATCH = 4096
_FEATURE_BATCH = 1000


@torch.no_grad()
def ganspace(G: Generator, *, samples: int = 10_000, components: int = 20, feature_layer: str | None = None,
             seed: int = 0) -> Directions:
    """Principal directions of ``G``'s sampled W latents (StyleGAN2) or intermediate features (z-only).

    Args:
        G: a generator with a ``"w"`` space (PCA in W) or a splittable z-only generator (a wrapped
            ``nn.Sequential`` or module with ``as_sequence()``, see ``SimpleGenerator.layer_split``).
        samples: latents drawn (``G.sample_latent(samples, "z", seed=seed)``); must exceed ``components``.
        components: directions returned, at most the PCA's dimension.
        feature_layer: z-only generators: the split point whose activations are analysed. Default:
            the split right after the activation that follows the first Linear/Conv layer (e.g. after
            the first ReLU), the earliest layer whose output is a nonlinear image of z, as the paper
            takes BigGAN's first layer output.
        seed: seed of the latent draws (and of the randomized PCA basis).

    Returns:
        :class:`Directions`: in W, ``vectors [components, w_dim]`` the principal axes, ``sigmas`` the
        standard deviation along each, ``values`` the explained-variance ratio; in Z, ``vectors
        [components, *z_shape]`` unit z directions, ``sigmas`` 1, ``values`` the explained-variance
        ratio of the feature PCA. Directions are sorted by variance, descending.

    Raises:
        ConfigError: ``components`` above the dimension, ``samples <= components``, a feature layer
            given for a StyleGAN2, or a z-only generator that cannot be split.
    """
    if not isinstance(components, int) or components < 1:
        raise ConfigError(f"ganspace: components must be a positive integer, got {components!r}")
    if not isinstance(samples, int) or samples <= components:
        raise ConfigError(f"ganspace: samples={samples!r} must be an integer above components={components} "
                          "(PCA needs more samples than components)")
    if isinstance(G, StyleSpaces):
        if feature_layer is not None:
            raise ConfigError(f"ganspace: feature_layer={feature_layer!r} applies to z-only generators; "
                              f"{G.name} has a W space and GANSpace uses PCA of W there (leave feature_layer unset)")
        return _ganspace_w(G, samples, components, seed)
    return _ganspace_features(G, samples, components, feature_layer, seed)


def _ganspace_w(G: Generator, samples: int, components: int, seed: int) -> Directions:
    z = G.sample_latent(samples, "z", seed=seed)  # the same draws as G.sample_latent(samples, "w", seed=seed)
    w = torch.cat([G.convert(z[i:i + _W_BATCH], "z", "w") for i in range(0, samples, _W_BATCH)]).double().cpu()
    _check_components(components, w.shape[1], "W")
    pca = _pca(lambda: iter((w,)), w.shape[1], components, seed)
    vectors = unit_rows(pca.components.float())
    info = {"samples": samples, "seed": seed, "layer": "w", "components": components, "pca": pca.method,
            "explained_variance_total": float(pca.ratios.sum())}
    return Directions(vectors, pca.variances.clamp_min(0).sqrt().float(), pca.ratios.float(), "w", "ganspace",
                      [f"ganspace {i}" for i in range(components)], None, identity(G), info)


def _ganspace_features(G: Generator, samples: int, components: int, feature_layer: str | None,
                       seed: int) -> Directions:
    layer = str(feature_layer) if feature_layer is not None else default_feature_layer(G)
    split = require(G, LayerSplitting, "ganspace on a generator without a W space").layer_split(layer)
    z = G.sample_latent(samples, "z", seed=seed)

    def features() -> Iterator[Tensor]:
        for i in range(0, samples, _FEATURE_BATCH):
            yield split.head(z[i:i + _FEATURE_BATCH], "z")[0].flatten(1).double().cpu()

    dim = next(features()).shape[1]
    _check_components(components, dim, f"the features at layer {layer}")
    pca = _pca(features, dim, components, seed)
    coords = torch.cat([(f - pca.mean) @ pca.components.T for f in features()])  # [n, components]
    # z = coords @ U in the least-squares sense; coords are centred, so no intercept is needed
    U = torch.linalg.lstsq(coords, z.flatten(1).double().cpu()).solution  # [components, z_dim]
    vectors = unit_rows(U.float()).reshape(components, *G.latent_shape("z"))
    info: dict[str, Any] = {"samples": samples, "seed": seed, "layer": layer, "feature_dim": dim,
                            "components": components, "pca": pca.method, "transfer": "least squares z ~ PCA coordinates",
                            "explained_variance_total": float(pca.ratios.sum())}
    return Directions(vectors, latent_sigmas(G, "z", vectors), pca.ratios.float(), "z", "ganspace",
                      [f"ganspace {i}" for i in range(components)], None, identity(G), info)


def default_feature_layer(G: Generator) -> str:
    """The split point just after the activation that follows ``G``'s first Linear/Conv layer.

    Falls back to the split right after that layer when no activation follows it before the output.
    Raises ConfigError when ``G`` exposes no sequence to split.
    """
    names = G.split_layers() if isinstance(G, LayerSplitting) else []
    seq = G.layer_sequence() if isinstance(G, LayerSplitting) else None
    if not names or seq is None:
        raise ConfigError(f"ganspace: {G.name} has no W space and cannot be split at an intermediate layer; "
                          "wrap an nn.Sequential (or a module with as_sequence()) to analyse its features")
    weighted = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    first = next((i for i, m in enumerate(seq) if isinstance(m, weighted)), None)
    if first is not None:
        act = next((j for j in range(first + 1, len(seq)) if type(seq[j]).__module__ == nn.ReLU.__module__), None)
        for cut in ([act + 1] if act is not None else []) + [first + 1]:
            if str(cut) in names:
                return str(cut)
    raise ConfigError(f"ganspace: cannot choose a feature layer for {G.name} automatically; "
                      f"pass feature_layer, one of {', '.join(names)}")


def _check_components(components: int, dim: int, what: str) -> None:
    if components > dim:
        raise ConfigError(f"ganspace: components={components} exceeds the dimension of {what} ({dim}); "
                          f"ask for at most {dim}")


class _PCA:
    """Top principal axes of a data stream: ``mean [D]``, ``components [k, D]`` (unit rows, variance
    descending, largest-magnitude entry positive), ``variances [k]``, ``ratios [k]`` (of the total)."""

    def __init__(self, mean: Tensor, components: Tensor, variances: Tensor, total: float, method: str) -> None:
        idx = components.abs().argmax(dim=1, keepdim=True)
        self.mean = mean
        self.components = components * torch.sign(components.gather(1, idx))
        self.variances = variances
        self.ratios = variances / total
        self.method = method


def _pca(batches: Callable[[], Iterator[Tensor]], dim: int, k: int, seed: int) -> _PCA:
    """PCA of the rows of all ``batches()`` (float64 ``[b, dim]``; the stream is read several times)."""
    n, total = 0, torch.zeros(dim, dtype=torch.float64)
    for x in batches():
        n, total = n + x.shape[0], total + x.sum(0)
    mean = total / n
    if dim <= EXACT_PCA_MAX_DIM:
        cov = torch.zeros(dim, dim, dtype=torch.float64)
        for x in batches():
            xc = x - mean
            cov += xc.T @ xc
        cov /= n - 1
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(eigvals, descending=True)[:k]
        return _PCA(mean, eigvecs[:, order].T, eigvals[order], float(eigvals.sum()), "covariance eigh (float64)")
    # randomized subspace iteration with Rayleigh-Ritz (Halko, Martinsson & Tropp 2011), streamed
    q = min(dim, 2 * k + 10)
    basis = torch.randn(dim, q, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    basis = torch.linalg.qr(basis).Q
    for _ in range(SUBSPACE_ITERATIONS):
        y = torch.zeros(dim, q, dtype=torch.float64)
        for x in batches():
            xc = x - mean
            y += xc.T @ (xc @ basis)
        basis = torch.linalg.qr(y).Q
    small, trace = torch.zeros(q, q, dtype=torch.float64), 0.0
    for x in batches():
        xc = x - mean
        p = xc @ basis
        small += p.T @ p
        trace += float((xc * xc).sum())
    eigvals, eigvecs = torch.linalg.eigh(small / (n - 1))
    order = torch.argsort(eigvals, descending=True)[:k]
    return _PCA(mean, (basis @ eigvecs[:, order]).T, eigvals[order], trace / (n - 1),
                f"randomized subspace iteration (float64, rank {q}, {SUBSPACE_ITERATIONS} passes)")

