"""StyleGAN3 architecture configuration: everything the raw weights do not carry, and the layer geometry.

Field names follow NVIDIA's ``training.networks_stylegan3.Generator(**_init_kwargs)`` (github.com/NVlabs/
stylegan3): the top level (``z_dim`` ... ``img_channels``), ``mapping_kwargs`` (``num_layers`` ->
``mapping_layers``, ``lr_multiplier`` -> ``mapping_lr_multiplier``) and the flat synthesis options of
``SynthesisNetwork`` and ``SynthesisLayer``. Defaults are NVIDIA's: what ``train.py`` leaves out of a
pickle's ``_init_kwargs`` is the constructor's default.

The layer geometry (:meth:`StyleGAN3Config.layer_specs`) is computed with numpy exactly as
``SynthesisNetwork.__init__`` and ``SynthesisLayer.__init__`` do (float64, the same expressions), so layer
names, sizes, channel counts, sampling rates, resampling factors, filter lengths and paddings agree with
NVIDIA's to the bit. Config T (``--cfg=stylegan3-t``): ``conv_kernel=3``; config R (``stylegan3-r``):
``conv_kernel=1``, ``use_radial_filters=True`` and doubled ``channel_base`` / ``channel_max``.

Reference: Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...untrusted import check_parameter_count, numel, short_repr

__all__ = ["InputSpec", "LayerSpec", "StyleGAN3Config", "nvidia_layout"]

MAX_WIDTH = 65536
MAX_LR_MULTIPLIER = 1000.0
_INT_RANGES: dict[str, tuple[int, int]] = {
    "z_dim": (1, MAX_WIDTH), "w_dim": (1, MAX_WIDTH), "c_dim": (0, 1 << 20), "img_channels": (1, 64),
    "mapping_layers": (1, 64), "channel_base": (1, 1 << 30), "channel_max": (1, MAX_WIDTH),
    "num_layers": (1, 64), "num_critical": (0, 63), "margin_size": (0, 1024), "num_fp16_res": (0, 64),
    "conv_kernel": (1, 15), "filter_size": (1, 64), "lrelu_upsampling": (1, 16),
}
_FLOAT_FIELDS = ("mapping_lr_multiplier", "first_cutoff", "first_stopband", "last_stopband_rel", "output_scale")


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    v: Any = value
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    elif not isinstance(v, bool) and hasattr(v, "__index__"):
        v = int(v.__index__())  # numpy integers
    if not isinstance(v, int) or isinstance(v, bool):
        raise CheckpointError(f"StyleGAN3 config field {name} must be an integer, got {short_repr(value)}")
    if not lo <= v <= hi:
        raise CheckpointError(f"StyleGAN3 config field {name} must be between {lo} and {hi}, got {v}")
    return v


def _float(value: Any, name: str, *, positive: bool = True) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CheckpointError(f"StyleGAN3 config field {name} must be a number, got {short_repr(value)}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        kind = "a finite positive" if positive else "a finite"
        raise CheckpointError(f"StyleGAN3 config field {name} must be {kind} number, got {short_repr(value)}")
    return v


@dataclass(frozen=True)
class InputSpec:
    """``SynthesisInput``: Fourier features of ``channels`` frequencies within ``bandwidth``, sampled on a
    ``size x size`` grid at ``sampling_rate`` samples per unit (the image spans one unit)."""

    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


@dataclass(frozen=True)
class LayerSpec:
    """One ``SynthesisLayer`` as NVIDIA builds it (``name`` = ``L{idx}_{out_size}_{out_channels}``)."""

    name: str
    index: int
    is_torgb: bool
    is_critically_sampled: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    tmp_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    up_factor: int
    up_taps: int
    down_factor: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # x0, x1, y0, y1 (NVIDIA's order; x and y are equal)

    @property
    def up_filter_shape(self) -> tuple[int, ...] | None:
        """Shape of the ``up_filter`` buffer, None when NVIDIA stores no filter (one tap)."""
        return (self.up_taps,) if self.up_taps > 1 else None

    @property
    def down_filter_shape(self) -> tuple[int, ...] | None:
        if self.down_taps <= 1:
            return None
        return (self.down_taps, self.down_taps) if self.down_radial else (self.down_taps,)


@dataclass(frozen=True)
class StyleGAN3Config:
    """Hyper-parameters of a StyleGAN3 generator (NVIDIA's constructor defaults)."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 1024
    img_channels: int = 3
    # mapping network (MappingNetwork: 2 layers by default in networks_stylegan3)
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    # synthesis network
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2 ** 2.1
    last_stopband_rel: float = 2 ** 0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4  # recorded for round-trips; invertkit always computes in float32
    # synthesis layers
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256.0
    extra: dict[str, Any] = field(default_factory=dict)  # ignored options (training-only), kept for info

    def __post_init__(self) -> None:
        # a config comes from an untrusted file: types and ranges are checked before anything is built
        for name, (lo, hi) in _INT_RANGES.items():
            object.__setattr__(self, name, _int(getattr(self, name), name, lo, hi))
        r = _int(self.img_resolution, "img_resolution", 4, 4096)
        if r & (r - 1):
            raise CheckpointError(f"StyleGAN3 img_resolution must be a power of two between 4 and 4096, got {r}")
        object.__setattr__(self, "img_resolution", r)
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _float(getattr(self, name), name, positive=name != "output_scale"))
        if self.mapping_lr_multiplier > MAX_LR_MULTIPLIER:
            raise CheckpointError(f"StyleGAN3 config field mapping_lr_multiplier must be in (0, {MAX_LR_MULTIPLIER:g}], "
                                  f"got {self.mapping_lr_multiplier:g}; the checkpoint's config is damaged")
        if self.conv_clamp is not None:
            object.__setattr__(self, "conv_clamp", _float(self.conv_clamp, "conv_clamp"))
        if not isinstance(self.use_radial_filters, (bool, np.bool_)):
            raise CheckpointError(f"StyleGAN3 config field use_radial_filters must be true or false, got {short_repr(self.use_radial_filters)}")
        object.__setattr__(self, "use_radial_filters", bool(self.use_radial_filters))
        if self.num_critical >= self.num_layers:
            raise CheckpointError(f"StyleGAN3 config: num_critical ({self.num_critical}) must be smaller than num_layers ({self.num_layers})")
        if not isinstance(self.extra, dict):
            raise CheckpointError("StyleGAN3 config field extra must be a JSON object")
        self._geometry()  # raises for a geometry NVIDIA's constructor would reject

    # ---- derived ------------------------------------------------------------------------------
    @property
    def num_ws(self) -> int:
        """Rows of w+: the input, ``num_layers`` layers and the ToRGB layer (``num_layers + 2``)."""
        return self.num_layers + 2

    @property
    def variant(self) -> str:
        """``"T"`` (3x3 convolutions, separable filters), ``"R"`` (1x1 convolutions, radial filters) or
        ``"custom"`` (any other combination)."""
        if self.conv_kernel == 3 and not self.use_radial_filters:
            return "T"
        if self.conv_kernel == 1 and self.use_radial_filters:
            return "R"
        return "custom"

    def input_spec(self) -> InputSpec:
        return self._geometry()[0]

    def layer_specs(self) -> list[LayerSpec]:
        """The ``num_layers + 1`` synthesis layers (the last is ToRGB), in order."""
        return list(self._geometry()[1])

    def _geometry(self) -> tuple[InputSpec, tuple[LayerSpec, ...]]:
        cached = self.__dict__.get("_geometry_cache")
        if cached is None:
            cached = _compute_geometry(self)
            object.__setattr__(self, "_geometry_cache", cached)
        return cached

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StyleGAN3Config:
        """Inverse of ``to_dict``; unknown keys raise CheckpointError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CheckpointError(f"unknown StyleGAN3 config keys: {short_repr(unknown, 120)}")
        return cls(**dict(d))

    def __eq__(self, other: object) -> bool:  # the geometry cache is not part of the value
        if not isinstance(other, StyleGAN3Config):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple((k, v) for k, v in self.to_dict().items() if k != "extra"))

    # ---- from NVIDIA's constructor arguments ----------------------------------------------------
    @classmethod
    def from_nvidia_kwargs(cls, init_kwargs: Mapping[str, Any], init_args: tuple[Any, ...] = (),
                           attrs: Mapping[str, Any] | None = None) -> tuple[StyleGAN3Config, dict[str, Any]]:
        """``StyleGAN3Config`` from ``Generator(*_init_args, **_init_kwargs)``, plus the ignored options.

        ``attrs`` (the network's plain attributes) fills top-level values the arguments lack. Options
        that change training only (``magnitude_ema_beta``, the mapping's ``w_avg_beta``) are ignored;
        any other unknown option is refused (it may change what the network computes).
        """
        kw: dict[str, Any] = dict(zip(_TOP, init_args))
        if len(init_args) > len(_TOP) + 1:
            raise CheckpointError(f"generator has {len(init_args)} positional constructor arguments; expected at most {len(_TOP) + 1}")
        if len(init_args) == len(_TOP) + 1:
            kw["mapping_kwargs"] = init_args[-1]
        for k, v in init_kwargs.items():
            if not isinstance(k, str):
                raise CheckpointError(f"generator constructor argument named {short_repr(k)}")
            kw[k] = v
        attrs = attrs or {}
        for name in _TOP:
            if name not in kw and name in attrs:
                kw[name] = attrs[name]
        missing = [n for n in _TOP if n not in kw]
        if missing:
            raise CheckpointError(f"generator constructor arguments lack {missing}")
        cfg: dict[str, Any] = {n: kw.pop(n) for n in _TOP}
        mapping = kw.pop("mapping_kwargs", None) or {}
        if not isinstance(mapping, Mapping):
            raise CheckpointError(f"generator mapping_kwargs is not a dict: {short_repr(mapping)}")
        mapping = dict(mapping)
        ignored: dict[str, Any] = {}
        for src, dst in (("num_layers", "mapping_layers"), ("lr_multiplier", "mapping_lr_multiplier")):
            if src in mapping:
                cfg[dst] = mapping.pop(src)
        if "w_avg_beta" in mapping:
            ignored["mapping.w_avg_beta"] = mapping.pop("w_avg_beta")
        if mapping:
            raise CheckpointError(f"unsupported StyleGAN3 mapping network options {short_repr(sorted(map(str, mapping)), 160)}")
        for name in _SYNTHESIS:
            if name in kw:
                cfg[name] = kw.pop(name)
        if "use_radial_filters" in cfg and not isinstance(cfg["use_radial_filters"], (bool, np.bool_)):
            raise CheckpointError(f"StyleGAN3 use_radial_filters must be true or false, got {short_repr(cfg['use_radial_filters'])}")
        for name in _IGNORED_SYNTHESIS & set(kw):
            ignored[name] = kw.pop(name)
        if kw:
            raise CheckpointError(f"unsupported StyleGAN3 synthesis options {short_repr(sorted(map(str, kw)), 160)}")
        return cls(**cfg), ignored


_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_SYNTHESIS = ("channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
              "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "filter_size",
              "lrelu_upsampling", "use_radial_filters", "conv_clamp")
# training-only: the decay of the input-magnitude moving average (the averages themselves are weights)
_IGNORED_SYNTHESIS = {"magnitude_ema_beta"}


def _bad(what: str) -> CheckpointError:
    return CheckpointError(f"StyleGAN3 config describes no valid network: {what}")


def _compute_geometry(cfg: StyleGAN3Config) -> tuple[InputSpec, tuple[LayerSpec, ...]]:
    """``SynthesisNetwork.__init__``'s geometry (numpy float64, NVIDIA's expressions) and each layer's
    ``SynthesisLayer.__init__`` derivations; raises where NVIDIA's constructor would fail or assert."""
    with np.errstate(all="ignore"):
        n = cfg.num_layers
        last_cutoff = cfg.img_resolution / 2
        last_stopband = last_cutoff * cfg.last_stopband_rel
        exponents = np.minimum(np.arange(n + 1) / (n - cfg.num_critical), 1)
        cutoffs = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** exponents
        stopbands = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, cfg.img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + cfg.margin_size * 2
        sizes[-2:] = cfg.img_resolution
        channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
        channels[-1] = cfg.img_channels
    for arr, what in ((cutoffs, "cutoffs"), (stopbands, "stopbands"), (sampling_rates, "sampling rates"), (sizes, "sizes")):
        if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
            raise _bad(f"non-positive or non-finite layer {what} ({short_repr(arr.tolist(), 120)})")
    if np.any(sampling_rates < 1) or np.any(sizes > 1 << 16):
        raise _bad(f"sampling rates {short_repr(sampling_rates.tolist(), 120)} or sizes out of range")
    if np.any(channels < 1):
        raise _bad(f"a layer with no channels (channel_base {cfg.channel_base} too small: {short_repr(channels.tolist(), 120)})")
    if not cutoffs[0] < sampling_rates[0] / 2:
        raise _bad(f"the input's bandwidth {cutoffs[0]:g} must be below half its sampling rate {sampling_rates[0]:g}")
    inp = InputSpec(channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(sampling_rates[0]),
                    bandwidth=float(cutoffs[0]))
    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == n
        in_sr, out_sr = int(sampling_rates[prev]), int(sampling_rates[idx])
        tmp_sr = max(in_sr, out_sr) * (1 if is_torgb else cfg.lrelu_upsampling)
        k = 1 if is_torgb else cfg.conv_kernel
        up = int(np.rint(tmp_sr / in_sr))
        down = int(np.rint(tmp_sr / out_sr))
        if in_sr * up != tmp_sr or out_sr * down != tmp_sr:
            raise _bad(f"layer {idx}: sampling rates {in_sr} -> {tmp_sr} -> {out_sr} are not integer multiples")
        up_taps = cfg.filter_size * up if up > 1 and not is_torgb else 1
        down_taps = cfg.filter_size * down if down > 1 and not is_torgb else 1
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        pad_total = (out_size - 1) * down + 1 - (in_size + k - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        # the size filtered_lrelu produces from these paddings (NVIDIA asserts it equals out_size)
        upsampled = (in_size + k - 1) * up + pad_lo + pad_hi
        produced = (upsampled - (up_taps - 1) - (down_taps - 1) + (down - 1)) // down
        if produced != out_size or upsampled < max(up_taps, 1) or upsampled - up_taps + 1 < down_taps:
            raise _bad(f"layer {idx}: input {in_size} px cannot give {out_size} px")
        out_ch = int(channels[idx])
        layers.append(LayerSpec(
            name=f"L{idx}_{out_size}_{out_ch}", index=idx, is_torgb=is_torgb,
            is_critically_sampled=idx >= n - cfg.num_critical, in_channels=int(channels[prev]), out_channels=out_ch,
            in_size=in_size, out_size=out_size, in_sampling_rate=in_sr, out_sampling_rate=out_sr, tmp_sampling_rate=tmp_sr,
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]), in_half_width=float(half_widths[prev]),
            out_half_width=float(half_widths[idx]), conv_kernel=k, up_factor=up, up_taps=up_taps, down_factor=down,
            down_taps=down_taps, down_radial=cfg.use_radial_filters and not idx >= n - cfg.num_critical,
            padding=(int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi))))
    specs = (inp, tuple(layers))
    check_parameter_count(sum(numel(s) for s in _layout(cfg, specs).values()), "StyleGAN3 config", "it")
    return specs


