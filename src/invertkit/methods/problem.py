"""What every optimisation method shares: the generator, the observation, the degradation, the
objective with its target data prepared once, and the evaluation of candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..degradations import Degradation
from ..generators.base import Generator
from ..objectives.combined import Objective, index_prepared
from .variables import Variables


@dataclass
class Problem:
    """Minimise ``objective(D(G(latent)), observation)`` per image.

    Attributes:
        observation: ``N x C' x H' x W'`` what was observed (the images themselves without a degradation).
        degradation: operator applied to reconstructions inside the loss, or None.
        prepared: the objective's target data for the N observations.
    """

    G: Generator
    space: str
    observation: Tensor
    objective: Objective
    degradation: Degradation | None
    prepared: dict[str, Any]

    @classmethod
    def build(cls, G: Generator, space: str, observation: Tensor, objective: Objective, degradation: Degradation | None) -> Problem:
        return cls(G, space, observation, objective, degradation, objective.prepare(observation))

    @property
    def n(self) -> int:
        return self.observation.shape[0]

    def observe(self, images: Tensor) -> Tensor:
        return self.degradation(images) if self.degradation is not None else images

    def prepared_for(self, image_index: Tensor | None) -> dict[str, Any]:
        """Target data for candidates fitting images ``image_index`` (None: one candidate per image, in order)."""
        return self.prepared if image_index is None else index_prepared(self.prepared, image_index)

    def loss(
        self, variables: Variables, prepared: dict[str, Any], perturb: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Per-candidate total loss ``[B]``, its unweighted terms, and the rendered images."""
        latent = variables.latent if perturb is None else variables.latent + perturb
        images = variables.render(latent)
        total, parts = self.objective(
            self.observe(images), prepared, G=self.G, latent=latent, space=variables.base, noise=variables.noise or None,
            images=images,
        )
        return total, parts, images

    @torch.no_grad()
    def loss_of_latents(self, latents: Tensor, image_index: Tensor | None) -> Tensor:
        """Total loss ``[B]`` of plain latents in the base space (gradient-free methods)."""
        return self.loss(Variables(self.G, self.space, latents), self.prepared_for(image_index))[0]
