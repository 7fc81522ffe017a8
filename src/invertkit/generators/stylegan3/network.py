"""A pure-PyTorch StyleGAN3 generator, numerically faithful to NVIDIA's ``training/networks_stylegan3.py``.

``StyleGAN3Network(config).state_dict()`` has exactly the keys, order and shapes of NVIDIA's
``networks_stylegan3.Generator(...).state_dict()`` (``synthesis.input.*``, ``synthesis.L{i}_{size}_{ch}.*``,
``mapping.*``), so NVIDIA weights load strictly. Everything runs in float32 with standard PyTorch ops:
the filtered leaky ReLU is computed by the reference path of NVIDIA's ``filtered_lrelu`` (bias,
zero-insertion upsampling with the stored ``up_filter``, gain, leaky ReLU, clamp, filtering with the
stored ``down_filter`` and decimation); no CUDA plugin is needed and ``num_fp16_res`` is ignored.

Two deliberate differences, both at float-rounding level:

- ``modulated_conv2d`` pre-normalises each sample's styles by its own RMS; NVIDIA divides by the RMS over
  the whole batch (a guard against fp16 overflow). Demodulation cancels the factor either way, so only
  the ``1e-8`` in the demodulation differs, and our images do not depend on what else is in the batch.
- the up filter runs polyphase (a strided transposed convolution skips the inserted zeros) and decimation
  after the down filter is a strided convolution: the same sums as zero insertion / filtering / dropping
  pixels, with a fraction of the work (``tests/test_stylegan3_network.py`` compares them).

Style (S) layout: one style vector per w+ row. Row 0 drives ``synthesis.input`` through its affine
(4 numbers ``(r_c, r_s, t_x, t_y)``: a rotation and translation of the Fourier features, normalised by
``|(r_c, r_s)|``, so its scale does not matter either); row ``i + 1`` drives layer ``L{i}`` (its affine output
has ``in_channels`` entries, taken *before* ToRGB's ``1/sqrt(in_channels)`` gain).

Reference: Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..stylegan2.network import FullyConnectedLayer, normalize_2nd_moment
from .config import InputSpec, LayerSpec, StyleGAN3Config

__all__ = [
    "MappingNetwork",
    "StyleGAN3Network",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisNetwork",
    "design_lowpass_filter",
    "filtered_lrelu",
    "modulated_conv2d",
    "upfirdn2d",
    "upsample_separable",
]


# ------------------------------------------------------------------------------------------------
# Low-level ops (NVIDIA's reference implementations, in plain PyTorch)
# ------------------------------------------------------------------------------------------------


def upfirdn2d(x: Tensor, f: Tensor | None, *, up: int = 1, down: int = 1,
              padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0) -> Tensor:
    """Zero-insert upsample by ``up``, pad ``(x0, x1, y0, y1)`` (negative crops), convolve with ``f``
    (a true convolution; ``[k]`` separable, ``[k, k]`` 2-D, None = identity), keep every ``down``-th pixel.

    ``gain ** (f.ndim / 2)`` is folded into the filter, as in NVIDIA's ``_upfirdn2d_ref``.
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = (int(p) for p in padding)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        if f.numel() == 1 and down == 1:
            return x if float(f.reshape(())) == 1.0 else x * f.reshape(())
        return F.conv2d(x, f[None, None].expand(c, 1, *f.shape).contiguous(), groups=c, stride=down)
    x = F.conv2d(x, _fir_weight(f, c, 3, x.dtype), groups=c, stride=(1, down))  # along x
    return F.conv2d(x, _fir_weight(f, c, 2, x.dtype), groups=c, stride=(down, 1))  # along y


def _fir_weight(f: Tensor, c: int, axis: int, dtype: torch.dtype) -> Tensor:
    """A 1-D filter as a depthwise weight ``[c, 1, 1, k]`` (axis 3, x) or ``[c, 1, k, 1]`` (axis 2, y)."""
    w = f.to(dtype).reshape(1, 1, 1, -1) if axis == 3 else f.to(dtype).reshape(1, 1, -1, 1)
    return w.expand(c, 1, *w.shape[2:]).contiguous()


