"""Encoder files: one ``.safetensors`` with the weights and the JSON config in its header.

Loading reads a length-prefixed JSON header and raw tensor bytes; nothing in the file executes. The
config is validated, the network is built from it, and the tensors must match it exactly.

A bootstrapped ReStyle encoder names its bootstrap encoder (a pSp/e4e file in the same folder) and
that file's sha256; loading loads both. :func:`copy_encoder` moves such a pair together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io.safetensors_file import check_weights_fit, read_header, read_safetensors, write_safetensors
from ..untrusted import one_line
from .config import EncoderConfig
from .nets import Encoder

METADATA_KEY = "invertkit_encoder"
FORMAT_VERSION = 1


def build_network(config: EncoderConfig) -> Encoder:
    """The network ``config`` describes: an :class:`Encoder`, or a hyperstyle ``HyperNet``."""
    if config.arch == "hyperstyle":
        from .hyper import HyperNet

        return HyperNet(config)  # type: ignore[return-value]
    return Encoder(config)


def save_encoder(encoder: Encoder, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Write ``encoder`` (weights, buffers, config and ``meta`` facts such as training options) atomically.

    ``half`` stores float16 (half the size, for the encoders shipped in the package; loading returns
    float32 and the change in outputs is far below a quantisation step of the rendered images).
    """
    p = Path(path)
    payload = {"format_version": FORMAT_VERSION, "config": encoder.config.to_dict(), "meta": meta or {}}
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in encoder.state_dict().items()
               if v.is_floating_point()}
    return write_safetensors(p, tensors, {METADATA_KEY: json.dumps(payload, sort_keys=True)}, "encoder")


def read_encoder_file(path: str | os.PathLike[str]) -> tuple[EncoderConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, tensors and meta of an encoder file; CheckpointError on anything malformed.

    The config and the header's tensor shapes are checked against each other (and the parameter
    limit, ``invertkit.untrusted``) before any tensor is read or any network is built.
    """
    p = Path(path)
    config, meta = _header_config(p)
    tensors, _ = read_safetensors(p, METADATA_KEY, "encoder file", "train one with `invertkit train-encoder`")
    return config, tensors, meta


def _header_config(p: Path) -> tuple[EncoderConfig, dict[str, Any]]:
    entries, payload = read_header(p, METADATA_KEY, "encoder file", "train one with `invertkit train-encoder`",
                                   format_version=FORMAT_VERSION)
    config = EncoderConfig.from_dict(payload.get("config"), where=str(p))
    # the network the config declares, on the meta device: shapes without memory
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_network(config).state_dict().items() if v.is_floating_point()}
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{p}: the encoder config describes no buildable network ({one_line(exc, 160)})") from exc
    check_weights_fit(p, expected, entries, "encoder")
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    return config, meta


def load_encoder(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Encoder:
    """Build the encoder a file describes and load its weights strictly; returned in eval mode.

    Raises:
        CheckpointError: missing/unreadable file, bad config, tensors that do not fit the config.
    """
    config, tensors, meta = read_encoder_file(path)
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: the encoder weights do not fit its config ({bad[0]} contains NaN or Inf); "
                              "the file is damaged or was edited")
    enc = build_network(config)
    enc.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)  # integer buffers (batch-norm counters) are not stored
    enc.meta = meta
    enc = enc.eval().requires_grad_(False).to(device)
    if config.bootstrap is not None:
        enc.set_start(_load_bootstrap(Path(path), config, device))
    return enc


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_bootstrap(path: Path, config: EncoderConfig, device: torch.device | str) -> Encoder:
    bp = path.parent / str(config.bootstrap)
    if not bp.is_file():
        raise CheckpointError(f"{path}: this ReStyle encoder starts from {config.bootstrap}, which must sit beside it "
                              f"({bp} is missing); copy encoders with invertkit.encoders.files.copy_encoder")
    if file_sha256(bp) != config.bootstrap_sha256:
        raise CheckpointError(f"{path}: its bootstrap encoder {bp} is not the file it was trained with (sha256 differs); "
                              "restore that file or retrain the ReStyle encoder")
    start = load_encoder(bp, device)
    _check_bootstrap_arch(config, start, bp)
    return start


def _check_bootstrap_arch(config: EncoderConfig, start: Encoder, bp: Path) -> None:
    """A restyle encoder refines psp/e4e latents; a hyperstyle network also an fs encoder's layerwise pivots."""
    allowed = ("psp", "e4e", "fs") if config.arch == "hyperstyle" else ("psp", "e4e")
    if start.config.arch not in allowed:
        raise CheckpointError(f"{bp}: a bootstrap encoder of a {config.arch} network must be {' or '.join(allowed)}, "
                              f"not {start.config.arch}")


def attach_bootstrap(encoder: Encoder, bootstrap_file: str | os.PathLike[str], device: torch.device | str = "cpu") -> None:
    """Make ``encoder`` (restyle or hyperstyle) start from the encoder in ``bootstrap_file``, recording that file's
    name and sha256 in its config; save the encoder in the same folder as that file."""
    bp = Path(bootstrap_file)
    encoder.config = dataclasses.replace(encoder.config, bootstrap=bp.name, bootstrap_sha256=file_sha256(bp))
    start = load_encoder(bp, device)
    _check_bootstrap_arch(encoder.config, start, bp)
    encoder.set_start(start)


def copy_encoder(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, half: bool = False,
                 bootstrap: str | os.PathLike[str] | None = None, meta: dict[str, Any] | None = None) -> Path:
    """Copy the encoder file ``src`` to ``dst`` (float16 with ``half``), keeping a bootstrapped ReStyle
    encoder loadable: its bootstrap goes to ``bootstrap`` (a path in ``dst``'s folder; default
    ``<dst stem>.bootstrap.safetensors``), or, when that file already exists, is checked to hold the
    same weights (e.g. the pSp encoder shipped beside it) and reused."""
    enc = load_encoder(src)
    dst = Path(dst)
    meta = {**enc.meta, **(meta or {})}
    start = enc.start_encoder
    if start is not None:
        bp = Path(bootstrap) if bootstrap is not None else dst.with_name(dst.stem + ".bootstrap.safetensors")
        if bp.parent.resolve() != dst.parent.resolve():
            raise CheckpointError(f"{bp}: a bootstrap encoder must sit in the same folder as {dst}")
        if bp.is_file():
            theirs = load_encoder(bp).state_dict()
            mine = start.state_dict()
            if theirs.keys() != mine.keys() or any(not torch.allclose(theirs[k].float(), v.float(), rtol=1e-2, atol=1e-3)
                                                   for k, v in mine.items() if v.is_floating_point()):
                raise CheckpointError(f"{bp} exists and holds other weights than {src}'s bootstrap encoder; choose another path")
        else:
            save_encoder(start, bp, meta=start.meta, half=half)
        attach_bootstrap(enc, bp)
    return save_encoder(enc, dst, meta=meta, half=half)


def ship_encoder(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                 bootstrap: str | os.PathLike[str] | None = None) -> Path:
    """Copy a trained encoder file to ``dst`` in float16 (how the package ships its encoders); see
    :func:`copy_encoder` for ``bootstrap``."""
    return copy_encoder(src, dst, half=True, bootstrap=bootstrap, meta={"shipped_from": str(src), "stored_as": "float16"})
