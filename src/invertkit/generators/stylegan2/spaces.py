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

Cache
    Statistics are computed lazily once per generator (kept in memory on the generator object,
    invalidated when its weights change in place) and stored on disk under
    ``$INVERTKIT_HOME/stats`` (default ``~/.cache/invertkit/stats``) as
    ``<kind>-<sha256 of the relevant weights, hyper-parameters and fit settings>.safetensors``
    (written when the fit took at least ``DISK_MIN_SECONDS``, so tiny test generators leave no
    files; ``disk=True`` always writes). A corrupt or mismatching file is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

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
    "stats_dir",
    "cached_stats",
    "mapped_w_batches",
    "P_FIT_SAMPLES",
]

SQRT2 = math.sqrt(2.0)
P_FIT_SAMPLES = 100_000  # Zhu et al. fit their PCA on 10^6 samples; 10^5 pins 512-d statistics well
_FIT_SEED_OFFSET = 2_000_003  # keeps the fit's z draws apart from sample_latent(seed=...)
_CACHE_VERSION = "1"
DISK_MIN_SECONDS = 0.5  # statistics cheaper than this are not worth a file (see cached_stats)


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
# Cache plumbing (shared with the NSCD anchors)
# ------------------------------------------------------------------------------------------------


def stats_dir() -> Path:
    """``$INVERTKIT_HOME/stats`` or ``~/.cache/invertkit/stats`` (same root as the model zoo)."""
    return Path(os.environ.get("INVERTKIT_HOME") or Path.home() / ".cache" / "invertkit") / "stats"


def weights_digest(tensors: Mapping[str, Tensor], extra: Mapping[str, Any]) -> str:
    """sha256 over tensor names, dtypes, shapes and bytes (sorted by name) plus ``extra`` as JSON."""
    h = hashlib.sha256()
    h.update(json.dumps(dict(extra), sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _fingerprint(tensors: Iterable[Tensor]) -> tuple[tuple[int, int], ...]:
    # storage address + in-place version counter: changes when weights are tuned or reloaded
    return tuple((t.data_ptr(), t._version) for t in tensors)


def _read(path: Path, expect: Mapping[str, tuple[int, ...]], kind: str) -> dict[str, Tensor] | None:
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            out = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # a truncated/garbled file is just a cache miss
        return None
    if meta.get("kind") != kind or meta.get("version") != _CACHE_VERSION or set(out) != set(expect):
        return None
    for k, shape in expect.items():
        if tuple(out[k].shape) != tuple(shape) or not torch.isfinite(out[k]).all():
            return None
    return out


def _write(path: Path, tensors: Mapping[str, Tensor], kind: str, info: Mapping[str, Any]) -> None:
    try:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o644)
        meta = {"kind": kind, "version": _CACHE_VERSION, "info": json.dumps(dict(info), sort_keys=True)}
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home must not break inversion
        warnings.warn(f"invertkit: could not write statistics cache {path}: {exc}", stacklevel=3)


def cached_stats(owner: object, kind: str, *, weights: Mapping[str, Tensor], info: Mapping[str, Any],
                 expect: Mapping[str, tuple[int, ...]], compute: Callable[[], dict[str, Tensor]],
                 refresh: bool = False, disk: bool | None = None) -> dict[str, Tensor]:
    """Memory- and disk-cached statistics of a generator.

    Args:
        owner: the object the in-memory cache hangs on (the generator).
        kind: a short name (``"p_pca"``, ``"nscd_anchors"``), also the file name prefix.
        weights: the tensors the statistics depend on (hashed for the file name, fingerprinted in memory).
        info: the fit settings (n, seed, hyper-parameters), part of the key.
        expect: name -> shape of every tensor ``compute`` returns (validates files read back).
        compute: produces the tensors (CPU) on a miss.
        refresh: ignore both caches and recompute (the file is rewritten).
        disk: True: read and write the on-disk cache; False: memory only; None (default): read it,
            but write only when computing took at least ``DISK_MIN_SECONDS`` (so the statistics of
            tiny test generators do not litter the cache folder; the values are the same either way).
    """
    memo: dict[str, Any] = owner.__dict__.setdefault("_invertkit_stats", {})
    key = (kind, json.dumps(dict(info), sort_keys=True, default=str))
    fp = _fingerprint(weights.values())
    hit = memo.get(key)
    if hit is not None and hit[0] == fp and not refresh:
        return hit[1]
    out = None
    path = None
    if disk or disk is None:
        path = stats_dir() / f"{kind}-{weights_digest(weights, {**info, 'kind': kind})[:32]}.safetensors"
        if not refresh:
            out = _read(path, expect, kind)
    if out is None:
        t0 = time.perf_counter()
        out = compute()
        if path is not None and (disk or time.perf_counter() - t0 >= DISK_MIN_SECONDS):
            _write(path, out, kind, info)
    memo[key] = (fp, out)
    return out


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


def p_stats(G: StyleGAN2Generator, n: int | None = None, seed: int = 0, *, refresh: bool = False,
            disk: bool | None = None) -> PSpaceStats:
    """P-space PCA of ``G`` (float32, on G's device), fitted once and cached (memory + disk).

    With ``n=None`` the statistics currently in use are returned (fitting ``P_FIT_SAMPLES`` samples
    if there are none); giving ``n`` / ``seed`` selects (and makes current) that fit.
    """
    # statistics first needed inside torch.inference_mode() (a metric) must still be usable in autograd
    with torch.inference_mode(False), torch.no_grad():
        return _p_stats(G, n, seed, refresh=refresh, disk=disk)


def _p_stats(G: StyleGAN2Generator, n: int | None, seed: int, *, refresh: bool, disk: bool | None) -> PSpaceStats:
    memo = G.__dict__.setdefault("_invertkit_stats", {})
    mapping = dict(G.net.mapping.named_parameters())
    fp = _fingerprint(mapping.values())
    current = memo.get("p_current")
    if current is not None and current[0] != fp:
        current = None
    if n is None:
        if current is not None and not refresh and current[1].mean.device == G.device:
            return current[1]
        n, seed = (current[2], current[3]) if current is not None else (P_FIT_SAMPLES, seed)
    n = int(n)
    cfg = G.config
    info = {"n": n, "seed": int(seed), "z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim,
            "mapping_layers": cfg.mapping_layers, "lr_mul": cfg.mapping_lr_multiplier}
    d = cfg.w_dim
    expect = {"mean": (d,), "components": (d, d), "scale": (d,), "w_mean": (d,), "w_var": ()}
    t = cached_stats(G, "p_pca", weights=mapping, info=info, expect=expect,
                     compute=lambda: fit_p_stats(G, n, seed).tensors(), refresh=refresh, disk=disk)
    stats = PSpaceStats(**t, n=n, seed=int(seed)).on(G.device)
    memo["p_current"] = (fp, stats, n, int(seed))
    return stats
