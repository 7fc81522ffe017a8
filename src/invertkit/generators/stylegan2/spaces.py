"""StyleGAN2's P and P_N latent spaces, and the small statistics cache they (and NSCD) use.

P and P_N (Zhu, Abdal, Femiani, Wonka, "Improved StyleGAN Embedding: Where are the Good Latents?",
2020) undo the mapping network's last non-linearity so that a Gaussian prior becomes natural.

P: the last mapping layer's pre-activation
    NVIDIA's mapping ends in a fully connected layer with ``bias_act(act="lrelu", gain=sqrt(2))``,
    i.e. ``w = sqrt(2) * lrelu_{0.2}(x)`` with ``x = W_gain @ h + b_gain``. P is that ``x``:

        p = lrelu_{5.0}(w) / sqrt(2)        w = sqrt(2) * lrelu_{0.2}(p)

    Zhu et al. write ``x = LeakyReLU_{5.0}(w)`` for TensorFlow StyleGAN, whose lrelu carries the same
    sqrt(2) gain; the constant factor is absorbed by the PCA below, so P_N is the same either way,
    and our P is the literal pre-activation (whose distribution is the near-Gaussian one).

P_N: P whitened by PCA
    ``v = Lambda^-1 C^T (p - mu)``, ``p = C Lambda v + mu``, with ``mu`` the mean of p, ``C`` the
    eigenvectors of its covariance (columns, descending eigenvalue) and ``Lambda`` the square roots
    of the eigenvalues; fitted on the p of ``n >= 10^5`` mapped z samples (float64 covariance +
    eigendecomposition, seeded). Sampled latents have ~zero mean and ~identity covariance in P_N,
    so ``mean(v^2)`` is the Gaussian prior's negative log-likelihood up to constants.

Both are used per layer, like W+ (Zhu et al.'s P+ / P_N+, the variant they recommend for real
images): a latent is ``[N, num_ws, w_dim]`` and the same map is applied to every row.

Which fit
    A generator's ``pn`` space is defined by one fit, fixed when the generator is built
    (``StyleGAN2Generator(..., pn_fit=PFit(n, seed))``, default 10^5 samples, seed 0) and recorded in
    its description: asking for another fit (``p_stats(G, n=...)``) returns that fit and changes
    nothing else, so ``pn`` latents mean the same for the whole life of the generator.

Cache
    Fits are cached in memory and under ``$INVERTKIT_HOME/stats``, keyed by the sha256 of the
    mapping network's weights and the fit settings (``invertkit.store.statcache``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ...store.statcache import cached_stats

if TYPE_CHECKING:
    from .generator import StyleGAN2Generator

__all__ = [
    "PSpaceStats",
    "w_to_p",
    "p_to_w",
    "p_to_pn",
    "pn_to_p",
    "p_stats",
    "fit_p_stats",
    "mapped_w_batches",
    "PFit",
    "P_FIT_SAMPLES",
]

SQRT2 = math.sqrt(2.0)
P_FIT_SAMPLES = 100_000  # Zhu et al. fit their PCA on 10^6 samples; 10^5 pins 512-d statistics well
_FIT_SEED_OFFSET = 2_000_003  # keeps the fit's z draws apart from sample_latent(seed=...)


@dataclass(frozen=True)
class PFit:
    """Which PCA defines a generator's ``pn`` space: ``n`` mapped samples drawn from ``seed``."""

    n: int = P_FIT_SAMPLES
    seed: int = 0


# ------------------------------------------------------------------------------------------------
# The maps
# ------------------------------------------------------------------------------------------------


def w_to_p(w: Tensor) -> Tensor:
    """``p = lrelu_{5.0}(w) / sqrt(2)``: the last mapping layer's pre-activation (any shape)."""
    return torch.where(w >= 0, w, w * 5.0) / SQRT2


def p_to_w(p: Tensor) -> Tensor:
    """``w = sqrt(2) * lrelu_{0.2}(p)``: the mapping's last activation (inverse of ``w_to_p``)."""
    return torch.nn.functional.leaky_relu(p, 0.2) * SQRT2


