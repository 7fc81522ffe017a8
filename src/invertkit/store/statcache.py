"""Statistics of a network (P-space PCA, NSCD anchors, latent spreads), cached in memory and on disk.

A statistic is a pure function of some weights and of its fit settings (samples, seed), so the cache
key is exactly that: the sha256 fingerprint of the weights it depends on (:mod:`.digest`), the
settings and the kind. Nothing else (object identity, file names, time) decides what is returned or
whether a file is written:

- memory: on the object owning the weights, so a second call in a process is free;
- disk: ``$INVERTKIT_HOME/stats/<kind>-<key>.safetensors`` (safetensors: tensors only), read when
  present and valid, written after every computation when ``disk=True`` (the default). A corrupt or
  mismatching file is a cache miss and is rewritten; an unwritable folder only warns.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .digest import memo_digest
from .home import home_path

VERSION = "2"
_MEMO = "_invertkit_stats"


def stats_dir() -> Path:
    """``$INVERTKIT_HOME/stats``."""
    return home_path("stats")


def _read(path: Path, expect: Mapping[str, tuple[int, ...]], kind: str) -> dict[str, Tensor] | None:
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            out = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # a truncated or garbled file is just a cache miss
        return None
    if meta.get("kind") != kind or meta.get("version") != VERSION or set(out) != set(expect):
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
        meta = {"kind": kind, "version": VERSION, "info": json.dumps(dict(info), sort_keys=True, default=str)}
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except OSError as exc:  # a read-only home must not break inversion
        warnings.warn(f"invertkit: could not write statistics cache {path}: {exc}", stacklevel=3)


def cached_stats(owner: object, kind: str, *, weights: Mapping[str, Tensor], info: Mapping[str, Any],
                 expect: Mapping[str, tuple[int, ...]], compute: Callable[[], dict[str, Tensor]],
                 refresh: bool = False, disk: bool = True) -> dict[str, Tensor]:
    """Statistics ``compute()`` of the tensors ``weights`` with fit settings ``info``, cached.

    Args:
        owner: the object the weights belong to (the memory cache and the digest memo live on it).
        kind: a short name (``"p_pca"``, ``"nscd_anchors"``), also the file name prefix.
        weights: the tensors the statistics depend on (fingerprinted).
        info: the fit settings (n, seed, hyper-parameters): part of the key.
        expect: name -> shape of every tensor ``compute`` returns (validates files read back).
        compute: produces the tensors (CPU) on a miss.
        refresh: ignore both caches and recompute (the file is rewritten when ``disk``).
        disk: read and write ``$INVERTKIT_HOME/stats``; False keeps the statistics in memory only.
    """
    digest = memo_digest(owner, f"stats:{kind}", weights)
    settings = json.dumps(dict(info), sort_keys=True, default=str)
    key = hashlib.sha256(f"{kind}|{VERSION}|{settings}|{digest}".encode()).hexdigest()[:32]
    memo: dict[str, dict[str, Tensor]] = owner.__dict__.setdefault(_MEMO, {})
    if not refresh and key in memo:
        return memo[key]
    path = stats_dir() / f"{kind}-{key}.safetensors"
    out = None if (refresh or not disk) else _read(path, expect, kind)
    if out is None:
        out = compute()
        if disk:
            _write(path, out, kind, info)
    memo[key] = out
    return out
