"""A pure-PyTorch StyleGAN2 generator, numerically faithful to NVIDIA's stylegan2-ada-pytorch.

``StyleGAN2Network(config).state_dict()`` has exactly the keys, shapes and buffers of NVIDIA's
``training.networks.Generator(...).state_dict()`` for the same configuration, so NVIDIA weights load
strictly. Everything is computed in float32 with standard PyTorch ops (no custom CUDA/C++ plugins);
``num_fp16_res`` is ignored. Outputs match NVIDIA's generator run with ``force_fp32=True`` to about
1e-6 relative error (see ``tests/test_stylegan2_network.py``).

Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020) and
"Training Generative Adversarial Networks with Limited Data" (NeurIPS 2020).

Style (S) space layout
----------------------
The synthesis network can run from per-layer style vectors (the affine outputs, *before* ToRGB's
``1/sqrt(in_channels)`` weight gain). ``SynthesisNetwork.layer_names`` gives their order: blocks in
increasing resolution, and inside each block ``conv0`` (blocks above 4 px), ``conv1``, then ``torgb``
when the block has one. With ``architecture="skip"`` every block has a ToRGB::

    b4.conv1, b4.torgb, b8.conv0, b8.conv1, b8.torgb, b16.conv0, ...

With ``"orig"`` and ``"resnet"`` only the last block has a ToRGB::

    b4.conv1, b8.conv0, b8.conv1, ..., bR.conv0, bR.conv1, bR.torgb

The style of each layer has ``in_channels`` entries (the channels the layer reads).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import StyleGAN2Config
from .epilogue import demod_bias_act

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
NOISE_MODES = ("random", "const", "none")

__all__ = [
    "StyleGAN2Network",
    "MappingNetwork",
    "SynthesisNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "FullyConnectedLayer",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
    "bias_act",
    "modulated_conv2d",
    "demod_coefficients",
    "normalize_2nd_moment",
    "truncate",
]


# ------------------------------------------------------------------------------------------------
# Low-level ops
# ------------------------------------------------------------------------------------------------


def setup_filter(taps: Sequence[float] | Tensor) -> Tensor:
    """Normalised FIR filter as NVIDIA stores it in ``resample_filter`` buffers.

    Short 1-D tap lists (< 8 taps) become the 2-D outer product ``[k, k]``; longer ones stay 1-D
    (separable). The filter sums to 1.
    """
    f = torch.as_tensor(taps, dtype=torch.float32).clone()
    if f.ndim == 0:
        f = f.reshape(1)
    if f.ndim == 1 and f.numel() < 8:
        f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: Tensor, f: Tensor, *, up: int = 1, down: int = 1,
              pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> Tensor:
    """Zero-insert upsample by ``up``, pad (x0, x1, y0, y1; negative crops), convolve with ``f``, keep every ``down``-th pixel.

    ``f`` is applied as a true convolution (flipped), with ``gain ** (f.ndim / 2)`` folded in, which
    is how NVIDIA's reference ``upfirdn2d`` (``flip_filter=False``) behaves.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = pad
    conv_pad = (0, 0)
    if px0 == px1 >= 0 and py0 == py1 >= 0:
        # symmetric padding: the convolution pads, which saves a padded copy of x (and its
        # backward) and keeps a channels-last x channels-last
        conv_pad = (py0, px0)
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape).contiguous(), padding=conv_pad, groups=c)
    else:  # separable: rows then columns
        k = f[None, None].expand(c, 1, f.shape[0])
        x = F.conv2d(x, k.unsqueeze(2).contiguous(), padding=(0, conv_pad[1]), groups=c)
        x = F.conv2d(x, k.unsqueeze(3).contiguous(), padding=(conv_pad[0], 0), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def _filter_size(f: Tensor) -> int:
    return int(f.shape[-1])


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """Upsample by ``up`` with FIR filter ``f``; output is exactly ``up`` times the input size."""
    fw = _filter_size(f)
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up * up)


