"""What every diffusion / flow inversion method shares: options, the run, the result, regeneration.

A diffusion method is a pair of functions on the maths core (``invertkit.diffusion``):

- ``invert(setup) -> DiffusionState``: from the clean latent ``setup.x0`` to the method's noisy state
  (the noise latent ``x_T`` plus whatever else it needs to come back: EDICT's second sequence, null-text's
  per-step null embeddings, Direct Inversion's per-step corrections ...);
- ``sample(setup, state, guidance) -> (clean latent, nfe)``: back from that state, with the inversion's
  guidance (reconstruction) or another prompt / scale (editing).

``register`` turns the pair into an ``invertkit.invert`` method: the reconstruction is scored with the
metric protocol, the **round-trip error** (max |x0 - reconstructed x0| in latent space) and the
number of model evaluations (NFE) of both directions are recorded, and ``regenerate`` re-samples a
finished result with a new prompt or guidance scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...diffusion.guidance import Guidance
from ...diffusion.schedules import DiffusionGrid, FlowGrid
from ...errors import ConfigError
from ...generators.base import Generator
from .. import METHODS, MethodSpec
from ..context import RunContext
from ..result import InversionResult
from ..scoring import score


@dataclass(frozen=True)
class DiffusionOptions:
    """Options every diffusion / flow method has."""

    steps: int = 50  # sampling / inversion steps on the model's own scheduler grid
    prompt: str | None = None  # name of a prompt embedding (None: the empty prompt ""; unconditional models: None)
    negative: str = ""  # the embedding guidance pushes away from ("" = the null embedding)
    guidance: float = 1.0  # classifier-free guidance scale (1 = conditional only, no extra evaluation)
    dtype: str = "float32"  # float32, or float64 for exactness checks (CPU)


@dataclass
class Setup:
    """One run's fixed inputs: the denoiser in the run dtype, the grid, the guidance and ``x0 [N, ...]``."""

    G: Any
    denoiser: Callable[..., Tensor]
    grid: DiffusionGrid | FlowGrid
    prediction_type: str
    guidance: Guidance
    x0: Tensor
    dtype: torch.dtype
    options: Any


@dataclass
class DiffusionState:
    """What an inversion found: ``x_T [N, ...]`` (the noise latent) and method-specific ``tensors``
    (each batched over images, or a list of per-step tensors), with the inversion's ``nfe``. ``info``
    goes into the run's config; ``info["ode_latent"] = False`` marks an ``x_T`` that is not meant to
    solve the guided probability-flow ODE (so no ``inversion_error`` is scored against the exact one)."""

    x_T: Tensor
    nfe: int
    tensors: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


InvertFn = Callable[[Setup], DiffusionState]
SampleFn = Callable[[Setup, DiffusionState, Guidance], tuple[Tensor, int]]
SAMPLERS: dict[str, tuple[str, SampleFn]] = {}  # method name -> (family, sample function)


def check_diffusion_generator(G: Generator, family: str, method: str) -> Any:
    """``G`` if it is a diffusion model of ``family`` ("diffusion" or "flow"), else a ConfigError naming the fix."""
    got = getattr(G, "family", None)
    if got is None:
        raise ConfigError(f"method {method!r} inverts diffusion models; {G.name} is a GAN (use --generator diffusers:PATH)")
    if got != family:
        raise ConfigError(
            f"method {method!r} is for {'rectified-flow' if family == 'flow' else 'discrete diffusion'} models; "
            f"{G.name} is a {got} model"
        )
    return G


def make_setup(G: Any, images: Tensor, opts: DiffusionOptions, *, guidance: Guidance | None = None) -> Setup:
    """Resolve the options against the generator: dtype, grid, guidance and the clean latents."""
    from ...diffusion.generator import parse_dtype

    dtype = parse_dtype(opts.dtype)
    if isinstance(opts.steps, bool) or not isinstance(opts.steps, int) or opts.steps < 1:
        raise ConfigError(f"steps={opts.steps!r} must be a positive integer")
    g = guidance or G.guidance(opts.prompt, opts.guidance, opts.negative, dtype)
    return Setup(G, G.denoiser(dtype), G.grid(opts.steps), G.prediction_type, g, G.encode(images, dtype), dtype, opts)


