"""Read and write rosinality/stylegan2-pytorch checkpoints (``torch.save`` dicts with ``g_ema``).

rosinality's ``model.Generator`` computes the same function as NVIDIA's StyleGAN2 generator with the
"skip" architecture; only names and a few shapes differ (checked against rosinality's ``model.py``,
commit bef283a1c24087da704d16c30abc8e36e63efa0e). With ``k = log2(R) - 3``:

=====================================  ==========================================  ==================
NVIDIA (``G_ema.state_dict()``)        rosinality (``g_ema``)                      shape change
=====================================  ==========================================  ==================
``mapping.fc{i}.weight/bias``          ``style.{i+1}.weight/bias`` (style.0 is      none
                                       PixelNorm)
``mapping.w_avg``                      top-level ``latent_avg``                    none
``synthesis.b4.const``                 ``input.input``                             [C,4,4] -> [1,C,4,4]
``b4.conv1`` / ``b4.torgb``            ``conv1`` / ``to_rgb1``
``b{R}.conv0`` / ``b{R}.conv1``        ``convs.{2k}`` / ``convs.{2k+1}``
``b{R}.torgb``                         ``to_rgbs.{k}``
``*.weight`` (conv, torgb)             ``*.conv.weight``                           leading 1 added
``*.affine.weight/bias``               ``*.conv.modulation.weight/bias``           none
``*.noise_strength``                   ``*.noise.weight``                          [] -> [1]
conv ``*.bias``                        ``*.activate.bias`` (FusedLeakyReLU)         none
torgb ``*.bias``                       ``to_rgb*.bias``                            [3] -> [1,3,1,1]
``*.noise_const`` (b4.conv1, then      ``noises.noise_{j}``, j = 0, 1, 2, ...      [R,R] -> [1,1,R,R]
conv0/conv1 of each block)
``*.resample_filter`` (normalised)     ``convs.{2k}.conv.blur.kernel`` and         filter x 4 (the
                                       ``to_rgbs.{k}.upsample.kernel``              up-sampling gain)
=====================================  ==========================================  ==================

Scale conventions agree, so values copy unchanged: both store equalised-lr weights unscaled
(``EqualLinear``: weight x ``lr_mul/sqrt(in)``, bias x ``lr_mul``; the modulation layer is an
``EqualLinear`` with ``bias_init=1``, like NVIDIA's ``affine``), both scale convolution weights by
``1/sqrt(fan_in)`` at run time (for ToRGB this equals NVIDIA's style gain ``1/sqrt(in)``), and both
apply ``lrelu * sqrt(2)`` after the bias.

What the weights do not carry: the mapping's learning-rate multiplier ``lr_mlp`` (rosinality's
default 0.01 is assumed; files written by :func:`save_rosinality` record it under ``"invertkit"``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError
from ...store.tensorfiles import torch_load_safe
from ...untrusted import check_stored_bytes, short_repr
from ..stylegan2.config import StyleGAN2Config
from .detect import (
    ROSINALITY_PT,
    LoadedCheckpoint,
    check_file,
    estimate_w_avg,
    nvidia_layout,
    resample_filter_tensor,
    unpack_generator,
    validate_state_dict,
)

__all__ = ["nvidia_to_rosinality", "read_rosinality", "rosinality_to_nvidia", "save_rosinality", "load_torch_file"]

DEFAULT_LR_MLP = 0.01
_FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------------
# name mapping
# ------------------------------------------------------------------------------------------------


def _layer_pairs(cfg: StyleGAN2Config) -> list[tuple[str, str, str]]:
    """(NVIDIA prefix, rosinality prefix, kind) for every modulated layer; kind is "conv" or "torgb"."""
    pairs = [("synthesis.b4.conv1", "conv1", "conv"), ("synthesis.b4.torgb", "to_rgb1", "torgb")]
    for k, res in enumerate(cfg.block_resolutions[1:]):
        b = f"synthesis.b{res}"
        pairs += [(f"{b}.conv0", f"convs.{2 * k}", "conv"), (f"{b}.conv1", f"convs.{2 * k + 1}", "conv"),
                  (f"{b}.torgb", f"to_rgbs.{k}", "torgb")]
    return pairs


def _noise_pairs(cfg: StyleGAN2Config) -> list[tuple[str, str]]:
    pairs = [("synthesis.b4.conv1", "noises.noise_0")]
    j = 1
    for res in cfg.block_resolutions[1:]:
        for layer in ("conv0", "conv1"):
            pairs.append((f"synthesis.b{res}.{layer}", f"noises.noise_{j}"))
            j += 1
    return pairs


def _rosinality_kernel(cfg: StyleGAN2Config) -> Tensor:
    """rosinality's ``make_kernel(blur_kernel) * 4``: outer product, normalised, times the up-sampling gain."""
    f = torch.tensor([float(v) for v in cfg.resample_filter], dtype=torch.float32)
    k = torch.outer(f, f)
    return k / k.sum() * 4.0


