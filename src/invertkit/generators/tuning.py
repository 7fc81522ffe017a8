"""Generator tuning support: a trainable copy of a generator, and tuned weights kept as a difference.

Methods that refine the generator itself (PTI, Roich et al. 2022) tune a copy of it per image. What
is worth keeping of such a copy is its difference from the base weights, a *delta*: the tensors that
changed, ``tuned - base``, named as in the generator's own ``weights()`` (NVIDIA naming for
StyleGAN2, e.g. ``synthesis.b16.conv0.weight``; the module's naming for ``wrap``-ped networks).

A delta file is one ``.safetensors`` file: the delta tensors (float32) plus, in the header metadata
under ``"invertkit_delta"``, JSON with at least::

    {"format": "invertkit-delta", "format_version": 1, "base": "<generator name>",
     "base_digest": "<sha256 of the base generator's state dict>", ...}

so that a delta made for another generator is refused (by digest when present, else by name).
Reading one executes nothing: safetensors is a length-prefixed JSON header and raw bytes.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..io.safetensors_file import write_safetensors
from ..untrusted import short_repr
from .base import Generator
from .capabilities import Tunable, require

METADATA_KEY = "invertkit_delta"
FORMAT = "invertkit-delta"
FORMAT_VERSION = 1

__all__ = [
    "FORMAT",
    "apply_delta",
    "generator_digest",
    "read_delta",
    "save_delta",
    "tunable_copy",
    "weight_delta",
]


def tunable_copy(G: Generator) -> tuple[Generator, list[nn.Parameter]]:
    """An independent deep copy of ``G`` whose tunable weights require grad.

    Tunable: ``G.tunable_module()`` (a ``wrap``-ped network: the whole module; StyleGAN2: the
    synthesis network, the mapping stays frozen as in PTI). The copy stays in eval mode, so
    batch-norm keeps using (and never updates) its running statistics and the tuned generator draws
    as the base one does. ``G`` itself is not touched.

    Returns:
        ``(copy, parameters)``: the parameters to hand to an optimiser.

    Raises:
        ConfigError: ``G`` does not support weight tuning, or has no weights to tune.
    """
    require(G, Tunable, "generator tuning")  # fail before copying anything
    tuned = copy.deepcopy(G)
    module = tuned.tunable_module().eval()  # type: ignore[attr-defined]
    params = list(module.parameters())
    if not params:
        raise ConfigError(f"generator {G.name} has no weights to tune ({type(module).__name__} has no parameters)")
    for p in params:
        p.requires_grad_(True)
    return tuned, params


@torch.no_grad()
def weight_delta(base: Generator, tuned: Generator) -> dict[str, Tensor]:
    """``tuned - base`` for every floating-point tensor that changed (float32, on CPU).

    Names are the generators' own ``state_dict`` names; unchanged tensors (StyleGAN2's mapping,
    buffers) are left out, so the delta holds only what tuning moved.
    """
    a, b = base.weights(), tuned.weights()
    if a.keys() != b.keys():
        raise ConfigError(f"weight_delta: {tuned.name} does not have the same tensors as {base.name}; pass a copy of the base generator")
    out: dict[str, Tensor] = {}
    for name, t in a.items():
        u = b[name]
        if t.shape != u.shape:
            raise ConfigError(f"weight_delta: {name} is {list(u.shape)} in {tuned.name} but {list(t.shape)} in {base.name}")
        if t.is_floating_point() and not torch.equal(t, u):
            out[name] = (u.float() - t.float()).cpu().contiguous()
    return out


# the largest |tuned - base| a weight delta may hold. Tuning moves a weight by about the learning rate
# per step (Adam), so real deltas are far below 1; a larger value only comes from a damaged file
# (3e38 is finite, yet renders every image black or NaN).
MAX_ABS_DELTA = 1e6


def generator_digest(G: Generator) -> str:
    """sha256 of ``G``'s whole state dict (names, dtypes, shapes, bytes): identifies the base of a delta
    independently of file names (a converted checkpoint with the same weights has the same digest)."""
    return G.fingerprint()


def _problems(G: Generator, delta: Mapping[str, Tensor]) -> list[str]:
    state = G.weights()
    problems = []
    for name, d in delta.items():
        if name not in state:
            problems.append(f"{G.name} has no tensor {name!r}")
        elif not isinstance(d, Tensor) or not d.is_floating_point():
            problems.append(f"{name} is not a floating-point tensor")
        elif tuple(d.shape) != tuple(state[name].shape):
            problems.append(f"{name} is {list(d.shape)}, the generator's is {list(state[name].shape)}")
        elif not torch.isfinite(d).all():
            problems.append(f"{name} contains NaN or infinity")
        elif d.numel() and float(d.abs().max()) > MAX_ABS_DELTA:
            problems.append(f"{name} changes a weight by {float(d.abs().max()):.3g} (more than {MAX_ABS_DELTA:g})")
        if len(problems) >= 3:  # enough to say what is wrong in one line
            problems.append("...")
            break
    return problems


def apply_delta(
    G: Generator,
    delta: Mapping[str, Tensor],
    *,
    meta: Mapping[str, Any] | None = None,
    source: str = "weight delta",
    copy_generator: bool = True,
) -> Generator:
    """A generator with the weights ``base + delta`` (a deep copy of ``G``; ``G`` is unchanged unless
    ``copy_generator=False``). The result is frozen, like every loaded generator.

    Args:
        G: the base generator the delta was made from.
        delta: ``{state_dict name: tensor}`` as from :func:`weight_delta` or :func:`read_delta`.
        meta: the delta file's metadata; its ``base_digest`` (else ``base`` name) must match ``G``.
        source: how to name the delta in messages (its file path).

    Raises:
        CheckpointError: the delta was made for another generator, or names, shapes or values do
            not fit ``G`` (nothing is modified then).
    """
    base = (meta or {}).get("base")
    base = short_repr(base, 80)[1:-1] if isinstance(base, str) else (None if base is None else short_repr(base, 80))
    fix = f"load it onto the generator it was tuned from ({base!r})" if base else "load it onto the generator it was tuned from"
    if meta and meta.get("base_digest") and meta["base_digest"] != generator_digest(G):
        raise CheckpointError(f"{source}: this weight delta was made for generator {base!r}, not for {G.name!r} (their weights differ); {fix}")
    if meta and not meta.get("base_digest") and base and base != G.name:
        raise CheckpointError(f"{source}: this weight delta was made for generator {base!r}, not {G.name!r}; {fix}")
    problems = _problems(G, delta)
    if problems:
        raise CheckpointError(f"{source}: the weight delta does not fit {G.name} ({'; '.join(problems)}); {fix}")
    out = copy.deepcopy(G) if copy_generator else G
    state = dict(out.weights())  # tensors share storage with the live weights
    with torch.no_grad():
        for name, d in delta.items():
            state[name].add_(d.to(state[name].device, state[name].dtype))
    return out


def save_delta(path: str | os.PathLike[str], delta: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a weight delta as one ``.safetensors`` file (atomically).

    Args:
        path: destination file; its folder is created.
        delta: ``{state_dict name: tensor}`` (stored as float32).
        meta: JSON-friendly facts; must hold ``base`` (the base generator's name) and should hold
            ``base_digest`` (:func:`generator_digest`). ``format``/``format_version`` are added.

    Raises:
        ConfigError: no ``base`` in ``meta``, or non-finite values in the delta.
        CheckpointError: the file cannot be written.
    """
    p = Path(path)
    if not meta.get("base"):
        raise ConfigError("save_delta: meta must name the base generator (meta['base'])")
    bad = [k for k, v in delta.items() if not torch.isfinite(v).all()]
    if bad:
        raise ConfigError(f"save_delta: {bad[0]} contains NaN or infinity; the tuning diverged (lower the learning rate)")
    big = [k for k, v in delta.items() if v.numel() and float(v.abs().max()) > MAX_ABS_DELTA]
    if big:
        raise ConfigError(f"save_delta: {big[0]} changes a weight by more than {MAX_ABS_DELTA:g}; the tuning diverged (lower the learning rate)")
    header = json.dumps({**dict(meta), "format": FORMAT, "format_version": FORMAT_VERSION}, sort_keys=True, default=str)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in delta.items()}
    return write_safetensors(p, tensors, {METADATA_KEY: header}, "weight delta")


