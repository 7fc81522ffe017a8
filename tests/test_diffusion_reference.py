"""Each method against its authors' update rules, written out here as literal loops in the order of their
reference code (float64, tight tolerances): EDICT (salesforce/EDICT ``coupled_stablediffusion``), BDIA
(guoqiang-zhang-x/BDIA ``BDIA_stablediffusion``), null-text inversion (google/prompt-to-prompt
``null_text_w_ptp.ipynb``), Direct Inversion (cure-lab/PnPInversion ``DirectInversion``), RF-Solver
(wangjiangshan0725/RF-Solver-Edit ``denoise``), FireFlow (``denoise_fireflow``), edit-friendly DDPM
inversion (inbarhub/DDPM_inversion ``inversion_forward_process``), and DDIM inversion against
diffusers' ``DDIMInverseScheduler``. Where a method has variants, the test also shows that the
other variant does *not* reproduce the reference, so it can fail.

The reference loops use the schedule quantities the authors' code uses (``alphas_cumprod[t]``, the
level ``t - T / S`` after each timestep, the final alpha below 0), computed here from the betas.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from invertkit.diffusion import (
    AnalyticGaussian,
    Guidance,
    bdia_invert,
    bdia_sample,
    diffusion_grid,
    direct_inversion,
    direct_sample,
    edict_invert,
    edict_sample,
    fireflow_invert,
    fireflow_sample,
    flow_grid,
    flow_midpoint_invert,
    flow_midpoint_sample,
    null_text_optimize,
)
from invertkit.diffusion.ddpm_ef import ddpm_ef_inversion, ddpm_ef_sample

from .analytic_factories import D, TinyNet, cosine_alpha_bar, cosine_grid

T = 1000
COND, UNCOND, SCALE = torch.tensor([1.0, -0.5], dtype=D), torch.tensor([0.3, 0.2], dtype=D), 3.0
GUIDED = Guidance(cond=COND, uncond=UNCOND, scale=SCALE)


def _sd_alphas() -> torch.Tensor:
    """Stable Diffusion's alphas_cumprod (scaled_linear betas 0.00085 -> 0.012), the authors' scheduler."""
    return torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=D) ** 2, 0)


def _sd_config(offset: int) -> dict:
    return {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": offset,
            "set_alpha_to_one": False}


def _alpha(t: float) -> float:
    """``alphas_cumprod[t]``, or the final alpha (``alphas_cumprod[0]``: set_alpha_to_one=False) below 0."""
    return float(_sd_alphas()[int(t)]) if t >= 0 else float(_sd_alphas()[0])


def _guided(net: TinyNet, x: torch.Tensor, t: float) -> torch.Tensor:
    """``e_u + w (e_c - e_u)`` at model time t, as the authors' loops compute it."""
    tt = torch.full((x.shape[0],), float(t), dtype=D)
    e_u, e_c = net(x, tt, UNCOND), net(x, tt, COND)
    return e_u + SCALE * (e_c - e_u)


def _down(x: torch.Tensor, e: torch.Tensor, a_from: float, a_to: float) -> torch.Tensor:
    """The authors' DDIM ``forward_step`` from level a_from to a_to, in their form: x / q - sqrt(1 - a) / q e + sqrt(1 - a') e."""
    q = (a_from / a_to) ** 0.5
    return x / q - (1 - a_from) ** 0.5 / q * e + (1 - a_to) ** 0.5 * e


def _up(x: torch.Tensor, e: torch.Tensor, a_from: float, a_to: float) -> torch.Tensor:
    """The authors' ``reverse_step`` (a_from the lower-noise level): q x + sqrt(1 - a_to) e - q sqrt(1 - a_from) e."""
    q = (a_to / a_from) ** 0.5
    return q * x + (1 - a_to) ** 0.5 * e - q * (1 - a_from) ** 0.5 * e


def _images(n: int = 2, seed: int = 5) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=D) * 2 - 1


def _max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to b's scale (BDIA with gamma < 1 grows the latents by 1 / gamma per step)."""
    return _max(a, b) / max(1.0, float(b.abs().max()))