def check_rosinality_compatible(cfg: StyleGAN2Config, *, strict: bool = True) -> list[str]:
    """Raise CheckpointError if rosinality's Generator cannot express ``cfg``; return notes on what is lossy."""
    problems = []
    if cfg.architecture != "skip":
        problems.append(f"architecture {cfg.architecture!r} (rosinality has only 'skip')")
    if cfg.c_dim != 0:
        problems.append(f"a conditional mapping (c_dim={cfg.c_dim})")
    if cfg.img_channels != 3:
        problems.append(f"{cfg.img_channels} image channels (rosinality: 3)")
    if cfg.z_dim != cfg.w_dim:
        problems.append(f"z_dim {cfg.z_dim} != w_dim {cfg.w_dim}")
    if cfg.mapping_layer_features not in (None, cfg.w_dim):
        problems.append(f"mapping layer_features {cfg.mapping_layer_features} != w_dim")
    if cfg.img_resolution < 8:
        problems.append("a 4 px generator")
    if cfg.conv_clamp is not None and strict:
        problems.append(f"conv_clamp={cfg.conv_clamp:g} (rosinality never clamps; drop it with strict=False, or `invertkit convert --lossy`)")
    if problems:
        raise CheckpointError("cannot express this generator as a rosinality checkpoint: " + "; ".join(problems))
    notes = []
    if cfg.conv_clamp is not None:
        notes.append(f"conv_clamp={cfg.conv_clamp:g} dropped")
    if not cfg.use_noise:
        notes.append("use_noise=False written as zero noise strengths")
    if tuple(cfg.resample_filter) != (1, 3, 3, 1):
        notes.append(f"build rosinality's Generator with blur_kernel={list(cfg.resample_filter)}")
    if cfg.mapping_lr_multiplier != DEFAULT_LR_MLP:
        notes.append(f"build rosinality's Generator with lr_mlp={cfg.mapping_lr_multiplier:g}")
    return notes