def _layout(cfg: StyleGAN3Config, specs: tuple[InputSpec, tuple[LayerSpec, ...]]) -> dict[str, tuple[int, ...]]:
    inp, layers = specs
    out: dict[str, tuple[int, ...]] = {}
    c = inp.channels
    out["synthesis.input.weight"] = (c, c)
    out["synthesis.input.transform"] = (3, 3)
    out["synthesis.input.freqs"] = (c, 2)
    out["synthesis.input.phases"] = (c,)
    out["synthesis.input.affine.weight"] = (4, cfg.w_dim)
    out["synthesis.input.affine.bias"] = (4,)
    for ls in layers:
        p = f"synthesis.{ls.name}"
        out[f"{p}.weight"] = (ls.out_channels, ls.in_channels, ls.conv_kernel, ls.conv_kernel)
        out[f"{p}.bias"] = (ls.out_channels,)
        out[f"{p}.magnitude_ema"] = ()
        if ls.up_filter_shape is not None:
            out[f"{p}.up_filter"] = ls.up_filter_shape
        if ls.down_filter_shape is not None:
            out[f"{p}.down_filter"] = ls.down_filter_shape
        out[f"{p}.affine.weight"] = (ls.in_channels, cfg.w_dim)
        out[f"{p}.affine.bias"] = (ls.in_channels,)
    out["mapping.w_avg"] = (cfg.w_dim,)
    if cfg.c_dim > 0:
        out["mapping.embed.weight"] = (cfg.w_dim, cfg.c_dim)
        out["mapping.embed.bias"] = (cfg.w_dim,)
    feats = [cfg.z_dim + (cfg.w_dim if cfg.c_dim > 0 else 0)] + [cfg.w_dim] * cfg.mapping_layers
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = (feats[i + 1], feats[i])
        out[f"mapping.fc{i}.bias"] = (feats[i + 1],)
    return out


def nvidia_layout(cfg: StyleGAN3Config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of NVIDIA's ``networks_stylegan3.Generator(...).state_dict()`` for ``cfg``, in its order
    (filters of one tap are ``None`` buffers there and absent from the state dict)."""
    return _layout(cfg, cfg._geometry())
