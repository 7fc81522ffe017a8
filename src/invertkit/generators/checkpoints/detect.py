"""What kind of checkpoint is this file, and do its tensors fit a StyleGAN2 configuration?

Detection looks at the bytes, never at the extension alone:

- ``"nvidia-pkl"``: a plain pickle (protocol 2 or newer starts with ``0x80``) that is not a legacy
  ``torch.save`` stream. NVIDIA's stylegan2-ada-pytorch / stylegan3 network pickles.
- ``"rosinality-pt"``: a ``torch.save`` file, either the zip container (``PK\\x03\\x04`` with a
  ``*/data.pkl`` member) or the legacy stream (a protocol-2 pickle of torch's magic number).
- ``"invertkit-safetensors"``: a safetensors file (8-byte little-endian header length, then JSON).

This module also holds what the readers share: :class:`LoadedCheckpoint`, the expected NVIDIA
state-dict layout of a :class:`StyleGAN2Config` (:func:`nvidia_layout`) and its validation.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError
from ...store.tensorfiles import layout_problems
from ...untrusted import MetaBudget, check_parameter_count, check_stored_bytes, numel, one_line, safetensors_header_length
from ..stylegan2.config import StyleGAN2Config

NVIDIA_PKL = "nvidia-pkl"
ROSINALITY_PT = "rosinality-pt"
NATIVE = "invertkit-safetensors"
FORMATS = (NVIDIA_PKL, ROSINALITY_PT, NATIVE)

_SUPPORTED = (
    "supported formats: NVIDIA StyleGAN2-ADA network pickle (.pkl), rosinality stylegan2-pytorch "
    "checkpoint (.pt), invertkit native (.safetensors)"
)
# torch.save's legacy (non-zip) stream: PROTO 2, then LONG1 with 10 bytes of the magic number
# 0x1950a86a20f9469cfc6c, stored little-endian.
_TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class LoadedCheckpoint:
    """A checkpoint read into memory, independent of its file format.

    Attributes:
        format: one of :data:`FORMATS`.
        config: the architecture (everything the raw weights do not carry).
        state_dict: NVIDIA-named tensors (``mapping.fc0.weight``, ``synthesis.b4.const`` ...),
            float32, CPU, exactly the keys of NVIDIA's ``G_ema.state_dict()`` for ``config``.
        meta: JSON-friendly facts about the source (network key, class, training kwargs, notes).
    """

    format: str
    config: StyleGAN2Config
    state_dict: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# detection
# ------------------------------------------------------------------------------------------------


def check_file(path: str | os.PathLike[str]) -> Path:
    """Return ``Path(path)`` if it is a readable, non-empty regular file; else raise CheckpointError."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file; check the checkpoint path")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, expected a checkpoint file ({_SUPPORTED})")
    if not p.is_file():
        raise CheckpointError(f"{p}: not a regular file; pass a checkpoint file ({_SUPPORTED})")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    if size == 0:
        raise CheckpointError(f"{p}: the file is empty (0 bytes); the download or copy probably failed")
    return p


