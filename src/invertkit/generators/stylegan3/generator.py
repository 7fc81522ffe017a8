"""``StyleGAN3Generator``: the invertkit ``Generator`` interface over ``StyleGAN3Network``.

Spaces (float32, on the generator's device):

- ``"z"``  ``[N, z_dim]``: the Gaussian input.
- ``"w"``  ``[N, w_dim]``: mapping output.
- ``"w+"`` ``[N, num_ws, w_dim]``: one w per row; row 0 drives the Fourier-feature input (its rotation and
  translation), row ``i + 1`` layer ``L{i}`` (the last row: ToRGB). ``num_ws = num_layers + 2`` (16 for
  NVIDIA's configs T and R).
- ``"s"``  ``[N, sum(style_dims)]``: the per-row affine outputs concatenated in ``style_layer_names`` order
  (``"input"`` with 4 entries, then each layer's ``in_channels``; ToRGB's before its ``1/sqrt(in)`` gain).

Conversions: z -> w -> w+ -> s (and identities); nothing converts back up. Truncation
``w_avg + psi (w - w_avg)`` is applied in W (per-layer codes: the first ``truncation_cutoff`` rows).

**Input transform.** NVIDIA's ``SynthesisInput`` keeps a 3x3 buffer ``transform``, the inverse of a
user transform of the output image; ``gen_images.py --translate=tx,ty --rotate=deg`` sets it to
``inv(make_transform((tx, ty), deg))``. Here :meth:`StyleGAN3Generator.with_transform` returns a generator
that draws every image translated and rotated that way (sharing the weights), and ``synthesize(...,
transform=M)`` takes the raw inverse matrix ``M`` (``[3, 3]`` or one per image, ``[N, 3, 3]``) for one call.
Translations are in units of the image width (the image spans ``[-0.5, 0.5]``), angles in degrees,
counter-clockwise as in NVIDIA's tools.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ...errors import CheckpointError, ConfigError, LatentSpaceError
from ...store.statcache import cached_stats
from ..base import NOISE_MODES, Generator
from ..capabilities import StyleAffine, StyleSpaces, Tunable
from ..stylecodes import StyleCodes
from ..stylegan2.network import truncate
from ..stylegan2.spaces import mapped_w_batches
from .config import StyleGAN3Config
from .network import StyleGAN3Network

__all__ = ["StyleGAN3Generator", "make_transform"]

_ORDER = {"z": 0, "w": 1, "w+": 2, "s": 3}
_CONVERSIONS = "z->w, z->w+, z->s, w->w+, w->s, w+->s (and identities)"
ANCHOR_SAMPLES = 10_000
_ANCHOR_SEED_OFFSET = 1_000_003
_VARIANCE_SEED_OFFSET = 2_000_003


def make_transform(translate: Sequence[float] = (0.0, 0.0), rotate_deg: float = 0.0) -> Tensor:
    """NVIDIA's ``gen_images.make_transform(translate, angle)`` as a float64 ``[3, 3]`` tensor: rotation by
    ``rotate_deg`` degrees and translation by ``translate`` (image widths). The input buffer takes its inverse."""
    tx, ty = (float(v) for v in translate)
    a = float(rotate_deg)
    if not all(math.isfinite(v) for v in (tx, ty, a)):
        raise ConfigError(f"translate and rotate_deg must be finite numbers, got translate={tuple(translate)}, rotate_deg={rotate_deg}")
    s, c = math.sin(a / 360.0 * math.pi * 2), math.cos(a / 360.0 * math.pi * 2)
    return torch.tensor([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)


class StyleGAN3Generator(StyleCodes, Generator, StyleSpaces, Tunable):
    """A StyleGAN3 (alias-free; NVIDIA ``networks_stylegan3`` layout, configs T and R) generator.

    Capabilities: style spaces (w, w+, s; one style layer per w+ row), tunable synthesis weights (PTI).
    No noise inputs and no layer splitting.

    Args:
        config: the architecture.
        state_dict: weights in NVIDIA naming (``synthesis.input.weight``, ``synthesis.L0_36_512.weight``,
            ``mapping.fc0.weight`` ...), loaded strictly. ``None`` gives NVIDIA's initialisation drawn from
            ``init_seed`` (filters designed as NVIDIA does, ``w_avg`` estimated from 4096 mapped samples);
            meant for tests.
        name: a short identity used in messages.
        device: where the weights live.
        init_seed: seed of the random initialisation (only when ``state_dict`` is None).
    """

    spaces = ("z", "w", "w+", "s")
    family_label = "StyleGAN3 checkpoints (NVIDIA stylegan3 .pkl, configs T and R)"

    def __init__(self, config: StyleGAN3Config, state_dict: Mapping[str, Tensor] | None = None, *,
                 name: str = "stylegan3", device: torch.device | str = "cpu", init_seed: int = 0) -> None:
        self.config = config
        self.name = name
        self.resolution = config.img_resolution
        self.channels = config.img_channels
        self._transform: Tensor | None = None  # set by with_transform: replaces the input's buffer
        self._transform_label: dict[str, object] | None = None
        self._build_net(lambda: StyleGAN3Network(config), state_dict, init_seed, device)

    # ---- weights ------------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load NVIDIA-named weights strictly; raise CheckpointError naming every mismatch."""
        problems = self._weight_problems(state_dict)
        if not problems:
            problems = [f"{k} is {float(state_dict[k]):g}, not positive" for k in self.net.state_dict()
                        if k.endswith(".magnitude_ema") and not float(state_dict[k]) > 0]
        if problems:
            raise CheckpointError(
                f"StyleGAN3 weights for {self.name} do not match its config "
                f"({self.resolution}px, config {self.config.variant}, {self.config.num_layers} layers): " + "; ".join(problems)
                + ". Check that the checkpoint and the config (resolution, channels, layers, c_dim) agree."
            )
        self._load_checked(state_dict)

    def weights(self) -> dict[str, Tensor]:
        """Weights in NVIDIA naming (``mapping.*``, ``synthesis.*``); ``synthesis.input.transform`` is the
        input transform in effect (a :meth:`with_transform` generator's own)."""
        sd = self.net.state_dict()
        if self._transform is not None:
            sd["synthesis.input.transform"] = self._transform
        return sd

    def state_dict(self) -> dict[str, Tensor]:
        """Same as :meth:`weights` (NVIDIA's ``G_ema.state_dict()`` layout)."""
        return self.weights()

    def tunable_module(self) -> torch.nn.Module:
        """The synthesis network (``synthesis.*``): PTI tunes it around a fixed pivot; the mapping stays
        frozen, so z -> w, ``w_avg`` and the NSCD anchors keep their meaning."""
        return self.net.synthesis

    # ---- the input transform ------------------------------------------------------------------
    @property
    def input_transform(self) -> Tensor:
        """The 3x3 matrix the Fourier-feature input applies (NVIDIA's ``synthesis.input.transform``)."""
        t = self._transform if self._transform is not None else self.net.synthesis.input.transform
        return t.detach().to(self.device, torch.float32)

    def with_transform(self, translate: Sequence[float] = (0.0, 0.0), rotate_deg: float = 0.0) -> StyleGAN3Generator:
        """A generator that shares these weights and draws every image translated by ``translate`` (image
        widths, ``(tx, ty)``) and rotated by ``rotate_deg`` degrees, as ``gen_images.py --translate=tx,ty
        --rotate=deg`` does (the input transform becomes ``inv(make_transform(translate, rotate_deg))``).

        ``with_transform()`` (no arguments) gives the untransformed generator. The transform replaces the
        one stored in the checkpoint (identity in NVIDIA's pickles). Its ``weights()`` / ``fingerprint()``
        carry the matrix, so runs made with it re-render with it.
        """
        m = torch.linalg.inv(make_transform(translate, rotate_deg)).to(torch.float32)
        new = copy.copy(self)
        for memo in ("_invertkit_digests",):  # fingerprints depend on the transform; statistics do not
            new.__dict__.pop(memo, None)
        new._transform = m.to(self.device)
        tx, ty = (float(v) for v in translate)
        new._transform_label = {"translate": [tx, ty], "rotate_deg": float(rotate_deg)}
        return new

    def _check_transform(self, transform: Tensor | None, n: int) -> Tensor | None:
        if transform is None:
            return self._transform
        if not isinstance(transform, Tensor) or not (
                tuple(transform.shape) == (3, 3) or (transform.ndim == 3 and transform.shape[1:] == (3, 3) and transform.shape[0] in (1, n))):
            got = list(transform.shape) if isinstance(transform, Tensor) else type(transform).__name__
            raise ConfigError(f"transform must be a [3, 3] or [{n}, 3, 3] tensor (the input's inverse transform), got {got}")
        if not bool(torch.isfinite(transform).all()):
            raise ConfigError("transform contains NaN or infinite values")
        return transform.to(self.device, torch.float32)

    # ---- style layout -------------------------------------------------------------------------
    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def style_layer_names(self) -> list[str]:
        """``["input", "L0_36_512", ..., "L14_1024_3"]``: one style layer per w+ row."""
        return self.net.synthesis.style_names

    @property
    def style_dims(self) -> list[int]:
        return self.net.synthesis.style_dims

    @property
    def label_dim(self) -> int:
        return self.config.c_dim

    def style_affines(self) -> list[StyleAffine]:
        """Every style layer's affine map with its gains applied (``s = weight @ w + bias``); layer ``i``
        reads w+ row ``i``."""
        out = []
        for i, (name, a) in enumerate(zip(self.style_layer_names, self.net.synthesis.affines())):
            out.append(StyleAffine(name, i, (a.weight * a.weight_gain).detach().clone(), (a.bias * a.bias_gain).detach().clone()))
        return out

    def row_layers(self) -> list[int]:
        """Every style layer: each w+ row has exactly one (the input's and each convolution's, ToRGB last)."""
        return list(range(self.num_ws))

    def style_anchors(self) -> list[Tensor]:
        """NSCD anchors: per style layer the mean of ``s_l / ||s_l||`` over 10^4 mapped samples, cached like
        StyleGAN2's (``stylegan2.nscd``). The input's 4-vector is scale-free too (it is normalised by
        ``|(r_c, r_s)|``), so LSAP's reading of directions applies to every row."""
        syn = self.net.synthesis
        weights = dict(self.net.mapping.named_parameters())
        for name, a in zip(syn.style_names, syn.affines()):
            weights.update({f"{name}.affine.{k}": v for k, v in a.named_parameters()})
        info = {"n": ANCHOR_SAMPLES, "seed": 0, "family": "stylegan3", "config": _jsonable_config(self.config)}
        expect = {f"anchor_{k}": (d,) for k, d in enumerate(syn.style_dims)}

        def compute() -> dict[str, Tensor]:
            sums = [torch.zeros(d, dtype=torch.float64) for d in syn.style_dims]
            for w in mapped_w_batches(self, ANCHOR_SAMPLES, _ANCHOR_SEED_OFFSET):
                for k, a in enumerate(syn.affines()):
                    s = a(w)
                    sums[k] += (s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)).to("cpu", torch.float64).sum(0)
            return {f"anchor_{k}": (t / ANCHOR_SAMPLES).contiguous() for k, t in enumerate(sums)}

        with torch.inference_mode(False), torch.no_grad():
            t = cached_stats(self, "nscd_anchors", weights=weights, info=info, expect=expect, compute=compute)
        return [t[f"anchor_{k}"].to(self.device, torch.float32) for k in range(len(syn.style_dims))]

    def w_variance(self) -> Tensor:
        """Per-dimension variance of w averaged over dimensions, from 10^4 mapped samples (cached)."""
        info = {"n": ANCHOR_SAMPLES, "seed": 0, "family": "stylegan3", "z_dim": self.config.z_dim, "c_dim": self.config.c_dim}

        def compute() -> dict[str, Tensor]:
            ws = torch.cat([w.to("cpu", torch.float64) for w in mapped_w_batches(self, ANCHOR_SAMPLES, _VARIANCE_SEED_OFFSET)])
            return {"w_var": ws.var(dim=0).mean().reshape(())}

        with torch.inference_mode(False), torch.no_grad():
            t = cached_stats(self, "w_variance", weights=dict(self.net.mapping.named_parameters()), info=info,
                             expect={"w_var": ()}, compute=compute)
        return t["w_var"].to(self.device, torch.float32)

    # ---- interface ----------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> StyleGAN3Generator:
        self.net.to(device)
        if self._transform is not None:
            self._transform = self._transform.to(device)
        return self

    def latent_shape(self, space: str) -> tuple[int, ...]:
        self.check_space(space)
        cfg = self.config
        return {"z": (cfg.z_dim,), "w": (cfg.w_dim,), "w+": (cfg.num_ws, cfg.w_dim), "s": (sum(self.style_dims),)}[space]

    def convert(self, latent: Tensor, src: str, dst: str, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, c: Tensor | int | None = None) -> Tensor:
        """Convert latents downstream (z -> w -> w+ -> s; differentiable), truncating in W when ``psi != 1``."""
        self.check_space(src)
        self.check_space(dst)
        if _ORDER[dst] < _ORDER[src]:
            raise LatentSpaceError(f"cannot convert {src!r} to {dst!r} for {self.name}: only downstream conversions exist "
                                   f"({_CONVERSIONS}); use an inversion method to go upstream")
        x = self.check_latent(latent, src)
        if truncation_psi != 1 and (src == "s" or dst == "z"):
            raise ConfigError(f"truncation is not defined for a conversion {src!r} -> {dst!r}")
        if src == "s" or dst == "z":
            return x
        if src == dst and truncation_psi == 1:
            if c is not None:
                self._label(c, x.shape[0])
            return x
        if src == "z":
            x = self.net.mapping(x, self._label(c, x.shape[0]))
        elif c is not None:
            self._label(c, x.shape[0])  # validate only; w already encodes the label
        w_avg = self.net.mapping.w_avg
        if src in ("z", "w"):
            if dst == "w":
                return truncate(x, w_avg, truncation_psi)
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        x = truncate(x, w_avg, truncation_psi, truncation_cutoff)
        if dst == "w+":
            return x
        return torch.cat(self.net.synthesis.styles_from_ws(x), dim=1)

    def styles(self, latent: Tensor, space: str, **kw: object) -> list[Tensor]:
        """Per-row style vectors ``[N, style_dims[i]]`` of ``latent`` in any space (differentiable)."""
        if space == "s":
            if kw.get("truncation_psi", 1.0) != 1:
                raise ConfigError("truncation is not defined for S-space latents")
            return self.split_styles(latent)
        return self.net.synthesis.styles_from_ws(self.convert(latent, space, "w+", **kw))  # type: ignore[arg-type]

    def synthesize(self, latent: Tensor, space: str, *, c: Tensor | int | None = None, truncation_psi: float = 1.0,
                   truncation_cutoff: int | None = None, transform: Tensor | None = None, noise_mode: str = "const",
                   generator: torch.Generator | None = None) -> Tensor:
        """Render ``latent`` in ``space`` to ``[N, img_channels, R, R]`` float32, nominal [-1, 1], not clamped.

        Args:
            c: label for conditional models when ``space == "z"``.
            transform: NVIDIA's inverse input transform for this call, ``[3, 3]`` or ``[N, 3, 3]``
                (default: this generator's, see :meth:`with_transform`).
            noise_mode, generator: accepted for StyleGAN2 compatibility; StyleGAN3 has no noise inputs
                (NVIDIA's layers ignore ``noise_mode`` too).
        """
        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        styles = self.styles(latent, space, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, c=c)
        m = self._check_transform(transform, styles[0].shape[0])
        return self.net.synthesis.forward_styles(styles, m)

    @torch.no_grad()
    def mean_latent(self, space: str) -> Tensor:
        """Batch dimension 1. z: zeros; w: ``w_avg``; w+: ``w_avg`` repeated; s: the styles of that w+."""
        self.check_space(space)
        if space == "z":
            return torch.zeros(1, self.config.z_dim, device=self.device)
        w = self.net.mapping.w_avg.detach().clone().unsqueeze(0)
        return w if space == "w" else self.convert(w, "w", space)

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["architecture"] = f"StyleGAN3 (config {self.config.variant}, {self.config.num_layers} layers)"
        d["config"] = _jsonable_config(self.config)
        d["variant"] = self.config.variant
        d["style_layers"] = dict(zip(self.style_layer_names, self.style_dims))
        if self._transform_label is not None:
            d["input_transform"] = dict(self._transform_label)
        return d


def _jsonable_config(cfg: StyleGAN3Config) -> dict[str, object]:
    d = cfg.to_dict()
    d["extra"] = {str(k): (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in d["extra"].items()}
    return d
