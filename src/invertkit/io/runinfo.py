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
    """Write ``{"created": ..., "environment": ..., **sections}`` as indented JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "environment": environment(), **sections}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return path
