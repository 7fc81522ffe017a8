"""The diffusion / rectified-flow model interface: the capability every diffusion method asks for.

:class:`DiffusionModel` is a :class:`~invertkit.generators.base.Generator` with one latent space,
``"noise"`` (the state at the noisiest level of the sampler, ``[C_latent, h, w]``), plus what the
methods need: the denoiser in a chosen dtype, conditioning from prompt names, classifier-free
guidance, the model's own level grid, and the encoder / decoder between images and clean latents.
``synthesize(noise, "noise")`` samples deterministically (DDIM for discrete diffusion, Euler for
flows) with the default steps and the empty prompt; :meth:`DiffusionModel.sample` takes the options.

:class:`ExactInversion` is the capability of models whose probability-flow ODE is known in closed
form (the analytic Gaussian model): methods score themselves against the true noise latent.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator, seeded_generator
from ..generators.capabilities import Capability, _register
from .guidance import Guidance
from .results import StepHook
from .schedules import DiffusionGrid, FlowGrid, diffusion_grid, flow_grid, x0_clipper

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parse_dtype(name: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` -> torch dtype (float64 is for exactness checks on CPU)."""
    if name not in DTYPES:
        raise ConfigError(f"dtype={name!r} is not supported; use one of {', '.join(DTYPES)}")
    return DTYPES[name]


