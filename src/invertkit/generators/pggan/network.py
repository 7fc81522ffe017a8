"""The PGGAN generator network (Karras et al., "Progressive Growing of GANs", ICLR 2018), computing
what pytorch_GAN_zoo's ``GNet.forward`` computes, in pure PyTorch.

Facts learned from the authors' code (facebookresearch/pytorch_GAN_zoo, commit b75dee4,
``models/networks/progressive_conv_net.py`` and ``custom_layers.py``), checked by the golden test
``tests/test_pggan_network.py``:

- equalised learning rate: a layer's *whole output* (bias included) is multiplied by He's constant
  ``sqrt(2 / fan_in)``, ``fan_in = prod(weight.shape[1:])``; without equalisation the layer is plain;
- pixel norm ``x * rsqrt(mean_c(x^2) + 1e-8)`` is applied to z, after the format layer (reshaped to
  ``[N, depths[0], 4, 4]``, channel-major) and after every 3x3 convolution's leaky ReLU;
- each scale after the first: nearest-neighbour x2 upsampling, then two 3x3 convolutions;
- the image is the last scale's 1x1 toRGB; while a scale is faded in (``alpha > 0``) it is
  ``alpha * up(toRGB_prev(features of the previous scale)) + (1 - alpha) * toRGB_last(...)``;
- a final ``tanh`` only for the MSE and DCGAN losses (``config.generation_activation``).

State-dict names equal the authors' (``formatLayer.module.weight``, ``scaleLayers.{i}.{0,1}.module.*``,
``toRGBLayers.{i}.module.*``): a file's ``netG`` loads unchanged, and a tuned copy's delta names them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import CheckpointError
from ...store.tensorfiles import layout_problems
from .config import PGGANConfig

PIXEL_NORM_EPS = 1e-8


def pixel_norm(x: Tensor) -> Tensor:
    """Normalise each position's feature vector (dim 1) to unit root-mean-square."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)


class EqualizedLayer(nn.Module):
    """A linear or convolution layer whose output is scaled by He's constant at run time.

    ``module`` holds the stored weights (so the state-dict names end in ``.module.weight``, as in
    the authors' files); ``scale`` is ``sqrt(2 / fan_in)`` with equalisation, else 1.
    """

    def __init__(self, module: nn.Linear | nn.Conv2d, equalized: bool) -> None:
        super().__init__()
        self.module = module
        fan_in = math.prod(module.weight.shape[1:])
        self.scale = math.sqrt(2.0 / fan_in) if equalized else 1.0

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x) * self.scale


def _linear(n_in: int, n_out: int, equalized: bool) -> EqualizedLayer:
    # on the meta device: the weights come from the checkpoint (load_state_dict(assign=True))
    return EqualizedLayer(nn.Linear(n_in, n_out, device="meta"), equalized)


