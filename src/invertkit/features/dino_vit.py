"""DINO Vision Transformer (Caron et al., ICCV 2021) in plain PyTorch, for the keys of its attention.

The layout is that of facebookresearch/dino ``vision_transformer.py`` (``vit_small`` / ``vit_base``
with ``qkv_bias=True``, LayerNorm eps 1e-6, MLP ratio 4, no classifier head), so the published
``dino_*_pretrain.pth`` state dicts load unchanged: ``cls_token`` [1, 1, D], ``pos_embed``
[1, 1 + G*G, D] (G = 224 / patch), ``patch_embed.proj.weight/bias`` (a patch x patch conv, stride
patch), per block ``blocks.{i}.norm1``, ``attn.qkv`` (D -> 3D), ``attn.proj``, ``norm2``,
``mlp.fc1`` (D -> 4D), ``mlp.fc2``, and a final ``norm``.

Images of another size than the grid the position embeddings were trained for get them
interpolated as the reference does (bicubic, ``scale_factor = (n + 0.1) / G`` per side).

Weights are read offline only (``features.weights``): an explicit path, torch's hub cache (where
``torch.hub.load('facebookresearch/dino:main', ...)`` puts them, under the URL's file name) or
``$INVERTKIT_HOME``. Nothing is downloaded at run time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError, ImageError
from ..store.tensorfiles import layout_problems, read_state_dict
from ..untrusted import check_parameter_count, safetensors_header, shape_problems
from .ops import device_key
from .weights import WeightFile, resolve_weight


@dataclass(frozen=True)
class DinoViTConfig:
    """Architecture of a DINO ViT: width ``dim``, ``depth`` blocks, ``heads`` attention heads,
    ``patch`` px patches, position embeddings for a ``grid`` x ``grid`` patch grid."""

    dim: int = 768
    depth: int = 12
    heads: int = 12
    patch: int = 8
    grid: int = 28
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        for name in ("dim", "depth", "heads", "patch", "grid", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"DINO ViT config: {name} = {value!r} must be a positive integer")
        if self.dim % self.heads:
            raise ConfigError(f"DINO ViT config: dim {self.dim} is not divisible by heads {self.heads}")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The state-dict layout (key -> shape) of this architecture, computed without allocating."""
        d, h = self.dim, self.dim * self.mlp_ratio
        out: dict[str, tuple[int, ...]] = {
            "cls_token": (1, 1, d),
            "pos_embed": (1, 1 + self.grid * self.grid, d),
            "patch_embed.proj.weight": (d, 3, self.patch, self.patch),
            "patch_embed.proj.bias": (d,),
        }
        for i in range(self.depth):
            b = f"blocks.{i}."
            out.update({
                b + "norm1.weight": (d,), b + "norm1.bias": (d,),
                b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                b + "mlp.fc1.weight": (h, d), b + "mlp.fc1.bias": (h,),
                b + "mlp.fc2.weight": (d, h), b + "mlp.fc2.bias": (d,),
            })  # fmt: skip
        out.update({"norm.weight": (d,), "norm.bias": (d,)})
        return out

    def parameter_count(self) -> int:
        return sum(math.prod(s) for s in self.shapes().values())


# The official DINO checkpoints (hubconf.py of facebookresearch/dino): architecture and file.
ARCHS: dict[str, tuple[DinoViTConfig, WeightFile]] = {
    "vits8": (DinoViTConfig(384, 12, 6, 8, 28), WeightFile(
        "dino_deitsmall8_pretrain.pth", "https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth")),
    "vitb8": (DinoViTConfig(768, 12, 12, 8, 28), WeightFile(
        "dino_vitbase8_pretrain.pth", "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth")),
    "vits16": (DinoViTConfig(384, 12, 6, 16, 14), WeightFile(
        "dino_deitsmall16_pretrain.pth", "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth")),
    "vitb16": (DinoViTConfig(768, 12, 12, 16, 14), WeightFile(
        "dino_vitbase16_pretrain.pth", "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth")),
}

# A ViT-B/8 file is ~345 MB; anything far larger is not one of these checkpoints.
MAX_FILE_BYTES = 2 * 1024**3


