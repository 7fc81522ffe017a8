"""What StyleGAN2 and StyleGAN3 generators share about their codes: seeded z draws, labels of
conditional models, truncation, and the flat S vector's split into per-layer styles.

A mixin, not a capability: it implements parts of :class:`~.base.Generator` and
:class:`~.capabilities.StyleSpaces` for classes that hold ``self.net`` (with ``mapping.w_avg``),
``self.config`` (``z_dim``, ``c_dim``), ``self.name`` and ``self.style_dims``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..store.tensorfiles import layout_problems
from .base import seeded_generator


class StyleCodes:
    """Shared code of the mapping-network generators (StyleGAN2, StyleGAN3)."""

    net: Any
    config: Any
    name: str

    def _build_net(self, make_net: Callable[[], torch.nn.Module], state_dict: Mapping[str, Tensor] | None,
                   init_seed: int, device: torch.device | str) -> None:
        """``self.net = make_net()``: seeded random weights (and their ``w_avg``) when ``state_dict`` is
        None, else the checked weights; then frozen and moved to ``device``."""
        if state_dict is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                self.net = make_net()
                self._estimate_w_avg(init_seed)
        else:
            self.net = make_net()
            self.load_state_dict(state_dict)  # type: ignore[attr-defined]
        # frozen, as every loaded generator: inversion differentiates w.r.t. latents, never accumulates
        # gradients in the weights (PTI tunes a copy, see generators.tuning.tunable_copy)
        self.net.eval().requires_grad_(False)
        self.net.to(device)

    def _weight_problems(self, state_dict: Mapping[str, Tensor]) -> list[str]:
        """Missing, unexpected or mis-shaped tensors against ``self.net``'s own state dict, then NaN/Inf."""
        expected = self.net.state_dict()
        problems = layout_problems({k: tuple(v.shape) for k, v in expected.items()}, state_dict)
        if not problems:
            problems = [f"{k} contains NaN or Inf" for k in expected if not torch.isfinite(state_dict[k]).all()]
        return problems

    def _load_checked(self, state_dict: Mapping[str, Tensor]) -> None:
        """Copy weights that passed the checks into ``self.net`` (float32, strict)."""
        with torch.no_grad():
            self.net.load_state_dict({k: state_dict[k].detach().to(torch.float32) for k in self.net.state_dict()}, strict=True)

    @torch.no_grad()
    def _estimate_w_avg(self, seed: int, n: int = 4096) -> None:
        """``mapping.w_avg`` of random weights: the mean w of ``n`` seeded z (and random classes)."""
        g = torch.Generator().manual_seed(seed + 1)
        z = torch.randn(n, self.config.z_dim, generator=g)
        c = None
        if self.config.c_dim > 0:
            c = torch.nn.functional.one_hot(torch.randint(0, self.config.c_dim, (n,), generator=g), self.config.c_dim).float()
        self.net.mapping.w_avg.copy_(self.net.mapping(z, c).mean(0))

    @property
    def device(self) -> torch.device:
        return self.net.mapping.w_avg.device

    def _label(self, c: Tensor | int | None, n: int) -> Tensor | None:
        """Validate a label: ``[N, c_dim]`` or ``[c_dim]`` floats, ``[N]`` class indices or an int;
        returns ``[n, c_dim]`` float32 on the generator's device, or None for unconditional models."""
        c_dim = self.config.c_dim
        if c_dim == 0:
            if c is not None:
                raise ConfigError(f"{self.name} is unconditional (c_dim=0); do not pass a label c")
            return None
        if c is None:
            raise ConfigError(f"{self.name} is conditional (c_dim={c_dim}): pass c, a [N, {c_dim}] one-hot/float label "
                              "tensor or class indices, to map z to w")
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
        self.check_space(space)  # type: ignore[attr-defined]
        z = torch.randn([int(n), self.config.z_dim], generator=seeded_generator(seed)).to(self.device)
        if space == "z":
            return z
        with torch.no_grad():
            return self.convert(z, "z", space, c=c, **kw)  # type: ignore[attr-defined]

    def truncated(self, latent: Tensor, space: str, psi: float) -> Tensor:
        """``w_avg + psi (w - w_avg)`` in W, for latents of any space W reaches (result in ``space``)."""
        return self.convert(latent, space, space, truncation_psi=psi)  # type: ignore[attr-defined]

    def split_styles(self, flat: Tensor) -> list[Tensor]:
        """``[N, sum(style_dims)]`` -> list of ``[N, style_dims[i]]`` (views)."""
        flat = self.check_latent(flat, "s")  # type: ignore[attr-defined]
        return list(torch.split(flat, self.style_dims, dim=1))  # type: ignore[attr-defined]

    def join_styles(self, styles: Sequence[Tensor]) -> Tensor:
        """Inverse of ``split_styles``."""
        dims = self.style_dims  # type: ignore[attr-defined]
        if len(styles) != len(dims) or any(s.ndim != 2 or s.shape[1] != d for s, d in zip(styles, dims)):
            got = [list(s.shape) for s in styles]
            raise LatentSpaceError(f"join_styles needs {len(dims)} tensors [N, d] with d = {dims}, got {got}")
        return torch.cat(list(styles), dim=1)