def upsample_separable(x: Tensor, f: Tensor, up: int, padding: Sequence[int], gain: float) -> Tensor:
    """``upfirdn2d(x, f, up=up, padding=padding, gain=gain)`` for a 1-D (separable) ``f``, computed polyphase:
    a strided transposed convolution never multiplies the inserted zeros (``up`` times less work per axis).

    Per axis, zero insertion + padding ``p0`` + convolution with ``f`` equals the transposed convolution
    ``T[o] = sum_i x[i] f[o - i*up]`` read from ``o = len(f) - 1 - p0`` on (zero outside ``T``).
    """
    n, c, h, w = x.shape
    k = int(f.shape[0])
    f = f * (gain ** 0.5)
    px0, px1, py0, py1 = (int(p) for p in padding)
    for axis, length, p0, p1 in ((3, w, px0, px1), (2, h, py0, py1)):
        stride = (1, up) if axis == 3 else (up, 1)
        t = F.conv_transpose2d(x, _fir_weight(f, c, axis, x.dtype), stride=stride, groups=c)
        start, out_len = k - 1 - p0, length * up + p0 + p1 - k + 1
        left = min(max(-start, 0), out_len)  # output j reads T[start + j]: zero outside T
        valid = max(0, min(start + out_len, t.shape[axis]) - max(start, 0))
        t = t.narrow(axis, min(max(start, 0), t.shape[axis]), valid)
        pad = [left, out_len - left - valid]
        x = F.pad(t, pad if axis == 3 else [0, 0, *pad])
    return x