class _Block(nn.Module):
    def __init__(self, cfg: DinoViTConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(d, 3 * d)
        self.attn.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, d * cfg.mlp_ratio)
        self.mlp.fc2 = nn.Linear(d * cfg.mlp_ratio, d)

    def qkv(self, x: Tensor) -> Tensor:
        """``B x T x D`` tokens -> ``3 x B x heads x T x D/heads`` (queries, keys, values)."""
        b, t, d = x.shape
        return self.attn.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x)
        attn = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.attn.proj((attn @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class DinoViT(nn.Module):
    """A DINO ViT; inputs are ``B x 3 x H x W`` ImageNet-normalised images (any H, W >= patch)."""

    def __init__(self, cfg: DinoViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.grid * cfg.grid, d))
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, cfg.patch, stride=cfg.patch)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def _positions(self, rows: int, cols: int) -> Tensor:
        g = self.cfg.grid
        if rows == g and cols == g:
            return self.pos_embed
        grid = self.pos_embed[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        # the reference's +0.1 keeps floor(scale * g) from landing one short of the wanted size
        grid = F.interpolate(grid, scale_factor=((rows + 0.1) / g, (cols + 0.1) / g), mode="bicubic")
        if tuple(grid.shape[-2:]) != (rows, cols):
            raise ImageError(f"DINO ViT: position embeddings interpolated to {list(grid.shape[-2:])}, wanted {[rows, cols]}")
        return torch.cat((self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)), dim=1)

    def tokens(self, x: Tensor) -> Tensor:
        """Patch + class tokens with positions: ``B x 3 x H x W`` -> ``B x (1 + H/p * W/p) x D``."""
        p = self.cfg.patch
        if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < p:
            raise ImageError(f"DINO ViT: expected B x 3 x H x W images with H, W >= {p}, got {list(x.shape)}")
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), t), dim=1)
        return t + self._positions(x.shape[-2] // p, x.shape[-1] // p)

    def keys(self, x: Tensor, layer: int = -1) -> Tensor:
        """Attention keys of block ``layer`` (negative counts from the end): ``B x heads x T x D/heads``,
        T = 1 + (H/p)(W/p), token 0 the class token. Blocks after ``layer`` are not run."""
        n = len(self.blocks)
        if not -n <= layer < n:
            raise ConfigError(f"DINO ViT: layer {layer} out of range for {n} blocks")
        layer %= n
        t = self.tokens(x)
        for blk in self.blocks[:layer]:
            t = blk(t)
        return self.blocks[layer].qkv(t)[1]

    def forward(self, x: Tensor) -> Tensor:
        """Final normalised tokens ``B x T x D`` (the reference returns ``[:, 0]`` of this)."""
        t = self.tokens(x)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)


def _config_of(arch: str | DinoViTConfig) -> tuple[DinoViTConfig, WeightFile | None]:
    if isinstance(arch, DinoViTConfig):
        return arch, None
    if arch not in ARCHS:
        raise ConfigError(f"unknown DINO ViT {arch!r}; known: {', '.join(ARCHS)}")
    return ARCHS[arch]


def read_dino_state(path: str | os.PathLike[str], cfg: DinoViTConfig) -> dict[str, Tensor]:
    """Read and check a DINO ViT state dict (``.pth`` via ``torch.load(weights_only=True)``, or
    ``.safetensors``); the file size and, for safetensors, the declared shapes are checked before any
    tensor is read. Raises CheckpointError naming the file and what does not fit."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such DINO ViT weight file; pass the path of a dino_*_pretrain.pth file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes, larger than any DINO ViT checkpoint ({MAX_FILE_BYTES:,}); wrong file?")
    expected = cfg.shapes()
    if path.suffix == ".safetensors":
        header, _ = safetensors_header(path, "DINO ViT weights")
        problems = shape_problems(expected, {k: shape for k, (_, shape) in header.items()})
        if problems:
            raise CheckpointError(f"{path}: not a DINO ViT of this layout ({cfg}): {'; '.join(problems)}")
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = read_state_dict(path)
        # Some DINO files wrap the weights (a training checkpoint's teacher); the published ones do not.
        state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
        state.pop("head.weight", None), state.pop("head.bias", None)
    problems = layout_problems(expected, state)
    if problems:
        raise CheckpointError(f"{path}: not a DINO ViT of this layout ({cfg}): {'; '.join(problems)}")
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: NaN or infinite values in {', '.join(bad[:4])}; the file is damaged")
    return state


def load_dino_vit(arch: str | DinoViTConfig = "vitb8", path: str | os.PathLike[str] | None = None,
                  device: str | torch.device = "cpu") -> DinoViT:
    """A frozen DINO ViT in eval mode. ``arch``: ``vits8``, ``vitb8`` (PIE-Bench's), ``vits16``,
    ``vitb16`` or a :class:`DinoViTConfig` (then ``path`` is required). ``path`` None looks the
    official file up in torch's hub cache and ``$INVERTKIT_HOME`` (CheckpointError with the download
    URL if absent). The parameter count is checked against ``$INVERTKIT_MAX_PARAMETERS`` and the file
    against the layout before the network is built."""
    cfg, weight = _config_of(arch)
    if path is None and weight is None:
        raise ConfigError("load_dino_vit: a custom DinoViTConfig needs the path of its weight file")
    file = Path(path) if path is not None else resolve_weight(weight)  # type: ignore[arg-type]
    check_parameter_count(cfg.parameter_count(), file, "the DINO ViT")
    state = read_dino_state(file, cfg)
    net = DinoViT(cfg)
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False).to(device)


_CACHE: dict[tuple[str, str, str], DinoViT] = {}


def cached_dino_vit(arch: str = "vitb8", path: str | os.PathLike[str] | None = None,
                    device: str | torch.device = "cpu") -> DinoViT:
    """:func:`load_dino_vit`, loaded once per (arch, file, device) and shared; do not modify it."""
    cfg, weight = _config_of(arch)
    file = Path(path) if path is not None else resolve_weight(weight)  # type: ignore[arg-type]
    key = (str(arch), str(file.resolve()), device_key(device))
    if key not in _CACHE:
        with torch.inference_mode(False):
            _CACHE[key] = load_dino_vit(arch, file, device)
    return _CACHE[key]
