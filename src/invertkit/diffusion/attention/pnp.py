"""Plug-and-play feature and self-attention injection (Tumanyan et al. 2023, "Plug-and-Play Diffusion
Features for Text-Driven Image-to-Image Translation"), as the authors' diffusers code (pnp-diffusers)
runs it, for any diffusers UNet (UNet2DConditionModel, UNet2DModel with attention).

In every network call of an edit (see ``control``), the target rows take from the source rows:

- **features**, on sampling steps ``step < int(feature_steps * S)`` (pnp-diffusers' ``pnp_f_t`` = 0.8):
  the residual branch of the decoder's ResNet block ``feature_layer`` (default ``up_blocks.1.resnets.1``:
  the authors' ``model.unet.up_blocks[1].resnets[1]``, decoder layer 4 in the paper), i.e. the output of
  its ``conv2`` before the skip connection is added (the tensor the authors replace);
- **self-attention queries and keys**, on steps ``step < int(attention_steps * S)`` (``pnp_attn_t`` =
  0.5): in every decoder self-attention layer at or after the feature layer's position (the authors'
  ``up_blocks[1].attentions[1:]``, ``up_blocks[2..3].attentions[*]``: decoder layers 4-11 of Stable
  Diffusion); the target's own values stay.

Like pnp-diffusers, the injection goes into both halves of a guided call (``unconditional=True``); set
it False to change the conditional block only, as Prompt-to-Prompt does.

Where this differs from the authors' code, and why:

- the source branch is the inversion method's own sampler run beside the target in one batch (so any
  inversion method serves, and the features are those of the same step); pnp-diffusers feeds the DDIM-
  inversion latent saved for each step through the UNet with the empty prompt and no guidance;
- with guidance, each block's target rows take the source rows of the same block (unconditional from
  unconditional, conditional from conditional); pnp-diffusers has one source pass for both halves. This
  keeps the edit exact: with the target prompt equal to the source prompt the edit is the reconstruction;
- the step fractions count the method's sampling steps (``int(fraction * S)`` of them, as pnp-diffusers'
  ``timesteps[:int(n * fraction)]``; the original LDM code injects one step more: ``i <= threshold``);
- all transformer blocks of a chosen layer are injected (Stable Diffusion has one per layer; the
  authors name ``transformer_blocks[0]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor, nn

from ...errors import ConfigError
from .control import Controller
from .processor import Site

_LAYER = re.compile(r"^up_blocks\.(\d+)\.(?:resnets|attentions)\.(\d+)(?:\.|$)")


@dataclass(frozen=True)
class PnPOptions:
    """Plug-and-play settings (defaults: pnp-diffusers' ``config_pnp.yaml`` and ``pnp_utils.py``)."""

    feature_steps: float = 0.8
    attention_steps: float = 0.5
    feature_layer: str = "up_blocks.1.resnets.1"
    unconditional: bool = True

    def __post_init__(self) -> None:
        for name in ("feature_steps", "attention_steps"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"pnp {name}={value} must lie in [0, 1]")
        if _LAYER.match(self.feature_layer + ".") is None or ".resnets." not in self.feature_layer:
            raise ConfigError(f"pnp feature_layer={self.feature_layer!r} must name a decoder ResNet block, "
                              "up_blocks.I.resnets.J (e.g. up_blocks.1.resnets.1)")


def _position(name: str) -> tuple[int, int] | None:
    """(up block, layer) of a decoder module name, or None outside the decoder."""
    m = _LAYER.match(name)
    return None if m is None else (int(m.group(1)), int(m.group(2)))


class PlugAndPlay(Controller):
    """Plug-and-play injection for ``steps`` sampling steps. After an edit, ``attention_layers`` lists the
    self-attention sites that were eligible (possibly none: a model without decoder attention at or after
    the feature layer gets feature injection only)."""

    def __init__(self, options: PnPOptions, steps: int) -> None:
        super().__init__()
        self.options = options
        self.steps = steps
        self.feature_until = int(options.feature_steps * steps)
        self.attention_until = int(options.attention_steps * steps)
        self.start = _position(options.feature_layer)
        self.attention_layers: set[str] = set()

    def _blocks(self) -> list[int]:
        layout = self.layout
        if layout is None:
            return []
        if self.options.unconditional:
            return [b * 2 * layout.n for b in range(len(layout.conditional))]
        return layout.conditional_blocks()

    def _inject(self, t: Tensor) -> Tensor:
        """``t`` with every chosen block's target rows replaced by its source rows."""
        n = self.layout.n  # type: ignore[union-attr]
        out = t.clone()
        for b0 in self._blocks():
            out[b0 + n:b0 + 2 * n] = t[b0:b0 + n]
        return out

    # ---- features --------------------------------------------------------------------------------
    def feature_modules(self, network: nn.Module) -> list[tuple[str, nn.Module]]:
        modules = dict(network.named_modules())
        block = modules.get(self.options.feature_layer)
        conv = getattr(block, "conv2", None)
        if not isinstance(conv, nn.Module):
            have = sorted(n for n in modules if re.fullmatch(r"up_blocks\.\d+\.resnets\.\d+", n))
            raise ConfigError(f"pnp feature_layer {self.options.feature_layer!r} is not a ResNet block of "
                              f"{type(network).__name__}; its decoder has {', '.join(have) or 'none'}")
        self.attention_layers = set()
        return [(self.options.feature_layer, conv)]

    def feature(self, name: str, output: Tensor) -> Tensor:
        if self.layout is None or self.step >= self.feature_until:
            return output
        return self._inject(output)

    # ---- self-attention --------------------------------------------------------------------------
    def _chosen(self, site: Site) -> bool:
        pos = _position(site.name)
        return pos is not None and self.start is not None and pos >= self.start

    def qkv(self, site: Site, cross: bool, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if cross or not self._chosen(site):
            return q, k, v
        self.attention_layers.add(site.name)
        if self.layout is None or self.step >= self.attention_until:
            return q, k, v
        return self._inject(q), self._inject(k), v