# ---- EDICT -------------------------------------------------------------------------------------

def _edict_reference(net: TinyNet, pair: list[torch.Tensor], steps: int, p: float, leapfrog: bool,
                     reverse: bool) -> list[torch.Tensor]:
    """``coupled_stablediffusion`` at full strength: DDIMScheduler timesteps ``ratio * k`` (no offset),
    per step (inversion: un-mix first) the two sequences updated in the order set by ``leapfrog_steps``,
    each from the other one's prediction at the step's timestep, then (sampling) the mixing layers."""
    ratio = T // steps
    timesteps = [ratio * k for k in reversed(range(steps))]
    if reverse:
        timesteps = timesteps[::-1]
    pair = list(pair)
    for i, t in enumerate(timesteps):
        a_t, a_prev = _alpha(t), _alpha(t - ratio)
        if reverse:
            pair[1] = (pair[1] - (1 - p) * pair[0]) / p
            pair[0] = (pair[0] - (1 - p) * pair[1]) / p
        for k in range(2):
            if reverse:
                orig_i = len(timesteps) - (i + 1)  # the sampling step being undone
                k = (k + (orig_i + 1) % 2) % 2 if leapfrog else (k + 1) % 2
            elif leapfrog:
                k = (k + i % 2) % 2
            e = _guided(net, pair[(k + 1) % 2], t)
            pair[k] = _up(pair[k], e, a_prev, a_t) if reverse else _down(pair[k], e, a_t, a_prev)
        if not reverse:
            pair[0] = p * pair[0] + (1 - p) * pair[1]
            pair[1] = (1 - p) * pair[0] + p * pair[1]
    return pair


@pytest.mark.parametrize("p", [0.93, 0.8])
def test_edict_matches_the_authors_leapfrog_loop(p: float) -> None:
    net, img, steps = TinyNet(), _images(), 10
    grid = diffusion_grid(_sd_config(0), steps)
    ref = _edict_reference(net, [img, img], steps, p, leapfrog=True, reverse=True)
    inv = edict_invert(net, img, grid, p=p, guidance=GUIDED)  # leapfrog is the default
    assert _max(inv.x, ref[0]) < 1e-12 and _max(inv.y, ref[1]) < 1e-12
    noise = [torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(s), dtype=D) for s in (1, 2)]
    ref = _edict_reference(net, noise, steps, p, leapfrog=True, reverse=False)
    out = edict_sample(net, noise[0], grid, y_T=noise[1], p=p, guidance=GUIDED)
    assert _max(out.x, ref[0]) < 1e-12 and _max(out.y, ref[1]) < 1e-12
    # the other order is the authors' leapfrog_steps=False, and is not interchangeable with the default
    plain = edict_invert(net, img, grid, p=p, leapfrog=False, guidance=GUIDED)
    ref_plain = _edict_reference(net, [img, img], steps, p, leapfrog=False, reverse=True)
    assert _max(plain.x, ref_plain[0]) < 1e-12 and _max(plain.y, ref_plain[1]) < 1e-12
    assert _max(plain.x, inv.x) > 1e-3
    wrong = edict_sample(net, noise[0], grid, y_T=noise[1], p=p, leapfrog=False, guidance=GUIDED)
    assert _max(wrong.x, ref[0]) > 1e-3


# ---- BDIA --------------------------------------------------------------------------------------

def _bdia_reference_invert(net: TinyNet, x0: torch.Tensor, steps: int, gamma: float, offset: int) -> tuple:
    """``BDIA_stablediffusion(reverse=True)``: ascending timesteps; each evaluates the model at the current
    latent with time ``t - ratio`` (its own level; the first at the clean level, below 0); the first step
    is a DDIM-inversion step, later ones solve BDIA for the next level. Returns (x_T, x_1)."""
    ratio = T // steps
    prev_latent, new, first = None, x0, True
    for t in [offset + ratio * k for k in range(steps)]:
        cur, t_cur = new, t - ratio
        e = _guided(net, cur, t_cur)
        up = _up(cur, e, _alpha(t_cur), _alpha(t))
        if first:
            new, first = up, False
        else:
            back = _down(cur, e, _alpha(t_cur), _alpha(t_cur - ratio))
            new = prev_latent / gamma - back / gamma + up
        prev_latent = cur
    return new, cur