@_register
class DiffusionModel(Generator, Capability):
    """What every diffusion / flow model offers the methods (shared by the diffusers-folder models and
    the analytic Gaussian model).

    Attributes:
        family: ``"diffusion"`` or ``"flow"``.
        prediction_type: ``"epsilon"``, ``"v_prediction"``, ``"sample"`` or ``"flow"`` (velocity).
        scheduler: the model's scheduler config dict.
        default_steps: sampling steps used by ``synthesize`` when none are given.
        conditional: whether the network takes a condition (prompt embeddings or class labels).
    """

    about: ClassVar[str] = "a diffusion or rectified-flow model (the DiffusionModel interface)"
    spaces = ("noise",)
    family: str
    prediction_type: str
    scheduler: dict[str, Any]
    default_steps: int = 50
    _latent_shape: tuple[int, ...]
    conditional: bool

    # ---- what subclasses implement ------------------------------------------------------------
    @abc.abstractmethod
    def denoiser(self, dtype: torch.dtype = torch.float32) -> Any:
        """The network as ``(x [N, *latent_shape], t [N], cond) -> output`` computed in ``dtype``."""

    @abc.abstractmethod
    def cond(self, prompt: str | Tensor | None, dtype: torch.dtype = torch.float32) -> Any:
        """The conditioning for a prompt name (``None`` and ``""``: the empty prompt)."""

    @abc.abstractmethod
    def encode(self, images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Clean latents ``[N, *latent_shape]`` of images ``N x C x H x W`` in [-1, 1]."""

    @abc.abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """Images ``N x C x H x W`` (nominal [-1, 1]) of clean latents, in the latents' dtype."""

    def prompt_words(self, prompt: str | None) -> list[str] | None:
        """The word behind each row of ``cond(prompt)``'s embedding (``""`` for padding rows), or None
        when the model cannot say (precomputed embeddings with no vocabulary). Prompt-to-Prompt uses it
        to align the tokens of two prompts and to find a word's cross-attention maps."""
        return None

    def add_prompts(self, path: str | Path) -> None:
        """Add named prompt embeddings from a safetensors file (models with a fixed prompt set refuse)."""
        raise ConfigError(f"{self.name} has a fixed set of prompts; --prompt-embeds applies to diffusers models")

    # ---- Generator ----------------------------------------------------------------------------
    def latent_shape(self, space: str) -> tuple[int, ...]:
        self.check_space(space)
        return self._latent_shape

    def sample_latent(self, n: int, space: str = "noise", *, seed: int | None = None) -> Tensor:
        self.check_space(space)
        return torch.randn((n, *self._latent_shape), generator=seeded_generator(seed)).to(self.device)

    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        self.check_space(src)
        self.check_space(dst)
        return latent

    def mean_latent(self, space: str) -> Tensor:
        return torch.zeros((1, *self.latent_shape(space)), device=self.device)

    def synthesize(self, latent: Tensor, space: str = "noise", *, steps: int | None = None, prompt: str | None = None,
                   guidance: float = 1.0, negative: str = "", dtype: str = "float32") -> Tensor:
        """Sample images from noise latents (see :meth:`sample`); with no options: the default steps,
        the empty prompt, no guidance."""
        self.check_space(space)
        return self.sample(latent, steps=steps, prompt=prompt, guidance=guidance, negative=negative, dtype=dtype)

    @torch.no_grad()
    def sample(self, latent: Tensor, *, steps: int | None = None, prompt: str | None = None, guidance: float = 1.0,
               negative: str = "", dtype: str = "float32", on_step: StepHook | None = None) -> Tensor:
        """Sample images ``N x C x H x W`` in [-1, 1] from noise latents ``[N, *latent_shape]`` by DDIM
        (diffusion) or Euler (flow) with ``steps`` steps, prompt ``prompt`` and guidance ``guidance``;
        ``on_step(j, x) -> x`` runs after each step (``progress.Phase.hook``: progress)."""
        from .ddim import ddim_sample
        from .flow import flow_euler_sample

        dt = parse_dtype(dtype)
        if not isinstance(latent, Tensor):
            raise LatentSpaceError(f"{self.name}: a noise latent must be a tensor, got {type(latent).__name__}")
        self.check_latent(latent, "noise")  # shape check only: it returns float32, we keep float64 inputs
        x = (latent if latent.dim() == 4 else latent.unsqueeze(0)).to(self.device, dt)
        grid, g = self.grid(steps or self.default_steps), self.guidance(prompt, guidance, negative, dt)
        if self.family == "flow":
            end = flow_euler_sample(self.denoiser(dt), x, grid, guidance=g, on_step=on_step).x
        else:
            # the scheduler's x0 clipping applies to plain sampling (inversion methods run the unclipped ODE)
            end = ddim_sample(self.denoiser(dt), x, grid, prediction_type=self.prediction_type, guidance=g,
                              clip_x0=x0_clipper(self.scheduler), on_step=on_step).x
        return self.decode(end).float()

    # ---- what the methods share ---------------------------------------------------------------
    def guidance(self, prompt: str | None, scale: float, negative: str | None = "", dtype: torch.dtype = torch.float32) -> Guidance:
        """Classifier-free guidance with ``prompt`` against ``negative`` (``""`` = the null embedding)."""
        if scale != 1.0 and not self.conditional:
            raise ConfigError(f"{self.name} is unconditional; guidance={scale} needs a prompt-conditioned model (use 1)")
        if scale == 1.0:
            return Guidance(cond=self.cond(prompt, dtype))
        return Guidance(cond=self.cond(prompt, dtype), uncond=self.cond(negative, dtype), scale=float(scale))

    def grid(self, steps: int) -> DiffusionGrid | FlowGrid:
        """The model's own level chain for ``steps`` sampling steps."""
        return flow_grid(self.scheduler, steps) if self.family == "flow" else diffusion_grid(self.scheduler, steps)

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update({"family": self.family, "prediction_type": self.prediction_type,
                     "scheduler": self.scheduler.get("_class_name", "?")})
        return info


@_register
class ExactInversion(Capability):
    """A model whose probability-flow ODE is solved in closed form: the true noise latent of any image."""

    about: ClassVar[str] = "a closed-form probability-flow ODE (the exact inversion)"

    @abc.abstractmethod
    def exact_inversion(self, x0: Tensor, grid: DiffusionGrid | FlowGrid, guidance: Guidance) -> Tensor:
        """The exact noise latent at the grid's noisiest level of clean latents ``x0 [N, ...]`` under ``guidance``."""
