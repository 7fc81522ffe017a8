"""Attention-value sharing for rectified-flow transformers (RF-Solver-Edit, Wang et al. 2024, "Taming
Rectified Flow for Inversion and Editing"; FireFlow, Deng et al. 2024, "FireFlow: Fast Inversion of
Rectified Flow for Image Semantic Editing"), for FluxTransformer2DModel and SD3Transformer2DModel.

On the first ``inject_steps`` sampling steps (every network evaluation of those steps, the midpoint
evaluations of second-order solvers included), in the chosen blocks, the target rows' attention values
``V`` are replaced by the source rows' (queries and keys stay the target's own):

- FLUX: the single-stream blocks ``first_block .. last_block`` (the authors' ``info['id'] > 19`` of
  FLUX.1's 38 single blocks, i.e. 20..37; by default the same fraction of any model's single blocks,
  ``int(20 * count / 38)`` to the last);
- SD3: the joint blocks from ``int(20 * count / 38)`` to the last (the authors have no SD3 code; this
  is the same fraction of depth);
- ``tokens="all"`` shares the whole sequence's values, as the authors do (a FLUX single-stream block's
  ``V`` spans the prompt and image tokens); ``"image"`` shares only the image tokens' values.

``inject_steps`` defaults to 2: RF-Solver-Edit's example scripts use 2-5 of 15-25 steps and its README
advises 2-8 of 30 (its ``--inject`` argument's default, 20, is not what any script runs); FireFlow's
scripts use 1 of 8-15. Tune it: it trades structure preservation against the edit.

Where this differs from the authors' code, and why: the authors store ``V`` during the inversion pass
(at the inversion step that matches each sampling step) and read it back while sampling the target; here
the source branch (the method's reconstruction, same batch) supplies ``V`` at the same evaluation. The
two agree where the inversion is exact, and this way any flow method's sampler serves, with no stored
features. With classifier-free guidance (SD3), each block's target rows take that block's source rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from ...errors import ConfigError
from .control import Controller
from .processor import Site

_BLOCK = re.compile(r"^(single_transformer_blocks|transformer_blocks)\.(\d+)\.")
Tokens = Literal["all", "image"]


@dataclass(frozen=True)
class ShareOptions:
    """Value-sharing settings (defaults: RF-Solver-Edit / FireFlow for FLUX.1, see the module notes)."""

    inject_steps: int = 2
    first_block: int | None = None
    last_block: int | None = None
    tokens: Tokens = "all"
    unconditional: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.inject_steps, bool) or not isinstance(self.inject_steps, int) or self.inject_steps < 0:
            raise ConfigError(f"value sharing inject_steps={self.inject_steps!r} must be a whole number >= 0")
        if self.tokens not in ("all", "image"):
            raise ConfigError(f"value sharing tokens={self.tokens!r} is not known; use all or image")
        for name in ("first_block", "last_block"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"value sharing {name}={value!r} must be a block index >= 0")


def _block(name: str) -> tuple[str, int] | None:
    m = _BLOCK.match(name)
    return None if m is None else (m.group(1), int(m.group(2)))


class ValueSharing(Controller):
    """Share the source branch's attention values with the target branch. ``sites``: the attention
    sites chosen when installed on a network (FLUX single-stream or SD3 joint blocks)."""

    def __init__(self, options: ShareOptions | None = None) -> None:
        super().__init__()
        self.options = options or ShareOptions()
        self.sites: set[str] = set()

    def bind(self, network: nn.Module, sites: list[Site]) -> None:
        blocks = [b for b in (_block(s.name) for s in sites) if b is not None]
        kinds = {kind for kind, _ in blocks}
        if not kinds:
            raise ConfigError(f"value sharing needs a FluxTransformer2DModel or SD3Transformer2DModel; "
                              f"{type(network).__name__} has no transformer blocks")
        kind = "single_transformer_blocks" if "single_transformer_blocks" in kinds else "transformer_blocks"
        count = 1 + max(i for k, i in blocks if k == kind)
        first = int(20 * count / 38) if self.options.first_block is None else self.options.first_block
        last = count - 1 if self.options.last_block is None else self.options.last_block
        if not first <= last < count:
            raise ConfigError(f"value sharing blocks {first}..{last} are not among {type(network).__name__}'s "
                              f"{count} {kind.replace('_', ' ')} (0..{count - 1})")
        self.sites = {s.name for s in sites if (b := _block(s.name)) is not None and b[0] == kind and first <= b[1] <= last}

    def joint(self, site: Site, q: Tensor, k: Tensor, v: Tensor, image: slice) -> tuple[Tensor, Tensor, Tensor]:
        layout = self.layout
        if layout is None or self.step >= self.options.inject_steps or site.name not in self.sites:
            return q, k, v
        n = layout.n
        blocks = ([b * 2 * n for b in range(len(layout.conditional))] if self.options.unconditional
                  else layout.conditional_blocks())
        tokens = image if self.options.tokens == "image" else slice(None)
        out = v.clone()
        for b0 in blocks:
            out[b0 + n:b0 + 2 * n, :, tokens] = v[b0:b0 + n, :, tokens]
        return q, k, out