@dataclass(frozen=True)
class PSpaceStats:
    """PCA of P fitted on mapped samples (all tensors float64 on CPU; ``on`` gives float32 copies).

    Attributes:
        mean: ``mu [D]``, the mean of p.
        components: ``C [D, D]``, eigenvectors of p's covariance as columns, descending eigenvalue.
        scale: ``Lambda [D]``, square roots of the eigenvalues (floored at ``1e-6 * max``).
        w_mean: mean of w over the same samples ``[D]``.
        w_var: mean over dimensions of the per-dimension variance of w (a scalar tensor).
        n: number of samples; seed: the fit's seed.
    """

    mean: Tensor
    components: Tensor
    scale: Tensor
    w_mean: Tensor
    w_var: Tensor
    n: int
    seed: int

    def on(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> PSpaceStats:
        """A copy on ``device`` in ``dtype`` (float32 for use in the generator)."""
        t = {k: getattr(self, k).to(device, dtype) for k in ("mean", "components", "scale", "w_mean", "w_var")}
        return PSpaceStats(**t, n=self.n, seed=self.seed)

    def tensors(self) -> dict[str, Tensor]:
        return {k: getattr(self, k).contiguous() for k in ("mean", "components", "scale", "w_mean", "w_var")}


def p_to_pn(p: Tensor, stats: PSpaceStats) -> Tensor:
    """``v = Lambda^-1 C^T (p - mu)`` along the last dimension (``[..., D]``)."""
    return ((p - stats.mean) @ stats.components) / stats.scale


def pn_to_p(v: Tensor, stats: PSpaceStats) -> Tensor:
    """``p = C Lambda v + mu`` along the last dimension (``[..., D]``)."""
    return (v * stats.scale) @ stats.components.T + stats.mean


# ------------------------------------------------------------------------------------------------
# Fitting
# ------------------------------------------------------------------------------------------------


def mapped_w_batches(G: StyleGAN2Generator, n: int, seed: int, batch: int = 10_000) -> Iterable[Tensor]:
    """``n`` mapping outputs w in chunks (float32, on G's device), z from a seeded CPU generator.

    Conditional generators get uniformly random one-hot labels from the same generator.
    """
    g = torch.Generator().manual_seed(int(seed))
    cfg = G.config
    for start in range(0, int(n), batch):
        m = min(batch, int(n) - start)
        z = torch.randn([m, cfg.z_dim], generator=g)
        c = None
        if cfg.c_dim > 0:
            idx = torch.randint(0, cfg.c_dim, (m,), generator=g)
            c = torch.nn.functional.one_hot(idx, cfg.c_dim).float().to(G.device)
        # no_grad, not inference_mode: the context must not stay entered across the yield, and
        # cached statistics must be ordinary tensors usable later in autograd
        with torch.no_grad():
            w = G.net.mapping(z.to(G.device), c)
        yield w


def fit_p_stats(G: StyleGAN2Generator, n: int = P_FIT_SAMPLES, seed: int = 0) -> PSpaceStats:
    """Fit P's PCA on ``n`` mapped samples (no caching; see ``p_stats``)."""
    if n < 2:
        raise ValueError(f"the P-space PCA needs at least 2 samples, got n={n}")
    d = G.config.w_dim
    sp = torch.zeros(d, dtype=torch.float64)
    spp = torch.zeros(d, d, dtype=torch.float64)
    sw = torch.zeros(d, dtype=torch.float64)
    sww = torch.zeros(d, dtype=torch.float64)
    for w in mapped_w_batches(G, n, seed + _FIT_SEED_OFFSET):
        w = w.to("cpu", torch.float64)
        p = w_to_p(w)
        sp += p.sum(0)
        spp += p.T @ p
        sw += w.sum(0)
        sww += w.square().sum(0)
    mean = sp / n
    cov = (spp - n * torch.outer(mean, mean)) / (n - 1)
    evals, evecs = torch.linalg.eigh((cov + cov.T) / 2)
    evals, evecs = evals.flip(0), evecs.flip(1)  # descending
    # a deterministic sign per component (eigh's signs are arbitrary): largest |entry| positive
    idx = evecs.abs().argmax(0)
    sign = torch.sign(evecs[idx, torch.arange(d)])
    evecs = evecs * torch.where(sign == 0, torch.ones_like(sign), sign)
    scale = evals.clamp_min(float(evals.max()) * 1e-12).sqrt()
    w_mean = sw / n
    w_var = ((sww - n * w_mean.square()) / (n - 1)).mean()
    return PSpaceStats(mean, evecs.contiguous(), scale, w_mean, w_var, int(n), int(seed))


def p_stats(G: StyleGAN2Generator, n: int | None = None, seed: int | None = None, *, refresh: bool = False,
            disk: bool = True) -> PSpaceStats:
    """P-space PCA of ``G`` (float32, on G's device), fitted once per weights and settings and cached.

    ``n`` / ``seed`` default to ``G.pn_fit``, the fit that defines G's ``pn`` space; other values
    return another fit and leave ``pn`` unchanged.
    """
    fit = G.pn_fit
    n = fit.n if n is None else int(n)
    seed = fit.seed if seed is None else int(seed)
    # statistics first needed inside torch.inference_mode() (a metric) must still be usable in autograd
    with torch.inference_mode(False), torch.no_grad():
        cfg = G.config
        info = {"n": n, "seed": seed, "z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim,
                "mapping_layers": cfg.mapping_layers, "lr_mul": cfg.mapping_lr_multiplier}
        d = cfg.w_dim
        expect = {"mean": (d,), "components": (d, d), "scale": (d,), "w_mean": (d,), "w_var": ()}
        t = cached_stats(G, "p_pca", weights=dict(G.net.mapping.named_parameters()), info=info, expect=expect,
                         compute=lambda: fit_p_stats(G, n, seed).tensors(), refresh=refresh, disk=disk)
        return _on_device(G, t, n, seed)


def _on_device(G: StyleGAN2Generator, t: dict[str, Tensor], n: int, seed: int) -> PSpaceStats:
    """One float32 copy of a fit per device, reused by every conversion (p_stats is called every step)."""
    memo = G.__dict__.setdefault("_invertkit_p_on", {})
    key = (n, seed, str(G.device))
    hit = memo.get(key)
    if hit is None or hit[0] is not t:
        hit = memo[key] = (t, PSpaceStats(**t, n=n, seed=seed).on(G.device))
    return hit[1]
