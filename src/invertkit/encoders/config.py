"""What an encoder is: architecture, the generator and latent space it serves, and its size.

The config is stored as JSON in the encoder's safetensors file, so a file alone rebuilds its network.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, StyleSpaces, require
from ..untrusted import one_line, short_repr

ARCHS = ("psp", "e4e", "restyle", "hyperstyle", "fs")
MAX_WIDTH = 8192  # the widest backbone stage a stored encoder config may declare
MAX_TARGETS = 512  # generator layers a stored hypernetwork config may name
MAX_RANK = 64  # rank of a hypernetwork's per-layer offsets
REFINERS = ("restyle", "hyperstyle")  # architectures that see the image and the current reconstruction


def default_space(G: Generator) -> str:
    """The space encoders predict for ``G``: W+ for StyleGAN-like generators, else its first space (z)."""
    return "w+" if isinstance(G, StyleSpaces) else G.spaces[0]


def default_widths(resolution: int, base: int = 32, cap: int = 256) -> tuple[int, ...]:
    """Channels of the backbone stages; each stage halves the size, down to 4x4 (at least 2 stages).

    64 px -> (32, 64, 128, 256) ending at 4x4; 28 px -> (32, 64, 128) ending at 4x4 (28, 14, 7, 4).
    """
    stages = max(2, math.ceil(math.log2(resolution)) - 2)
    return tuple(min(cap, base * 2**i) for i in range(stages))


@dataclass(frozen=True)
class EncoderConfig:
    """An encoder's architecture.

    Attributes:
        arch: ``psp`` (feature pyramid, one head per W+ row), ``e4e`` (one w plus per-row offsets,
            unlocked progressively) or ``restyle`` (sees image and current reconstruction, predicts a
            residual; applied iteratively).
        generator: name of the generator it was trained for (checked when loading by name).
        resolution, channels: the generator's image size; inputs are ``N x channels x res x res`` in [-1, 1].
        space: the latent space predicted (``w+`` for StyleGAN2, ``z`` for z-only generators).
        latent_shape: one latent's shape in ``space``, e.g. ``(14, 512)`` or ``(100,)``.
        widths: channels of the backbone stages.
        blocks: residual blocks per stage.
        targets: hyperstyle only: the generator layers whose weights it offsets, as ``(name in
            G.weights(), rows, columns)`` (a conv weight's first two dimensions).
        rank: hyperstyle only: rank of each layer's multiplicative offset (see ``encoders.hyper``).
        bootstrap: ReStyle and hyperstyle only: file name, beside this encoder's file, of the encoder whose latents
            the refinement starts from (ReStyle's "encoder bootstrapping"); None starts from the
            mean latent.
        bootstrap_sha256: sha256 of that file's bytes (a swapped file is refused).
        layer: fs only: the generator's split layer (``LayerSplitting``) whose features it corrects
            (a module index of a sequential generator, a block resolution of StyleGAN2).
        feature_shape: fs only: ``(channels, height, width)`` of the features at ``layer``, or
            ``(units,)`` where the split state is a vector (a hidden layer of an MLP generator).
    """

    arch: str
    generator: str
    resolution: int
    channels: int
    space: str
    latent_shape: tuple[int, ...]
    widths: tuple[int, ...]
    blocks: int = 1
    bootstrap: str | None = None
    bootstrap_sha256: str | None = None
    targets: tuple[tuple[str, int, int], ...] = ()
    rank: int = 1
    layer: str | None = None
    feature_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.arch == "hyperstyle") != bool(self.targets):
            raise ConfigError("a hyperstyle network names the generator layers it offsets (targets); other encoders name none")
        if not 1 <= self.rank <= MAX_RANK:
            raise ConfigError(f"encoder rank must be between 1 and {MAX_RANK}, got {self.rank}")
        if self.bootstrap is not None and (self.arch not in REFINERS or not self.bootstrap_sha256
                                           or "/" in self.bootstrap or "\\" in self.bootstrap):
            raise ConfigError("a bootstrap encoder is a file name beside a restyle encoder, with its sha256")
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown encoder architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if (self.arch == "fs") != (self.layer is not None) or (self.layer is None) != (self.feature_shape is None):
            raise ConfigError("a feature layer and its feature shape belong to an fs encoder, and an fs encoder needs both")
        if self.feature_shape is not None and (len(self.feature_shape) not in (1, 3) or min(self.feature_shape) < 1):
            raise ConfigError(f"fs feature_shape must be (channels, height, width) or (units,), got {self.feature_shape}")
        if self.resolution < 8 or self.channels < 1 or self.blocks < 1 or not self.widths:
            raise ConfigError(f"invalid encoder size: resolution {self.resolution}, channels {self.channels}, "
                              f"blocks {self.blocks}, widths {self.widths}")
        if not self.latent_shape or any(d <= 0 for d in self.latent_shape) or len(self.latent_shape) > 2:
            raise ConfigError(f"encoder latent_shape must be (dim,) or (rows, dim), got {self.latent_shape}")

    @property
    def rows(self) -> int:
        """Number of latent rows (W+ layers); 1 for a flat latent."""
        return self.latent_shape[0] if len(self.latent_shape) == 2 else 1

    @property
    def dim(self) -> int:
        """Size of one row."""
        return self.latent_shape[-1] if len(self.latent_shape) == 2 else math.prod(self.latent_shape)

    @property
    def in_channels(self) -> int:
        """Input channels: ReStyle and hyperstyle also see the current reconstruction."""
        return 2 * self.channels if self.arch in REFINERS else self.channels

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "encoder config") -> EncoderConfig:
        """Rebuild from JSON data, refusing anything malformed with a CheckpointError naming ``where``."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: the encoder config is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(d) - {"blocks", "bootstrap", "bootstrap_sha256", "targets", "rank", "layer",
                                           "feature_shape"})  # absent from older files
        if missing or set(d) - names:
            raise CheckpointError(f"{where}: encoder config has missing {missing} / unknown {sorted(set(d) - names)} fields")
        def ints(k: str, value: Any, lo: int, hi: int) -> int:
            # JSON from a file: exact integers only (no bools, strings or fractions), within sane sizes
            if type(value) is not int or not lo <= value <= hi:
                raise ValueError(f"field {k} must be an integer between {lo} and {hi}, got {short_repr(value)}")
            return value

        def int_list(k: str, value: Any, n: int, lo: int, hi: int) -> tuple[int, ...]:
            if not isinstance(value, list) or not 1 <= len(value) <= n:
                raise ValueError(f"field {k} must be a list of 1 to {n} integers, got {short_repr(value)}")
            return tuple(ints(k, x, lo, hi) for x in value)

        try:
            kw = dict(d)
            kw["latent_shape"] = int_list("latent_shape", d["latent_shape"], 2, 1, 1 << 16)
            kw["widths"] = int_list("widths", d["widths"], 16, 1, MAX_WIDTH)
            if "targets" in kw:
                kw["targets"] = _targets(kw["targets"])
            if kw.get("feature_shape") is not None:
                kw["feature_shape"] = int_list("feature_shape", d["feature_shape"], 3, 1, 1 << 13)
            for k, lo, hi in (("resolution", 8, 4096), ("channels", 1, 16), ("blocks", 1, 16), ("rank", 1, MAX_RANK)):
                if k in kw:
                    kw[k] = ints(k, kw[k], lo, hi)
            for k in ("arch", "generator", "space"):
                if not isinstance(kw[k], str):
                    raise TypeError(f"{k} must be a string")
            for k in ("bootstrap", "bootstrap_sha256", "layer"):
                if kw.get(k) is not None and not isinstance(kw[k], str):
                    raise TypeError(f"{k} must be a string")
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: invalid encoder config ({one_line(exc, 200)})") from exc


