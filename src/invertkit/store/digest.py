"""Fingerprints of weights: a sha256 over tensor names, dtypes, shapes and bytes.

A fingerprint identifies weights by content, not by file name or object identity: a checkpoint
converted to another format (same tensors) has the same one, a tuned copy another. Caches of
statistics (:mod:`.statcache`), weight deltas and run folders are keyed by it.

Hashing a large network takes a moment, so :func:`memo_digest` remembers the digest of a set of
tensors on the object that owns them, until any of them is replaced or changed in place (PyTorch
bumps a tensor's version counter on every in-place write).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

_MEMO = "_invertkit_digests"


def weights_digest(tensors: Mapping[str, Tensor], extra: Mapping[str, Any] | None = None) -> str:
    """sha256 hex digest of ``tensors`` (sorted by name: name, dtype, shape, bytes) and ``extra`` as JSON."""
    h = hashlib.sha256()
    h.update(json.dumps(dict(extra or {}), sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def _version_key(tensors: Mapping[str, Tensor]) -> tuple[tuple[str, int, int], ...]:
    # storage address + in-place version counter of every tensor: equal keys mean unchanged contents
    return tuple((name, t.data_ptr(), t._version) for name, t in sorted(tensors.items()))


def memo_digest(owner: object, key: str, tensors: Mapping[str, Tensor]) -> str:
    """:func:`weights_digest` of ``tensors``, remembered on ``owner`` under ``key`` while they are unchanged."""
    memo: dict[str, tuple[Any, str]] = owner.__dict__.setdefault(_MEMO, {})
    version = _version_key(tensors)
    hit = memo.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    digest = weights_digest(tensors)
    memo[key] = (version, digest)
    return digest