def _conv(n_in: int, n_out: int, kernel: int, equalized: bool) -> EqualizedLayer:
    return EqualizedLayer(nn.Conv2d(n_in, n_out, kernel, padding=kernel // 2, device="meta"), equalized)


# ---- the network as a sequence of stages (for f:LAYER splits); each holds shared layers -------------


class LatentInput(nn.Module):
    """z ``[N, latent]`` -> pixel-normalised z ``[N, latent]``."""

    def forward(self, z: Tensor) -> Tensor:
        return pixel_norm(z).flatten(1)


class FormatStage(nn.Module):
    """``[N, latent]`` -> ``[N, depths[0], 4, 4]``: the format layer, leaky ReLU, reshape, pixel norm."""

    def __init__(self, layer: EqualizedLayer, slope: float) -> None:
        super().__init__()
        self.layer, self.slope = layer, slope

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.layer(x), self.slope)
        return pixel_norm(x.reshape(x.shape[0], -1, 4, 4))


class ConvStage(nn.Module):
    """One scale: optional x2 nearest upsampling, then each conv with leaky ReLU and pixel norm."""

    def __init__(self, convs: nn.ModuleList, slope: float, upsample: bool) -> None:
        super().__init__()
        self.convs, self.slope, self.upsample = convs, slope, upsample

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        for conv in self.convs:
            x = pixel_norm(F.leaky_relu(conv(x), self.slope))
        return x


class ToImage(nn.Module):
    """Features ``[N, depth, R, R]`` -> image ``[N, C, R, R]``: 1x1 toRGB, then the output activation."""

    def __init__(self, to_rgb: EqualizedLayer, tanh: bool) -> None:
        super().__init__()
        self.to_rgb, self.tanh = to_rgb, tanh

    def forward(self, x: Tensor) -> Tensor:
        x = self.to_rgb(x)
        return torch.tanh(x) if self.tanh else x


class FadeInStage(nn.Module):
    """The last scale while it is faded in (``0 < alpha``): previous-scale features ``[N, d, R/2, R/2]``
    -> image ``alpha * up(toRGB_prev(x)) + (1 - alpha) * toRGB_last(scale(x))``, then the activation."""

    def __init__(self, scale: ConvStage, rgb_prev: EqualizedLayer, rgb_last: EqualizedLayer, alpha: float,
                 tanh: bool) -> None:
        super().__init__()
        self.scale, self.rgb_prev, self.rgb_last, self.alpha, self.tanh = scale, rgb_prev, rgb_last, alpha, tanh

    def forward(self, x: Tensor) -> Tensor:
        low = F.interpolate(self.rgb_prev(x), scale_factor=2, mode="nearest")
        out = self.alpha * low + (1.0 - self.alpha) * self.rgb_last(self.scale(x))
        return torch.tanh(out) if self.tanh else out


class PGGANNetwork(nn.Module):
    """z ``[N, latent_dim]`` (any scale: it is pixel-normalised first) -> image
    ``[N, dim_output, R, R]`` with ``R = config.resolution``; raw RGB values (nominally [-1, 1], not
    clamped) unless ``config.generation_activation == "tanh"``.

    Built empty (meta device); :meth:`load` puts the weights in. The stages of :meth:`as_sequence`
    share the layers: the state dict holds each weight once, under the authors' names.
    """

    def __init__(self, config: PGGANConfig) -> None:
        super().__init__()
        self.config = config
        eq, d = config.equalized_lr, config.depths
        self.formatLayer = _linear(config.latent_dim, 16 * d[0], eq)
        self.groupScale0 = nn.ModuleList([_conv(d[0], d[0], 3, eq)])
        self.scaleLayers = nn.ModuleList(
            nn.ModuleList([_conv(prev, depth, 3, eq), _conv(depth, depth, 3, eq)]) for prev, depth in zip(d, d[1:])
        )
        self.toRGBLayers = nn.ModuleList(_conv(depth, config.dim_output, 1, eq) for depth in d)
        # a tuple, so nn.Module does not register the stages a second time (their layers are ours)
        self._stages: tuple[nn.Module, ...] = self._build_stages()

    def _build_stages(self) -> tuple[nn.Module, ...]:
        cfg, slope = self.config, self.config.leaky_relu
        tanh = cfg.generation_activation == "tanh"
        stages: list[nn.Module] = [LatentInput(), FormatStage(self.formatLayer, slope),
                                   ConvStage(self.groupScale0, slope, upsample=False)]
        scales = [ConvStage(layers, slope, upsample=True) for layers in self.scaleLayers]
        if cfg.alpha > 0:
            # the fade-in needs the previous scale's features: the last scale and both toRGBs are one stage
            stages += scales[:-1]
            stages.append(FadeInStage(scales[-1], self.toRGBLayers[-2], self.toRGBLayers[-1], cfg.alpha, tanh))
        else:
            stages += scales
            stages.append(ToImage(self.toRGBLayers[-1], tanh))
        return tuple(stages)

    def load(self, state_dict: dict[str, Tensor]) -> PGGANNetwork:
        """Take the tensors as the weights, without copying (names and shapes: ``config.layout()``).

        Raises:
            CheckpointError: missing, unexpected, non-tensor or mis-shaped entries (one line).
        """
        problems = layout_problems(self.config.layout(), state_dict)
        if problems:
            raise CheckpointError(f"weights do not fit a PGGAN generator of {self.config.resolution} px "
                                  f"(depths {list(self.config.depths)}): {'; '.join(problems)}")
        self.load_state_dict(state_dict, strict=True, assign=True)
        return self

    def as_sequence(self) -> nn.Sequential:
        """The network as ``nn.Sequential`` (latent input, format, scale 0, scales, image): split
        layer ``"k"`` of ``f:LAYER`` cuts before stage ``k``."""
        return nn.Sequential(*self._stages)

    def forward(self, z: Tensor) -> Tensor:
        x = z
        for stage in self._stages:
            x = stage(x)
        return x