def bias_act(x: Tensor, b: Tensor | None, *, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> Tensor:
    """Add bias (channel dim 1), apply ``linear`` or ``lrelu`` (slope 0.2), scale by ``gain``, clamp to +-clamp."""
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif act != "linear":
        raise ValueError(f"unsupported activation {act!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to unit root-mean-square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _conv2d_up(x: Tensor, w: Tensor, f: Tensor, *, up: int, padding: int, groups: int,
               wt: Tensor | None = None) -> Tensor:
    """Upsampling convolution as NVIDIA's ``conv2d_resample`` (``flip_weight=False``): a strided
    transposed convolution with the unflipped kernel, then the FIR filter with gain ``up**2``.

    ``wt``: optionally ``w.transpose(0, 1)`` already laid out for the convolution (``groups=1``)."""
    out_ch, in_per_group, kh, kw = w.shape
    fw = _filter_size(f)
    if kh == 1 and kw == 1:
        x = F.conv2d(x, w, groups=groups)
        p0 = padding + (fw + up - 1) // 2
        p1 = padding + (fw - up) // 2
        return upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up * up)
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    pt = max(min(-p0, -p1), 0)
    # conv_transpose2d wants [in, out/groups, k, k]
    if groups == 1:
        wt = w.transpose(0, 1) if wt is None else wt
    else:
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
    return upfirdn2d(x, f, pad=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up * up)