def _targets(value: Any) -> tuple[tuple[str, int, int], ...]:
    """A stored hypernetwork's ``targets``: a list of at most MAX_TARGETS ``[name, rows, columns]``."""
    if not isinstance(value, list) or len(value) > MAX_TARGETS:
        raise ValueError(f"field targets must be a list of at most {MAX_TARGETS} entries, got {short_repr(value)}")
    out = []
    for t in value:
        if (not isinstance(t, list) or len(t) != 3 or not isinstance(t[0], str) or not 0 < len(t[0]) <= 200
                or any(type(x) is not int or not 1 <= x <= MAX_WIDTH for x in t[1:])):
            raise ValueError(f"field targets holds {short_repr(t)}, not [layer name, rows, columns] with sizes 1..{MAX_WIDTH}")
        out.append((t[0], t[1], t[2]))
    if len({t[0] for t in out}) != len(out):
        raise ValueError("field targets names a layer twice")
    return tuple(out)


def feature_shapes(G: Generator, space: str) -> dict[str, tuple[int, ...]]:
    """``{split layer: shape}`` of the features at each of ``G``'s split layers (capability
    ``LayerSplitting``), computed from ``space``'s mean latent: ``(channels, height, width)`` where the
    state is a feature map, ``(units,)`` where it is a vector (an MLP generator's hidden layers)."""
    import torch

    splitter = require(G, LayerSplitting, "a feature-space (fs) encoder")
    out = {}
    with torch.no_grad():
        mean = G.mean_latent(space)
        for name in splitter.split_layers():
            x = splitter.layer_split(name).head(mean, space)[0]
            if x is not None and x.dim() in (2, 4):
                out[name] = tuple(x.shape[1:])
    return out


