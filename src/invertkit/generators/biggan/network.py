"""The BigGAN-deep generator of pytorch-pretrained-biggan, in plain PyTorch, evaluation mode only.

Module and tensor names equal the package's ``BigGAN.state_dict()`` names, so its
``pytorch_model.bin`` loads strictly (``embeddings.weight``, ``generator.gen_z.weight_orig`` ...,
``generator.layers.{k}.bn_0.running_means``, ``generator.conv_to_rgb.bias``). What its code does,
learnt from ``pytorch_pretrained_biggan/model.py`` (huggingface/pytorch-pretrained-BigGAN, commit
1e18aed) and reproduced here:

- **Spectral normalisation.** Every linear and convolution except the class embedding is wrapped in
  ``torch.nn.utils.spectral_norm``; a state dict holds ``weight_orig`` and the power-iteration
  vectors ``weight_u`` [out] and ``weight_v`` [in * k * k]. In eval mode no iteration runs: the
  weight is ``weight_orig / sigma`` with ``sigma = u . (W v)``, ``W = weight_orig`` as an
  ``out x rest`` matrix. A layer stored already normalised (plain ``weight``, e.g. after
  ``remove_spectral_norm``) is read as is.
- **Condition.** ``cond = [z, embeddings(one_hot)]`` (``2 * z_dim``), fed to ``gen_z`` (a linear to
  ``4 * 4 * 16 ch``, reshaped as TensorFlow's NHWC then permuted to NCHW) and to every batch norm.
- **Batch norm.** Statistics are stored for ``n_stats`` truncation values; for truncation ``t``
  the package takes ``frac, k = modf(t / step)`` (``step = 1 / (n_stats - 1)``) and uses
  ``frac * stats[k] + (1 - frac) * stats[k + 1]`` (the weights run opposite to a linear
  interpolation: t a hair above a grid point reads the next point's statistics; kept as is).
  Conditional norms scale by ``1 + scale(cond)`` and shift by ``offset(cond)`` (bias-free
  spectral-norm linears); the final one is an ordinary affine batch norm. Both use ``eps``.
- **GenBlock** (bottleneck ``in / 4``): bn-relu-conv1x1, bn-relu-[nearest x2]-conv3x3,
  bn-relu-conv3x3, bn-relu-conv1x1, plus the skip path (first ``out`` channels, nearest x2).
- **Self-attention** (SAGAN) before layer ``attention_layer_position``: theta, phi (``in / 8``) and
  g (``in / 2``) 1x1 projections, phi and g max-pooled by 2, ``x + gamma * o(g softmax(theta^T phi))``.
- **Output**: batch norm, relu, 3x3 conv to ``ch`` channels, the first three through tanh.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import BigGANConfig


class SNLayer(nn.Module):
    """A linear layer or a convolution whose weight is spectrally normalised with stored vectors.

    Args:
        out_features, in_features: output and input width (channels for a convolution).
        kernel: 0 for a linear layer, else the square kernel size (padding ``kernel // 2``).
        bias: whether the layer has a bias.
        spectral: True: tensors ``weight_orig``, ``weight_u``, ``weight_v`` (the package's layout);
            False: an already normalised ``weight``.
    """

    def __init__(self, out_features: int, in_features: int, kernel: int = 0, *, bias: bool = True, spectral: bool = True) -> None:
        super().__init__()
        self.kernel = kernel
        shape = (out_features, in_features) if kernel == 0 else (out_features, in_features, kernel, kernel)
        self.spectral = spectral
        # uninitialised: the weights always come from a state dict (a file, or ``seeded_weights``)
        if spectral:
            self.weight_orig = nn.Parameter(torch.empty(shape))
            self.register_buffer("weight_u", torch.empty(out_features))
            self.register_buffer("weight_v", torch.empty(math.prod(shape[1:])))
        else:
            self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def effective_weight(self) -> Tensor:
        """The weight the layer applies: ``weight_orig / (u . W v)`` (eval-mode spectral norm) or ``weight``."""
        if not self.spectral:
            return self.weight
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def forward(self, x: Tensor) -> Tensor:
        w = self.effective_weight()
        if self.kernel == 0:
            return F.linear(x, w, self.bias)
        return F.conv2d(x, w, self.bias, padding=self.kernel // 2)


def stats_at(means: Tensor, variances: Tensor, truncation: float) -> tuple[Tensor, Tensor]:
    """The batch-norm statistics the package uses at ``truncation`` (see the module docstring).

    Args:
        means, variances: ``[n_stats, C]``, row k for truncation ``k / (n_stats - 1)``.
        truncation: in (0, 1].
    Returns:
        ``(mean [C], var [C])``.
    """
    n = means.shape[0]
    step = 1.0 / (n - 1)
    frac, k = math.modf(truncation / step)
    k = int(k)
    if frac == 0.0:
        return means[k], variances[k]
    k1 = min(k + 1, n - 1)  # the package would index past the end here; unreachable for t <= 1
    return means[k] * frac + means[k1] * (1 - frac), variances[k] * frac + variances[k1] * (1 - frac)


class BigGANBatchNorm(nn.Module):
    """Batch norm with statistics per truncation level; conditional (scale/offset from the condition
    vector) or affine (``weight``, ``bias``)."""

    def __init__(self, num_features: int, n_stats: int, eps: float, condition_dim: int | None, *,
                 spectral: Collection[str] = ("scale", "offset")) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.empty(n_stats, num_features))
        self.register_buffer("running_vars", torch.empty(n_stats, num_features))
        self.conditional = condition_dim is not None
        if condition_dim is not None:
            self.scale = SNLayer(num_features, condition_dim, bias=False, spectral="scale" in spectral)
            self.offset = SNLayer(num_features, condition_dim, bias=False, spectral="offset" in spectral)
        else:
            self.weight = nn.Parameter(torch.empty(num_features))
            self.bias = nn.Parameter(torch.empty(num_features))

    def forward(self, x: Tensor, truncation: float, cond: Tensor | None = None) -> Tensor:
        mean, var = stats_at(self.running_means, self.running_vars, truncation)
        if not self.conditional:
            return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)
        assert cond is not None
        mean, var = mean[None, :, None, None], var[None, :, None, None]
        gain = 1 + self.scale(cond)[:, :, None, None]
        shift = self.offset(cond)[:, :, None, None]
        return (x - mean) / torch.sqrt(var + self.eps) * gain + shift


class SelfAttention(nn.Module):
    """SAGAN self-attention over a ``C x H x W`` map (H*W divisible by 4)."""

    def __init__(self, channels: int, plain: Collection[str] = ()) -> None:
        super().__init__()
        c = channels
        self.snconv1x1_theta = SNLayer(c // 8, c, 1, bias=False, spectral="snconv1x1_theta" not in plain)
        self.snconv1x1_phi = SNLayer(c // 8, c, 1, bias=False, spectral="snconv1x1_phi" not in plain)
        self.snconv1x1_g = SNLayer(c // 2, c, 1, bias=False, spectral="snconv1x1_g" not in plain)
        self.snconv1x1_o_conv = SNLayer(c, c // 2, 1, bias=False, spectral="snconv1x1_o_conv" not in plain)
        self.gamma = nn.Parameter(torch.empty(1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        theta = self.snconv1x1_theta(x).reshape(n, c // 8, h * w)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).reshape(n, c // 8, h * w // 4)
        attn = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # [n, hw, hw/4]
        g = F.max_pool2d(self.snconv1x1_g(x), 2).reshape(n, c // 2, h * w // 4)
        out = torch.bmm(g, attn.transpose(1, 2)).reshape(n, c // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(out)


class GenBlock(nn.Module):
    """BigGAN-deep residual block with a 4x channel bottleneck and optional nearest up-sampling."""

    def __init__(self, c_in: int, c_out: int, cfg: BigGANConfig, up: bool, plain: Collection[str] = ()) -> None:
        super().__init__()
        mid = c_in // 4
        self.up = up
        dims = ((c_in, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, c_out, 1))
        for i, (a, b, k) in enumerate(dims):
            sn = {s for s in ("scale", "offset") if f"bn_{i}.{s}" not in plain}
            self.add_module(f"bn_{i}", BigGANBatchNorm(a, cfg.n_stats, cfg.eps, cfg.condition_dim, spectral=sn))
            self.add_module(f"conv_{i}", SNLayer(b, a, k, spectral=f"conv_{i}" not in plain))

    def forward(self, x: Tensor, cond: Tensor, truncation: float) -> Tensor:
        h = x
        for i in range(4):
            h = torch.relu(getattr(self, f"bn_{i}")(h, truncation, cond))
            if i == 1 and self.up:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = getattr(self, f"conv_{i}")(h)
        skip = x[:, : h.shape[1]] if h.shape[1] != x.shape[1] else x
        if self.up:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class Embeddings(nn.Module):
    """The class embedding ``Linear(num_classes, z_dim, bias=False)`` (not spectrally normalised)."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, num_classes))

    def forward(self, one_hot: Tensor) -> Tensor:
        return F.linear(one_hot, self.weight)


class Synthesis(nn.Module):
    """``generator.*`` of the package: condition vector ``[N, 2 z_dim]`` -> image ``[N, 3, R, R]`` in [-1, 1]."""

    def __init__(self, cfg: BigGANConfig, plain: Collection[str] = ()) -> None:
        super().__init__()
        ch = cfg.channel_width
        self.cfg = cfg

        def sub(prefix: str) -> set[str]:  # the plain layers below ``prefix``, relative to it
            return {p[len(prefix):] for p in plain if p.startswith(prefix)}

        self.gen_z = SNLayer(4 * 4 * 16 * ch, cfg.condition_dim, spectral="gen_z" not in plain)
        layers: list[nn.Module] = []
        for i, (up, a, b) in enumerate(cfg.layers):
            if i == cfg.attention_layer_position:
                layers.append(SelfAttention(a * ch, sub(f"layers.{len(layers)}.")))
            layers.append(GenBlock(a * ch, b * ch, cfg, up, sub(f"layers.{len(layers)}.")))
        self.layers = nn.ModuleList(layers)
        self.bn = BigGANBatchNorm(ch, cfg.n_stats, cfg.eps, None)
        self.conv_to_rgb = SNLayer(ch, ch, 3, spectral="conv_to_rgb" not in plain)

    def forward(self, cond: Tensor, truncation: float) -> Tensor:
        ch = self.cfg.channel_width
        # gen_z's weights come from TensorFlow: its output is a 4 x 4 x C map in NHWC order
        x = self.gen_z(cond).reshape(-1, 4, 4, 16 * ch).permute(0, 3, 1, 2).contiguous()
        for layer in self.layers:
            x = layer(x, cond, truncation) if isinstance(layer, GenBlock) else layer(x)
        x = torch.relu(self.bn(x, truncation))
        return torch.tanh(self.conv_to_rgb(x)[:, :3])


class BigGANNetwork(nn.Module):
    """The package's ``BigGAN`` module: ``embeddings`` + ``generator``.

    Args:
        cfg: the architecture.
        plain: dotted prefixes (``"generator.gen_z"``) of layers stored already normalised (a plain
            ``weight``); every other layer has the spectral-norm tensors.
    """

    def __init__(self, cfg: BigGANConfig, plain: Collection[str] = ()) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = Embeddings(cfg.num_classes, cfg.z_dim)
        self.generator = Synthesis(cfg, {p[len("generator."):] for p in plain if p.startswith("generator.")})

    def forward(self, cond: Tensor, truncation: float) -> Tensor:
        """Images ``[N, 3, R, R]`` in [-1, 1] from condition vectors ``[N, 2 z_dim]`` (z then class embedding)."""
        return self.generator(cond, truncation)


def sn_prefixes(net: nn.Module) -> list[str]:
    """Dotted names of every spectrally normalisable layer of ``net`` (``generator.gen_z`` ...)."""
    return [name for name, m in net.named_modules() if isinstance(m, SNLayer)]


@torch.no_grad()
def seeded_weights(cfg: BigGANConfig, seed: int = 0) -> dict[str, Tensor]:
    """Deterministic random weights in the package's layout (for tests and reference runs).

    Entry i of the sorted state-dict names is drawn from ``torch.Generator().manual_seed(seed * 1000 + i)``;
    weights ~ N(0, 1), biases and embeddings small, ``gamma`` 0.5 (so attention contributes),
    statistics that differ per truncation level with variances in [0.5, 1.5]. ``weight_u``/``weight_v``
    come from 3 power iterations on the drawn ``weight_orig``, as the package's converter prepares them.
    """
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in BigGANNetwork(cfg).state_dict().items()}
    out: dict[str, Tensor] = {}
    for i, key in enumerate(sorted(shapes)):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        shape = shapes[key]
        if key.endswith("running_vars"):
            t = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("gamma"):
            t = torch.full(shape, 0.5)
        elif key.endswith("bias") or key.endswith("running_means"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("_u") or key.endswith("_v"):
            continue  # filled below from weight_orig
        else:
            t = torch.randn(shape, generator=g)
        out[key] = t
    for key in [k for k in out if k.endswith(".weight_orig")]:
        # float64, rounded once to float32: the same bits whatever the thread count's reduction order
        w = out[key].reshape(out[key].shape[0], -1).double()
        g = torch.Generator().manual_seed(seed * 1000 + len(shapes) + sorted(shapes).index(key))
        u = F.normalize(torch.randn(w.shape[0], generator=g, dtype=torch.float64), dim=0)
        for _ in range(3):
            v = F.normalize(torch.mv(w.t(), u), dim=0)
            u = F.normalize(torch.mv(w, v), dim=0)
        base = key[: -len("_orig")]
        out[base + "_u"], out[base + "_v"] = u.float(), v.float()
    return {k: out[k] for k in shapes}
