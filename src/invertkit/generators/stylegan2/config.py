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

ARCHITECTURES = ("orig", "skip", "resnet")
# the mapping network's learning-rate multiplier: 0.01 in NVIDIA's and rosinality's code; a value far
# outside (0, 1000] only comes from a damaged config
MAX_LR_MULTIPLIER = 1000.0


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
        # float fields: a NaN or absurd value would render every image black (or NaN) without an error
        lr = self.mapping_lr_multiplier
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= MAX_LR_MULTIPLIER:
            raise CheckpointError(f"StyleGAN2 mapping_lr_multiplier must be a finite number in (0, {MAX_LR_MULTIPLIER:g}], "
                                  f"got {lr!r}; the checkpoint's config is damaged")
        clamp = self.conv_clamp
        if clamp is not None and (not isinstance(clamp, (int, float)) or not math.isfinite(clamp) or clamp <= 0):
            raise CheckpointError(f"StyleGAN2 conv_clamp must be None or a finite number > 0, got {clamp!r}; "
                                  "the checkpoint's config is damaged")
        r = self.img_resolution
        if r < 4 or r > 4096 or (r & (r - 1)) != 0:
            raise CheckpointError(f"StyleGAN2 img_resolution must be a power of two >= 4, got {r}")
        if self.architecture not in ARCHITECTURES:
            raise CheckpointError(
                f"StyleGAN2 architecture {self.architecture!r} is not supported; expected one of {ARCHITECTURES}"
            )
        if self.channels is not None:
            object.__setattr__(self, "channels", {int(k): int(v) for k, v in self.channels.items()})
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
            raise CheckpointError(f"unknown StyleGAN2 config keys: {unknown}")
        d = dict(d)
        if d.get("channels") is not None:
            d["channels"] = {int(k): int(v) for k, v in d["channels"].items()}
        if "resample_filter" in d:
            d["resample_filter"] = tuple(int(v) for v in d["resample_filter"])
        try:
            return cls(**d)
        except TypeError as exc:
            raise CheckpointError(f"bad StyleGAN2 config: {exc}") from None
