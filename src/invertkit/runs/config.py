"""The identity of a run's configuration: what must be equal for two commands to write into one folder.

A run folder records the configuration that produced it (method, its resolved options, the
generator's weight fingerprint, degradation, metrics ...). Running a command into an existing folder
continues that run only when its configuration is the same; otherwise it is refused with one line
that names what differs, so results of two configurations never mix silently. Settings that do not
change any result (batch size, engine, workers, progress display) are not part of it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical(config: Mapping[str, Any]) -> str:
    """``config`` as canonical JSON (sorted keys, no spaces; non-JSON values by ``str``)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """The first 16 hex digits of the sha256 of the canonical configuration."""
    return hashlib.sha256(canonical(config).encode("utf-8")).hexdigest()[:16]


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: doc}


def config_difference(recorded: Mapping[str, Any], now: Mapping[str, Any], *, limit: int = 3) -> str | None:
    """None when the two configurations are equal (as canonical JSON), else a short description of the
    first differing settings: ``"steps: 100 in the folder, 50 now; lr: ..."``."""
    a, b = json.loads(canonical(recorded)), json.loads(canonical(now))
    if a == b:
        return None
    for key in ("method", "generator"):  # a different method or model says it all; its options would only add noise
        if key in a and key in b and a[key] != b[key]:
            a, b = {key: a[key]}, {key: b[key]}
            break
    fa, fb = _flat(a), _flat(b)
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k, "<unset>") != fb.get(k, "<unset>"))
    parts = [f"{k}: {fa.get(k, '<unset>')} in the folder, {fb.get(k, '<unset>')} now" for k in keys[:limit]]
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""
    return "; ".join(parts) + more