def _conv2d(x: Tensor, w: Tensor, *, up: int, padding: int, f: Tensor | None, groups: int) -> Tensor:
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if f is None:
        raise ValueError("an upsampling convolution needs a resample filter")
    return _conv2d_up(x, w, f, up=up, padding=padding, groups=groups)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, *, demodulate: bool = True, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, noise: Tensor | None = None,
                     fused: bool = True) -> Tensor:
    """StyleGAN2 modulated convolution.

    Args:
        x: ``[N, I, H, W]``.
        weight: ``[O, I, k, k]`` (already gain-scaled or not; demodulation removes the scale).
        styles: ``[N, I]`` per-sample modulation.
        demodulate: normalise each output filter to unit norm (all layers but ToRGB).
        up: 1 or 2 (transposed convolution followed by the FIR ``resample_filter``).
        noise: optional tensor broadcastable to the output, added after (de)modulation.
        fused: one grouped convolution with per-sample weights (NVIDIA's inference path) instead of
            scaling activations around a shared-weight convolution; both give the same result.

    Returns:
        ``[N, O, H*up, W*up]`` (with ``padding = k // 2``).
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if styles.shape != (n, in_ch):
        raise ValueError(f"styles must have shape [{n}, {in_ch}], got {list(styles.shape)}")
    if fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
            w = w * dcoefs.reshape(n, out_ch, 1, 1, 1)
        y = _conv2d(x.reshape(1, n * in_ch, *x.shape[2:]), w.reshape(n * out_ch, in_ch, kh, kw),
                    up=up, padding=padding, f=resample_filter, groups=n)
        y = y.reshape(n, out_ch, *y.shape[2:])
    else:
        y = _conv2d(x * styles.reshape(n, in_ch, 1, 1), weight, up=up, padding=padding, f=resample_filter, groups=1)
        if demodulate:
            dcoefs = demod_coefficients(weight, styles)
            y = y * dcoefs.reshape(n, out_ch, 1, 1)
    if noise is not None:
        y = y + noise
    return y


def demod_coefficients(weight: Tensor, styles: Tensor, eps: float = 1e-8) -> Tensor:
    """``1 / ||weight * style||`` per sample and output filter, ``[N, O]``, as one small matrix product.

    ``sum_{i,k} (W[o,i,k] s[n,i])^2 = sum_i s[n,i]^2 sum_k W[o,i,k]^2``: the same value NVIDIA
    computes from the per-sample weight tensor ``[N, O, I, k, k]``, without building that tensor
    (whose element-wise products and their backward made the per-image cost grow with the batch).
    """
    wsq = weight.square().sum(dim=[2, 3])  # [O, I]
    return (styles.square() @ wsq.t() + eps).rsqrt()


def truncate(w: Tensor, w_avg: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
    """Truncation trick ``w_avg + psi * (w - w_avg)``; for ``[N, L, D]`` only rows ``< cutoff`` if given."""
    if psi == 1:
        return w
    if w.ndim == 3 and cutoff is not None:
        head = w_avg.lerp(w[:, :cutoff], psi)
        return torch.cat([head, w[:, cutoff:]], dim=1)
    return w_avg.lerp(w, psi)


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: weight scaled by ``lr_mul/sqrt(in)``, bias by ``lr_mul``."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation, gain=LRELU_GAIN)


class MappingNetwork(nn.Module):
    """z (and label c) -> w. Inputs are normalised to unit second moment; the label goes through a
    linear ``embed`` layer and is normalised the same way before concatenation."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.num_layers = cfg.mapping_layers
        embed = (cfg.embed_features or cfg.w_dim) if cfg.c_dim > 0 else 0
        hidden = cfg.mapping_layer_features or cfg.w_dim
        feats = [cfg.z_dim + embed] + [hidden] * (cfg.mapping_layers - 1) + [cfg.w_dim]
        if cfg.c_dim > 0:
            self.embed = FullyConnectedLayer(cfg.c_dim, embed)
        for i in range(cfg.mapping_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation="lrelu",
                                                        lr_multiplier=cfg.mapping_lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``z [N, z_dim]``, ``c [N, c_dim]`` (conditional models only) -> ``w [N, w_dim]``."""
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError("this mapping network is conditional: a label c is required")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling x2), noise, bias, lrelu, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: int,
                 use_noise: bool, resample_filter: Sequence[int], conv_clamp: float | None,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.in_channels = in_channels
        # Registration order mirrors NVIDIA's so state_dict() lists keys in the same order.
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self._weight_cache: tuple[weakref.ref[Tensor], tuple[object, ...], Tensor] | None = None

    def _conv_weight(self, channels_last: bool) -> Tensor:
        """The shared weight as the convolution takes it (transposed to ``[I, O, k, k]`` when
        upsampling), channels-last to match channels-last activations. A frozen weight's
        channels-last copy is kept between calls: oneDNN would otherwise re-lay it out on every
        forward and backward (14 copies of 9 MB per step at 256 px)."""
        w = self.weight.transpose(0, 1) if self.up > 1 else self.weight
        if not channels_last:
            return w
        weight = self.weight
        if type(weight) is not nn.Parameter or weight.requires_grad or weight.is_inference():
            # being tuned (PTI): the copy must stay in the autograd graph; a tensor swapped in by
            # torch.func.functional_call (HyperStyle's per-image weights) is transient, and its
            # address may be reused by the next one; an inference tensor has no version counter
            return w.contiguous(memory_format=torch.channels_last)
        key = (weight._version, weight.data_ptr(), weight.device, weight.dtype)
        cache = self._weight_cache
        if cache is None or cache[0]() is not weight or cache[1] != key:
            with torch.inference_mode(False):  # a cache built under inference_mode must still serve autograd
                cache = (weakref.ref(weight), key, w.detach().contiguous(memory_format=torch.channels_last))
            self._weight_cache = cache
        return cache[2]

    def make_noise(self, x: Tensor, noise_mode: str, generator: torch.Generator | None,
                   noise: Tensor | None) -> Tensor | None:
        if not self.use_noise:
            return None
        if noise is not None:  # caller-provided unit noise map [N or 1, 1, R, R] or [R, R]; overrides the mode
            return noise.to(x.device, x.dtype) * self.noise_strength
        if noise_mode == "none":
            return None
        if noise_mode == "const":
            return self.noise_const * self.noise_strength
        shape = [x.shape[0], 1, self.resolution, self.resolution]
        if generator is None:
            n = torch.randn(shape, device=x.device, dtype=x.dtype)
        else:  # drawn on the generator's device so a CPU generator gives the same maps everywhere
            n = torch.randn(shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        return n * self.noise_strength

    def forward(self, x: Tensor, style: Tensor, *, noise_mode: str = "const",
                generator: torch.Generator | None = None, noise: Tensor | None = None,
                gain: float = 1.0, fused: bool = True) -> Tensor:
        """``x [N, I, R/up, R/up]``, ``style [N, I]`` (affine output) -> ``[N, O, R, R]``."""
        nz = self.make_noise(x, noise_mode, generator, noise)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if fused:
            x = modulated_conv2d(x, self.weight, style, up=self.up, padding=self.padding,
                                 resample_filter=self.resample_filter, noise=nz, fused=True)
            return bias_act(x, self.bias, act="lrelu", gain=LRELU_GAIN * gain, clamp=clamp)
        # non-fused: modulate the activations, one shared-weight convolution for the whole batch,
        # then demodulation, noise, bias, activation and clamp in one few-pass epilogue
        n, in_ch = style.shape
        xs = x * style.reshape(n, in_ch, 1, 1)
        w = self._conv_weight(xs.is_contiguous(memory_format=torch.channels_last) and xs.shape[1] > 1)
        if self.up == 1:
            y = F.conv2d(xs, w, padding=self.padding)
        else:
            y = _conv2d_up(xs, self.weight, self.resample_filter, up=self.up, padding=self.padding, groups=1, wt=w)
        return demod_bias_act(y, demod_coefficients(self.weight, style), nz, self.bias,
                              gain=LRELU_GAIN * gain, clamp=clamp, slope=LRELU_SLOPE)


class ToRGBLayer(nn.Module):
    """1x1 modulated (not demodulated) convolution to image channels; style scaled by ``1/sqrt(in*k*k)``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, conv_clamp: float | None,
                 kernel_size: int = 1) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.in_channels = in_channels
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor, style: Tensor, *, fused: bool = True) -> Tensor:
        if fused or self.weight.shape[2:] != (1, 1):
            x = modulated_conv2d(x, self.weight, style * self.weight_gain, demodulate=False, fused=fused)
        else:
            x = _modulated_1x1(x, self.weight, style * self.weight_gain)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