def detect_format(path: str | os.PathLike[str]) -> str:
    """The checkpoint format of ``path``, from its content: one of :data:`FORMATS`.

    Raises:
        CheckpointError: missing, a directory, empty, or none of the supported formats.
    """
    p = check_file(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(p) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(
                f"{p}: a zip archive that cannot be opened ({one_line(exc, 160)}); the file is truncated or corrupted, download it again"
            ) from exc
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return ROSINALITY_PT
        raise CheckpointError(f"{p}: a zip archive but not a PyTorch checkpoint (no data.pkl inside); {_SUPPORTED}")
    # safetensors first: a header length whose low bytes read 0x80 0x02..0x05 (640, 896, 1152 or 1408
    # modulo 65536) looks like a pickle's PROTO opcode. The safetensors test is strict (a length that
    # fits the file, then "{" at byte 8), which no pickle torch or NVIDIA write satisfies.
    if safetensors_header_length(head, size) is not None:
        return NATIVE
    if head.startswith(_TORCH_LEGACY_PREFIX):
        return ROSINALITY_PT
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return NVIDIA_PKL
    raise CheckpointError(f"{p}: unrecognised checkpoint content (first bytes {head[:8]!r}); {_SUPPORTED}")


# ------------------------------------------------------------------------------------------------
# expected NVIDIA layout of a config
# ------------------------------------------------------------------------------------------------


_DEFAULT_FILTER = (1, 3, 3, 1)


def _taps_for(cfg: StyleGAN2Config, key: str) -> tuple[int, ...]:
    # NVIDIA's SynthesisBlock passes resample_filter to conv0, skip and itself but not to conv1,
    # which keeps SynthesisLayer's default [1, 3, 3, 1] (an unused buffer, stored all the same)
    return _DEFAULT_FILTER if key.endswith(".conv1.resample_filter") else tuple(cfg.resample_filter)


def _filter_shape(taps: tuple[int, ...]) -> tuple[int, ...]:
    n = len(taps)
    # NVIDIA's setup_filter: short 1-D filters are stored as their 2-D outer product
    return (n, n) if n < 8 else (n,)


def resample_filter_tensor(cfg: StyleGAN2Config, key: str = "") -> Tensor:
    """The value NVIDIA stores in the ``resample_filter`` buffer ``key``: the normalised (outer-product) filter."""
    f = torch.tensor([float(v) for v in _taps_for(cfg, key)], dtype=torch.float32)
    if f.numel() < 8:
        f = torch.outer(f, f)
    return f / f.sum()


def _has_torgb(cfg: StyleGAN2Config, res: int) -> bool:
    return cfg.architecture == "skip" or res == cfg.img_resolution


def nvidia_layout(cfg: StyleGAN2Config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of NVIDIA's ``Generator(...).state_dict()`` for ``cfg``, in NVIDIA's key order.

    Derived from ``training/networks.py`` of stylegan2-ada-pytorch (also ``networks_stylegan2.py``
    of the stylegan3 repository, which has the same parameters and buffers).
    """
    out: dict[str, tuple[int, ...]] = {}
    filt = _filter_shape(tuple(cfg.resample_filter))
    # synthesis (built before mapping in NVIDIA's Generator.__init__)
    for res in cfg.block_resolutions:
        b = f"synthesis.b{res}"
        cout = cfg.channels_at(res)
        cin = cfg.channels_at(res // 2) if res > 4 else 0
        if res == 4:
            out[f"{b}.const"] = (cout, 4, 4)
        out[f"{b}.resample_filter"] = filt
        layers = ([("conv0", cin)] if res > 4 else []) + [("conv1", cout)]
        for name, lin in layers:
            p = f"{b}.{name}"
            out[f"{p}.weight"] = (cout, lin, 3, 3)
            if cfg.use_noise:
                out[f"{p}.noise_strength"] = ()
            out[f"{p}.bias"] = (cout,)
            out[f"{p}.resample_filter"] = filt if name == "conv0" else _filter_shape(_DEFAULT_FILTER)
            if cfg.use_noise:
                out[f"{p}.noise_const"] = (res, res)
            out[f"{p}.affine.weight"] = (lin, cfg.w_dim)
            out[f"{p}.affine.bias"] = (lin,)
        if _has_torgb(cfg, res):
            p = f"{b}.torgb"
            out[f"{p}.weight"] = (cfg.img_channels, cout, 1, 1)
            out[f"{p}.bias"] = (cfg.img_channels,)
            out[f"{p}.affine.weight"] = (cout, cfg.w_dim)
            out[f"{p}.affine.bias"] = (cout,)
        if res > 4 and cfg.architecture == "resnet":
            out[f"{b}.skip.weight"] = (cout, cin, 1, 1)
            out[f"{b}.skip.resample_filter"] = filt
    # mapping
    out["mapping.w_avg"] = (cfg.w_dim,)
    embed = (cfg.embed_features or cfg.w_dim) if cfg.c_dim > 0 else 0
    hidden = cfg.mapping_layer_features or cfg.w_dim
    feats = [cfg.z_dim + embed] + [hidden] * (cfg.mapping_layers - 1) + [cfg.w_dim]
    if cfg.c_dim > 0:
        out["mapping.embed.weight"] = (embed, cfg.c_dim)
        out["mapping.embed.bias"] = (embed,)
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = (feats[i + 1], feats[i])
        out[f"mapping.fc{i}.bias"] = (feats[i + 1],)
    return out


def validate_state_dict(
    state: Mapping[str, Tensor], cfg: StyleGAN2Config, path: str | os.PathLike[str], *, hint: str = ""
) -> dict[str, Tensor]:
    """Check ``state`` against :func:`nvidia_layout` and return it as float32 CPU tensors in NVIDIA order.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped tensors, or non-finite values.
    """
    want = nvidia_layout(cfg)
    check_parameter_count(sum(numel(s) for s in want.values()), path, "its StyleGAN2 configuration")
    what = f"the StyleGAN2 configuration ({cfg.img_resolution}px, w_dim={cfg.w_dim}, {cfg.mapping_layers} mapping layers)"
    return validate_tensors(state, want, path, what, hint=hint)


def validate_tensors(
    state: Mapping[str, Tensor], want: Mapping[str, tuple[int, ...]], path: str | os.PathLike[str], what: str, *, hint: str = ""
) -> dict[str, Tensor]:
    """Check ``state`` against the layout ``want`` (key -> shape; ``what`` names it in messages) and return
    the tensors as float32 CPU copies in ``want``'s order.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped tensors, non-float dtypes, forged views (before
            any copy), or non-finite values.
    """
    fix = f"; {hint}" if hint else ""
    parts = layout_problems(want, state)
    if parts:
        raise CheckpointError(f"{path}: weights do not fit {what}: {'; '.join(parts)}{fix}")
    for k in want:
        if not isinstance(state[k], Tensor):
            raise CheckpointError(f"{path}: entry {k} is a {type(state[k]).__name__}, not a tensor{fix}")
    # before any copy: a copy allocates what a (zero-stride, shared) view claims, not what the file holds
    check_stored_bytes({k: state[k] for k in want}, path)
    out: dict[str, Tensor] = {}
    for k in want:
        t = state[k]
        if not t.is_floating_point():
            raise CheckpointError(f"{path}: tensor {k} has dtype {t.dtype}, expected floating point{fix}")
        t = t.detach().to("cpu", torch.float32).contiguous().clone()
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor {k} contains NaN or infinite values; the checkpoint is corrupted")
        out[k] = t
    return out


# ------------------------------------------------------------------------------------------------
# helpers shared by the readers and writers
# ------------------------------------------------------------------------------------------------


def jsonable(obj: Any, depth: int = 0, budget: MetaBudget | None = None) -> Any:
    """A JSON-serialisable copy of ``obj`` (dict subclasses -> dict, numpy scalars -> numbers, tensors -> a shape note).

    The walk is bounded: at most ``MAX_META_NODES`` values and ``MAX_META_DEPTH`` levels (``invertkit.untrusted``);
    past them a CheckpointError names the limit (one object referenced from many places counts each time).
    """
    budget = budget if budget is not None else MetaBudget("metadata")
    budget.visit(depth)
    if obj is None or isinstance(obj, (bool, str)):
        return one_line(obj, 1000) if isinstance(obj, str) and not obj.isprintable() else obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, Mapping):
        return {one_line(k, 200): jsonable(v, depth + 1, budget) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1, budget) for v in obj]
    if isinstance(obj, Tensor):
        return f"<tensor {list(obj.shape)}>"
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item) and getattr(obj, "shape", None) == ():
        try:
            return jsonable(item(), depth + 1, budget)
        except CheckpointError:
            raise
        except Exception:  # noqa: BLE001 - fall through to the type name
            pass
    return f"<{type(obj).__name__}>"


def unpack_generator(obj: Any) -> tuple[StyleGAN2Config, dict[str, Tensor], dict[str, Any]]:
    """``(config, NVIDIA-named state dict, meta)`` of a :class:`LoadedCheckpoint` or a StyleGAN2 generator.

    A generator is anything with a ``config`` (:class:`StyleGAN2Config`) and a ``net`` module whose
    ``state_dict()`` uses NVIDIA's names (``StyleGAN2Generator``), or a bare ``StyleGAN2Network``.
    """
    if isinstance(obj, LoadedCheckpoint):
        return obj.config, dict(obj.state_dict), dict(obj.meta)
    cfg = getattr(obj, "config", None)
    if not isinstance(cfg, StyleGAN2Config):
        raise CheckpointError(
            f"cannot save a {type(obj).__name__}: only StyleGAN2 generators (with a StyleGAN2Config) "
            "and loaded checkpoints can be written to these formats"
        )
    net = getattr(obj, "net", None)
    module = net if isinstance(net, torch.nn.Module) else obj
    if not isinstance(module, torch.nn.Module):
        raise CheckpointError(f"cannot save a {type(obj).__name__}: it has no network module with weights")
    state = {k: v.detach() for k, v in module.state_dict().items()}
    meta = {"source_name": str(getattr(obj, "name", type(obj).__name__))}
    return cfg, state, meta


def estimate_w_avg(cfg: StyleGAN2Config, state: Mapping[str, Tensor], *, n: int = 10_000, seed: int = 0) -> Tensor:
    """Mean of the mapping network's output over ``n`` seeded z ~ N(0, I) (c = class 0 when conditional).

    Used when a checkpoint carries no tracked average (rosinality files without ``latent_avg``).
    """
    from ..stylegan2.network import MappingNetwork  # local: the network module is heavier than this one

    mapping = MappingNetwork(cfg)
    prefix = "mapping."
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    sub["w_avg"] = torch.zeros(cfg.w_dim)
    mapping.load_state_dict(sub, strict=True)
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(cfg.w_dim, dtype=torch.float64)
    with torch.no_grad():
        done = 0
        while done < n:
            m = min(2048, n - done)
            z = torch.randn(m, cfg.z_dim, generator=gen)
            c = None
            if cfg.c_dim > 0:
                c = torch.zeros(m, cfg.c_dim)
                c[:, 0] = 1
            total += mapping(z, c).double().sum(0)
            done += m
    return (total / n).float()

