"""Where invertkit keeps what it finds or computes: ``$INVERTKIT_HOME``, resolved in one place.

``$INVERTKIT_HOME`` (``~`` expanded) or, when the variable is unset or empty, ``~/.cache/invertkit``.
Its sub-folders: ``zoo/<name>/`` (zoo weights a user put there), ``encoders/<generator>/`` (installed
encoders), ``classifiers/`` (attribute classifiers), ``stats/`` (cached statistics), and feature
network weights directly in it. The variable is read on every call, so a test or a user can point
it elsewhere for one process without restarting anything.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "INVERTKIT_HOME"


def invertkit_home() -> Path:
    """``$INVERTKIT_HOME`` with ``~`` expanded, else ``~/.cache/invertkit``."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else Path("~/.cache/invertkit").expanduser()


def home_path(*parts: str) -> Path:
    """A path inside :func:`invertkit_home` (``home_path("stats")`` -> ``~/.cache/invertkit/stats``)."""
    return invertkit_home().joinpath(*parts)
