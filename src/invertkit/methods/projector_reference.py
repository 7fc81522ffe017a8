"""The ``optimize`` method's Adam loop for one image, written out flat to be audited against NVIDIA's projector.

``invertkit.invert(G, x, "optimize", ...)`` spreads this loop over ``methods/optimize.py``,
``variables.py``, ``init.py``, ``schedule.py``, ``problem.py`` and ``objectives/combined.py``, because it
also serves K restarts, early stopping, L-BFGS, layerwise spaces and degradations. For the common
case -- one start, Adam, NVIDIA's schedule, optionally StyleGAN2's noise maps -- this module is the
same computation in one function that reads top to bottom beside NVIDIA's
``stylegan2-ada-pytorch/projector.py`` (commit d72cc7d, function ``project``, lines 25-131; the
``# NV Lnn`` comments point at its lines). ``tests/test_projector_reference.py`` checks that
``optimize`` reproduces it: latent, noise maps and loss curve, alone and in batches.

Where invertkit deliberately differs from NVIDIA (each marked ``DIFFERS`` below):

- any latent space (``w`` is NVIDIA's; ``w+``, and ``z`` for z-only generators, use the same loop);
- the image distance is invertkit's objective terms (``mse``, ``perceptual``, ``lpips``, ... with
  weights) on [-1, 1] images instead of the squared VGG16 LPIPS feature distance on [0, 255] images
  (area-downsampled to 256 px when larger);
- the start is the generator's stored mean latent (``mapping.w_avg``, tracked during training) instead of the
  mean of 10,000 freshly mapped samples, and ``w_std`` is estimated from 1,000 samples (seed 123456)
  instead of 10,000 (``RandomState(123)``);
- every random draw of an image (latent noise, initial noise maps) comes from its own
  ``torch.Generator`` seeded by :func:`~invertkit.methods.init.derive_seed` from the run seed and the
  image's id (its position in the run), not from the global RNG, so a batch gives each image the
  result it gets alone; the latent noise is drawn only while its scale is positive;
- the optimised noise maps are per-image inputs to ``G.synthesize(..., noise=maps)`` (scaled by each
  layer's ``noise_strength`` exactly as NVIDIA's ``noise_const`` buffers are in ``noise_mode="const"``)
  instead of the generator's own buffers;
- the renormalisation of the noise maps divides by the root mean square clamped at 1e-8 where NVIDIA
  multiplies by its ``rsqrt``: the same value to rounding, but a constant map becomes 0, not NaN.

NVIDIA's optimiser is ``torch.optim.Adam``; its update is spelled out here in the order of operations
of PyTorch's single-tensor implementation (Kingma & Ba's Algorithm 1 with eps added to the
bias-corrected root). Matching the order matters more than it seems: the loop is chaotic enough
(leaky-ReLU kinks, the 1e5 regulariser weight) that a one-ulp difference per step, e.g. ``* rsqrt(v)``
against ``/ sqrt(v)`` in the renormalisation, grows to about 1e-6 in the latent after 100 steps, and
to 1e-4 .. 1e-2 when it tips a kink one way in one run and the other way in the other. With the same
order, ``optimize`` on one image gives the same bits as this function (on CPU, PyTorch 2.x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..generators.base import Generator
from ..generators.capabilities import NoiseMaps, require
from ..objectives.image_losses import IMAGE_LOSSES
from .init import derive_seed

__all__ = ["ReferenceProjection", "reference_projector"]

W_STD_SAMPLES = 1000  # DIFFERS: NVIDIA's w_avg_samples = 10000 (NV L30)
W_STD_SEED = 123_456  # DIFFERS: NVIDIA draws them from np.random.RandomState(123) (NV L50)
LATENT_NOISE_PURPOSE = 7  # derive_seed(seed, image_id, candidate, purpose): the latent-noise stream
NOISE_MAP_PURPOSE = 11  # ... and the initial noise maps


@dataclass
class ReferenceProjection:
    """What :func:`reference_projector` returns for one image.

    Attributes:
        latent: ``[1, *G.latent_shape(space)]``, the optimised latent after the last step.
        noise: ``{layer name: [1, 1, H, W]}`` optimised unit noise maps (empty without ``noise``).
        loss: ``[steps]``, the total loss of each step, evaluated (as NVIDIA logs it) at the
            noise-perturbed latent before that step's update.
    """

    latent: Tensor
    noise: dict[str, Tensor]
    loss: Tensor


def reference_projector(
    G: Generator,
    target: Tensor,
    *,
    space: str = "w",
    steps: int = 1000,
    lr: float = 0.1,
    schedule: str = "projector",
    lr_rampup: float = 0.05,
    lr_rampdown: float = 0.25,
    latent_noise: float = 0.05,
    latent_noise_ramp: float = 0.75,
    noise: bool = True,
    noise_weight: float = 1e5,
    loss: dict[str, float] | None = None,
    init: str = "mean",
    seed: int = 0,
    image_id: int = 0,
) -> ReferenceProjection:
    """Project one image the way ``optimize`` does with one Adam start (NVIDIA's projector, flat).

    Args:
        G: the generator; ``noise=True`` needs its noise maps (capability ``NoiseMaps``: StyleGAN2).
        target: ``[1, C, H, W]`` or ``[C, H, W]``, the image in [-1, 1] at G's resolution.
        space: the latent space optimised (``w`` as NVIDIA, ``w+``, ``z``, ...).
        steps: Adam steps (NVIDIA ``num_steps`` 1000).
        lr: peak learning rate (``initial_learning_rate`` 0.1).
        schedule: ``"projector"`` (NVIDIA's ramp up / cosine ramp down) or ``"constant"``.
        lr_rampup, lr_rampdown: fractions of ``steps`` (``lr_rampup_length`` 0.05,
            ``lr_rampdown_length`` 0.25).
        latent_noise: initial latent-noise scale in units of ``w_std`` (``initial_noise_factor`` 0.05).
        latent_noise_ramp: fraction of ``steps`` over which it decays to 0 (``noise_ramp_length`` 0.75).
        noise: also optimise the noise maps (NVIDIA always does).
        noise_weight: weight of the noise regulariser (``regularize_noise_weight`` 1e5).
        loss: image terms and weights, names of ``invertkit.objectives.IMAGE_LOSSES``
            (default ``{"mse": 1.0}``).
        init: ``"mean"`` (``G.mean_latent(space)``, NVIDIA's start) or ``"random"`` (a seeded sample
            of ``space``, invertkit's start for z-only generators).
        seed: the run seed; with ``image_id`` it seeds every draw of this image.
        image_id: the image's position in the run (``invert(..., image_ids=...)``).

    Returns:
        :class:`ReferenceProjection` (latent, noise maps, loss curve).
    """
    if schedule not in ("projector", "constant"):
        raise ValueError(f"schedule must be 'projector' or 'constant', got {schedule!r}")
    device = G.device
    target = target.reshape(1, G.channels, G.resolution, G.resolution).to(device, torch.float32)
    weights = {"mse": 1.0} if loss is None else dict(loss)

    # ---- start latent and w_std (NV L48-54, L70) -------------------------------------------------
    # DIFFERS: NVIDIA starts at the mean of 10,000 mapped samples; invertkit at the stored mean.
    if init == "mean":
        latent = G.mean_latent(space).detach().clone()
    elif init == "random":
        latent = G.sample_latent(1, space, seed=derive_seed(seed, image_id, 0)).detach().clone()
    else:
        raise ValueError(f"init must be 'mean' or 'random', got {init!r}")
    w_std = 0.0
    if latent_noise > 0:
        # NV L54: w_std = sqrt(sum((w - w_avg)^2) / N), the RMS distance of a sample from the mean;
        # in w+ every row is one sample of w_dim values
        with torch.no_grad():
            samples = G.sample_latent(W_STD_SAMPLES, space, seed=W_STD_SEED).float()
            rows = samples.reshape(-1, samples.shape[-1])
            w_std = float((rows - rows.mean(0)).square().sum(1).mean().sqrt())
    latent.requires_grad_(True)

    # ---- noise maps (NV L57, L74-77): unit Gaussian, not normalised before the first step --------
    maps: dict[str, Tensor] = {}
    if noise:
        noisy = require(G, NoiseMaps, "the reference projector with noise=True")
        g_maps = torch.Generator(device="cpu").manual_seed(derive_seed(seed, image_id, 0, NOISE_MAP_PURPOSE))
        for name, (h, w) in noisy.noise_shapes().items():
            maps[name] = torch.randn([1, 1, h, w], generator=g_maps).to(device).requires_grad_(True)
    params = [latent, *maps.values()]

    # ---- Adam state (NV L72: torch.optim.Adam(betas=(0.9, 0.999)), default eps 1e-8) -------------
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = [torch.zeros_like(p) for p in params]  # first moment
    v = [torch.zeros_like(p) for p in params]  # second moment

    # ---- image distance: target side computed once (NV L64-68) -----------------------------------
    # DIFFERS: invertkit's objective terms instead of VGG16 LPIPS features
    terms = {name: IMAGE_LOSSES.get(name)(device=device) for name in weights}
    with torch.no_grad():
        prepared = {name: term.prepare(target) for name, term in terms.items()}

    g_latent = torch.Generator(device=device).manual_seed(derive_seed(seed, image_id, 0, LATENT_NOISE_PURPOSE))
    losses = []
    for step in range(steps):  # NV L79
        # ---- learning-rate schedule and latent-noise scale (NV L81-88) ---------------------------
        t = step / steps
        noise_scale = w_std * latent_noise * max(0.0, 1.0 - t / latent_noise_ramp) ** 2 if latent_noise_ramp > 0 else 0.0
        if schedule == "projector":
            ramp = min(1.0, (1.0 - t) / lr_rampdown) if lr_rampdown > 0 else 1.0
            ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
            if lr_rampup > 0:
                ramp = ramp * min(1.0, t / lr_rampup)  # 0 at step 0: the first step only fills Adam's moments
            step_lr = lr * ramp
        else:
            step_lr = lr

        # ---- render the noise-perturbed latent (NV L91-93) ---------------------------------------
        # DIFFERS: drawn from this image's own generator, and only while the scale is positive
        if noise_scale > 0:
            perturbed = latent + torch.randn(latent.shape[1:], generator=g_latent, device=device)[None] * noise_scale
        else:
            perturbed = latent
        images = noisy.synthesize_with_noise(perturbed, space, maps) if maps else G.synthesize(perturbed, space)

        # ---- image distance (NV L95-102) ---------------------------------------------------------
        total = sum(weights[name] * term(images, prepared[name]) for name, term in terms.items())

        # ---- noise regulariser (NV L104-114): squared autocorrelation with the right and lower
        # neighbour (wrapping), at every scale from the map's own down to 8 x 8 by 2 x 2 averaging
        if maps:
            reg = 0.0
            for x in maps.values():
                while True:
                    reg = reg + (x * torch.roll(x, shifts=1, dims=3)).mean() ** 2
                    reg = reg + (x * torch.roll(x, shifts=1, dims=2)).mean() ** 2
                    if x.shape[2] <= 8:
                        break
                    x = F.avg_pool2d(x, kernel_size=2)
            total = total + noise_weight * reg
        total = total.sum()  # [1] -> scalar

        # ---- gradient and Adam step (NV L116-119; torch.optim.Adam's update, op for op) -----------
        grads = torch.autograd.grad(total, params)  # the generator's weights get no gradient
        with torch.no_grad():
            k = step + 1  # Adam's timestep
            for p, g, m_p, v_p in zip(params, grads, m, v):
                m_p.lerp_(g, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                v_p.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
                step_size = step_lr / (1 - beta1**k)  # bias corrections, in float64 as torch does
                denom = (v_p.sqrt() / (1 - beta2**k) ** 0.5).add_(eps)
                p.addcdiv_(m_p, denom, value=-step_size)  # p -= lr m_hat / (sqrt(v_hat) + eps)

            # ---- renormalise the noise maps to zero mean, unit variance (NV L125-129) -------------
            # DIFFERS: NVIDIA multiplies by mean(x^2).rsqrt(); the clamp keeps a constant map finite
            for x in maps.values():
                x.sub_(x.mean())
                x.div_(x.square().mean().sqrt().clamp_min(1e-8))
        losses.append(total.detach())

    return ReferenceProjection(
        latent=latent.detach(),
        noise={name: x.detach() for name, x in maps.items()},
        loss=torch.stack(losses).cpu() if losses else torch.zeros(0),
    )
