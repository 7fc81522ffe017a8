"""EDICT: exactly invertible DDIM with two coupled sequences.

Wallace, Gokul & Naik 2023, "EDICT: Exact Diffusion Inversion via Coupled Transformations", eqs. 14-15,
as their reference code (``coupled_stablediffusion`` in salesforce/EDICT) runs it. With the DDIM map
coefficients ``(a, b)`` of one step (see :mod:`.ddim`), the model evaluated at the step's time t, and
mixing weight p, a sampling step from the pair ``(x, y)`` is

    x_int = a x + b eps(y, t)          y_int = a y + b eps(x_int, t)
    x'    = p x_int + (1 - p) y_int    y'    = p y_int + (1 - p) x'

**Leapfrog** (the authors' default, ``leapfrog_steps=True``): on odd sampling steps j = 1, 3, ...
(j = 0 the noisiest step, counting the steps actually run) the two half-updates swap roles,
``y_int = a y + b eps(x, t)`` first, then ``x_int = a x + b eps(y_int, t)``; the mixing keeps its order
(x' first, then y' from x'). ``leapfrog=False`` updates x first on every step. The two variants give
different latents for the same image: a pair inverted with one must be sampled with the same one.

Every line is an affine map of one variable given quantities already known, so the step inverts
exactly (up to floating-point rounding) for *any* denoiser, undoing the lines in reverse order:

    y_int = (y' - (1 - p) x') / p      x_int = (x' - (1 - p) y_int) / p
    y     = (y_int - b eps(x_int, t)) / a,   then   x = (x_int - b eps(y, t)) / a

(on a leapfrog odd step: x from ``eps(y_int)`` first, then y from ``eps(x)``). Inversion returns both
sequences, ``(x_T, y_T)``; sampling returns ``(x_0, y_0)``, and the authors show ``x_0`` (their
``[0]``), as :mod:`invertkit.methods.diffusion.edict` does.

Cost: two model evaluations per step. Both sequences start equal (the image for inversion, the
noise for plain sampling); the paper's p = 0.93. The mixing damps the x - y difference by p^2 per
sampling step, so inversion amplifies it by 1/p^2 per step (~1.16 for p = 0.93): round trips stay
exact, but with many steps the inverted pair drifts away from the ODE's noise (see coupled_flow).
"""

from __future__ import annotations

from torch import Tensor

from invertkit.diffusion.ddim import _levels, ddim_coefficients
from invertkit.diffusion.guidance import Guidance, evaluate_eps
from invertkit.diffusion.parameterisation import Denoiser
from invertkit.diffusion.results import PairTrajectory, StepHook
from invertkit.diffusion.schedules import DiffusionGrid
from invertkit.errors import ConfigError


def _check_p(p: float) -> None:
    if not 0 < p <= 1:
        raise ConfigError(f"EDICT mixing p={p} must lie in (0, 1]; the paper uses 0.93")


def _y_first(j: int, leapfrog: bool) -> bool:
    """Whether sampling step j updates y before x (the authors' leapfrog order on odd steps)."""
    return leapfrog and j % 2 == 1


def edict_sample(
    denoiser: Denoiser, x_T: Tensor, grid: DiffusionGrid, *, y_T: Tensor | None = None, p: float = 0.93,
    leapfrog: bool = True, prediction_type: str = "epsilon", guidance: Guidance | None = None,
    on_step: StepHook | None = None,
) -> PairTrajectory:
    """EDICT sampling from the pair ``(x_T, y_T)`` (``y_T = x_T`` if None), shapes ``[N, ...]``.

    ``leapfrog``: swap the update order on odd steps (the authors' default; see the module doc).
    Returns the clean pair ``(x_0, y_0)`` and NFE = 2 S (x2 for guidance).
    """
    _check_p(p)
    x, y, nfe = x_T, (x_T if y_T is None else y_T), 0
    for j in range(grid.steps):
        t, ab, ab_next = _levels(grid, j)
        a, b = ddim_coefficients(ab, ab_next)
        swap = _y_first(j, leapfrog)
        first, second = (y, x) if swap else (x, y)  # `first` moves first, driven by the other's prediction
        e, n1 = evaluate_eps(denoiser, second, t, ab, prediction_type, guidance)
        first_int = a * first + b * e
        e, n2 = evaluate_eps(denoiser, first_int, t, ab, prediction_type, guidance)
        second_int = a * second + b * e
        x_int, y_int = (second_int, first_int) if swap else (first_int, second_int)
        x = p * x_int + (1 - p) * y_int
        y = p * y_int + (1 - p) * x
        nfe += n1 + n2
        if on_step is not None:
            x, y = on_step(j, x), on_step(j, y)
    return PairTrajectory(x, y, nfe)


def edict_invert(
    denoiser: Denoiser, x_0: Tensor, grid: DiffusionGrid, *, y_0: Tensor | None = None, p: float = 0.93,
    leapfrog: bool = True, prediction_type: str = "epsilon", guidance: Guidance | None = None,
    on_step: StepHook | None = None,
) -> PairTrajectory:
    """Exact EDICT inversion of ``(x_0, y_0)`` (``y_0 = x_0`` if None) to the noisy pair ``(x_T, y_T)``.

    ``edict_sample(..., x_T, grid, y_T=y_T)`` with the same denoiser, guidance, p and ``leapfrog``
    returns ``(x_0, y_0)`` up to rounding. NFE = 2 S (x2 for guidance). ``on_step(j, x) -> x`` runs
    after each step on both sequences (progress; it must not change them, or the pair is no longer exact).
    """
    _check_p(p)
    x, y, nfe = x_0, (x_0 if y_0 is None else y_0), 0
    for j in reversed(range(grid.steps)):
        t, ab, ab_next = _levels(grid, j)
        a, b = ddim_coefficients(ab, ab_next)
        y_int = (y - (1 - p) * x) / p
        x_int = (x - (1 - p) * y_int) / p
        swap = _y_first(j, leapfrog)
        first_int, second_int = (y_int, x_int) if swap else (x_int, y_int)
        # undo sampling's second half-update first: it was driven by the prediction at first_int
        e, n1 = evaluate_eps(denoiser, first_int, t, ab, prediction_type, guidance)
        second = (second_int - b * e) / a
        e, n2 = evaluate_eps(denoiser, second, t, ab, prediction_type, guidance)
        first = (first_int - b * e) / a
        x, y = (second, first) if swap else (first, second)
        nfe += n1 + n2
        if on_step is not None:
            x, y = on_step(j, x), on_step(j, y)
    return PairTrajectory(x, y, nfe)
