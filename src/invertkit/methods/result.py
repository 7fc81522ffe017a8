"""The result every inversion method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class InversionResult:
    """Latents found for a batch of images, with everything needed to judge and reproduce them.

    Attributes:
        latents: ``[N, *latent_shape(space)]`` in ``space``, on the generator's device.
        space: the latent space name.
        reconstructions: ``N x C x H x W`` in [-1, 1]: the generator's images of ``latents``.
        history: per-step curves, name -> tensor ``[steps, N]`` (CPU), e.g. ``"loss"``.
        metrics: one dict per image, e.g. ``{"psnr": 23.1}`` (protocol in ``invertkit.metrics``).
        timings: ``seconds``, ``steps``, ``evaluations`` (generator forward passes per image).
        config: the fully resolved options of the run (for run.json).
        extras: other optimised tensors (StyleGAN2 noise maps, layerwise intermediate state).
    """

    latents: Tensor
    space: str
    reconstructions: Tensor
    history: dict[str, Tensor] = field(default_factory=dict)
    metrics: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
