"""The analytic Gaussian model behind the Generator interface: a diffusion model or rectified flow with
a **known exact answer**, so methods can be measured against the truth through ``invertkit.invert``.

Data ``N(mu + c * direction, s^2 I)`` per pixel (``analytic.AnalyticGaussian``); its Bayes-optimal
epsilon / v / velocity predictions are closed-form, and so is the probability-flow ODE. Prompts are
scalars ``c`` (``""`` -> 0, ``"up"`` -> +1, ``"down"`` -> -1). Classifier-free guidance with scale w
mixes the two means linearly, so the guided field is again a Gaussian's with condition
``c_u + w (c_c - c_u)``: :meth:`AnalyticGenerator.exact_inversion` gives the exact noise latent of any
image under any guidance, and methods report their ``inversion_error`` against it.

Load it as ``analytic:diffusion`` or ``analytic:flow`` (optionally ``analytic:flow:SIZE``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from invertkit.diffusion.analytic import AnalyticGaussian, discrete_alpha_bar_fn
from invertkit.diffusion.guidance import Guidance
from invertkit.diffusion.model import DiffusionModel, ExactInversion
from invertkit.diffusion.schedules import DiffusionGrid, FlowGrid, alphas_cumprod, final_alpha_cumprod
from invertkit.errors import ConfigError

SCHEDULERS = {
    "diffusion": {"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_schedule": "linear",
                  "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": "epsilon", "set_alpha_to_one": True,
                  "timestep_spacing": "trailing"},  # the noisiest level stays t = 999 for every step count
    "flow": {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0},
}
PROMPTS = {"": 0.0, "up": 1.0, "down": -1.0}


class AnalyticGenerator(DiffusionModel, ExactInversion):
    """Greyscale ``size x size`` images from Gaussian data with a smooth mean and ``s = 0.5``."""

    conditional = True
    family_label = "the analytic Gaussian models (analytic:diffusion, analytic:flow[:SIZE])"

    def __init__(self, family: str = "diffusion", size: int = 8, s: float = 0.5) -> None:
        if family not in SCHEDULERS:
            raise ConfigError(f"analytic model family {family!r}: use analytic:diffusion or analytic:flow")
        self.family, self.scheduler = family, dict(SCHEDULERS[family])
        self.prediction_type = "flow" if family == "flow" else "epsilon"
        self.name, self.resolution, self.channels = f"analytic-{family}", size, 1
        self._latent_shape = (1, size, size)
        u = torch.linspace(-1, 1, size, dtype=torch.float64)
        mu = 0.5 * torch.sin(math.pi * u)[None, :, None] * torch.cos(math.pi * u / 2)[None, None, :]
        direction = 0.3 * torch.outer(u, torch.ones_like(u))[None]
        self.model = AnalyticGaussian(mu, s, direction)
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> AnalyticGenerator:
        self._device = torch.device(device)
        return self

    def weights(self) -> dict[str, Tensor]:
        """The data model's mean and direction (its only parameters besides the scalar spread)."""
        return {"mu": self.model.mu, "direction": self.model.direction, "s": torch.tensor(float(self.model.s))}

    def cond(self, prompt: str | Tensor | None, dtype: torch.dtype = torch.float32) -> Tensor:
        if isinstance(prompt, Tensor):
            return prompt.to(self.device, dtype)
        key = "" if prompt is None else prompt
        if key not in PROMPTS:
            raise ConfigError(f"{self.name}: no prompt named {key!r} (known: {', '.join(map(repr, PROMPTS))})")
        return torch.tensor(PROMPTS[key], dtype=dtype, device=self.device)

    def denoiser(self, dtype: torch.dtype = torch.float32):
        if self.family == "flow":
            return self.model.flow_denoiser(time_scale=float(self.scheduler["num_train_timesteps"]))
        levels = discrete_alpha_bar_fn(alphas_cumprod(self.scheduler), final_alpha_cumprod(self.scheduler))
        return self.model.diffusion_denoiser(levels, self.prediction_type)

    def encode(self, images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        return images.to(self.device, dtype)

    def decode(self, latents: Tensor) -> Tensor:
        return latents

    def exact_inversion(self, x0: Tensor, grid: DiffusionGrid | FlowGrid, guidance: Guidance) -> Tensor:
        """The exact ODE solution at the grid's noisiest level through clean ``x0 [N, 1, H, W]``, under
        ``guidance`` (its effective condition is ``uncond + scale (cond - uncond)``)."""
        c = guidance.cond if guidance.cond is not None else torch.tensor(0.0)
        if guidance.scale != 1.0:
            c = guidance.uncond + guidance.scale * (guidance.cond - guidance.uncond)
        c = torch.as_tensor(c, dtype=x0.dtype)
        if self.family == "flow":
            return self.model.flow_ode_map(x0, 0.0, float(grid.sigmas[0]), c)
        return self.model.diffusion_ode_map(x0, float(grid.alpha_bar[-1]), float(grid.alpha_bar[0]), c)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"data": f"N(mu + c * direction, {self.model.s}^2 I) per pixel", "prompts": list(PROMPTS)})
        return info


def load_analytic(spec: str) -> AnalyticGenerator:
    """``"diffusion"``, ``"flow"``, ``"flow:16"`` (family and image size) -> an AnalyticGenerator."""
    family, _, size = spec.partition(":")
    if size and not size.isdigit():
        raise ConfigError(f"analytic:{spec}: the size after the family must be an integer, e.g. analytic:flow:16")
    return AnalyticGenerator(family, int(size) if size else 8)