def nvidia_to_rosinality(cfg: StyleGAN2Config, state: dict[str, Tensor], *, strict: bool = True) -> dict[str, Tensor]:
    """Rename and reshape an NVIDIA-named generator state dict into rosinality's ``g_ema`` layout.

    The result loads with ``load_state_dict(strict=True)`` into rosinality's
    ``Generator(size, style_dim, n_mlp)`` whose ``channels`` table equals ``cfg``'s (true for NVIDIA's
    default channel_base/channel_max and rosinality's channel_multiplier=2 from 64 px up).
    """
    check_rosinality_compatible(cfg, strict=strict)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in state.items()}
    out: dict[str, Tensor] = {}
    for i in range(cfg.mapping_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"].clone()
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"].clone()
    out["input.input"] = sd["synthesis.b4.const"].unsqueeze(0).clone()
    kernel = _rosinality_kernel(cfg)
    for nv, ros, kind in _layer_pairs(cfg):
        if kind == "conv":
            out[f"{ros}.conv.weight"] = sd[f"{nv}.weight"].unsqueeze(0).clone()
            if nv.endswith(".conv0"):
                out[f"{ros}.conv.blur.kernel"] = kernel.clone()
            out[f"{ros}.conv.modulation.weight"] = sd[f"{nv}.affine.weight"].clone()
            out[f"{ros}.conv.modulation.bias"] = sd[f"{nv}.affine.bias"].clone()
            strength = sd.get(f"{nv}.noise_strength", torch.zeros([]))
            out[f"{ros}.noise.weight"] = strength.reshape(1).clone()
            out[f"{ros}.activate.bias"] = sd[f"{nv}.bias"].clone()
        else:
            out[f"{ros}.bias"] = sd[f"{nv}.bias"].reshape(1, -1, 1, 1).clone()
            if ros != "to_rgb1":
                out[f"{ros}.upsample.kernel"] = kernel.clone()
            out[f"{ros}.conv.weight"] = sd[f"{nv}.weight"].unsqueeze(0).clone()
            out[f"{ros}.conv.modulation.weight"] = sd[f"{nv}.affine.weight"].clone()
            out[f"{ros}.conv.modulation.bias"] = sd[f"{nv}.affine.bias"].clone()
    gen = torch.Generator().manual_seed(0)
    for nv, ros in _noise_pairs(cfg):
        const = sd.get(f"{nv}.noise_const")
        if const is None:  # use_noise=False: any noise, strength is zero
            res = int(nv.split(".")[1][1:])
            const = torch.randn(res, res, generator=gen)
        out[ros] = const.reshape(1, 1, *const.shape).clone()
    # rosinality's module order: style, input, conv1, to_rgb1, convs, to_rgbs, noises
    groups = ("style.", "input.", "conv1.", "to_rgb1.", "convs.", "to_rgbs.", "noises.")
    return dict(sorted(out.items(), key=lambda kv: next(i for i, g in enumerate(groups) if kv[0].startswith(g))))


def _infer_filter(kernel: Tensor | None) -> tuple[int, ...]:
    """Integer taps of a rosinality blur/upsample kernel (outer product, normalised, x4); default [1,3,3,1]."""
    if kernel is None or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.numel() == 0:
        return (1, 3, 3, 1)
    row = kernel.double().sum(0)
    if bool((row <= 0).any()):
        return (1, 3, 3, 1)
    taps = row / row.min()
    rounded = taps.round()
    if not torch.allclose(taps, rounded, atol=1e-3):
        return (1, 3, 3, 1)
    return tuple(int(v) for v in rounded.tolist())


def rosinality_to_nvidia(
    g_ema: dict[str, Any], path: str | os.PathLike[str], *, lr_mlp: float = DEFAULT_LR_MLP
) -> tuple[StyleGAN2Config, dict[str, Tensor]]:
    """Infer the config from a rosinality ``g_ema`` state dict's shapes and rename it to NVIDIA's layout.

    ``mapping.w_avg`` is *not* filled (rosinality keeps it outside ``g_ema``); the caller sets it.
    """
    tensors = {k: v for k, v in g_ema.items() if isinstance(v, Tensor)}
    others = sorted(str(k) for k in g_ema if k not in tensors)
    if others:
        raise CheckpointError(f"{path}: g_ema entries {others[:4]} are not tensors; not a rosinality generator")
    if "input.input" not in tensors or "style.1.weight" not in tensors:
        raise CheckpointError(
            f"{path}: g_ema lacks input.input / style.1.weight; not a rosinality stylegan2-pytorch generator "
            "(SWAGAN and other variants are not supported)"
        )
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in tensors:
        n_mlp += 1
    style_dim = int(tensors["style.1.weight"].shape[1])
    n_rgb = 0
    while f"to_rgbs.{n_rgb}.conv.weight" in tensors:
        n_rgb += 1
    const = tensors["input.input"]
    if const.ndim != 4 or const.shape[0] != 1:
        raise CheckpointError(f"{path}: input.input has shape {list(const.shape)}, expected [1, C, 4, 4]")
    resolution = 2 ** (n_rgb + 2)
    channels = {4: int(const.shape[1])}
    for k in range(n_rgb):
        w = tensors.get(f"convs.{2 * k}.conv.weight")
        if w is None or w.ndim != 5:
            raise CheckpointError(f"{path}: convs.{2 * k}.conv.weight is missing or not 5-D; the g_ema state dict is incomplete")
        channels[2 ** (k + 3)] = int(w.shape[1])
    rgb = tensors.get("to_rgb1.conv.weight")
    img_channels = int(rgb.shape[1]) if rgb is not None and rgb.ndim == 5 else 3
    kernel = tensors.get("convs.0.conv.blur.kernel")
    try:
        cfg = StyleGAN2Config(
            z_dim=style_dim, w_dim=style_dim, c_dim=0, img_resolution=resolution, img_channels=img_channels,
            mapping_layers=n_mlp, mapping_lr_multiplier=float(lr_mlp), channels=channels,
            channel_max=max(channels.values()), architecture="skip", conv_clamp=None,
            resample_filter=_infer_filter(kernel),
        )
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    return cfg, _rename_to_nvidia(tensors, cfg, path)


def _rename_to_nvidia(tensors: dict[str, Tensor], cfg: StyleGAN2Config, path: str | os.PathLike[str]) -> dict[str, Tensor]:
    used: set[str] = set()
    missing: list[str] = []

    def take(key: str) -> Tensor | None:
        t = tensors.get(key)
        if t is None:
            missing.append(key)
            return None
        used.add(key)
        return t

    def reshaped(t: Tensor | None, shape: tuple[int, ...] | None) -> Tensor | None:
        if t is None or shape is None:
            return t
        if t.numel() != int(torch.Size(shape).numel()):
            return t  # leave as is: validation reports the shape mismatch
        return t.reshape(shape)

    layout = nvidia_layout(cfg)
    out: dict[str, Tensor | None] = {}
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = take(f"style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = take(f"style.{i + 1}.bias")
    out["synthesis.b4.const"] = reshaped(take("input.input"), layout["synthesis.b4.const"])
    for nv, ros, kind in _layer_pairs(cfg):
        out[f"{nv}.weight"] = reshaped(take(f"{ros}.conv.weight"), layout.get(f"{nv}.weight"))
        out[f"{nv}.affine.weight"] = take(f"{ros}.conv.modulation.weight")
        out[f"{nv}.affine.bias"] = take(f"{ros}.conv.modulation.bias")
        if kind == "conv":
            out[f"{nv}.noise_strength"] = reshaped(take(f"{ros}.noise.weight"), ())
            out[f"{nv}.bias"] = take(f"{ros}.activate.bias")
            if nv.endswith(".conv0"):
                take(f"{ros}.conv.blur.kernel")
        else:
            out[f"{nv}.bias"] = reshaped(take(f"{ros}.bias"), layout.get(f"{nv}.bias"))
            if ros != "to_rgb1":
                take(f"{ros}.upsample.kernel")
    for nv, ros in _noise_pairs(cfg):
        out[f"{nv}.noise_const"] = reshaped(take(ros), layout.get(f"{nv}.noise_const"))
    unexpected = sorted(k for k in tensors if k not in used)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}" + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else ""))
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}" + (f" (+{len(unexpected) - 4} more)" if len(unexpected) > 4 else ""))
        raise CheckpointError(
            f"{path}: g_ema does not have the layout of rosinality's StyleGAN2 Generator: {'; '.join(parts)}"
        )
    result: dict[str, Tensor] = {}
    for key in layout:  # NVIDIA order; resample filters are derived, w_avg is set by the caller
        if key.endswith("resample_filter"):
            result[key] = resample_filter_tensor(cfg, key)
        elif key == "mapping.w_avg":
            result[key] = torch.zeros(cfg.w_dim)
        else:
            t = out.get(key)
            if t is not None:
                result[key] = t
    return result


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------

