"""``StyleGAN2Generator``: the invertkit ``Generator`` interface over ``StyleGAN2Network``.

Spaces (all float32, on the generator's device):

- ``"z"``  ``[N, z_dim]``: the Gaussian input.
- ``"w"``  ``[N, w_dim]``: mapping output.
- ``"w+"`` ``[N, num_ws, w_dim]``: one w per synthesis input (see ``StyleGAN2Config.num_ws``).
- ``"s"``  ``[N, sum(style_dims)]``: the per-layer style vectors (affine outputs, ToRGB included,
  *before* ToRGB's ``1/sqrt(in_channels)`` gain), concatenated in ``style_layer_names`` order.
- ``"p"``  ``[N, num_ws, w_dim]``: P+ (Zhu et al. 2020), each w+ row with the mapping's last
  activation undone, ``p = lrelu_{5.0}(w) / sqrt(2)`` (the last FC layer's pre-activation; see
  ``spaces``).
- ``"pn"`` ``[N, num_ws, w_dim]``: P_N+, p whitened row-wise by a PCA fitted on mapped samples,
  ``v = Lambda^-1 C^T (p - mu)``; ~N(0, I) for sampled latents. The fit is fixed per generator
  (``pn_fit``, default 10^5 samples, seed 0), computed lazily and cached (``spaces.p_stats``).

Conversions: z -> w -> {w+, p, pn} -> s. w+, p and pn are bijective images of each other, so any
of them converts to any other; nothing converts back to z, from s, or from a per-layer space to w.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ...errors import CheckpointError, ConfigError, LatentSpaceError
from ..base import NOISE_MODES, Generator, seeded_generator
from ..capabilities import LayerSplitting, NoiseMaps, StyleAffine, StyleSpaces, Tunable
from ..layers import LayerSplit, check_split_layer
from ..stylecodes import StyleCodes
from . import spaces as _sp
from .config import StyleGAN2Config
from .network import StyleGAN2Network, truncate

# w+, p and pn share a rank: they are bijective images of one another
_ORDER = {"z": 0, "w": 1, "w+": 2, "p": 2, "pn": 2, "s": 3}
_CONVERSIONS = ("z->w, z->w+, z->p, z->pn, z->s, w->w+, w->p, w->pn, w->s, w+->s, p->s, pn->s, "
                "and among w+, p, pn in any direction (and identity)")
_PER_LAYER = ("w+", "p", "pn")


class StyleGAN2Generator(StyleCodes, Generator, StyleSpaces, LayerSplitting, NoiseMaps, Tunable):
    """A StyleGAN2 (NVIDIA stylegan2-ada-pytorch layout) generator.

    Capabilities: style spaces (w, w+, s, p, pn), layer splitting at block resolutions, noise maps
    (when the config uses noise), tunable synthesis weights (PTI).

    Args:
        config: the architecture.
        state_dict: weights in NVIDIA naming (``mapping.fc0.weight``, ``synthesis.b4.const``, ...),
            loaded strictly. ``None`` gives NVIDIA's initialisation drawn from a fixed seed
            (``init_seed``), with ``w_avg`` estimated from 4096 mapped samples so truncation and
            ``mean_latent`` are meaningful; meant for tests.
        name: a short identity used in messages.
        device: where the weights live.
        init_seed: seed of the random initialisation (only when ``state_dict`` is None).
        pn_fit: the PCA fit (samples, seed) that defines the ``pn`` space of this generator.
    """

    spaces = ("z", "w", "w+", "s", "p", "pn")
    family_label = "StyleGAN2 checkpoints (NVIDIA .pkl, rosinality .pt, invertkit .safetensors)"

    def __init__(self, config: StyleGAN2Config, state_dict: Mapping[str, Tensor] | None = None, *,
                 name: str = "stylegan2", device: torch.device | str = "cpu", init_seed: int = 0,
                 pn_fit: _sp.PFit = _sp.PFit()) -> None:
        self.config = config
        self.pn_fit = pn_fit
        self.name = name
        self.resolution = config.img_resolution
        self.channels = config.img_channels
        self._build_net(lambda: StyleGAN2Network(config), state_dict, init_seed, device)

    # ---- weights ------------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load NVIDIA-named weights strictly; raise CheckpointError naming every mismatch."""
        problems = self._weight_problems(state_dict)
        if problems:
            raise CheckpointError(
                f"StyleGAN2 weights for {self.name} do not match its config "
                f"({self.resolution}px, {self.config.architecture}): " + "; ".join(problems)
                + ". Check that the checkpoint and the config (resolution, channels, mapping layers, c_dim) agree."
            )
        self._load_checked(state_dict)

    def weights(self) -> dict[str, Tensor]:
        """Weights in NVIDIA naming (``mapping.*``, ``synthesis.*``)."""
        return self.net.state_dict()

    def state_dict(self) -> dict[str, Tensor]:
        """Same as :meth:`weights` (NVIDIA's ``G_ema.state_dict()`` layout)."""
        return self.weights()

    def tunable_module(self) -> torch.nn.Module:
        """The synthesis network (``synthesis.*``): PTI tunes it around a fixed pivot; the mapping
        network stays frozen, so z -> w, ``w_avg`` and the P/P_N statistics keep their meaning."""
        return self.net.synthesis

    # ---- style layout -------------------------------------------------------------------------
    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def style_layer_names(self) -> list[str]:
        """Modulated layers in S order, e.g. ``["b4.conv1", "b4.torgb", "b8.conv0", ...]``."""
        return list(self.net.synthesis.layer_names)

    @property
    def style_dims(self) -> list[int]:
        """Length of each layer's style vector, in ``style_layer_names`` order."""
        return list(self.net.synthesis.style_dims)

    @property
    def label_dim(self) -> int:
        """``c_dim`` of the config (0: unconditional)."""
        return self.config.c_dim

    def style_affines(self) -> list[StyleAffine]:
        """Every style layer's affine map with its gains applied (``s = weight @ w + bias``)."""
        syn = self.net.synthesis
        out = []
        for name, row in zip(syn.layer_names, syn.layer_w_index):
            a = syn.layer(name).affine
            out.append(StyleAffine(name, row, (a.weight * a.weight_gain).detach().clone(), (a.bias * a.bias_gain).detach().clone()))
        return out

    def row_layers(self) -> list[int]:
        """The modulated convolutions and the last ToRGB: one layer per W+ row (the intermediate ToRGBs
        of the skip architecture share their row with the next block's first convolution)."""
        names = self.style_layer_names
        last = len(names) - 1
        return [i for i, n in enumerate(names) if not n.endswith("torgb") or i == last]

    def style_anchors(self) -> list[Tensor]:
        """NSCD anchors (``stylegan2.nscd.style_anchors`` with its defaults)."""
        from .nscd import style_anchors

        return style_anchors(self)

    def w_variance(self) -> Tensor:
        """Per-dimension variance of w averaged over dimensions, from the P-space fit's samples."""
        return self.p_stats().w_var

    # ---- interface ----------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> StyleGAN2Generator:
        self.net.to(device)
        return self

    def latent_shape(self, space: str) -> tuple[int, ...]:
        self.check_space(space)
        cfg = self.config
        per_layer = (cfg.num_ws, cfg.w_dim)
        return {"z": (cfg.z_dim,), "w": (cfg.w_dim,), "w+": per_layer, "p": per_layer, "pn": per_layer,
                "s": (sum(self.style_dims),)}[space]

    def convert(self, latent: Tensor, src: str, dst: str, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, c: Tensor | int | None = None) -> Tensor:
        """Convert latents between spaces (differentiable).

        Allowed: z -> w -> {w+, p, pn} -> s, any of w+/p/pn to another, and identities. p and pn are
        per-layer (``[N, num_ws, w_dim]``): ``p = lrelu_{5}(w)/sqrt(2)`` row-wise and
        ``pn = Lambda^-1 C^T (p - mu)`` (see ``spaces``).

        Truncation ``w_avg + psi (w - w_avg)`` is applied in W (for per-layer codes only the first
        ``truncation_cutoff`` rows when given), so a p/pn source is first mapped to w+; it is
        undefined for source s and destination z.
        """
        self.check_space(src)
        self.check_space(dst)
        if _ORDER[dst] < _ORDER[src]:
            raise LatentSpaceError(
                f"cannot convert {src!r} to {dst!r} for {self.name}: only downstream conversions exist "
                f"({_CONVERSIONS}); use an inversion method to go upstream"
            )
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
        if src in ("p", "pn") and dst in ("p", "pn") and truncation_psi == 1:
            return self._p_convert(x, src, dst)
        if src in ("p", "pn"):
            x = self._p_convert(x, src, "w+")
        w_avg = self.net.mapping.w_avg
        if src in ("z", "w"):
            if dst == "w":
                return truncate(x, w_avg, truncation_psi)
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        x = truncate(x, w_avg, truncation_psi, truncation_cutoff)
        if dst in _PER_LAYER:
            return self._p_convert(x, "w+", dst)
        return torch.cat(self.net.synthesis.styles_from_ws(x), dim=1)

    def _p_convert(self, x: Tensor, src: str, dst: str) -> Tensor:
        """Row-wise maps among w+, p and pn (all ``[N, num_ws, w_dim]``)."""
        if src == dst:
            return x
        if src == "w+":
            x, src = _sp.w_to_p(x), "p"
        if src == "pn":
            x, src = _sp.pn_to_p(x, self.p_stats()), "p"
        if dst == "p":
            return x
        if dst == "pn":
            return _sp.p_to_pn(x, self.p_stats())
        return _sp.p_to_w(x)

    def p_stats(self, n: int | None = None, seed: int | None = None, **kw: object) -> _sp.PSpaceStats:
        """A P-space PCA (see ``spaces.p_stats``); without arguments the one defining ``"pn"`` (``pn_fit``)."""
        return _sp.p_stats(self, n, seed, **kw)  # type: ignore[arg-type]

    def synthesize(self, latent: Tensor, space: str, *, noise_mode: str = "const", c: Tensor | int | None = None,
                   generator: torch.Generator | None = None, truncation_psi: float = 1.0,
                   truncation_cutoff: int | None = None, noise: dict[str, Tensor] | None = None) -> Tensor:
        """Render ``latent`` in ``space`` to ``[N, img_channels, R, R]`` float32, nominal [-1, 1], not clamped.

        Args:
            noise_mode: ``"const"`` (default, deterministic), ``"random"`` (from ``generator`` if
                given) or ``"none"``.
            c: label for conditional models when ``space == "z"``.
            noise: optional ``{layer name: unit noise map}`` overrides (see ``SynthesisNetwork``).
        """
        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        styles = self.styles(latent, space, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, c=c)
        self.check_noise(noise, styles[0].shape[0])
        return self.net.synthesis.forward_styles(styles, noise_mode=noise_mode, generator=generator, noise=noise)

    def synthesize_with_noise(self, latent: Tensor, space: str, noise: Mapping[str, Tensor]) -> Tensor:
        """Images of ``latent`` with unit noise maps ``{layer: [1|N, 1, H, W]}`` (other layers: const noise)."""
        return self.synthesize(latent, space, noise=dict(noise))

    def styles(self, latent: Tensor, space: str, **kw: object) -> list[Tensor]:
        """Per-layer style vectors of ``latent`` in any space, one ``[N, style_dims[i]]`` per
        ``style_layer_names`` entry (differentiable; ``kw``: truncation and label as in ``convert``)."""
        if space == "s":
            if kw.get("truncation_psi", 1.0) != 1:
                raise ConfigError("truncation is not defined for S-space latents")
            return self.split_styles(latent)
        return self.net.synthesis.styles_from_ws(self.convert(latent, space, "w+", **kw))  # type: ignore[arg-type]

    # ---- noise maps ---------------------------------------------------------------------------
    def noise_shapes(self) -> dict[str, tuple[int, int]]:
        """``{layer name: (H, W)}`` for every layer that takes a noise map (empty without noise)."""
        syn = self.net.synthesis
        return {name: (syn.layer(name).resolution,) * 2 for name in syn.noise_layer_names}

    def initial_noise(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """Fresh unit-Gaussian noise maps ``{layer: [n, 1, H, W]}`` (seeded on CPU, then moved to the device).

        Pass them as ``synthesize(..., noise=maps)`` to optimise per-image noise (they are scaled by
        each layer's learned ``noise_strength``, as NVIDIA does for its noise buffers).
        """
        g = seeded_generator(seed)
        return {name: torch.randn([int(n), 1, h, w], generator=g).to(self.device)
                for name, (h, w) in self.noise_shapes().items()}

    def check_noise(self, noise: Mapping[str, Tensor] | None, n: int) -> None:
        """Validate ``{layer: map}`` overrides: known layers, maps ``[H, W]``, ``[1|n, 1, H, W]``."""
        if not noise:
            return
        shapes = self.noise_shapes()
        unknown = sorted(set(noise) - set(shapes))
        if unknown:
            valid = ", ".join(shapes) if shapes else "none (this generator has no noise inputs)"
            raise LatentSpaceError(f"unknown noise layer(s) {unknown} for {self.name}; layers taking noise: {valid}")
        for name, t in noise.items():
            hw = shapes[name]
            ok = isinstance(t, Tensor) and (tuple(t.shape) == hw or (
                t.ndim == 4 and t.shape[0] in (1, n) and t.shape[1] == 1 and tuple(t.shape[2:]) == hw))
            if not ok:
                got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise LatentSpaceError(
                    f"noise map for {name} must have shape [{hw[0]}, {hw[1]}] or [1 or {n}, 1, {hw[0]}, {hw[1]}], got {got}")

    # ---- layerwise split ----------------------------------------------------------------------
    def split_layers(self) -> list[str]:
        """Valid split points: block resolutions ``"4"``, ``"8"``, ..., ``str(R // 2)``."""
        return [str(r) for r in self.config.block_resolutions[:-1]]

    def layer_split(self, layer: str) -> LayerSplit:
        """Cut the synthesis network after block ``b{layer}`` (see ``generators.layers``).

        ``head(latent, space, **kw)`` returns the state ``(x, img)`` after that block: features
        ``[N, C, r, r]`` and the RGB skip image ``[N, img_channels, r, r]`` (None for the "orig" and
        "resnet" architectures, whose only ToRGB is in the last block). ``tail(state, ws, **kw)``
        runs the remaining blocks with the styles of a w+ latent ``ws [N, num_ws, w_dim]``; only the
        rows of layers after the cut are read. ``**kw`` are ``noise_mode`` (default "const") and
        ``noise`` as in ``synthesize``; only the noise maps of layers after the cut (``tail_noise``)
        reach the tail's image.
        """
        names = self.split_layers()
        layer = check_split_layer(self.name, layer, names)
        res = int(layer)
        resolutions = self.config.block_resolutions
        head_res = [r for r in resolutions if r <= res]
        tail_res = [r for r in resolutions if r > res]
        syn = self.net.synthesis

        def head(latent: Tensor, space: str = "w+", *, noise_mode: str = "const",
                 noise: dict[str, Tensor] | None = None, **kw: object) -> tuple[Tensor, Tensor | None]:
            styles = self.styles(latent, space, **kw)
            self.check_noise(noise, styles[0].shape[0])
            return syn.run_blocks(styles, None, None, head_res, noise_mode=noise_mode, noise=noise)  # type: ignore[return-value]

        def tail(state: tuple[Tensor, Tensor | None], latent_tail: Tensor, *, noise_mode: str = "const",
                 noise: dict[str, Tensor] | None = None) -> Tensor:
            x, img = state
            ws = self.check_latent(latent_tail, "w+")
            if ws.shape[0] != x.shape[0]:
                raise LatentSpaceError(f"tail latent has {ws.shape[0]} rows but the state has {x.shape[0]}")
            self.check_noise(noise, x.shape[0])
            styles = syn.styles_from_ws(ws)
            _, img = syn.run_blocks(styles, x, img, tail_res, noise_mode=noise_mode, noise=noise)
            return img  # type: ignore[return-value]

        after = tuple(n for n in syn.noise_layer_names if int(n.split(".")[0][1:]) > res)
        return LayerSplit(name=layer, head=head, tail=tail, tail_space="w+", tail_noise=after)

    @torch.no_grad()
    def mean_latent(self, space: str) -> Tensor:
        """Batch dimension 1. z: zeros; w: ``w_avg``; w+: ``w_avg`` repeated; s: styles of that w+;
        p: the fitted P mean ``mu`` repeated; pn: zeros (the image of ``pn = 0`` is that of the P mean)."""
        self.check_space(space)
        if space == "z":
            return torch.zeros(1, self.config.z_dim, device=self.device)
        if space == "pn":
            return torch.zeros(1, *self.latent_shape("pn"), device=self.device)
        if space == "p":
            return self.p_stats().mean.clone().expand(1, self.num_ws, -1).contiguous()
        w = self.net.mapping.w_avg.detach().clone().unsqueeze(0)
        return w if space == "w" else self.convert(w, "w", space)

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["config"] = self.config.to_dict()
        d["style_layers"] = dict(zip(self.style_layer_names, self.style_dims))
        d["pn_fit"] = {"n": self.pn_fit.n, "seed": self.pn_fit.seed}
        return d