def _bdia_reference_sample(net: TinyNet, pair: tuple, steps: int, gamma: float, offset: int) -> torch.Tensor:
    """``BDIA_stablediffusion(reverse=False)`` from the pair (x_T, x_1): the first timestep is skipped
    (already known) and each later one combines the backward and forward DDIM updates of the current latent."""
    ratio = T // steps
    timesteps = [offset + ratio * k for k in reversed(range(steps))]
    prev_latent, new, t_prev = pair[0], pair[1], timesteps[0]
    for t in timesteps[1:]:
        cur = new
        e = _guided(net, cur, t)
        down, back = _down(cur, e, _alpha(t), _alpha(t - ratio)), _up(cur, e, _alpha(t), _alpha(t_prev))
        new = prev_latent - (1 - gamma) * (prev_latent - cur) - gamma * (back - cur) + (down - cur)
        t_prev, prev_latent = t, cur
    return new


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_bdia_matches_the_authors_loop(gamma: float) -> None:
    """Stable Diffusion's own scheduler config (steps_offset 1): the first inversion step runs from
    alphas_cumprod[0] to alphas_cumprod[1], so its model time matters."""
    net, img, steps = TinyNet(seed=2), _images(), 10
    grid = diffusion_grid(_sd_config(1), steps)
    x_T, x_1 = _bdia_reference_invert(net, img, steps, gamma, offset=1)
    inv = bdia_invert(net, img, grid, gamma=gamma, guidance=GUIDED)  # first_step="bdia" is the default
    assert _rel(inv.x, x_T) < 1e-13 and _rel(inv.y, x_1) < 1e-13
    out = bdia_sample(net, inv.x, grid, x_next=inv.y, gamma=gamma, guidance=GUIDED)
    assert _max(out.x, _bdia_reference_sample(net, (x_T, x_1), steps, gamma, offset=1)) < 1e-11
    assert _max(out.x, img) < 1e-10
    ddim = bdia_invert(net, img, grid, gamma=gamma, first_step="ddim", guidance=GUIDED)
    assert _rel(ddim.x, x_T) > 1e-3  # invertkit's other first step is not the authors'


def test_bdia_first_steps_agree_in_the_authors_setting() -> None:
    """Without steps_offset (the authors' DDIMScheduler) the first inversion step goes from
    alphas_cumprod[0] to itself: the identity, whatever the model says, so both variants match them."""
    net, img, steps = TinyNet(seed=2), _images(), 10
    grid = diffusion_grid(_sd_config(0), steps)
    x_T, x_1 = _bdia_reference_invert(net, img, steps, 1.0, offset=0)
    for first_step in ("bdia", "ddim"):
        inv = bdia_invert(net, img, grid, first_step=first_step, guidance=GUIDED)
        assert _max(inv.x, x_T) < 1e-12 and _max(inv.y, x_1) < 1e-12


# ---- null-text inversion -----------------------------------------------------------------------

def _prev_step(e: torch.Tensor, x: torch.Tensor, a_t: float, a_prev: float) -> torch.Tensor:
    """The notebook's ``prev_step``: through the predicted original sample."""
    x0 = (x - (1 - a_t) ** 0.5 * e) / a_t**0.5
    return a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * e


