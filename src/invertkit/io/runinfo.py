"""``run.json``: the resolved configuration, versions and timings of a run, so numbers reproduce."""

from __future__ import annotations

import datetime
import json
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
    return write_text_atomic(path, json.dumps(doc, indent=2, default=str) + "\n")


def now_utc() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
