"""``run.json``: the resolved configuration, versions and timings of a run, so numbers reproduce."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("invertkit", "torch", "numpy", "safetensors", "pillow", "scikit-image")


def environment() -> dict[str, Any]:
    """Python, platform and package versions (``None`` for packages not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "packages": versions,
    }


def write_run_json(path: str | os.PathLike[str], **sections: Any) -> Path:
    """Write ``{"created": ..., "environment": ..., **sections}`` as indented JSON (atomically); returns
    the path. ``created`` and ``environment`` given in ``sections`` are kept (a run.json rewritten while
    its run goes on keeps when it started)."""
    from .atomic import write_text_atomic

    doc = {"created": sections.pop("created", None) or now_utc(), "environment": sections.pop("environment", None) or environment(), **sections}
    return write_text_atomic(path, json.dumps(strict_json_value(doc), indent=2, default=str, allow_nan=False) + "\n")


def strict_json_value(v: Any) -> Any:
    """``v`` with every float that is not finite (NaN, inf) replaced by None, recursively: what
    ``json.dumps(..., allow_nan=False)`` accepts and strict JSON parsers read."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: strict_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict_json_value(x) for x in v]
    return v


def now_utc() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
