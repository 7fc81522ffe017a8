"""The inversion objective: a weighted sum of image terms and latent terms, per image.

Spec strings (CLI ``--loss``) name terms with weights: ``"mse=1,perceptual=0.8,prior=0.01"``.

- image terms (``IMAGE_LOSSES``): ``mse``, ``l1``, ``perceptual`` (offline MobileNetV2), ``lpips``,
  ``lpips-alex``, ``lpips-vgg`` (need backbone weight files); applied to the degraded
  reconstruction against the observation, with target features computed once per run;
- latent terms: ``prior`` (distance to the space's prior, see ``latent_prior``), ``noise`` (NVIDIA
  projector's noise-map regulariser), ``nscd`` (LSAP's alignment loss, StyleGAN2), ``spread``
  (distance of w+ rows to their mean, e4e-style).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from .image_losses import IMAGE_LOSSES

LATENT_TERMS = ("prior", "noise", "nscd", "spread")


def parse_loss_spec(spec: str | dict[str, float]) -> dict[str, float]:
    """``"mse=1,perceptual=0.8"`` -> ``{"mse": 1.0, "perceptual": 0.8}``; a bare name means weight 1."""
    if isinstance(spec, dict):
        items = dict(spec)
    else:
        items = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, weight = part.partition("=")
            try:
                items[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise ConfigError(f"--loss {spec!r}: weight of {name!r} is not a number") from None
    for name, weight in items.items():  # nan / inf would turn every image's loss, and result, into NaN
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"--loss {spec!r}: weight of {name!r} is {weight!r}; a weight is a finite number >= 0")
    known = set(IMAGE_LOSSES.names()) | set(LATENT_TERMS)
    unknown = sorted(set(items) - known)
    if unknown:
        raise ConfigError(f"unknown loss term(s) {unknown}; known: {', '.join(sorted(known))}")
    if not any(k in IMAGE_LOSSES for k, w in items.items() if w):
        raise ConfigError(f"--loss {spec!r} has no image term; add e.g. mse=1")
    return {k: float(w) for k, w in items.items() if w}


def index_prepared(prepared: Any, index: Tensor) -> Any:
    """Select rows ``index`` of every tensor inside prepared target data (lists, tuples, dicts)."""
    if isinstance(prepared, Tensor):
        return prepared[index]
    if isinstance(prepared, (list, tuple)):
        return type(prepared)(index_prepared(p, index) for p in prepared)
    if isinstance(prepared, dict):
        return {k: index_prepared(v, index) for k, v in prepared.items()}
    return prepared


def _latent_term(name: str) -> Callable[..., Tensor]:
    # imported lazily: latent terms pull in StyleGAN2-specific code only when used
    from . import latent_terms

    if name == "prior":
        return lambda G, latent, space, noise: latent_terms.latent_prior(G, latent, space)
    if name == "noise":
        return lambda G, latent, space, noise: latent_terms.noise_regularizer(noise) if noise else torch.zeros(latent.shape[0], device=latent.device)
    if name == "spread":
        return lambda G, latent, space, noise: latent_terms.wplus_spread(latent) if latent.dim() == 3 else torch.zeros(latent.shape[0], device=latent.device)
    from .nscd import nscd_loss

    return lambda G, latent, space, noise: nscd_loss(G, latent, space)


@dataclass
class Objective:
    """Weighted per-image loss. ``prepare`` once, then call per step."""

    weights: dict[str, float]
    device: torch.device | str = "cpu"
    image_losses: dict[str, Any] = field(default_factory=dict)
    latent_fns: dict[str, Callable[..., Tensor]] = field(default_factory=dict)
    # terms computed from the latent and the rendered (undegraded) image: fn(latent, images) -> [B]
    render_fns: dict[str, Callable[[Tensor, Tensor], Tensor]] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: str | dict[str, float], device: torch.device | str = "cpu") -> Objective:
        weights = parse_loss_spec(spec)
        obj = cls(weights, device)
        for name in weights:
            if name in IMAGE_LOSSES:
                obj.image_losses[name] = IMAGE_LOSSES.get(name)(device=device)
            else:
                obj.latent_fns[name] = _latent_term(name)
        return obj

    def add_term(self, name: str, weight: float, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        """Add a term ``weight * fn(latent, images)`` (per-image ``[B]``) computed from the latent and its render."""
        if name in self.weights:
            raise ConfigError(f"loss term {name!r} is given twice")
        if not math.isfinite(float(weight)):
            raise ConfigError(f"loss term {name!r}: weight {weight!r} is not a finite number")
        self.weights[name] = float(weight)
        self.render_fns[name] = fn

    def prepare(self, observation: Tensor) -> dict[str, Any]:
        """Target-side data of every image term (features computed once per run)."""
        with torch.no_grad():
            return {name: loss.prepare(observation) for name, loss in self.image_losses.items()}

    def __call__(
        self,
        observed_recon: Tensor,
        prepared: dict[str, Any],
        *,
        G: Generator,
        latent: Tensor,
        space: str,
        noise: dict[str, Tensor] | None = None,
        images: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total ``[B]`` and each term's unweighted value ``[B]``; ``images`` (the undegraded renders)
        are needed only by ``render_fns`` terms."""
        parts: dict[str, Tensor] = {}
        for name, loss in self.image_losses.items():
            parts[name] = loss(observed_recon, prepared[name])
        for name, fn in self.latent_fns.items():
            parts[name] = fn(G, latent, space, noise)
        for name, fn in self.render_fns.items():
            parts[name] = fn(latent, observed_recon if images is None else images)
        total = sum(self.weights[k] * v for k, v in parts.items())
        return total, parts  # type: ignore[return-value]

    def describe(self) -> str:
        return ",".join(f"{k}={v:g}" for k, v in self.weights.items())
