"""invertkit's native checkpoint: one ``.safetensors`` file, tensors plus a JSON config.

The tensors are the NVIDIA-named float32 state dict (``mapping.fc0.weight``, ``synthesis.b4.const``
...). The safetensors header metadata holds one key, ``"invertkit"``, whose value is JSON::

    {"format": "invertkit", "format_version": 1, "architecture": "stylegan2",
     "config": StyleGAN2Config.to_dict(), "source": {...facts about where the weights came from...}}

Nothing in the file can execute: safetensors is a length-prefixed JSON header and raw bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from ...errors import CheckpointError
from ...io.safetensors_file import write_safetensors
from ...untrusted import check_parameter_count, numel, one_line, safetensors_header, shape_problems, short_repr
from ..stylegan2.config import StyleGAN2Config
from .detect import (
    NATIVE,
    LoadedCheckpoint,
    check_file,
    jsonable,
    nvidia_layout,
    unpack_generator,
    validate_state_dict,
)

__all__ = ["METADATA_KEY", "FORMAT_VERSION", "read_native", "save_native"]

METADATA_KEY = "invertkit"
FORMAT_VERSION = 1
ARCHITECTURES = ("stylegan2",)


def save_native(generator_or_loaded: Any, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> Path:
    """Write a StyleGAN2 generator (or a :class:`LoadedCheckpoint`) as one ``.safetensors`` file.

    Args:
        generator_or_loaded: a StyleGAN2 generator (``.config`` + NVIDIA-named ``.net``) or a loaded checkpoint.
        path: destination file (written atomically).
        meta: extra JSON-friendly facts to record under ``"source"`` (merged over the checkpoint's meta).

    Raises:
        CheckpointError: not a StyleGAN2 generator, weights that do not fit its config, or an unwritable path.
    """
    cfg, state, src_meta = unpack_generator(generator_or_loaded)
    p = Path(path)
    tensors = validate_state_dict(state, cfg, p, hint="the generator's weights disagree with its config")
    if isinstance(generator_or_loaded, LoadedCheckpoint):
        src_meta.setdefault("source_format", generator_or_loaded.format)
    src_meta.update(meta or {})
    payload = {
        "format": "invertkit",
        "format_version": FORMAT_VERSION,
        "architecture": "stylegan2",
        "config": cfg.to_dict(),
        "source": jsonable(src_meta),
    }
    try:
        header = json.dumps(payload, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: the config cannot be stored as JSON ({exc})") from None
    return write_safetensors(p, tensors, {METADATA_KEY: header}, "checkpoint")


def _payload(p: Path, metadata: dict[str, str] | None) -> dict[str, Any]:
    if not metadata or METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{p}: a safetensors file without invertkit metadata (no {METADATA_KEY!r} header entry), so its "
            "architecture is unknown; write it with invertkit.generators.checkpoints.save_native "
            "from the original .pkl/.pt"
        )
    try:
        payload = json.loads(metadata[METADATA_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{p}: invertkit metadata is not valid JSON ({one_line(exc)}); the file is corrupted") from exc
    if not isinstance(payload, dict) or payload.get("format") != "invertkit":
        raise CheckpointError(f"{p}: invertkit metadata is malformed (no format: 'invertkit'); the file is corrupted")
    version = payload.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{p}: invertkit metadata has no valid format_version; the file is corrupted")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: written by a newer invertkit (format_version {version} > {FORMAT_VERSION}); upgrade invertkit"
        )
    arch = payload.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{p}: architecture {short_repr(arch)} is not supported by this invertkit ({', '.join(ARCHITECTURES)})")
    if not isinstance(payload.get("config"), dict):
        raise CheckpointError(f"{p}: invertkit metadata lacks the generator config; the file is corrupted")
    return payload


def read_native(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Read and validate an invertkit ``.safetensors`` checkpoint.

    Raises:
        CheckpointError: corrupted header or data, missing/invalid invertkit metadata, or tensors that
            do not fit the stored config.
    """
    p = check_file(path)
    from safetensors import safe_open

    # the header alone (shapes, byte ranges) is checked against the stored config before any tensor is read
    entries, metadata = safetensors_header(p)
    payload = _payload(p, metadata)
    try:
        cfg = StyleGAN2Config.from_dict(payload["config"])
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: invalid config in invertkit metadata: {exc}") from exc
    want = nvidia_layout(cfg)
    check_parameter_count(sum(numel(s) for s in want.values()), p, "its StyleGAN2 config")
    problems = shape_problems(want, {k: shape for k, (_, shape) in entries.items()})
    if problems:
        raise CheckpointError(
            f"{p}: weights do not fit the StyleGAN2 configuration ({cfg.img_resolution}px, w_dim={cfg.w_dim}, "
            f"{cfg.mapping_layers} mapping layers): {'; '.join(problems)}; the file's tensors disagree with its stored config"
        )
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            tensors: dict[str, Tensor] = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ...: a damaged file
        raise CheckpointError(
            f"{p}: not a valid safetensors file ({one_line(exc)}); the header or data is corrupted or truncated"
        ) from exc
    sd = validate_state_dict(tensors, cfg, p, hint="the file's tensors disagree with its stored config")
    meta = {"source_format": NATIVE, "format_version": payload["format_version"]}
    source = payload.get("source")
    if isinstance(source, dict):
        meta["source"] = source
    return LoadedCheckpoint(format=NATIVE, config=cfg, state_dict=sd, meta=meta)

