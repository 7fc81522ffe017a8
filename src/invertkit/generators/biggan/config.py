"""BigGAN-deep architecture configuration, as the ``config.json`` of pytorch-pretrained-biggan.

Field names and meanings follow ``pytorch_pretrained_biggan.BigGANConfig`` (huggingface/
pytorch-pretrained-BigGAN): the released models (BigGAN-deep-128/256/512) have ``z_dim = 128``,
``class_embed_dim = 128``, ``channel_width = 128``, ``num_classes = 1000``, ``n_stats = 51``,
``eps = 1e-4`` and ten or more ``layers``. Each layer is ``(up_sample, in_mult, out_mult)``: a
residual GenBlock from ``channel_width * in_mult`` to ``channel_width * out_mult`` channels, doubling
the resolution when ``up_sample``. The self-attention block sits before layer
``attention_layer_position``.

Facts of the package that the config does not say, checked here so that a config the package could
not run is refused before anything is built:

- the class embedding is ``Linear(num_classes, z_dim)``: its width is ``z_dim``, and the package
  never reads ``class_embed_dim`` (the released configs set both to 128); we require them equal;
- the generator starts from a 4 x 4 map of ``16 * channel_width`` channels (so the first layer's
  ``in_mult`` is 16) and ends with a batch norm of ``channel_width`` channels (last ``out_mult`` 1);
- a block that changes the width keeps the first half of its input channels on the skip path, so
  ``out_mult`` is ``in_mult`` or ``in_mult / 2``; its bottleneck has ``in / 4`` channels;
- ``conv_to_rgb`` has ``channel_width`` outputs of which the first three are the image (width >= 3);
- the batch-norm statistics are stored for ``n_stats`` truncation values evenly spaced in [0, 1]
  (step ``1 / (n_stats - 1)``, so ``n_stats >= 2``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import CheckpointError
from ...untrusted import short_repr

# Bounds on what a config may declare: far above the released models (width 128, 1000 classes, 10-14
# layers, 51 stats, 512 px), low enough that a forged config cannot make the shape arithmetic huge.
MAX_WIDTH = 4096  # z_dim, class_embed_dim, channel_width
MAX_MULT = 64  # a layer's in/out channel multiplier
MAX_CLASSES = 1 << 20
MAX_LAYERS = 64
MAX_STATS = 4096
MAX_OUTPUT = 4096
MAX_CONFIG_BYTES = 1 << 20  # a config.json larger than this is not a BigGAN config
# Self-attention holds an (H W) x (H W / 4) matrix per image: 4 M entries at the released models' 64 x 64,
# 1 G entries (4 GB) at 256 x 256. Beyond that a config asks for memory no forward pass can have.
MAX_ATTENTION_SIDE = 256

FIELDS = ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes", "layers",
          "attention_layer_position", "eps", "n_stats")


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(f"BigGAN config field {name} must be an integer, got {short_repr(value)}")
    if not lo <= value <= hi:
        raise CheckpointError(f"BigGAN config field {name} must be between {lo} and {hi}, got {value}")
    return value


def _layer(value: Any, i: int) -> tuple[bool, int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise CheckpointError(f"BigGAN config layers[{i}] must be [up_sample, in_mult, out_mult], got {short_repr(value)}")
    up, a, b = value
    if not isinstance(up, bool):
        raise CheckpointError(f"BigGAN config layers[{i}][0] (up_sample) must be true or false, got {short_repr(up)}")
    return up, _int(a, f"layers[{i}][1]", 1, MAX_MULT), _int(b, f"layers[{i}][2]", 1, MAX_MULT)


@dataclass(frozen=True)
class BigGANConfig:
    """Hyper-parameters of a BigGAN-deep generator (pytorch-pretrained-biggan's ``config.json``).

    Defaults are the package's (the 128 px model). Types and ranges are checked on construction
    (a config comes from an untrusted file); every failure is one CheckpointError line.

    Attributes:
        output_dim: image height and width in pixels (``4 * 2**(number of up-sampling layers)``).
        z_dim: length of z, and of the class embedding.
        class_embed_dim: recorded by the package, unused by its code; must equal ``z_dim``.
        channel_width: the base channel count ``ch``.
        num_classes: classes of the one-hot label (1000 for ImageNet).
        layers: ``(up_sample, in_mult, out_mult)`` per GenBlock.
        attention_layer_position: self-attention goes before this layer (none when out of range).
        eps: batch-norm epsilon (also the package's spectral-norm epsilon, unused in eval mode).
        n_stats: batch-norm statistics stored per truncation level (evenly spaced over [0, 1]).
    """

    output_dim: int = 128
    z_dim: int = 128
    class_embed_dim: int = 128
    channel_width: int = 128
    num_classes: int = 1000
    layers: tuple[tuple[bool, int, int], ...] = (
        (False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
        (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
    )
    attention_layer_position: int = 8
    eps: float = 1e-4
    n_stats: int = 51

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "output_dim", _int(self.output_dim, "output_dim", 4, MAX_OUTPUT))
        for name in ("z_dim", "class_embed_dim", "channel_width"):
            put(self, name, _int(getattr(self, name), name, 1, MAX_WIDTH))
        put(self, "num_classes", _int(self.num_classes, "num_classes", 1, MAX_CLASSES))
        put(self, "n_stats", _int(self.n_stats, "n_stats", 2, MAX_STATS))
        put(self, "attention_layer_position", _int(self.attention_layer_position, "attention_layer_position", -MAX_LAYERS, MAX_LAYERS))
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or not 0 < eps <= 1:
            raise CheckpointError(f"BigGAN config field eps must be a number in (0, 1], got {short_repr(eps)}")
        put(self, "eps", float(eps))
        if not isinstance(self.layers, (list, tuple)) or not 1 <= len(self.layers) <= MAX_LAYERS:
            raise CheckpointError(f"BigGAN config field layers must be a list of 1 to {MAX_LAYERS} layers, got {short_repr(self.layers)}")
        layers = tuple(_layer(v, i) for i, v in enumerate(self.layers))
        put(self, "layers", layers)
        self._check_consistent()

    def _check_consistent(self) -> None:
        if self.class_embed_dim != self.z_dim:
            raise CheckpointError(
                f"BigGAN config: class_embed_dim {self.class_embed_dim} != z_dim {self.z_dim}; pytorch-pretrained-biggan "
                "embeds classes with z_dim outputs (class_embed_dim is unused), so the config is inconsistent"
            )
        ch = self.channel_width
        if ch < 3:
            raise CheckpointError(f"BigGAN config: channel_width {ch} < 3 (conv_to_rgb's first 3 of ch outputs are the image)")
        prev = 16
        for i, (_, a, b) in enumerate(self.layers):
            if a != prev:
                raise CheckpointError(f"BigGAN config layers[{i}] takes {a} x channel_width channels but receives {prev} x "
                                      "(the first layer receives 16 x, each next one the previous out_mult)")
            if b != a and 2 * b != a:
                raise CheckpointError(f"BigGAN config layers[{i}]: out_mult {b} must equal in_mult {a} or half of it "
                                      "(the skip path keeps the first half of the channels)")
            if a * ch < 4:
                raise CheckpointError(f"BigGAN config layers[{i}]: {a * ch} input channels leave no bottleneck (in / 4)")
            prev = b
        if prev != 1:
            raise CheckpointError(f"BigGAN config: the last layer must end at 1 x channel_width channels, got {prev} x")
        if self.has_attention:
            a = self.layers[self.attention_layer_position][1] * ch
            if a < 8:
                raise CheckpointError(f"BigGAN config: self-attention over {a} channels needs at least 8 (it projects to in / 8)")
            if self.attention_resolution < 2:
                raise CheckpointError("BigGAN config: self-attention needs a map of at least 2 x 2 (it max-pools by 2)")
            if self.attention_resolution > MAX_ATTENTION_SIDE:
                side = self.attention_resolution
                raise CheckpointError(f"BigGAN config: self-attention over a {side} x {side} map needs a {side * side:,} x "
                                      f"{side * side // 4:,} matrix per image; invertkit allows at most {MAX_ATTENTION_SIDE} x "
                                      f"{MAX_ATTENTION_SIDE} (the released models attend at 64 x 64)")
        want = 4 * 2 ** sum(up for up, _, _ in self.layers)
        if want != self.output_dim:
            raise CheckpointError(f"BigGAN config: output_dim {self.output_dim} but its layers produce {want} px "
                                  f"(4 x 2 per up-sampling layer)")

    # ---- derived -------------------------------------------------------------------------------
    @property
    def has_attention(self) -> bool:
        """Whether the package inserts self-attention (only for a position inside ``layers``)."""
        return 0 <= self.attention_layer_position < len(self.layers)

    @property
    def attention_resolution(self) -> int:
        """Side of the feature map the self-attention sees (0 without attention)."""
        if not self.has_attention:
            return 0
        return 4 * 2 ** sum(up for up, _, _ in self.layers[: self.attention_layer_position])

    @property
    def condition_dim(self) -> int:
        """Length of the condition vector ``[z, class embedding]``: ``2 * z_dim``."""
        return 2 * self.z_dim

    # ---- (de)serialisation -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, obj: Any, where: Any = "config.json") -> BigGANConfig:
        """A config from the package's JSON object; unknown keys are refused (they would be a different
        model), missing keys take the package's defaults, as ``BigGANConfig.from_dict`` does."""
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{where}: not a BigGAN config (expected a JSON object, got {type(obj).__name__})")
        unknown = [short_repr(k, 40) for k in obj if k not in FIELDS]
        if unknown:
            raise CheckpointError(f"{where}: unknown BigGAN config keys {', '.join(unknown[:3])}; expected only {', '.join(FIELDS)}")
        try:
            return cls(**{k: obj[k] for k in FIELDS if k in obj})
        except CheckpointError as exc:
            raise CheckpointError(f"{where}: {exc}") from None

    @classmethod
    def from_json_text(cls, text: str, where: Any = "config.json") -> BigGANConfig:
        try:
            obj = json.loads(text)
        except ValueError:
            raise CheckpointError(f"{where}: not valid JSON; copy the model's config.json again") from None
        return cls.from_dict(obj, where)

    def to_dict(self) -> dict[str, Any]:
        """The package's JSON layout (``layers`` as lists)."""
        d: dict[str, Any] = {k: getattr(self, k) for k in FIELDS}
        d["layers"] = [list(layer) for layer in self.layers]
        return d
