"""The identity of an ``invertkit invert`` run: every setting that changes a result, nothing else.

Two commands may write into one run folder only when their identities are equal
(:func:`invertkit.runs.config.config_difference`); the second then continues the first. Batch size,
device and progress display change no result and are left out. The folder writers of every layout
(run folders, dataset runs) build it here, so they agree on what "the same run" means."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..generators.base import Generator


def file_digest(path: str | None) -> str | None:
    """sha256 of a file's bytes (None for no file): a mask or prompt file is identified by content."""
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _degrade_files(spec: str | None) -> dict[str, str | None]:
    """Digests of the files a ``--degrade`` spec names (``mask:PATH``): the same path may hold another mask."""
    out: dict[str, str | None] = {}
    for part in (spec or "").split("+"):
        name, _, arg = part.strip().partition(":")
        if name == "mask" and arg:
            out[arg] = file_digest(arg)
    return out


def run_identity(args: argparse.Namespace, G: Generator, options: dict[str, Any]) -> dict[str, Any]:
    """The configuration that identifies a run of ``args`` (the invert flags) with generator ``G`` and
    the method options the user gave (``options``; the method's defaults fill the rest).

    Returns a JSON-friendly dict: method, its fully resolved options, generator name and weight
    fingerprint, degradation (with digests of the mask files), --simulate, extra metrics, prompt
    embeddings (digest), edit prompts and their guidance.
    """
    from ..methods import make_options

    def flag(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    metrics = sorted({m.strip() for m in (flag("metrics") or "").split(",") if m.strip()})
    identity = {
        "method": args.method,
        "options": dataclasses.asdict(make_options(args.method, **options)),
        "generator": {"name": G.name, "fingerprint": G.fingerprint()},
        "degrade": flag("degrade"),
        "degrade_files": _degrade_files(flag("degrade")),
        "mask": file_digest(flag("mask")),
        "simulate": bool(flag("simulate", False)),
        "metrics": metrics,
        "prompt_embeds": file_digest(flag("prompt_embeds")),
        "edit_prompts": [p.strip() for p in (flag("edit_prompt") or "").split(",") if p.strip()],
        "edit_guidance": flag("edit_guidance"),
    }
    if flag("align", False):  # only when given: runs written before --align existed keep their identity
        identity["align"] = {"face": flag("face") or 1}
    return identity