def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with every failure as a CheckpointError.

    ``argparse.Namespace`` (rosinality's train.py stores its ``args``) is also accepted: it only
    holds attribute values.
    """
    p = check_file(path)
    return torch_load_safe(p, p, allow=(argparse.Namespace,))


def _embedded_config(data: dict[str, Any]) -> tuple[StyleGAN2Config | None, float | None]:
    info = data.get("invertkit")
    if not isinstance(info, dict):
        return None, None
    lr = info.get("lr_mlp")
    lr = float(lr) if isinstance(lr, (int, float)) else None
    cfg = None
    if isinstance(info.get("config"), str):
        try:
            cfg = StyleGAN2Config.from_dict(json.loads(info["config"]))
        except (CheckpointError, ValueError, TypeError):
            cfg = None
    return cfg, lr


def read_rosinality(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Read a rosinality stylegan2-pytorch checkpoint (``g_ema`` + optional ``latent_avg``) safely.

    The config is inferred from tensor shapes (size, style_dim, n_mlp, channels per resolution, blur
    kernel); ``lr_mlp`` is not stored in the weights and defaults to 0.01. Without ``latent_avg``,
    ``mapping.w_avg`` is estimated as the mean mapping output of 10,000 seeded z (noted in ``meta``).

    Raises:
        CheckpointError: unreadable file, non-tensor objects, no ``g_ema``, or an unexpected layout.
    """
    p = check_file(path)
    data = load_torch_file(p)
    meta: dict[str, Any] = {"source_format": ROSINALITY_PT}
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: holds a {type(data).__name__}, not a checkpoint dict with 'g_ema'")
    if "g_ema" in data:
        key = "g_ema"
    elif "g" in data:
        key = "g"
        meta["note"] = "no g_ema in the checkpoint: loaded the training generator g (not the moving average)"
    elif "style.1.weight" in data and "input.input" in data:
        key = None
        meta["note"] = "a bare generator state dict (no g_ema wrapper)"
    else:
        keys = ", ".join(sorted(short_repr(k, 40) for k in list(data)[:50])[:8]) or "none"
        raise CheckpointError(
            f"{p}: no 'g_ema' generator in this checkpoint (keys: {keys}); pass a rosinality stylegan2-pytorch "
            "checkpoint such as 550000.pt or one written by convert_weight.py"
        )
    g_ema = data if key is None else data[key]
    if not isinstance(g_ema, dict):
        raise CheckpointError(f"{p}: '{key}' holds a {type(g_ema).__name__}, not a state dict")
    meta["checkpoint_keys"] = sorted(short_repr(k, 40) for k in list(data)[:50]) if key is not None else []
    # before any copy or reshape: zero-stride or shared views claim more than the file stores
    check_stored_bytes({short_repr(k, 60): v for k, v in g_ema.items() if isinstance(v, Tensor)}, p)
    embedded_cfg, embedded_lr = _embedded_config(data)
    lr_mlp = embedded_lr if embedded_lr is not None else DEFAULT_LR_MLP
    meta["lr_mlp"] = "from invertkit metadata" if embedded_lr is not None else (
        "assumed 0.01 (rosinality's default; the weights do not record it)")
    cfg, sd = rosinality_to_nvidia(g_ema, p, lr_mlp=lr_mlp)
    if embedded_cfg is not None and nvidia_layout(embedded_cfg) == nvidia_layout(cfg) \
            and embedded_cfg.architecture == "skip" and embedded_cfg.resample_filter == cfg.resample_filter:
        cfg = embedded_cfg  # same weights layout; keeps channel_base/channel_max/num_fp16_res of the source
        meta["config"] = "from invertkit metadata (consistent with the tensor shapes)"
    else:
        meta["config"] = "inferred from tensor shapes"
    avg = data.get("latent_avg") if key is not None else None
    if isinstance(avg, Tensor) and avg.numel() == cfg.w_dim:
        sd["mapping.w_avg"] = avg.detach().reshape(cfg.w_dim)
        meta["w_avg"] = "from checkpoint (latent_avg)"
        sd = validate_state_dict(sd, cfg, p)
    else:
        sd = validate_state_dict(sd, cfg, p)
        sd["mapping.w_avg"] = estimate_w_avg(cfg, sd)
        meta["w_avg"] = "estimated: mean of the mapping over 10000 z (seed 0); the checkpoint has no latent_avg"
    return LoadedCheckpoint(format=ROSINALITY_PT, config=cfg, state_dict=sd, meta=meta)


def save_rosinality(generator_or_loaded: Any, path: str | os.PathLike[str], *, strict: bool = True) -> Path:
    """Write ``{"g_ema": ..., "latent_avg": w_avg, "invertkit": {...}}`` with ``torch.save``.

    rosinality's scripts read ``g_ema`` into ``Generator(size, style_dim, n_mlp)`` (strict load) and
    ignore the other keys; ``"invertkit"`` records ``lr_mlp`` and the full config as JSON so that
    :func:`read_rosinality` restores them exactly.

    Args:
        generator_or_loaded: a StyleGAN2 generator or a :class:`LoadedCheckpoint`.
        path: destination file (written atomically).
        strict: refuse configs rosinality cannot reproduce exactly (``conv_clamp``); with False the
            clamp is dropped and noted.

    Raises:
        CheckpointError: the generator uses options rosinality's Generator does not have.
    """
    cfg, state, _ = unpack_generator(generator_or_loaded)
    p = Path(path)
    try:
        ros = nvidia_to_rosinality(cfg, state, strict=strict)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    except KeyError as exc:
        raise CheckpointError(f"{p}: the generator's state dict lacks {exc}; it is not NVIDIA-named") from None
    notes = check_rosinality_compatible(cfg, strict=strict)
    payload = {
        "g_ema": ros,
        "latent_avg": state["mapping.w_avg"].detach().to("cpu", torch.float32).clone(),
        "invertkit": {
            "format_version": _FORMAT_VERSION,
            "lr_mlp": float(cfg.mapping_lr_multiplier),
            "config": json.dumps(cfg.to_dict(), sort_keys=True),
            "notes": "; ".join(notes),
        },
    }
    tmp = p.with_name(p.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{p}: cannot write the checkpoint ({exc.strerror or exc})") from None
    return p
