"""``StyleGAN2Generator``: the invertkit ``Generator`` interface over ``StyleGAN2Network``.

Spaces (all float32, on the generator's device):

- ``"z"``  ``[N, z_dim]``: the Gaussian input.
- ``"w"``  ``[N, w_dim]``: mapping output.
- ``"w+"`` ``[N, num_ws, w_dim]``: one w per synthesis input (see ``StyleGAN2Config.num_ws``).
- ``"s"``  ``[N, sum(style_dims)]``: the per-layer style vectors (affine outputs, ToRGB included,
  *before* ToRGB's ``1/sqrt(in_channels)`` gain), concatenated in ``style_layer_names`` order.

Conversions go downstream only: z->w, z->w+, z->s, w->w+, w->s, w+->s, plus identities.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ...errors import CheckpointError, ConfigError, LatentSpaceError
from ..base import NOISE_MODES, Generator, seeded_generator
from ..weights import layout_problems
from .config import StyleGAN2Config
from .network import StyleGAN2Network, truncate

_ORDER = {"z": 0, "w": 1, "w+": 2, "s": 3}
_CONVERSIONS = "z->w, z->w+, z->s, w->w+, w->s, w+->s (and identity)"


class StyleGAN2Generator(Generator):
    """A StyleGAN2 (NVIDIA stylegan2-ada-pytorch layout) generator.

    Args:
        config: the architecture.
        state_dict: weights in NVIDIA naming (``mapping.fc0.weight``, ``synthesis.b4.const``, ...),
            loaded strictly. ``None`` gives NVIDIA's initialisation drawn from a fixed seed
            (``init_seed``), with ``w_avg`` estimated from 4096 mapped samples so truncation and
            ``mean_latent`` are meaningful; meant for tests.
        name: a short identity used in messages.
        device: where the weights live.
        init_seed: seed of the random initialisation (only when ``state_dict`` is None).
    """

    spaces = ("z", "w", "w+", "s")

    def __init__(self, config: StyleGAN2Config, state_dict: Mapping[str, Tensor] | None = None, *,
                 name: str = "stylegan2", device: torch.device | str = "cpu", init_seed: int = 0) -> None:
        self.config = config
        self.name = name
        self.resolution = config.img_resolution
        self.channels = config.img_channels
        if state_dict is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                self.net = StyleGAN2Network(config)
                self._estimate_w_avg(init_seed)
        else:
            self.net = StyleGAN2Network(config)
            self.load_state_dict(state_dict)
        self.net.eval()
        self.net.to(device)

    # ---- weights ------------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load NVIDIA-named weights strictly; raise CheckpointError naming every mismatch."""
        expected = self.net.state_dict()
        problems = layout_problems({k: tuple(v.shape) for k, v in expected.items()}, state_dict)
        if not problems:
            problems = [f"{k} contains NaN or Inf" for k in expected if not torch.isfinite(state_dict[k]).all()]
        if problems:
            raise CheckpointError(
                f"StyleGAN2 weights for {self.name} do not match its config "
                f"({self.resolution}px, {self.config.architecture}): " + "; ".join(problems)
                + ". Check that the checkpoint and the config (resolution, channels, mapping layers, c_dim) agree."
            )
        with torch.no_grad():
            self.net.load_state_dict({k: state_dict[k].detach().to(torch.float32) for k in expected}, strict=True)

    @torch.no_grad()
    def _estimate_w_avg(self, seed: int, n: int = 4096) -> None:
        g = torch.Generator().manual_seed(seed + 1)
        z = torch.randn(n, self.config.z_dim, generator=g)
        c = None
        if self.config.c_dim > 0:
            c = torch.nn.functional.one_hot(torch.randint(0, self.config.c_dim, (n,), generator=g),
                                            self.config.c_dim).float()
        self.net.mapping.w_avg.copy_(self.net.mapping(z, c).mean(0))

    def state_dict(self) -> dict[str, Tensor]:
        """Weights in NVIDIA naming."""
        return self.net.state_dict()

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

    def split_styles(self, flat: Tensor) -> list[Tensor]:
        """``[N, sum(style_dims)]`` -> list of ``[N, style_dims[i]]`` (views)."""
        flat = self.check_latent(flat, "s")
        return list(torch.split(flat, self.style_dims, dim=1))

    def join_styles(self, styles: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
        """Inverse of ``split_styles``."""
        dims = self.style_dims
        if len(styles) != len(dims) or any(s.ndim != 2 or s.shape[1] != d for s, d in zip(styles, dims)):
            got = [list(s.shape) for s in styles]
            raise LatentSpaceError(f"join_styles needs {len(dims)} tensors [N, d] with d = {dims}, got {got}")
        return torch.cat(list(styles), dim=1)

    # ---- interface ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.net.mapping.w_avg.device

    def to(self, device: torch.device | str) -> StyleGAN2Generator:
        self.net.to(device)
        return self

    def latent_shape(self, space: str) -> tuple[int, ...]:
        self.check_space(space)
        cfg = self.config
        return {"z": (cfg.z_dim,), "w": (cfg.w_dim,), "w+": (cfg.num_ws, cfg.w_dim),
                "s": (sum(self.style_dims),)}[space]

    def _label(self, c: Tensor | int | None, n: int) -> Tensor | None:
        """Validate a label: ``[N, c_dim]`` or ``[c_dim]`` floats, ``[N]`` class indices or an int."""
        c_dim = self.config.c_dim
        if c_dim == 0:
            if c is not None:
                raise ConfigError(f"{self.name} is unconditional (c_dim=0); do not pass a label c")
            return None
        if c is None:
            raise ConfigError(
                f"{self.name} is conditional (c_dim={c_dim}): pass c, a [N, {c_dim}] one-hot/float label "
                f"tensor or class indices, to map z to w"
            )
        if isinstance(c, int) or (isinstance(c, Tensor) and not c.is_floating_point()):
            idx = torch.as_tensor(c, dtype=torch.long).reshape(-1)
            if idx.numel() and (idx.min() < 0 or idx.max() >= c_dim):
                raise ConfigError(f"class index out of range for c_dim={c_dim}: {idx.tolist()}")
            c = torch.nn.functional.one_hot(idx, c_dim).float()
        if not isinstance(c, Tensor):
            raise ConfigError(f"label c must be a tensor or int, got {type(c).__name__}")
        if c.ndim == 1:
            c = c.unsqueeze(0)
        if c.ndim != 2 or c.shape[1] != c_dim or c.shape[0] not in (1, n):
            raise ConfigError(f"label c must have shape [{n}, {c_dim}] (or [1, {c_dim}]), got {list(c.shape)}")
        return c.to(self.device, torch.float32).expand(n, c_dim)

    def sample_latent(self, n: int, space: str = "z", *, seed: int | None = None,
                      c: Tensor | int | None = None, **kw: object) -> Tensor:
        """``n`` latents in ``space`` via z ~ N(0, I) from a seeded CPU generator (same bits on any device).

        The result carries no autograd history (ready to be optimised). Extra keywords (truncation)
        go to ``convert``.
        """
        self.check_space(space)
        g = seeded_generator(seed)
        z = torch.randn([int(n), self.config.z_dim], generator=g).to(self.device)
        if space == "z":
            return z
        with torch.no_grad():
            return self.convert(z, "z", space, c=c, **kw)

    def convert(self, latent: Tensor, src: str, dst: str, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, c: Tensor | int | None = None) -> Tensor:
        """Map latents downstream: z->w, z->w+, z->s, w->w+, w->s, w+->s, or identity.

        Truncation ``w_avg + psi (w - w_avg)`` is applied to w / w+ codes (for w+ and s only the first
        ``truncation_cutoff`` rows when given); it is undefined for sources s and destination z.
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
        syn = self.net.synthesis
        if space == "s":
            if truncation_psi != 1:
                raise ConfigError("truncation is not defined for S-space latents")
            styles = self.split_styles(latent)
        else:
            ws = self.convert(latent, space, "w+", truncation_psi=truncation_psi,
                              truncation_cutoff=truncation_cutoff, c=c)
            styles = syn.styles_from_ws(ws)
        return syn.forward_styles(styles, noise_mode=noise_mode, generator=generator, noise=noise)

    @torch.no_grad()
    def mean_latent(self, space: str) -> Tensor:
        """z: zeros; w: ``w_avg``; w+: ``w_avg`` repeated; s: styles of that w+. Batch dimension 1."""
        self.check_space(space)
        if space == "z":
            return torch.zeros(1, self.config.z_dim, device=self.device)
        w = self.net.mapping.w_avg.detach().clone().unsqueeze(0)
        return w if space == "w" else self.convert(w, "w", space)

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["config"] = self.config.to_dict()
        d["style_layers"] = dict(zip(self.style_layer_names, self.style_dims))
        return d