def filtered_lrelu(x: Tensor, fu: Tensor | None, fd: Tensor | None, b: Tensor | None, *, up: int = 1, down: int = 1,
                   padding: Sequence[int] = (0, 0, 0, 0), gain: float = math.sqrt(2), slope: float = 0.2,
                   clamp: float | None = None) -> Tensor:
    """NVIDIA's ``filtered_lrelu`` by its reference path (``_filtered_lrelu_ref``): add ``b``, upsample by
    ``up`` with ``fu`` (gain ``up**2``) after padding, leaky ReLU (``slope``; 1 = linear) times ``gain``,
    clamp to ``+-clamp``, filter with ``fd`` and keep every ``down``-th pixel."""
    if b is not None:
        x = x + b.reshape(1, -1, 1, 1).to(x.dtype)
    if fu is not None and fu.ndim == 1 and up > 1:
        x = upsample_separable(x, fu, up, padding, gain=up**2)
    else:
        x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d(x, fd, down=down)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, *, demodulate: bool = True, padding: int = 0,
                     input_gain: Tensor | None = None) -> Tensor:
    """StyleGAN3's modulated convolution (``networks_stylegan3.modulated_conv2d``).

    Args:
        x: ``[N, I, H, W]``.
        weight: ``[O, I, k, k]``.
        styles: ``[N, I]``.
        demodulate: pre-normalise weight and styles, then normalise each output filter (all layers but ToRGB).
        padding: zero padding on each side (StyleGAN3 pads by ``k - 1``: the output grows by ``k - 1``).
        input_gain: a scalar (``magnitude_ema ** -0.5``) or ``[I]`` / ``[N, I]`` factor on the input channels.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if styles.shape != (n, in_ch):
        raise ValueError(f"styles must have shape [{n}, {in_ch}], got {list(styles.shape)}")
    w = weight
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()  # per sample; see the module docstring
    w = w.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * dcoefs.reshape(n, out_ch, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.expand(n, in_ch).reshape(n, 1, in_ch, 1, 1)
    y = F.conv2d(x.reshape(1, n * in_ch, *x.shape[2:]), w.reshape(n * out_ch, in_ch, kh, kw), padding=padding, groups=n)
    return y.reshape(n, out_ch, *y.shape[2:])


def _kaiser_beta(numtaps: int, width: float, nyquist: float) -> float:
    # scipy.signal.kaiser_atten / kaiser_beta
    a = 2.285 * (numtaps - 1) * np.pi * (width / nyquist) + 7.95
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a > 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> Tensor | None:
    """NVIDIA's ``SynthesisLayer.design_lowpass_filter`` without scipy: a Kaiser-windowed low-pass FIR
    (``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)``), or with ``radial`` a radially symmetric
    jinc filter with a separable Kaiser window, normalised to unit sum. None for one tap (identity).

    Used to initialise a network without weights; loaded networks use the filters their file stores.
    """
    if numtaps < 1:
        raise ValueError("numtaps must be >= 1")
    if numtaps == 1:
        return None
    beta = _kaiser_beta(numtaps, width, fs / 2)
    window = np.kaiser(numtaps, beta)
    if not radial:
        c = cutoff / (fs / 2)
        m = np.arange(numtaps) - (numtaps - 1) / 2
        h = c * np.sinc(c * m) * window
        return torch.as_tensor(h / h.sum(), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    arg = torch.as_tensor(2 * cutoff * (np.pi * r), dtype=torch.float64)
    j1 = torch.special.bessel_j1(arg).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(r > 0, j1 / (np.pi * np.where(r > 0, r, 1)), cutoff)  # the limit at r = 0
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z (and label c) -> w: inputs normalised to unit second moment, ``mapping_layers`` FC + lrelu layers
    (``lr_multiplier`` 0.01); a label goes through a linear ``embed`` layer and is normalised before the
    concatenation. Keeps the tracked average ``w_avg``."""

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.num_layers = cfg.mapping_layers
        if cfg.c_dim > 0:
            self.embed = FullyConnectedLayer(cfg.c_dim, cfg.w_dim)
        feats = [cfg.z_dim + (cfg.w_dim if cfg.c_dim > 0 else 0)] + [cfg.w_dim] * cfg.mapping_layers
        for i in range(cfg.mapping_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation="lrelu",
                                                        lr_multiplier=cfg.mapping_lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``z [N, z_dim]``, ``c [N, c_dim]`` (conditional models only) -> ``w [N, w_dim]``."""
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError("this mapping network is conditional: a label c is required")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.to(torch.float32)))], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class SynthesisInput(nn.Module):
    """Fourier features: ``channels`` sinusoids (fixed random ``freqs`` in a disc of radius ``bandwidth``,
    ``phases``) sampled on a ``size x size`` grid, rotated and translated by the style of w+ row 0 and by
    the user ``transform`` buffer, then mixed by a learned ``weight`` [C, C].

    ``transform`` (3x3, identity by default) is NVIDIA's "user-specified inverse transform wrt. resulting
    image": ``gen_images.py`` sets it to ``inv(make_transform(translate, angle))``.
    """

    def __init__(self, w_dim: int, spec: InputSpec) -> None:
        super().__init__()
        c = spec.channels
        self.channels = c
        self.size = spec.size
        self.sampling_rate = spec.sampling_rate
        self.bandwidth = spec.bandwidth
        freqs = torch.randn([c, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * spec.bandwidth
        phases = torch.rand([c]) - 0.5
        self.weight = nn.Parameter(torch.randn([c, c]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # NVIDIA: weight_init=0, bias_init=[1, 0, 0, 0] (identity rotation, no shift)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, t: Tensor, transform: Tensor | None = None) -> Tensor:
        """``t [N, 4]``: the affine output of w+ row 0. ``transform``: ``[3, 3]`` or ``[N, 3, 3]`` replacing
        the buffer. Returns ``[N, channels, size, size]``."""
        n = t.shape[0]
        dev = t.device
        m = self.transform if transform is None else transform.to(dev, torch.float32)
        transforms = m.unsqueeze(0) if m.ndim == 2 else m
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # (r_c, r_s, t_x, t_y) with |(r_c, r_s)| = 1
        m_r = torch.eye(3, device=dev).unsqueeze(0).repeat([n, 1, 1])  # inverse rotation wrt. the image
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=dev).unsqueeze(0).repeat([n, 1, 1])  # inverse translation
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        transforms = m_r @ m_t @ transforms  # rotate, then translate, then the user's transform
        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # dampen frequencies a user transform pushed out of band
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=dev)
        theta[0, 0] = 0.5 * self.size / self.sampling_rate
        theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grids = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)
        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated convolution, then the filtered leaky ReLU (up by ``up_factor``, lrelu at the temporary
    sampling rate, low-pass and down by ``down_factor``); the last layer is ToRGB (1x1, no demodulation,
    linear, styles scaled by ``1/sqrt(in_channels)``)."""

    def __init__(self, w_dim: int, spec: LayerSpec, *, conv_clamp: float | None) -> None:
        super().__init__()
        self.spec = spec
        self.is_torgb = spec.is_torgb
        self.in_channels = spec.in_channels
        self.conv_kernel = spec.conv_kernel
        self.conv_clamp = conv_clamp
        self.up_factor, self.down_factor = spec.up_factor, spec.down_factor
        self.padding = list(spec.padding)
        self.gain = 1.0 if spec.is_torgb else math.sqrt(2)
        self.slope = 1.0 if spec.is_torgb else 0.2
        self.weight_gain = 1 / np.sqrt(spec.in_channels * spec.conv_kernel**2)
        # registration order mirrors NVIDIA's, so state_dict() lists keys in the same order
        self.affine = FullyConnectedLayer(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([spec.out_channels, spec.in_channels, spec.conv_kernel, spec.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([spec.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer("up_filter", design_lowpass_filter(
            spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate))
        self.register_buffer("down_filter", design_lowpass_filter(
            spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, spec.tmp_sampling_rate, radial=spec.down_radial))

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """``x [N, in_channels, in_size, in_size]``, ``style [N, in_channels]`` (affine output) -> ``[N, out, out_size, out_size]``."""
        if self.is_torgb:
            style = style * self.weight_gain
        x = modulated_conv2d(x, self.weight, style, padding=self.conv_kernel - 1, demodulate=not self.is_torgb,
                             input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, up=self.up_factor, down=self.down_factor,
                              padding=self.padding, gain=self.gain, slope=self.slope, clamp=self.conv_clamp)


class SynthesisNetwork(nn.Module):
    """w+ (or per-row styles) -> image: ``input``, then ``layer_names`` in order, times ``output_scale``."""

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_ws = cfg.num_ws
        self.output_scale = cfg.output_scale
        self.input = SynthesisInput(cfg.w_dim, cfg.input_spec())
        self.layer_names: list[str] = []
        for spec in cfg.layer_specs():
            setattr(self, spec.name, SynthesisLayer(cfg.w_dim, spec, conv_clamp=cfg.conv_clamp))
            self.layer_names.append(spec.name)

    def layer(self, name: str) -> SynthesisLayer:
        return getattr(self, name)

    @property
    def style_names(self) -> list[str]:
        """``["input", "L0_...", ..., "L{n}_..."]``: one style per w+ row."""
        return ["input", *self.layer_names]

    @property
    def style_dims(self) -> list[int]:
        return [4] + [self.layer(n).in_channels for n in self.layer_names]

    def affines(self) -> list[FullyConnectedLayer]:
        return [self.input.affine] + [self.layer(n).affine for n in self.layer_names]

    def styles_from_ws(self, ws: Tensor) -> list[Tensor]:
        """``ws [N, num_ws, w_dim]`` -> one affine output per row (``style_dims``)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, w_dim], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        return [a(ws[:, i]) for i, a in enumerate(self.affines())]

    def forward_styles(self, styles: Sequence[Tensor], transform: Tensor | None = None) -> Tensor:
        """Render from per-row styles (``styles_from_ws``); ``transform`` overrides the input's buffer."""
        x = self.input(styles[0], transform)
        for name, s in zip(self.layer_names, styles[1:]):
            x = self.layer(name)(x, s)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def forward(self, ws: Tensor, transform: Tensor | None = None) -> Tensor:
        return self.forward_styles(self.styles_from_ws(ws), transform)


class StyleGAN3Network(nn.Module):
    """The whole generator: ``synthesis`` (built first, as NVIDIA does) and ``mapping``."""

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.synthesis = SynthesisNetwork(cfg)
        self.mapping = MappingNetwork(cfg)

    def forward(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> Tensor:
        w = self.mapping(z, c)
        ws = w.unsqueeze(1).repeat([1, self.cfg.num_ws, 1])
        if truncation_psi != 1:
            cut = self.cfg.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = torch.cat([self.mapping.w_avg.lerp(ws[:, :cut], truncation_psi), ws[:, cut:]], dim=1)
        return self.synthesis(ws)
