"""What every diffusion / flow inversion method shares: the run, the result, regeneration.

A diffusion method is a pair of functions on the maths core (``invertkit.diffusion``):

- ``invert(setup) -> DiffusionState``: from the clean latent ``setup.x0`` to the method's noisy state
  (the noise latent ``x_T`` plus whatever else it needs to come back: EDICT's second sequence, null-text's
  per-step null embeddings, Direct Inversion's per-step corrections ...);
- ``sample(setup, state, guidance) -> (clean latent, nfe)``: back from that state, with the inversion's
  guidance (reconstruction) or another prompt / scale (editing).

``register`` turns the pair into an ``invertkit.invert`` method returning a
:class:`~invertkit.results.DiffusionInversion`: the reconstruction is scored with the metric
protocol, the **round-trip error** (max |x0 - reconstructed x0| in latent space) and the model
evaluations (NFE) of both directions are recorded, and ``regenerate`` re-samples a finished result
with a new prompt or guidance scale. The sampler is also registered below the methods
(``diffusion.state.SAMPLERS``), so a saved result re-renders without this package's help.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from ...diffusion.model import DiffusionModel, ExactInversion
from ...diffusion.results import StepHook
from ...diffusion.state import SAMPLERS, DiffusionOptions, DiffusionState, SampleFn, SamplerSpec, Setup, copy_branch, make_setup
from ...errors import ConfigError
from ...generators.base import Generator
from ...generators.capabilities import require
from ...progress import track
from ...results import DiffusionInversion, InversionResult, Timings
from .. import METHODS, MethodSpec
from ..context import RunContext
from ..scoring import score

__all__ = ["DiffusionOptions", "DiffusionState", "Setup", "add_edits", "check_diffusion_generator", "regenerate", "register"]

class InvertFn(Protocol):
    """``invert(setup, on_step=None) -> state``: a method's way from ``setup.x0`` to its state; ``on_step``
    (``results.StepHook``) runs after every inversion step (progress: it returns ``x`` unchanged)."""

    def __call__(self, setup: Setup, on_step: StepHook | None = None) -> DiffusionState: ...

SUMMARIES = {  # one line each for `invertkit invert --help`
    "ddim": "DDIM inversion (first order; drifts under guidance)",
    "renoise": "DDIM inversion with fixed-point iterations per step (ReNoise)",
    "nulltext": "null-text inversion: per-step null embeddings optimised for guided reconstruction",
    "negprompt": "negative-prompt inversion: the source prompt as the null branch, no optimisation",
    "direct": "Direct Inversion (PnP Inversion): stored per-step corrections, exact at any guidance",
    "edict": "EDICT: two coupled sequences, exactly invertible",
    "bdia": "BDIA: bi-directional integration, exact at DDIM's cost",
    "flow-euler": "Euler steps of the flow ODE from data to noise (first order)",
    "flow-midpoint": "midpoint steps (RF-Solver, second order)",
    "fireflow": "FireFlow: midpoint accuracy at nearly Euler cost",
    "rf-inversion": "RF-Inversion: controlled flow ODEs trading reconstruction for editability",
    "coupled-flow": "coupled Euler steps of the flow, exactly invertible",
}


def check_diffusion_generator(G: Generator, family: str, method: str) -> DiffusionModel:
    """``G`` as a diffusion model of ``family`` ("diffusion" or "flow"), else a one-line error naming the fix."""
    D = require(G, DiffusionModel, f"method {method!r}")
    if D.family != family:
        raise ConfigError(
            f"method {method!r} is for {'rectified-flow' if family == 'flow' else 'discrete diffusion'} models; "
            f"{G.name} is a {D.family} model"
        )
    return D


def _run(G: Generator, images: Tensor, opts: DiffusionOptions, ctx: RunContext, *, name: str, family: str,
         invert: InvertFn, sample: SampleFn) -> DiffusionInversion:
    D = check_diffusion_generator(G, family, name)
    if ctx.degradation is not None:
        raise ConfigError(f"method {name!r} does not do restoration; drop the degradation (use a GAN method for it)")
    setup = make_setup(D, opts, images)
    assert setup.x0 is not None
    setup.image_ids = list(ctx.image_ids) if ctx.image_ids is not None else list(range(images.shape[0]))
    start = time.perf_counter()
    # progress through the samplers' step hooks (None without a reporter: the loops do no extra work)
    phase = track(ctx.progress, "invert", opts.steps)
    with torch.no_grad():
        state = invert(setup, on_step=phase.hook if ctx.progress is not None else None)
    phase.end()
    invert_s = time.perf_counter() - start
    phase = track(ctx.progress, "reconstruct", opts.steps)
    with torch.no_grad():
        x0_hat, nfe_back = sample(setup, state, setup.guidance, on_step=phase.hook if ctx.progress is not None else None)
        recon = D.decode(x0_hat).float().clamp(-1, 1)
    phase.end()
    total_s = time.perf_counter() - start
    err = (x0_hat - setup.x0).flatten(1).abs().max(dim=1).values.double().cpu()
    reference = ctx.reference if ctx.reference is not None else images
    metrics = score(G, recon, reference, extra=ctx.extra_metrics)
    for i, m in enumerate(metrics):
        m["roundtrip_error"] = float(err[i])
    if isinstance(D, ExactInversion) and state.info.get("ode_latent", True):  # the analytic model knows the truth
        exact = D.exact_inversion(setup.x0, setup.grid, setup.guidance)
        inv = (state.x_T - exact).flatten(1).abs().max(dim=1).values.double().cpu()
        for i, m in enumerate(metrics):
            m["inversion_error"] = float(inv[i])
    n = images.shape[0]
    evaluations = list(state.nfe_per_image) if state.nfe_per_image is not None else [float(state.nfe)] * n
    return DiffusionInversion(
        latents=state.x_T.float(),
        space="noise",
        reconstructions=recon,
        metrics=metrics,
        timings=Timings(seconds=total_s, steps=opts.steps, evaluations=[float(e) for e in evaluations], phases={"invert": invert_s}),
        config={"family": family, "prediction_type": D.prediction_type, **state.info},
        diffusion_method=name,
        state=state,
        options=opts,
        nfe_reconstruct=[float(nfe_back)] * n,
        setup=setup,
    )


def register(name: str, options: type, family: str, invert: InvertFn, sample: SampleFn, summary: str | None = None,
             branch: Callable[[DiffusionState], DiffusionState] = copy_branch) -> None:
    """Register a diffusion method ``name`` with its options dataclass (a DiffusionOptions subclass);
    ``summary`` (one line for the CLI's method list) defaults to ``SUMMARIES[name]``; ``branch``: the
    target branch's state in attention-controlled edits (``diffusion.state.SamplerSpec``)."""

    def run(G: Generator, images: Tensor, opts: DiffusionOptions, ctx: RunContext) -> InversionResult:
        return _run(G, images, opts, ctx, name=name, family=family, invert=invert, sample=sample)

    METHODS.add(name, MethodSpec(run=run, options=options, summary=f"{summary or SUMMARIES.get(name, name)} [{family} models]"))
    SAMPLERS.add(name, SamplerSpec(family=family, options=options, sample=sample, branch=branch))


def _diffusion_result(result: InversionResult) -> DiffusionInversion:
    if not isinstance(result, DiffusionInversion) or result.state is None:
        raise ConfigError(f"regenerate needs the result of a diffusion method ({', '.join(SAMPLERS.names())}), "
                          f"got a {result.kind} result of {result.method!r}")
    return result


@torch.no_grad()
def regenerate(G: Generator, result: InversionResult, *, prompt: str | None = None, guidance: float | None = None,
               negative: str | None = None) -> Tensor:
    """Re-sample a diffusion inversion with another prompt and/or guidance scale (the prompt-to-prompt-free
    edit: same inverted state, new condition). Returns images ``N x C x H x W`` in [-1, 1].

    Unset arguments keep the inversion's values. Methods whose state depends on the source prompt
    (null-text's nulls, Direct Inversion's corrections, negative-prompt's uncond) keep that state."""
    return _diffusion_result(result).render(G, prompt=prompt, guidance=guidance, negative=negative)


def add_edits(G: Generator, result: InversionResult, prompts: list[str], *, guidance: float | None = None,
              reference: Tensor | None = None) -> None:
    """Regenerate ``result`` with each prompt in ``prompts`` (see ``regenerate``) into
    ``result.edits`` (label ``"prompt NAME"`` -> images), and add per-image metrics
    ``edit_psnr_NAME`` (PSNR of the edit against ``reference``, default the reconstruction: how much of
    the image the edit keeps) and ``edit_change_NAME`` (RMS pixel change on [0, 1])."""
    from ... import metrics as M

    res = _diffusion_result(result)
    base = res.reconstructions if reference is None else reference
    for prompt in prompts:
        edited = res.render(G, prompt=prompt, guidance=guidance)
        res.edits[f"prompt {prompt or 'null'}" + (f" @{guidance:g}" if guidance is not None else "")] = edited
        psnr = M.psnr(edited, base.to(edited.device)).tolist()
        change = ((edited - base.to(edited.device)) / 2).pow(2).flatten(1).mean(1).sqrt().tolist()
        for i, m in enumerate(res.metrics):
            m[f"edit_psnr_{prompt or 'null'}"] = float(psnr[i])
            m[f"edit_change_{prompt or 'null'}"] = float(change[i])