def read_delta(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_delta`: ``(delta, meta)``. Nothing in the file executes.

    Raises:
        CheckpointError: missing file, not a safetensors file, no invertkit delta metadata, a newer
            format, or NaN/infinity in the tensors.
    """
    from ..io.safetensors_file import read_safetensors

    p = Path(path)
    tensors, meta = read_safetensors(p, METADATA_KEY, "weight delta", "pass a <name>_delta.safetensors file written by a pti run")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: the weight delta's metadata is malformed (no format {FORMAT!r}); the file is corrupted")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{p}: weight delta format_version {version!r} is not supported (this invertkit reads <= {FORMAT_VERSION}); upgrade invertkit")
    bad = [k for k, v in tensors.items() if not v.is_floating_point() or not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{p}: tensor {bad[0]} of the weight delta is not finite floating point; the file is corrupted, re-run the inversion that wrote it")
    big = [(k, float(v.abs().max())) for k, v in tensors.items() if v.numel() and float(v.abs().max()) > MAX_ABS_DELTA]
    if big:
        raise CheckpointError(f"{p}: tensor {big[0][0]} of the weight delta changes a weight by {big[0][1]:.3g}, more than "
                              f"{MAX_ABS_DELTA:g} (tuning moves weights by far less); the file is corrupted, re-run the inversion that wrote it")
    return tensors, meta