def default_layer(G: Generator, space: str) -> str:
    """The layer an fs encoder corrects by default.

    With feature maps: the deepest split layer whose features are a quarter of the image's size (16 x 16
    for 64 px), else the deepest one at most that size (HFGI / StyleRes correct StyleGAN's 64 x 64
    features of 1024 px images; a quarter keeps the tail, and so edits, several layers deep on small
    generators). With vector states only (an MLP generator): the deepest one smaller than the image,
    the last hidden layer (mnist-mlp-gan: after the second ReLU, 256 units; measured there, it lifts
    real digits' PSNR the most of the hidden layers while edits still flip LeNet-5 as often as pSp's
    latents do; the output layer, a pixel-sized state, only when named).
    """
    shapes = feature_shapes(G, space)
    maps = {k: s for k, s in shapes.items() if len(s) == 3}
    if maps:
        target = max(1, G.resolution // 4)
        fits = [k for k, s in maps.items() if s[1] <= target]
        return (fits or list(maps))[-1]
    pixels = G.channels * G.resolution ** 2
    vectors = [k for k, s in shapes.items() if s[0] < pixels]
    if not vectors:
        raise ConfigError(f"{G.name} has no split layer with features (a feature map or a hidden vector "
                          f"smaller than the image) for an fs encoder")
    return vectors[-1]


def config_for(G: Generator, arch: str = "psp", *, space: str | None = None, width: int = 32,
               max_width: int = 256, blocks: int = 1, targets: tuple[tuple[str, int, int], ...] = (),
               rank: int = 1, layer: str | None = None) -> EncoderConfig:
    """The encoder config for generator ``G`` (space defaults to :func:`default_space`; ``targets`` and
    ``rank`` for hyperstyle, see ``encoders.hyper.conv_targets``; an ``fs`` encoder's ``layer`` to
    :func:`default_layer`)."""
    space = G.check_space(space or default_space(G))
    shape = tuple(G.latent_shape(space))
    if len(shape) > 2:
        raise ConfigError(f"encoders predict flat or per-row latents; {space} has shape {shape}")
    feature_shape = None
    if arch == "fs":
        shapes = feature_shapes(G, space)
        layer = str(layer) if layer is not None else default_layer(G, space)
        if layer not in shapes:
            raise ConfigError(f"{layer!r} is no split layer of {G.name} with features; choose one of {', '.join(shapes)}")
        feature_shape = shapes[layer]
    elif layer is not None:
        raise ConfigError(f"a feature layer belongs to an fs encoder, not {arch}")
    return EncoderConfig(arch=arch, generator=G.name, resolution=G.resolution, channels=G.channels,
                         space=space, latent_shape=shape,
                         widths=default_widths(G.resolution, width, max_width), blocks=blocks,
                         targets=tuple(targets), rank=rank, layer=layer, feature_shape=feature_shape)