def _modulated_1x1(x: Tensor, weight: Tensor, styles: Tensor) -> Tensor:
    """Non-demodulated 1x1 modulated convolution (ToRGB) as one batched matrix product with the
    per-sample weight ``[N, O, I]``: O is 1-4 image channels, so that weight is tiny, and this reads
    the ``[N, I, H, W]`` features once instead of first writing ``x * style`` (and, backward, the
    style gradient is one more product instead of two element-wise passes and a sum)."""
    n, c, h, w = x.shape
    out_ch = weight.shape[0]
    wmod = weight.reshape(1, out_ch, c) * styles.reshape(n, 1, c)  # [N, O, I]
    if x.is_contiguous(memory_format=torch.channels_last):
        y = torch.bmm(x.permute(0, 2, 3, 1).reshape(n, h * w, c), wmod.transpose(1, 2))  # [N, HW, O]
        return y.reshape(n, h, w, out_ch).permute(0, 3, 1, 2)
    return torch.bmm(wmod, x.reshape(n, c, h * w)).reshape(n, out_ch, h, w)


class SkipLayer(nn.Module):
    """ResNet shortcut: 1x1 convolution (no bias) then x2 FIR upsampling, weight gain ``1/sqrt(in)``."""

    def __init__(self, in_channels: int, out_channels: int, *, resample_filter: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        x = _conv2d_up(x, self.weight * self.weight_gain, self.resample_filter, up=2, padding=0, groups=1)
        return x * gain if gain != 1 else x


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network (NVIDIA ``SynthesisBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: StyleGAN2Config, resolution: int,
                 is_last: bool) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.architecture = cfg.architecture
        self.is_last = is_last
        self.register_buffer("resample_filter", setup_filter(cfg.resample_filter))
        kw = dict(use_noise=cfg.use_noise, resample_filter=cfg.resample_filter, conv_clamp=cfg.conv_clamp)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, cfg.w_dim, resolution, up=2, **kw)
        # NVIDIA does not pass the block's filter to conv1, whose (unused) buffer keeps the default
        self.conv1 = SynthesisLayer(out_channels, out_channels, cfg.w_dim, resolution, up=1,
                                    **{**kw, "resample_filter": (1, 3, 3, 1)})
        self.has_torgb = is_last or cfg.architecture == "skip"
        if self.has_torgb:
            self.torgb = ToRGBLayer(out_channels, cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp)
        if in_channels != 0 and cfg.architecture == "resnet":
            self.skip = SkipLayer(in_channels, out_channels, resample_filter=cfg.resample_filter)

    @property
    def layer_names(self) -> list[str]:
        """Modulated layers of this block in forward (= style) order."""
        names = ["conv1"] if self.in_channels == 0 else ["conv0", "conv1"]
        return names + (["torgb"] if self.has_torgb else [])

    def forward(self, x: Tensor | None, img: Tensor | None, styles: Sequence[Tensor], *, n: int,
                noise_mode: str, generator: torch.Generator | None, noise: dict[str, Tensor] | None,
                fused: bool, prefix: str, channels_last: bool = False) -> tuple[Tensor, Tensor | None]:
        it = iter(styles)
        nkw = dict(noise_mode=noise_mode, generator=generator, fused=fused)
        noise = noise or {}
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(n, -1, -1, -1)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.conv1(x, next(it), noise=noise.get(prefix + "conv1"), **nkw)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(it), noise=noise.get(prefix + "conv0"), **nkw)
            x = self.conv1(x, next(it), noise=noise.get(prefix + "conv1"), gain=math.sqrt(0.5), **nkw)
            x = y + x
        else:
            x = self.conv0(x, next(it), noise=noise.get(prefix + "conv0"), **nkw)
            x = self.conv1(x, next(it), noise=noise.get(prefix + "conv1"), **nkw)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.has_torgb:
            y = self.torgb(x, next(it), fused=fused)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """w+ (or per-layer styles) -> image ``[N, img_channels, R, R]``, nominal range [-1, 1] (not clamped).

    Attributes:
        layer_names: modulated layers in style order (see the module docstring), e.g. ``"b8.conv0"``.
        style_dims: input channels of each of those layers (the length of its style vector).
        layer_w_index: index into w+ each layer's style is computed from.
        noise_layer_names: layers that take noise (all convs when ``use_noise``).
    """

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.w_dim = cfg.w_dim
        self.img_resolution = cfg.img_resolution
        self.block_resolutions = cfg.block_resolutions
        self.num_ws = cfg.num_ws
        # True / False force one path; None ("auto") fuses only on CUDA. On CPU the non-fused form
        # (modulate the activations, one shared-weight convolution, demodulate in the epilogue) is
        # faster at every batch, batch 1 included: the fused form's per-sample weights need a weight
        # gradient (a third convolution's worth of work) and a grouped convolution. Measured at 256 px,
        # 1 thread, forward+backward: 0.77 against 1.28 s at batch 1 (CPU seconds per image, interleaved A/B runs).
        self.fused_modconv: bool | None = None
        # Feature maps in channels-last (NHWC) memory: on CPU oneDNN's convolutions, transposed
        # convolutions and depthwise filters run 1.3-2x faster on it (256 px, measured in
        # interleaved A/B runs, 1 thread); None ("auto") = on CPU only. Same maths either way.
        self.channels_last: bool | None = None
        for res in self.block_resolutions:
            in_ch = cfg.channels_at(res // 2) if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(in_ch, cfg.channels_at(res), cfg, res,
                                                    is_last=res == cfg.img_resolution))
        self.layer_names: list[str] = []
        self.layer_w_index: list[int] = []
        self.style_dims: list[int] = []
        w_idx = 0
        for res in self.block_resolutions:
            block = self.block(res)
            for k, name in enumerate(block.layer_names):
                self.layer_names.append(f"b{res}.{name}")
                self.layer_w_index.append(w_idx + k)
                self.style_dims.append(getattr(block, name).in_channels)
            w_idx += 2 if res > 4 else 1  # torgb shares its w with the next block's conv0
        assert max(self.layer_w_index) == self.num_ws - 1
        self.noise_layer_names = [n for n in self.layer_names if not n.endswith("torgb")] if cfg.use_noise else []
        # which entries of the per-layer style list each block consumes
        self.block_style_slices: dict[int, slice] = {}
        i = 0
        for res in self.block_resolutions:
            k = len(self.block(res).layer_names)
            self.block_style_slices[res] = slice(i, i + k)
            i += k

    def block(self, res: int) -> SynthesisBlock:
        return getattr(self, f"b{res}")

    def layer(self, name: str) -> nn.Module:
        """The module of a layer name such as ``"b8.conv0"``."""
        block, layer = name.split(".")
        return getattr(getattr(self, block), layer)

    def styles_from_ws(self, ws: Tensor) -> list[Tensor]:
        """``ws [N, num_ws, w_dim]`` -> per-layer styles (affine outputs), one ``[N, in_ch]`` per ``layer_names``."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        return [self.layer(name).affine(ws[:, i]) for name, i in zip(self.layer_names, self.layer_w_index)]

    def forward_styles(self, styles: Sequence[Tensor], *, noise_mode: str = "const",
                       generator: torch.Generator | None = None,
                       noise: dict[str, Tensor] | None = None) -> Tensor:
        """Render from per-layer styles (in ``layer_names`` order).

        Args:
            styles: one ``[N, style_dims[i]]`` tensor per layer.
            noise_mode: ``"random"`` (fresh N(0,1) maps, drawn from ``generator`` if given),
                ``"const"`` (the stored ``noise_const`` maps) or ``"none"``.
            noise: optional ``{layer name: unit noise map}`` overriding the mode for those layers
                (scaled by the layer's ``noise_strength``, as NVIDIA does for random noise).
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if len(styles) != len(self.layer_names):
            raise ValueError(f"expected {len(self.layer_names)} style tensors, got {len(styles)}")
        n = styles[0].shape[0]
        for s, d, name in zip(styles, self.style_dims, self.layer_names):
            if s.shape != (n, d):
                raise ValueError(f"style for {name} must have shape [{n}, {d}], got {list(s.shape)}")
        _, img = self.run_blocks(styles, None, None, self.block_resolutions, noise_mode=noise_mode,
                                 generator=generator, noise=noise)
        return img

    def run_blocks(self, styles: Sequence[Tensor], x: Tensor | None, img: Tensor | None,
                   resolutions: Sequence[int], *, noise_mode: str = "const",
                   generator: torch.Generator | None = None,
                   noise: dict[str, Tensor] | None = None) -> tuple[Tensor | None, Tensor | None]:
        """Run the blocks ``resolutions`` (consecutive, increasing) from the state ``(x, img)``.

        ``styles`` is the full per-layer list (``layer_names`` order); each block takes its own slice.
        ``x`` is the feature map entering the first block (None for b4) and ``img`` the running
        RGB skip image (None before the first ToRGB and for non-skip architectures). Returns the
        state after the last block: features ``[N, C, R, R]`` and the image (or None). This is the
        seam layerwise inversion cuts the network at.
        """
        n = styles[0].shape[0]
        fused = self.fused_modconv
        if fused is None:
            fused = styles[0].device.type == "cuda"
        channels_last = self.channels_last
        if channels_last is None:
            channels_last = styles[0].device.type == "cpu"
        if x is not None and channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for res in resolutions:
            x, img = self.block(res)(x, img, styles[self.block_style_slices[res]], n=n, noise_mode=noise_mode,
                                     generator=generator, noise=noise, fused=fused, prefix=f"b{res}.",
                                     channels_last=channels_last)
        return x, img

    def forward(self, ws: Tensor, *, noise_mode: str = "const", generator: torch.Generator | None = None,
                noise: dict[str, Tensor] | None = None) -> Tensor:
        """``ws [N, num_ws, w_dim]`` -> image; equals ``forward_styles(styles_from_ws(ws))``."""
        return self.forward_styles(self.styles_from_ws(ws), noise_mode=noise_mode, generator=generator, noise=noise)


class StyleGAN2Network(nn.Module):
    """Mapping + synthesis with NVIDIA's ``Generator`` state_dict layout."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        # synthesis first, as NVIDIA builds it, so state_dict() key order matches too
        self.synthesis = SynthesisNetwork(config)
        self.mapping = MappingNetwork(config)
        self.num_ws = config.num_ws

    def forward(self, z: Tensor, c: Tensor | None = None, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const",
                generator: torch.Generator | None = None) -> Tensor:
        """``z [N, z_dim]`` (and ``c``) -> image, like NVIDIA's ``G(z, c, truncation_psi, truncation_cutoff, noise_mode=...)``."""
        ws = self.mapping(z, c).unsqueeze(1).repeat(1, self.num_ws, 1)
        ws = truncate(ws, self.mapping.w_avg, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, generator=generator)
