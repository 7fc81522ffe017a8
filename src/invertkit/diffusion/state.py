"""What a diffusion / flow inversion finds, and how it is sampled back: the pieces a saved inversion
needs to be re-rendered or edited later, below the methods that produce them.

- :class:`DiffusionOptions`: the sampler settings every method has (steps, prompt, negative prompt,
  guidance scale, dtype); each method's options dataclass extends it.
- :class:`Setup`: one run's fixed inputs resolved against a model (denoiser in the run dtype, level
  grid, guidance, clean latents).
- :class:`DiffusionState`: the noise latent ``x_T`` plus whatever the method needs to come back.
- :data:`SAMPLERS`: method name -> how to sample its state back (registered by each method in
  ``invertkit.methods.diffusion``); :func:`resample` uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import ConfigError
from ..optionfields import Options, option
from ..registry import Registry
from ..untrusted import short_repr
from .guidance import Guidance
from .model import DiffusionModel, parse_dtype
from .results import StepHook
from .schedules import DiffusionGrid, FlowGrid


@dataclass(frozen=True)
class DiffusionOptions(Options):
    """Options every diffusion / flow method has."""

    steps: int = option(50, "sampling / inversion steps on the model's own scheduler grid", min=1)
    prompt: str | None = option(None, "name of a prompt embedding (unset: the empty prompt; unconditional models: unset)")
    negative: str = option("", "the embedding guidance pushes away from (empty: the null embedding)")
    guidance: float = option(1.0, "classifier-free guidance scale (1: conditional only, no extra evaluation)")
    dtype: str = option("float32", "arithmetic of the inversion: float32, or float64 for exactness checks (CPU)", choices=("float32", "float64"))


@dataclass
class Setup:
    """One run's fixed inputs: the denoiser in the run dtype, the grid, the guidance and ``x0 [N, ...]``
    (None when the setup only samples a saved state back); ``image_ids``: each image's position in the
    whole run, for per-image seeds (a stochastic method draws the same for an image in any batch)."""

    G: DiffusionModel
    denoiser: Callable[..., Tensor]
    grid: DiffusionGrid | FlowGrid
    prediction_type: str
    guidance: Guidance
    x0: Tensor | None
    dtype: torch.dtype
    options: Any
    image_ids: list[int] | None = None


@dataclass
class DiffusionState:
    """What an inversion found: ``x_T [N, ...]`` (the noise latent) and method-specific ``tensors``
    (each batched over images ``[N, ...]``, or a list of per-step tensors ``[N, ...]``), with the
    inversion's ``nfe`` (model evaluations, a guided evaluation counting 2). ``info`` goes into the
    run's config; ``info["ode_latent"] = False`` marks an ``x_T`` that is not meant to solve the
    guided probability-flow ODE (so no ``inversion_error`` is scored against the exact one).
    ``nfe_per_image`` (optional): evaluations each image needed when they differ (per-image early stop)."""

    x_T: Tensor
    nfe: int
    tensors: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    nfe_per_image: list[float] | None = None

    def select(self, index: list[int]) -> DiffusionState:
        """The state of images ``index`` (in that order)."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.x_T.device)
        tensors = {k: ([t.index_select(0, idx.to(t.device)) for t in v] if isinstance(v, list) else v.index_select(0, idx.to(v.device)))
                   for k, v in self.tensors.items()}
        per = None if self.nfe_per_image is None else [self.nfe_per_image[i] for i in index]
        return DiffusionState(self.x_T.index_select(0, idx), self.nfe, tensors, dict(self.info), per)

    @staticmethod
    def concat(states: list[DiffusionState]) -> DiffusionState:
        """Images of several states of the same method, in order."""
        first = states[0]
        tensors: dict[str, Any] = {}
        for k, v in first.tensors.items():
            if isinstance(v, list):
                tensors[k] = [torch.cat([s.tensors[k][j] for s in states]) for j in range(len(v))]
            else:
                tensors[k] = torch.cat([s.tensors[k] for s in states])
        per = None
        if all(s.nfe_per_image is not None for s in states):
            per = [x for s in states for x in s.nfe_per_image]  # type: ignore[union-attr]
        return DiffusionState(torch.cat([s.x_T for s in states]), max(s.nfe for s in states), tensors, dict(first.info), per)


class SampleFn(Protocol):
    """``sample(setup, state, guidance, on_step=None) -> (clean latent, nfe)``: a method's way back from
    its state; ``on_step`` (``results.StepHook``) runs after every sampling step."""

    def __call__(self, setup: Setup, state: DiffusionState, guidance: Guidance,
                 on_step: StepHook | None = None) -> tuple[Tensor, int]: ...


def copy_branch(state: DiffusionState) -> DiffusionState:
    """The state of an edit's target branch: the source's own (every method whose stored tensors serve
    any prompt: noise maps, null embeddings, second sequences)."""
    return state


@dataclass(frozen=True)
class SamplerSpec:
    """How a method's state is sampled back: the model ``family`` it is for, its options dataclass
    (a :class:`DiffusionOptions` subclass), ``sample(setup, state, guidance) -> (clean latent, nfe)``, and
    ``branch(state) -> state``: the state the target branch of an attention-controlled edit starts from
    (Direct Inversion's target branch goes without the source's corrections, as in PnP Inversion)."""

    family: str
    options: type
    sample: SampleFn
    branch: Callable[[DiffusionState], DiffusionState] = copy_branch


SAMPLERS: Registry[SamplerSpec] = Registry("diffusion method")


def make_setup(G: DiffusionModel, options: Any, images: Tensor | None = None, *, guidance: Guidance | None = None) -> Setup:
    """Resolve ``options`` (a DiffusionOptions) against the model: dtype, grid, guidance and, when
    ``images`` (``N x C x H x W`` in [-1, 1]) are given, their clean latents."""
    dtype = parse_dtype(options.dtype)
    if isinstance(options.steps, bool) or not isinstance(options.steps, int) or options.steps < 1:
        raise ConfigError(f"steps={options.steps!r} must be a positive integer")
    g = guidance or G.guidance(options.prompt, options.guidance, options.negative, dtype)
    x0 = G.encode(images, dtype) if images is not None else None
    return Setup(G, G.denoiser(dtype), G.grid(options.steps), G.prediction_type, g, x0, dtype, options)


def options_from_dict(method: str, values: dict[str, Any], where: str) -> Any:
    """The options dataclass of ``method`` from saved values; unknown names are a ConfigError naming ``where``."""
    cls = SAMPLERS.get(method).options
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: options {short_repr(unknown, 120)} are unknown to method {method!r} (written by a newer invertkit?)")
    return cls(**values)


@torch.no_grad()
def resample(G: DiffusionModel, method: str, setup: Setup, state: DiffusionState, *, prompt: str | None = None,
             guidance: float | None = None, negative: str | None = None) -> Tensor:
    """Sample ``state`` back with ``method``'s sampler; unset prompt / guidance / negative keep the
    inversion's. Images ``N x C x H x W`` in [-1, 1]."""
    opts = setup.options
    g = G.guidance(opts.prompt if prompt is None else prompt, opts.guidance if guidance is None else guidance,
                   opts.negative if negative is None else negative, setup.dtype)
    x0_hat, _ = SAMPLERS.get(method).sample(setup, state, g)
    return G.decode(x0_hat).float().clamp(-1, 1)