def _run(G: Generator, images: Tensor, opts: DiffusionOptions, ctx: RunContext, *, name: str, family: str,
         invert: InvertFn, sample: SampleFn) -> InversionResult:
    G = check_diffusion_generator(G, family, name)
    if ctx.degradation is not None:
        raise ConfigError(f"method {name!r} does not do restoration; drop the degradation (use a GAN method for it)")
    setup = make_setup(G, images, opts)
    start = time.perf_counter()
    with torch.no_grad():
        state = invert(setup)
    invert_s = time.perf_counter() - start
    with torch.no_grad():
        x0_hat, nfe_back = sample(setup, state, setup.guidance)
        recon = G.decode(x0_hat).float().clamp(-1, 1)
    total_s = time.perf_counter() - start
    err = (x0_hat - setup.x0).flatten(1).abs().max(dim=1).values.double().cpu()
    reference = ctx.reference if ctx.reference is not None else images
    metrics = score(G, recon, reference, extra=ctx.extra_metrics)
    for i, m in enumerate(metrics):
        m["roundtrip_error"] = float(err[i])
    if hasattr(G, "exact_inversion") and state.info.get("ode_latent", True):  # the analytic model knows the truth
        exact = G.exact_inversion(setup.x0, setup.grid, setup.guidance)
        inv = (state.x_T - exact).flatten(1).abs().max(dim=1).values.double().cpu()
        for i, m in enumerate(metrics):
            m["inversion_error"] = float(inv[i])
    return InversionResult(
        latents=state.x_T.float(),
        space="noise",
        reconstructions=recon,
        metrics=metrics,
        timings={"seconds": total_s, "invert_seconds": invert_s, "steps": float(opts.steps),
                 "evaluations": float(state.nfe), "nfe_invert": float(state.nfe), "nfe_reconstruct": float(nfe_back)},
        config={"family": family, "prediction_type": G.prediction_type, **state.info},
        extras={"diffusion_state": state, "diffusion_setup": setup},
    )


def register(name: str, options: type, family: str, invert: InvertFn, sample: SampleFn) -> None:
    """Register a diffusion method ``name`` with its options dataclass (a DiffusionOptions subclass)."""

    def run(G: Generator, images: Tensor, opts: Any, ctx: RunContext) -> InversionResult:
        return _run(G, images, opts, ctx, name=name, family=family, invert=invert, sample=sample)

    METHODS.add(name, MethodSpec(run=run, options=options))
    SAMPLERS[name] = (family, sample)


@torch.no_grad()
def regenerate(G: Any, result: InversionResult, *, prompt: str | None = None, guidance: float | None = None,
               negative: str | None = None) -> Tensor:
    """Re-sample a diffusion inversion with another prompt and/or guidance scale (the prompt-to-prompt-free
    edit: same inverted state, new condition). Returns images ``N x C x H x W`` in [-1, 1].

    Unset arguments keep the inversion's values. Methods whose state depends on the source prompt
    (null-text's nulls, Direct Inversion's corrections, negative-prompt's uncond) keep that state."""
    method = result.config.get("method")
    if method not in SAMPLERS or "diffusion_state" not in result.extras:
        raise ConfigError(f"regenerate needs the result of a diffusion method ({', '.join(sorted(SAMPLERS))}), got {method!r}")
    return resample(G, method, result.extras["diffusion_setup"], result.extras["diffusion_state"],
                    prompt=prompt, guidance=guidance, negative=negative)


def resample(G: Any, method: str, setup: Setup, state: DiffusionState, *, prompt: str | None = None,
             guidance: float | None = None, negative: str | None = None) -> Tensor:
    """Sample ``state`` back with ``method``'s sampler; unset prompt / guidance / negative keep the
    inversion's. Images ``N x C x H x W`` in [-1, 1]."""
    opts = setup.options
    g = G.guidance(opts.prompt if prompt is None else prompt, opts.guidance if guidance is None else guidance,
                   opts.negative if negative is None else negative, setup.dtype)
    x0_hat, _ = SAMPLERS[method][1](setup, state, g)
    return G.decode(x0_hat).float().clamp(-1, 1)


def add_edits(G: Any, result: InversionResult, prompts: list[str], *, guidance: float | None = None,
              reference: Tensor | None = None) -> None:
    """Regenerate ``result`` with each prompt in ``prompts`` (see ``regenerate``) into
    ``result.extras["edits"]`` (label ``"prompt NAME"`` -> images), and add per-image metrics
    ``edit_psnr_NAME`` (PSNR of the edit against ``reference``, default the reconstruction: how much of
    the image the edit keeps) and ``edit_change_NAME`` (RMS pixel change on [0, 1])."""
    from .. import scoring

    base = result.reconstructions if reference is None else reference
    edits = result.extras.setdefault("edits", {})
    for prompt in prompts:
        edited = regenerate(G, result, prompt=prompt, guidance=guidance)
        edits[f"prompt {prompt or 'null'}" + (f" @{guidance:g}" if guidance is not None else "")] = edited
        psnr = scoring.M.psnr(edited, base.to(edited.device)).tolist()
        change = ((edited - base.to(edited.device)) / 2).pow(2).flatten(1).mean(1).sqrt().tolist()
        for i, m in enumerate(result.metrics):
            m[f"edit_psnr_{prompt or 'null'}"] = float(psnr[i])
            m[f"edit_change_{prompt or 'null'}"] = float(change[i])
