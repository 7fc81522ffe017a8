"""Encoder networks: a residual backbone, pSp's feature pyramid, and per-row style heads.

All three architectures share the backbone and pyramid; they differ in what the heads mean:

- ``psp``: every W+ row has its own head; coarse rows read the coarsest pyramid level, middle rows
  the middle one, fine rows the finest (Richardson et al., "Encoding in Style", 2021). Output is
  ``latent_mean + heads``.
- ``e4e``: row 0's head predicts one w; the other heads predict offsets from it, switched on one row
  at a time during training (the ``active`` buffer) so the code stays close to W (Tov et al., 2021).
- ``restyle``: the input is the image concatenated with the current reconstruction and the output is
  a residual added to the current latent, applied a few times (Alaluf et al., 2021).
- ``fs``: pSp's latent heads plus a :class:`FeatureBranch` that sees the image and the reconstruction
  of that latent and predicts a residual of the generator's features at one split layer (the idea of
  HFGI, Wang et al. 2022, and StyleRes / StyleFeatureEditor: what the latent cannot express is put
  into intermediate features, where the generator's tail still renders it). Where the split state is
  a vector (a hidden layer of an MLP generator), a :class:`FlatFeatureBranch` predicts it from the
  branch's flattened feature map.

A flat latent (z of DCGAN or an MLP GAN) has one row, read from the coarsest map by a linear layer
over all its positions (spatial layout matters for reconstruction; pooling would discard it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ImageError
from .config import EncoderConfig


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected when needed) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), _act(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
        self.out = _act()

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x) + self.skip(x))


class Backbone(nn.Module):
    """Stem at full size, then one stage per width, each halving the size. Returns every stage's output."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), _act())
        stages, cin = [], widths[0]
        for w in widths:
            stages.append(nn.Sequential(ResBlock(cin, w, 2), *[ResBlock(w, w, 1) for _ in range(blocks - 1)]))
            cin = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class Pyramid(nn.Module):
    """pSp's top-down feature pyramid over the last (up to three) stages: coarsest first."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = min(3, len(widths))
        top = widths[-1]
        self.lateral = nn.ModuleList(nn.Conv2d(w, top, 1) for w in widths[-self.levels:-1])

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        out = [feats[-1]]
        for lat, f in zip(reversed(self.lateral), reversed(feats[-self.levels:-1]), strict=True):
            up = nn.functional.interpolate(out[-1], size=f.shape[-2:], mode="bilinear", align_corners=False)
            out.append(lat(f) + up)
        return out  # coarse, middle, fine


class StyleHead(nn.Module):
    """One latent row from a feature map: strided 3x3 convs down to 2x2 or less, then a linear layer."""

    def __init__(self, channels: int, size: int, dim: int) -> None:
        super().__init__()
        convs = []
        while size > 2:
            convs += [nn.Conv2d(channels, channels, 3, 2, 1), _act()]
            size = (size + 1) // 2
        self.convs = nn.Sequential(*convs)
        self.linear = nn.Linear(channels * size * size, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).flatten(1))


class FeatureBranch(nn.Module):
    """Image and reconstruction ``N x 2C x R x R`` -> feature residual ``N x C_f x H x W``.

    A stem at full size, stride-2 residual blocks (16, 32, 64 ... channels, capped at ``C_f``) down to
    the feature size (resized when the sizes do not halve exactly), a last 3x3 convolution that starts
    at zero: an untrained branch adds nothing, so a warm-started fs encoder begins as its pSp encoder.
    """

    def __init__(self, in_channels: int, resolution: int, feature_shape: tuple[int, ...]) -> None:
        super().__init__()
        cf, h, w = feature_shape
        width = min(cf, 16)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), _act())
        blocks, size = [], resolution
        while size > max(h, w) and size > 1:
            nxt = min(cf, 2 * width)
            blocks.append(ResBlock(width, nxt, 2))
            width, size = nxt, (size + 1) // 2
        self.blocks = nn.Sequential(*blocks)
        self.size = (h, w)
        self.out = nn.Conv2d(width, cf, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))
        if tuple(x.shape[-2:]) != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.out(x)


class FlatFeatureBranch(nn.Module):
    """Image and reconstruction ``N x 2C x R x R`` -> vector residual ``N x C_f`` (the hidden units of
    an MLP generator at the split layer).

    The convolutional part of :class:`FeatureBranch` (stem, stride-2 residual blocks of 16, 32, 64
    channels down to 4 x 4 or less), flattened (the position of a stroke matters, so no pooling), then
    a hidden linear layer and a last linear layer that starts at zero (an untrained branch adds nothing).
    """

    def __init__(self, in_channels: int, resolution: int, units: int, *, width: int = 16, cap: int = 64,
                 hidden: int = 256) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), _act())
        blocks, size = [], resolution
        while size > 4:
            nxt = min(cap, 2 * width)
            blocks.append(ResBlock(width, nxt, 2))
            width, size = nxt, (size + 1) // 2
        self.blocks = nn.Sequential(*blocks)
        self.hidden = nn.Sequential(nn.Linear(width * size * size, hidden), _act())
        self.out = nn.Linear(hidden, units)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(self.blocks(self.stem(x)).flatten(1)))


def row_levels(rows: int, levels: int) -> list[int]:
    """Pyramid level (0 coarse, 1 middle, 2 fine) read by each W+ row, in pSp's proportions
    (18 rows: 3 coarse, 4 middle, 11 fine), clipped to the levels available."""
    coarse_end = max(1, round(rows / 6))
    middle_end = max(coarse_end, round(rows * 7 / 18))
    level = [0 if r < coarse_end else 1 if r < middle_end else 2 for r in range(rows)]
    return [min(lv, levels - 1) for lv in level]


def _sizes(resolution: int, stages: int) -> list[int]:
    sizes, s = [], resolution
    for _ in range(stages):
        s = (s + 1) // 2  # conv stride 2, padding 1
        sizes.append(s)
    return sizes


class Encoder(nn.Module):
    """Image ``N x C x R x R`` in [-1, 1] -> latent ``[N, *config.latent_shape]`` in ``config.space``.

    For ``restyle`` call ``encoder(image, reconstruction)``; the output is a residual to add to the
    latent that produced ``reconstruction``. An ``fs`` encoder's ``encoder(image)`` is its latent;
    ``encoder.residual(image, reconstruction)`` the feature residual (see ``encoders.inference``).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.meta: dict = {}  # facts from the file it was loaded from (training options, held-out PSNR)
        self.source = ""  # that file's path
        # ReStyle bootstrapping: the encoder whose latents the refinement starts from. Kept out of the
        # module tree on purpose: it lives in its own file, is never trained here, stays in eval mode.
        object.__setattr__(self, "start_encoder", None)
        c = config
        self.backbone = Backbone(c.in_channels, c.widths, c.blocks)
        sizes = _sizes(c.resolution, len(c.widths))
        self.register_buffer("latent_mean", torch.zeros(c.latent_shape))
        # e4e's progressive switch: which offset rows are on (row 0 is the base w, always on)
        self.register_buffer("active", torch.ones(c.rows))
        if c.rows == 1:
            self.pyramid = None
            self.heads = nn.ModuleList([nn.Linear(c.widths[-1] * sizes[-1] ** 2, c.dim)])
            self.levels = [0]
        else:
            self.pyramid = Pyramid(c.widths)
            level_sizes = list(reversed(sizes[-self.pyramid.levels:]))
            self.levels = row_levels(c.rows, self.pyramid.levels)
            self.heads = nn.ModuleList(StyleHead(c.widths[-1], level_sizes[lv], c.dim) for lv in self.levels)
        self.features: nn.Module | None = None
        if c.feature_shape is not None and len(c.feature_shape) == 1:
            self.features = FlatFeatureBranch(2 * c.channels, c.resolution, c.feature_shape[0])
        elif c.feature_shape is not None:
            self.features = FeatureBranch(2 * c.channels, c.resolution, c.feature_shape)
        # channels-last convolutions run about 1.5x faster on CPU (oneDNN) at batch 64; same maths
        self.to(memory_format=torch.channels_last)

    def _check(self, x: Tensor, what: str) -> None:
        c = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (c.channels, c.resolution, c.resolution):
            raise ImageError(f"the encoder for {c.generator} takes {what} of shape N x {c.channels} x "
                             f"{c.resolution} x {c.resolution}, got {list(x.shape)}")

    def forward(self, image: Tensor, reconstruction: Tensor | None = None) -> Tensor:
        self._check(image, "images")
        x = image
        if self.config.arch == "restyle":
            if reconstruction is None:
                raise ImageError("a restyle encoder needs the current reconstruction as its second input")
            self._check(reconstruction, "reconstructions")
            x = torch.cat([image, reconstruction], 1)
        feats = self.backbone(x.contiguous(memory_format=torch.channels_last))
        if self.pyramid is None:
            out = self.heads[0](feats[-1].flatten(1))
        else:
            maps = self.pyramid(feats)
            rows = torch.stack([head(maps[lv]) for head, lv in zip(self.heads, self.levels, strict=True)], 1)
            if self.config.arch == "e4e":
                # w in row 0, offsets elsewhere: row r = w + active[r] * offset_r
                mask = self.active.clone()
                mask[0] = 0.0
                rows = rows[:, :1] + rows * mask[None, :, None]
            out = rows
        out = out.reshape(-1, *self.config.latent_shape)
        if self.config.arch != "restyle":
            out = out + self.latent_mean
        return out

    def residual(self, image: Tensor, reconstruction: Tensor) -> Tensor:
        """fs: the feature residual ``[N, *config.feature_shape]`` for ``image`` whose latent renders
        ``reconstruction`` (both ``N x C x R x R``)."""
        if self.features is None:
            raise ConfigError(f"a {self.config.arch} encoder predicts no feature residual (train one with --arch fs)")
        self._check(image, "images")
        self._check(reconstruction, "reconstructions")
        x = torch.cat([image, reconstruction], 1).contiguous(memory_format=torch.channels_last)
        return self.features(x).contiguous()

    def set_start(self, start: Encoder | None) -> None:
        """Start ReStyle's refinement from ``start``'s latents instead of the mean latent (frozen, eval mode)."""
        if start is not None:
            if self.config.arch != "restyle" or start.config.arch == "restyle":
                raise ConfigError("only a restyle encoder starts from another encoder, and that one must be psp or e4e")
            if (start.config.space, start.config.latent_shape) != (self.config.space, self.config.latent_shape):
                raise ConfigError(f"the bootstrap encoder predicts {start.config.space} {list(start.config.latent_shape)}, "
                                  f"this one {self.config.space} {list(self.config.latent_shape)}")
            start = start.eval().requires_grad_(False)
        object.__setattr__(self, "start_encoder", start)

    def offsets(self, latent: Tensor) -> Tensor:
        """e4e's offsets of each row from row 0, ``[N, rows - 1, dim]`` (empty for flat latents)."""
        if latent.dim() < 3:
            return latent.new_zeros(latent.shape[0], 0, self.config.dim)
        return latent[:, 1:] - latent[:, :1]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self.config
        return f"arch={c.arch}, space={c.space}, latent={c.latent_shape}, widths={c.widths}, params={self.parameter_count()}"
