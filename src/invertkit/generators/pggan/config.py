"""PGGAN generator configuration: what the weights of a pytorch_GAN_zoo ``GNet`` do not carry.

pytorch_GAN_zoo (facebookresearch) stores its training options in a ``BaseConfig`` object next to the
state dicts. Field names here are snake_case; the authors' names are:

=========================  ==========================================  ==========================
field                      pytorch_GAN_zoo ``config``                  from the weights?
=========================  ==========================================  ==========================
``latent_dim``             ``latentVectorDim`` (= ``noiseVectorDim``   ``formatLayer`` weight
                           + ``categoryVectorDim``)                    ``[16 * depths[0], latent]``
``depths``                 ``[depthScale0, *depthOtherScales]``        conv weights, one per scale
``dim_output``             ``dimOutput``                               ``toRGBLayers`` weights
``equalized_lr``           ``equalizedlR``                             no (default True)
``init_bias_to_zero``      ``initBiasToZero`` (training only)          no (default True)
``leaky_relu``             ``leakyReluLeak``                           no (default 0.2)
``generation_activation``  from ``lossCriterion``: ``MSE``/``DCGAN``   no (default "none",
                           -> "tanh", ``WGANGP``/``Logistic`` -> none  the default WGANGP)
``alpha``                  ``alpha`` (0: fully grown)                  no (default 0)
=========================  ==========================================  ==========================
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ...errors import CheckpointError
from ...untrusted import short_repr

MAX_WIDTH = 65536  # the largest channel count / latent width a config may declare
MAX_SCALES = 11  # 4 px .. 4096 px
MAX_OUTPUT_CHANNELS = 64
ACTIVATIONS = ("none", "tanh")
# pytorch_GAN_zoo's loss modes and the activation its GNet applies to the RGB layer under each
LOSS_ACTIVATION = {"WGANGP": "none", "Logistic": "none", "MSE": "tanh", "DCGAN": "tanh"}


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    v: Any = value
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    elif not isinstance(v, bool) and not isinstance(v, int) and hasattr(v, "__index__"):
        try:
            v = int(v.__index__())  # numpy integers
        except (TypeError, ValueError, RuntimeError):  # a float or many-element tensor, say
            v = None
    if not isinstance(v, int) or isinstance(v, bool):
        raise CheckpointError(f"PGGAN config field {name} must be an integer, got {short_repr(value)}")
    if not lo <= v <= hi:
        raise CheckpointError(f"PGGAN config field {name} must be between {lo} and {hi}, got {v}")
    return v


def _float(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"PGGAN config field {name} must be a number, got {short_repr(value)}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise CheckpointError(f"PGGAN config field {name} must be a finite number in [{lo:g}, {hi:g}], got {short_repr(value)}")
    return v


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise CheckpointError(f"PGGAN config field {name} must be true or false, got {short_repr(value)}")
    return value


@dataclass(frozen=True)
class PGGANConfig:
    """Hyper-parameters of a progressive-growing GAN generator (Karras et al. 2018, pytorch_GAN_zoo's GNet).

    Attributes:
        latent_dim: width of z (the ``formatLayer`` input).
        depths: channels of each scale, 4 px first; ``len(depths)`` scales give
            ``4 * 2**(len(depths) - 1)`` px.
        dim_output: image channels (3 RGB, 1 grey).
        equalized_lr: weights are scaled at run time by He's constant ``sqrt(2 / fan_in)``.
        init_bias_to_zero: a training option, recorded for round-trips; it does not change outputs.
        leaky_relu: negative slope of every activation.
        generation_activation: ``"none"`` (the output is the raw RGB layer, as for the default WGANGP
            loss) or ``"tanh"`` (MSE and DCGAN losses).
        alpha: blend of the previous scale's upsampled RGB output while a scale is being faded in:
            ``out = alpha * up(rgb_prev) + (1 - alpha) * rgb_last``; 0 for a fully grown model.
    """

    latent_dim: int = 512
    depths: tuple[int, ...] = (512,)
    dim_output: int = 3
    equalized_lr: bool = True
    init_bias_to_zero: bool = True
    leaky_relu: float = 0.2
    generation_activation: str = "none"
    alpha: float = 0.0

    def __post_init__(self) -> None:
        # a config comes from an untrusted file: types and ranges are checked before anything is built
        object.__setattr__(self, "latent_dim", _int(self.latent_dim, "latent_dim", 1, MAX_WIDTH))
        depths = self.depths
        if not isinstance(depths, (tuple, list)) or not 1 <= len(depths) <= MAX_SCALES:
            raise CheckpointError(f"PGGAN config field depths must list 1 to {MAX_SCALES} channel counts (one per scale), "
                                  f"got {short_repr(depths)}")
        object.__setattr__(self, "depths", tuple(_int(d, f"depths[{i}]", 1, MAX_WIDTH) for i, d in enumerate(depths)))
        object.__setattr__(self, "dim_output", _int(self.dim_output, "dim_output", 1, MAX_OUTPUT_CHANNELS))
        for name in ("equalized_lr", "init_bias_to_zero"):
            _bool(getattr(self, name), name)
        object.__setattr__(self, "leaky_relu", _float(self.leaky_relu, "leaky_relu", 0.0, 1.0))
        if not isinstance(self.generation_activation, str) or self.generation_activation not in ACTIVATIONS:
            raise CheckpointError(f"PGGAN config field generation_activation must be one of {ACTIVATIONS}, "
                                  f"got {short_repr(self.generation_activation)}")
        object.__setattr__(self, "alpha", _float(self.alpha, "alpha", 0.0, 1.0))
        if self.alpha > 0 and len(self.depths) < 2:
            raise CheckpointError(f"PGGAN config: alpha={self.alpha:g} blends with a previous scale, but the generator has only the 4 px scale")

    @property
    def resolution(self) -> int:
        """Output height and width: ``4 * 2**(scales - 1)``."""
        return 4 * 2 ** (len(self.depths) - 1)

    def layout(self) -> dict[str, tuple[int, ...]]:
        """The generator's state-dict names and shapes, in pytorch_GAN_zoo's ``GNet`` naming."""
        d0, c = self.depths[0], self.dim_output
        out: dict[str, tuple[int, ...]] = {
            "formatLayer.module.weight": (16 * d0, self.latent_dim),
            "formatLayer.module.bias": (16 * d0,),
            "groupScale0.0.module.weight": (d0, d0, 3, 3),
            "groupScale0.0.module.bias": (d0,),
        }
        for i, (prev, depth) in enumerate(zip(self.depths, self.depths[1:])):
            out[f"scaleLayers.{i}.0.module.weight"] = (depth, prev, 3, 3)
            out[f"scaleLayers.{i}.0.module.bias"] = (depth,)
            out[f"scaleLayers.{i}.1.module.weight"] = (depth, depth, 3, 3)
            out[f"scaleLayers.{i}.1.module.bias"] = (depth,)
        for i, depth in enumerate(self.depths):
            out[f"toRGBLayers.{i}.module.weight"] = (c, depth, 1, 1)
            out[f"toRGBLayers.{i}.module.bias"] = (c,)
        return out

    def parameter_count(self) -> int:
        """Elements of all weights (checked against the parameter limit before anything is built)."""
        return sum(math.prod(s) for s in self.layout().values())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["depths"] = list(self.depths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PGGANConfig:
        """Inverse of ``to_dict``; unknown keys raise CheckpointError."""
        if not isinstance(d, dict):
            raise CheckpointError(f"a PGGAN config must be a JSON object, got {short_repr(d)}")
        unknown = sorted(str(k) for k in set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise CheckpointError(f"unknown PGGAN config keys: {short_repr(unknown, 120)}")
        return cls(**d)
