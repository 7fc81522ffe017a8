"""StyleGAN2 architecture configuration: everything that raw weights do not carry.

Field names follow NVIDIA's stylegan2-ada-pytorch ``Generator(**_init_kwargs)`` so that a pickle's
``_init_kwargs`` maps onto this dataclass directly (see ``from_nvidia_kwargs``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ...errors import CheckpointError
from ...untrusted import short_repr

ARCHITECTURES = ("orig", "skip", "resnet")
# the mapping network's learning-rate multiplier: 0.01 in NVIDIA's and rosinality's code; a value far
# outside (0, 1000] only comes from a damaged config
MAX_LR_MULTIPLIER = 1000.0
MAX_WIDTH = 65536  # the largest channel count / latent width a config may declare
_MAX_INT = {"c_dim": 1 << 20, "img_channels": 64, "mapping_layers": 64, "channel_base": 1 << 30, "num_fp16_res": 16}


def config_int(value: Any, name: str, lo: int, hi: int, *, key: bool = False) -> int:
    """``value`` as an int in ``[lo, hi]`` (an int, an integral finite float, or with ``key`` a numeric
    string: JSON object keys are strings); else a CheckpointError naming the field."""
    v: Any = value
    if isinstance(v, str) and key:
        try:
            v = int(v.strip())
        except ValueError:
            v = None
    elif isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    elif not isinstance(v, bool) and hasattr(v, "__index__"):
        v = int(v.__index__())  # numpy integers
    if not isinstance(v, int) or isinstance(v, bool):
        raise CheckpointError(f"StyleGAN2 config field {name} must be an integer, got {short_repr(value)}")
    if not lo <= v <= hi:
        raise CheckpointError(f"StyleGAN2 config field {name} must be between {lo} and {hi}, got {v}")
    return v


def config_float(value: Any, name: str) -> float:
    """``value`` as a finite positive float; else a CheckpointError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise CheckpointError(f"StyleGAN2 config field {name} must be a number, got {short_repr(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise CheckpointError(f"StyleGAN2 config field {name} must be a number, got {short_repr(value)}") from None
    if not math.isfinite(v) or v <= 0:
        raise CheckpointError(f"StyleGAN2 config field {name} must be a finite positive number, got {short_repr(value)}")
    return v


@dataclass(frozen=True)
class StyleGAN2Config:
    """Hyper-parameters of a StyleGAN2 generator.

    Channel count at resolution ``r`` is ``channels[r]`` when ``channels`` is given (rosinality
    checkpoints, inferred from shapes), else ``min(channel_base // r, channel_max)`` as in NVIDIA's code.
    """

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 1024
    img_channels: int = 3
    # mapping network
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    mapping_layer_features: int | None = None  # None: w_dim
    embed_features: int | None = None  # None: w_dim (only used when c_dim > 0)
    # synthesis network
    channel_base: int = 32768
    channel_max: int = 512
    channels: dict[int, int] | None = None  # explicit per-resolution override
    conv_clamp: float | None = None
    architecture: str = "skip"
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)
    use_noise: bool = True
    num_fp16_res: int = 0  # recorded for round-trips; invertkit always computes in float32
    extra: dict[str, Any] = field(default_factory=dict)  # unrecognised kwargs, kept for info/round-trip

    def __post_init__(self) -> None:
        # a config comes from an untrusted file: types and ranges are checked before anything is built
        for name, lo in (("z_dim", 1), ("w_dim", 1), ("c_dim", 0), ("img_channels", 1), ("mapping_layers", 1),
                         ("channel_base", 1), ("channel_max", 1), ("num_fp16_res", 0)):
            object.__setattr__(self, name, config_int(getattr(self, name), name, lo, _MAX_INT.get(name, MAX_WIDTH)))
        for name in ("mapping_layer_features", "embed_features"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, config_int(getattr(self, name), name, 1, MAX_WIDTH))
        object.__setattr__(self, "img_resolution", config_int(self.img_resolution, "img_resolution", 4, 4096))
        r = self.img_resolution
        if r < 4 or r > 4096 or (r & (r - 1)) != 0:
            raise CheckpointError(f"StyleGAN2 img_resolution must be a power of two >= 4, got {r}")
        object.__setattr__(self, "mapping_lr_multiplier", config_float(self.mapping_lr_multiplier, "mapping_lr_multiplier"))
        if self.mapping_lr_multiplier > MAX_LR_MULTIPLIER:  # finite but absurd: every image would be black or NaN
            raise CheckpointError(f"StyleGAN2 config field mapping_lr_multiplier must be in (0, {MAX_LR_MULTIPLIER:g}], "
                                  f"got {self.mapping_lr_multiplier:g}; the checkpoint's config is damaged")
        if self.conv_clamp is not None:
            object.__setattr__(self, "conv_clamp", config_float(self.conv_clamp, "conv_clamp"))
        if not isinstance(self.architecture, str) or self.architecture not in ARCHITECTURES:
            raise CheckpointError(
                f"StyleGAN2 architecture {short_repr(self.architecture)} is not supported; expected one of {ARCHITECTURES}"
            )
        if not isinstance(self.use_noise, bool):
            raise CheckpointError(f"StyleGAN2 config field use_noise must be true or false, got {short_repr(self.use_noise)}")
        taps = self.resample_filter
        if not isinstance(taps, (tuple, list)) or not 1 <= len(taps) <= 16:
            raise CheckpointError(f"StyleGAN2 config field resample_filter must be a list of 1 to 16 integers, got {short_repr(taps)}")
        taps = tuple(config_int(v, "resample_filter", -1024, 1024) for v in taps)
        if sum(taps) == 0:
            raise CheckpointError(f"StyleGAN2 config field resample_filter sums to zero: {list(taps)}")
        object.__setattr__(self, "resample_filter", taps)
        if not isinstance(self.extra, dict):
            raise CheckpointError("StyleGAN2 config field extra must be a JSON object")
        if self.channels is not None:
            if not isinstance(self.channels, dict) or len(self.channels) > 16:
                raise CheckpointError(f"StyleGAN2 config field channels must map resolutions to widths, got {short_repr(self.channels)}")
            object.__setattr__(self, "channels", {config_int(k, "channels (resolution)", 4, 4096, key=True):
                                                  config_int(v, f"channels[{short_repr(k, 12)}]", 1, MAX_WIDTH)
                                                  for k, v in self.channels.items()})
            missing = [res for res in self.block_resolutions if res not in self.channels]
            if missing:
                raise CheckpointError(f"StyleGAN2 channels table lacks resolutions {missing}")

    @property
    def log2_resolution(self) -> int:
        return int(math.log2(self.img_resolution))

    @property
    def block_resolutions(self) -> list[int]:
        """[4, 8, ..., img_resolution]."""
        return [2**i for i in range(2, self.log2_resolution + 1)]

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes: ``2 * log2(R) - 2``."""
        return 2 * self.log2_resolution - 2

    def channels_at(self, res: int) -> int:
        if self.channels is not None:
            return self.channels[res]
        return min(self.channel_base // res, self.channel_max)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resample_filter"] = list(self.resample_filter)
        if self.channels is not None:
            d["channels"] = {str(k): v for k, v in self.channels.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleGAN2Config:
        """Inverse of ``to_dict``; unknown keys raise CheckpointError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CheckpointError(f"unknown StyleGAN2 config keys: {short_repr(unknown, 120)}")
        d = dict(d)
        try:
            return cls(**d)
        except TypeError as exc:
            raise CheckpointError(f"bad StyleGAN2 config: {short_repr(exc, 200)}") from exc