def _null_text_reference(den: Callable, x0: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, steps: int,
                         scale: float, inner: int, lr: float, epsilon: float) -> tuple:
    """``NullInversion``: ``ddim_loop`` (DDIM inversion at the prompt), then ``null_optimization``: per
    sampling step i an Adam at lr 1e-2 (1 - i / 100) on the null, ``inner`` iterations of forward ->
    mse loss -> step, breaking when the loss is below ``epsilon + i * 2e-5``, then the guided step with
    the final null. One image. Returns (x_T, nulls, reconstruction, iterations per step)."""
    grid = cosine_grid(steps)
    ts, ab = [float(t) for t in grid.timesteps], [float(a) for a in grid.alpha_bar]
    latents, x = [x0], x0
    for i in reversed(range(steps)):
        x = _prev_step(den(x, torch.full((1,), ts[i], dtype=D), cond), x, ab[i + 1], ab[i])  # next_step
        latents.append(x)
    nulls, used, cur, u = [], [], latents[-1], uncond
    for i in range(steps):
        u = u.clone().detach().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=lr * (1.0 - i / 100.0))
        target, tt = latents[len(latents) - i - 2], torch.full((1,), ts[i], dtype=D)
        with torch.no_grad():
            e_c = den(cur, tt, cond)
        for j in range(inner):
            e_u = den(cur, tt, u)
            loss = F.mse_loss(_prev_step(e_u + scale * (e_c - e_u), cur, ab[i], ab[i + 1]), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if loss.item() < epsilon + i * 2e-5:
                break
        used.append(j + 1)
        nulls.append(u.detach())
        with torch.no_grad():
            e_u = den(cur, tt, u)
            cur = _prev_step(e_u + scale * (e_c - e_u), cur, ab[i], ab[i + 1])
    return latents[-1], nulls, cur, used


def test_null_text_paper_schedule_matches_the_notebook() -> None:
    """On the exact Gaussian denoiser with a per-pixel condition (the embedding being optimised), every
    image of a batch against the notebook run on it alone: the decaying learning rate, the threshold
    growing with the outer step, and the check after the update."""
    g = torch.Generator().manual_seed(0)
    model = AnalyticGaussian(0.5 * torch.randn(1, 4, 4, generator=g, dtype=D), 0.7, torch.randn(1, 4, 4, generator=g, dtype=D))
    den = model.diffusion_denoiser(cosine_alpha_bar)
    x0, cond = torch.randn(3, 1, 4, 4, generator=g, dtype=D), torch.tensor([1.0, -0.5, 0.3], dtype=D)
    steps, inner, lr, eps = 12, 10, 0.1, 1e-5
    res = null_text_optimize(den, x0, cosine_grid(steps), cond=cond, uncond=torch.zeros(3, 1, 4, 4, dtype=D),
                             scale=7.5, inner_steps=inner, lr=lr, early_stop=eps, schedule="paper")
    other = null_text_optimize(den, x0, cosine_grid(steps), cond=cond, uncond=torch.zeros(3, 1, 4, 4, dtype=D),
                               scale=7.5, inner_steps=inner, lr=lr, early_stop=eps, schedule="invertkit")
    iterations = []
    for n in range(3):
        x_T, nulls, recon, used = _null_text_reference(den, x0[n : n + 1], cond[n : n + 1], torch.zeros(1, 1, 4, 4, dtype=D),
                                                       steps, 7.5, inner, lr, eps)
        iterations.append(used)
        assert _max(res.x_T[n : n + 1], x_T) < 1e-12
        assert max(_max(a[n : n + 1], b) for a, b in zip(res.uncond, nulls)) < 1e-10
        assert _max(res.reconstruction[n : n + 1], recon) < 1e-10
        assert max(_max(a[n : n + 1], b) for a, b in zip(other.uncond, nulls)) > 1e-3  # the constant schedule differs
    # the early stop mattered, at different inner iterations for different images and steps
    assert any(k < inner for used in iterations for k in used) and len({tuple(u) for u in iterations}) == 3


# ---- Direct Inversion (PnP Inversion) ----------------------------------------------------------

def test_direct_inversion_matches_pnp_offsets() -> None:
    """``DirectInversion``: ``ddim_loop`` at the prompt, then ``offset_calculate``: from the noisiest
    latent, each guided ``prev_step`` is corrected by ``latent_prev - latents_prev_rec``; editing adds the
    offset to the source branch after each guided step."""
    net, img, steps = TinyNet(seed=4), _images(), 8
    grid = diffusion_grid(_sd_config(1), steps)
    ratio = T // steps
    timesteps = [1 + ratio * k for k in reversed(range(steps))]
    latents, x = [img], img
    for t in reversed(timesteps):  # ddim_loop / next_step, conditional branch only
        e = net(x, torch.full((2,), float(t), dtype=D), COND)
        x = _prev_step(e, x, _alpha(t - ratio), _alpha(t))
        latents.append(x)
    offsets, cur = [], latents[-1]
    for i, t in enumerate(timesteps):
        rec = _prev_step(_guided(net, cur, t), cur, _alpha(t), _alpha(t - ratio))
        offsets.append(latents[len(latents) - i - 2] - rec)
        cur = rec + offsets[-1]
    res = direct_inversion(net, img, grid, guidance=GUIDED)
    assert _max(res.x_T, latents[-1]) < 1e-12
    assert max(_max(a, b) for a, b in zip(res.corrections, offsets)) < 1e-12
    out, cur = direct_sample(net, res.x_T, grid, res.corrections, guidance=GUIDED).x, latents[-1]
    for i, t in enumerate(timesteps):
        cur = _prev_step(_guided(net, cur, t), cur, _alpha(t), _alpha(t - ratio)) + offsets[i]
    assert _max(out, cur) < 1e-12 and _max(out, img) < 1e-12


# ---- RF-Solver and FireFlow --------------------------------------------------------------------

def _flow_reference(net: TinyNet, img: torch.Tensor, timesteps: list[float], inverse: bool, reuse: bool) -> torch.Tensor:
    """RF-Solver's ``denoise`` (``reuse=False``): the velocity at (img, t), a half step to the midpoint,
    the velocity there, and the second-order Taylor update ``img + h v + h^2 / 2 (v_mid - v) / (h / 2)``;
    FireFlow's ``denoise_fireflow`` (``reuse=True``): the midpoint velocity of the previous step replaces
    the first evaluation, and the update is ``img + h v_mid``. Times go to the model times 1000."""
    if inverse:
        timesteps = timesteps[::-1]
    cached = None
    for t_curr, t_prev in zip(timesteps[:-1], timesteps[1:]):
        h = t_prev - t_curr
        pred = cached if cached is not None else net(img, torch.full((2,), t_curr * T, dtype=D), COND)
        pred_mid = net(img + h / 2 * pred, torch.full((2,), (t_curr + h / 2) * T, dtype=D), COND)
        if reuse:
            cached, img = pred_mid, img + h * pred_mid
        else:
            img = img + h * pred + 0.5 * h**2 * (pred_mid - pred) / (h / 2)
    return img


@pytest.mark.parametrize("reuse", [False, True], ids=["rf-solver", "fireflow"])
def test_flow_solvers_match_the_authors_loops(reuse: bool) -> None:
    net, img = TinyNet(seed=6), _images()
    grid = flow_grid({"shift": 3.0}, 7)
    timesteps, cond = [float(s) for s in grid.sigmas], Guidance(cond=COND)
    invert, sample = (fireflow_invert, fireflow_sample) if reuse else (flow_midpoint_invert, flow_midpoint_sample)
    noise = invert(net, img, grid, guidance=cond).x
    assert _max(noise, _flow_reference(net, img, timesteps, inverse=True, reuse=reuse)) < 1e-12
    back = sample(net, noise, grid, guidance=cond).x
    assert _max(back, _flow_reference(net, noise, timesteps, inverse=False, reuse=reuse)) < 1e-12
    other = (flow_midpoint_invert if reuse else fireflow_invert)(net, img, grid, guidance=cond).x
    assert _max(other, noise) > 1e-4  # the two rules differ, so each comparison above can fail


# ---- DDIM inversion against diffusers ----------------------------------------------------------

@pytest.mark.parametrize("changes", [{}, {"timestep_spacing": "trailing"}])
def test_ddim_inversion_matches_diffusers_inverse_scheduler(tmp_path, changes: dict) -> None:
    """``ddim_invert`` on the model's own scheduler config equals diffusers' ``DDIMInverseScheduler.step``
    loop, with guidance 3 (float32, like diffusers), for epsilon prediction. (For v / sample prediction
    the two differ on purpose: see docs/diffusion.md, "Conventions".)"""
    pytest.importorskip("diffusers")
    import json

    from diffusers import DDIMInverseScheduler

    from invertkit import load_generator
    from invertkit.diffusion import ddim_invert

    from .diffusers_factories import DDIM_CONFIG, diffusers_guided_loop, write_folder

    root = write_folder(tmp_path / "m", "cond")
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({**DDIM_CONFIG, **changes}))
    G = load_generator(f"diffusers:{root}")
    x0 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    ours = ddim_invert(G.denoiser(), x0, G.grid(8), prediction_type=G.prediction_type, guidance=G.guidance("cat", 3.0)).x
    sched = DDIMInverseScheduler.from_config(G.scheduler)
    sched.set_timesteps(8)
    ref = diffusers_guided_loop(G, sched, x0, "cat", 3.0)
    assert (ours - ref).abs().max() < 3e-4  # float32; diffusers' betas in float32, ours in float64


