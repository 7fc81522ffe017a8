"""Prompt-to-Prompt attention control (Hertz et al. 2023, "Prompt-to-Prompt Image Editing with Cross
Attention Control"), as its authors' code and PnP Inversion's benchmark code run it.

In the conditional block of every network call (see ``control``), the target branch's attention is
built from the source branch's:

- **cross-attention**, on sampling steps ``step < int(cross_steps * S)``: the target takes the source's
  maps through the token mapper (``replace``: word swap, ``refine``: aligned words), times a per-token
  ``reweight`` (``{word: scale}``, the authors' equalizer: scale the attention of target words);
  afterwards the target's own maps;
- **self-attention**, on steps ``step < int(self_steps * S)``: the target takes the source's maps, in
  layers whose key count is at most a quarter of the latent's pixels (the authors' ``<= 32**2`` on
  Stable Diffusion's 64 x 64 latents: every layer but the full-resolution ones);
- **local blending** (``blend = (source words, target words)``): after step ``j`` with ``j + 1 >
  int(blend_start * S)``, the cross-attention maps of those words, summed over the steps so far and
  averaged over heads and the layers at a quarter of the latent's side (the authors' 16 x 16 layers of a
  64 x 64 latent), are max-pooled (3 x 3), resized to the latent, divided by their maximum and cut at
  ``blend_threshold`` (0.3); the target latent outside the union of the source and target masks is
  replaced by the source latent: ``x_t = x_s + mask (x_t - x_s)``.

The unconditional block is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .control import Controller
from .processor import Site
from .tokens import refine_mapper, replace_mapper, word_rows

Mode = Literal["replace", "refine"]


@dataclass(frozen=True)
class P2POptions:
    """Prompt-to-Prompt settings (defaults: the P2P paper's 0.8 / 0.4; PIE-Bench runs use 0.4 / 0.6)."""

    mode: Mode = "replace"
    cross_steps: float = 0.8
    self_steps: float = 0.4
    blend: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    blend_threshold: float = 0.3
    blend_start: float = 0.2
    reweight: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("replace", "refine"):
            raise ConfigError(f"p2p mode {self.mode!r} is not known; use replace or refine")
        for name in ("cross_steps", "self_steps", "blend_threshold", "blend_start"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"p2p {name}={value} must lie in [0, 1]")
        for word, scale in self.reweight.items():
            if not (scale == scale and abs(scale) < 1e3):
                raise ConfigError(f"p2p reweight of {word!r} is {scale}; give a finite scale (e.g. 2 to strengthen, 0.5 to weaken)")


class PromptToPrompt(Controller):
    """Prompt-to-Prompt for ``steps`` sampling steps on latents of ``latent_hw``, with the word lists of
    the source and target prompts (``None``: unknown words; then only ``replace`` with equal token
    counts, and no blend or reweight by word). ``mask``: the last local-blend mask ``[n, 1, h, w]``."""

    def __init__(self, options: P2POptions, steps: int, latent_hw: tuple[int, int], tokens: tuple[int, int],
                 source_words: list[str] | None, target_words: list[str] | None) -> None:
        super().__init__()
        self.options = options
        self.steps = steps
        self.latent_hw = latent_hw
        self.cross_until = int(options.cross_steps * steps)
        self.self_until = int(options.self_steps * steps)
        self.blend_after = int(options.blend_start * steps)
        known = source_words is not None and target_words is not None
        if options.mode == "refine" and not known:
            raise ConfigError("p2p refine aligns words, but this model's prompts have no word list; use replace")
        if options.mode == "replace":
            self.mapper: Tensor | None = replace_mapper(source_words or tokens[0], target_words or tokens[1])
            self.index, self.alphas = None, None
        else:
            self.mapper = None
            self.index, self.alphas = refine_mapper(source_words, target_words)  # type: ignore[arg-type]
        self.equalizer = torch.ones(tokens[1])
        if options.reweight:
            if target_words is None:
                raise ConfigError("p2p reweight names words, but this model's prompts have no word list")
            for word, scale in options.reweight.items():
                self.equalizer[word_rows(target_words, [word], "p2p reweight")] = float(scale)
        self.blend_rows: tuple[list[int], list[int]] | None = None
        if options.blend is not None:
            if not known:
                raise ConfigError("p2p blend names words, but this model's prompts have no word list")
            self.blend_rows = (word_rows(source_words, list(options.blend[0]), "p2p blend (source words)"),  # type: ignore[arg-type]
                               word_rows(target_words, list(options.blend[1]), "p2p blend (target words)"))  # type: ignore[arg-type]
        self.store: dict[str, Tensor] = {}  # site -> summed maps of the conditional block [2n, Q, K]
        self.mask: Tensor | None = None

    # ---- attention ---------------------------------------------------------------------------
    def _cross(self, base: Tensor, own: Tensor) -> Tensor:
        """Target maps from source maps ``base`` and the target's ``own`` ``[n, heads, Q, K]``."""
        if self.mapper is not None:
            new = torch.einsum("bhqk,kn->bhqn", base, self.mapper.to(base))
        else:
            a = self.alphas.to(base)  # type: ignore[union-attr]
            new = base[..., self.index.to(base.device)] * a + own * (1 - a)  # type: ignore[union-attr]
        return new * self.equalizer.to(base)

    def bind(self, network: nn.Module, sites: list[Site]) -> None:
        if any(s.place in ("joint", "single") for s in sites):  # their joint attention has no separate maps to swap
            raise ConfigError(f"Prompt-to-Prompt needs a UNet with cross-attention; {type(network).__name__} has joint "
                              "attention (use ValueSharing for FLUX / SD3)")

    def attention(self, site: Site, cross: bool, probs: Tensor) -> Tensor:
        layout = self.layout
        if layout is None:
            return probs
        n = layout.n
        out = probs
        for b0 in layout.conditional_blocks():
            block = probs[b0:b0 + 2 * n]
            if cross and self.blend_rows is not None:
                self._remember(site, block)
            base, own = block[:n], block[n:]
            if cross and self.step < self.cross_until:
                new = self._cross(base, own)
            elif not cross and self.step < self.self_until and probs.shape[-1] * 4 <= self.latent_hw[0] * self.latent_hw[1]:
                new = base
            else:
                continue
            if out is probs:
                out = probs.clone()
            out[b0 + n:b0 + 2 * n] = new
        return out

    def _remember(self, site: Site, block: Tensor) -> None:
        maps = block.mean(1)  # [2n, Q, K], averaged over heads
        prev = self.store.get(site.name)
        self.store[site.name] = maps if prev is None else prev + maps

    # ---- local blend -------------------------------------------------------------------------
    def blend_mask(self) -> Tensor | None:
        """The local-blend mask ``[n, 1, h, w]`` (1: may change) from the maps stored so far, or None."""
        if self.blend_rows is None or not self.store:
            return None
        h, w = self.latent_hw
        sizes = {name: int(round(m.shape[1] ** 0.5)) for name, m in self.store.items()}
        want = max(1, min(h, w) // 4)
        # the layers at a quarter of the latent's side, else the nearest resolution the model has
        best = min(sizes.values(), key=lambda s: (abs(s - want), -s))
        chosen = [m for name, m in self.store.items() if sizes[name] == best and m.shape[1] == best * best]
        if not chosen:
            return None
        maps = torch.stack(chosen).mean(0)  # [2n, Q, K]
        n = maps.shape[0] // 2
        src = maps[:n, :, self.blend_rows[0]].sum(-1)
        tgt = maps[n:, :, self.blend_rows[1]].sum(-1)
        both = torch.cat([src, tgt]).reshape(2 * n, 1, best, best).float()
        both = F.max_pool2d(both, 3, 1, 1)
        both = F.interpolate(both, size=(h, w))  # nearest, as the authors'
        both = both / both.amax((2, 3), keepdim=True).clamp_min(1e-12)
        cut = both > self.options.blend_threshold
        return (cut[:n] | cut[n:]).to(maps.dtype)

    def on_step(self, j: int, x: Tensor) -> Tensor:
        super().on_step(j, x)
        if self.blend_rows is None or j + 1 <= self.blend_after:
            return x
        mask = self.blend_mask()
        if mask is None:
            return x
        self.mask = mask
        n = x.shape[0] // 2
        src, tgt = x[:n], x[n:]
        return torch.cat([src, src + mask.to(x) * (tgt - src)])