# ---- edit-friendly DDPM inversion ---------------------------------------------------------------

def test_ddpm_ef_matches_the_edit_friendly_reference() -> None:
    """inbarhub/DDPM_inversion ``inversion_forward_process`` / ``inversion_reverse_process``: noisy levels
    ``sqrt(a_t) x0 + sqrt(1 - a_t) n`` drawn per timestep, the clean image as the last level; from the
    noisiest, ``mu = sqrt(a_prev) x0_pred + sqrt(1 - a_prev - eta var) e`` and ``z = (x_prev - mu) /
    (eta sqrt(var))``; sampling adds ``eta sqrt(var) z`` after each mean. The authors then zero the last
    step's ``z`` (``zs[0]``); invertkit keeps it, so its reconstruction is exact and differs from theirs
    by exactly that term, while every other quantity matches."""
    net, img, steps, eta = TinyNet(seed=6), _images(), 8, 0.7  # eta < 1: DDIM's eta^2 in the mean would not match
    grid = diffusion_grid(_sd_config(1), steps)
    ratio = T // steps
    timesteps = [1 + ratio * k for k in reversed(range(steps))]  # noisiest first
    gen = torch.Generator().manual_seed(3)
    noisy = [_alpha(t) ** 0.5 * img + (1 - _alpha(t)) ** 0.5 * torch.randn(img.shape, generator=gen, dtype=D) for t in timesteps]

    def var(t: int) -> float:
        a, a_prev = _alpha(t), _alpha(t - ratio)
        return (1 - a_prev) / (1 - a) * (1 - a / a_prev)

    def mean(x: torch.Tensor, t: int) -> torch.Tensor:
        e = _guided(net, x, t)
        x0_pred = (x - (1 - _alpha(t)) ** 0.5 * e) / _alpha(t) ** 0.5
        return _alpha(t - ratio) ** 0.5 * x0_pred + (1 - _alpha(t - ratio) - eta * var(t)) ** 0.5 * e

    zs = [((noisy[i + 1] if i + 1 < steps else img) - mean(noisy[i], t)) / (eta * var(t) ** 0.5) for i, t in enumerate(timesteps)]
    res = ddpm_ef_inversion(net, img, grid, guidance=GUIDED, eta=eta, levels=noisy)
    assert _max(res.x_T, noisy[0]) < 1e-12
    assert max(_max(w, eta * var(t) ** 0.5 * z) for w, z, t in zip(res.noise, zs, timesteps)) < 1e-10
    cur = noisy[0]
    for i, t in enumerate(timesteps):  # the authors' reverse process, last z zeroed
        cur = mean(cur, t) + (eta * var(t) ** 0.5 * zs[i] if i < steps - 1 else 0)
    ours = ddpm_ef_sample(net, res.x_T, grid, res.noise, guidance=GUIDED, eta=eta).x
    assert _max(ours, img) < 1e-10 and _max(ours - res.noise[-1], cur) < 1e-10
    assert _max(ours, cur) > 1e-6  # the zeroed last term is a real difference
