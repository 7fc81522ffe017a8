"""``optimize`` reproduces the flat reference loop (NVIDIA's projector, ``methods/projector_reference.py``).

One image (``image_ids`` given, batch of 1) with ``adam_kernel="reference"``: the reference spells out
the same operations in the same order (``torch.optim.Adam``'s update, the noise renormalisation, the
same loss terms), so latent, noise maps and loss curve are compared bit for bit. Were a PyTorch
release to reorder Adam's arithmetic, these would drift by rounding (see the reference's docstring
for how far). The default kernel, PyTorch's fused Adam, is such a reordering: it is held to the
batch bounds below.

A batch of 2: on CPU a batch takes the non-fused modulated convolution (the same maths in another
order), so each image drifts from its own reference run by float32 rounding that the optimisation
amplifies. Measured over 36 runs of 60 steps (3 targets x 3 seeds x w / w+ x both images): latents
and noise maps within 2e-6 typically and at most 5e-5 (a leaky-ReLU kink crossed in one run and not
the other), loss curves within 6e-6 relative. Hence the batch bounds of 1e-4. Any change of the loop
itself -- the schedule, the latent noise, the regulariser, the renormalisation, Adam, the seeds --
moves them by 1e-2 or more (a 1 % change of ``lr_rampdown`` already moves the latent by 1e-2).
"""

from __future__ import annotations

import pytest
import torch

import invertkit
from invertkit.generators.stylegan2 import StyleGAN2Generator
from invertkit.methods.projector_reference import reference_projector

# optimize's default regulariser weight for loss="mse=1": NVIDIA's 1e5 in units of [-1, 1] pixels, as
# it is written into the resolved loss spec (4 significant digits)
NVIDIA_WEIGHT_FOR_MSE = 6.151
BATCH_ATOL = 1e-4  # latents and noise maps (entries of order 1), batch vs one-image reference
BATCH_RTOL_LOSS = 1e-4  # loss curves


@pytest.fixture(scope="module")
def noisy_sg2(tiny_sg2):
    """``tiny_sg2`` with noise strengths 0.3: its NVIDIA initialisation leaves them 0, so the noise
    maps would feel only the regulariser and the image loss would not reach them."""
    sd = {k: torch.full_like(v, 0.3) if k.endswith("noise_strength") else v for k, v in tiny_sg2.state_dict().items()}
    return StyleGAN2Generator(tiny_sg2.config, sd, name="tiny-sg2-noise")


@pytest.fixture(scope="module")
def targets(noisy_sg2):
    """Two images the generator drew itself (random noise, so the noise maps have something to fit)."""
    with torch.no_grad():
        w = noisy_sg2.sample_latent(2, "w", seed=3)
        return noisy_sg2.synthesize(w, "w", noise_mode="random", generator=torch.Generator().manual_seed(3))


def _assert_matches(result, i: int, ref, atol: float = 0.0, rtol_loss: float = 0.0, atol_loss: float = 0.0) -> None:
    """Image ``i`` of an InversionResult against a ReferenceProjection (exact by default)."""
    torch.testing.assert_close(result.latents[i], ref.latent[0], rtol=0, atol=atol)
    assert set(result.noise or {}) == set(ref.noise)
    for name, maps in ref.noise.items():
        torch.testing.assert_close(result.noise[name][i], maps[0], rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")
    curve = result.history["loss"][:, i]
    assert curve.shape == ref.loss.shape
    # step 0 renders the same start with the same draws in both (a batch's reductions round differently)
    if atol == 0:
        assert torch.equal(curve[:1], ref.loss[:1])
    else:
        torch.testing.assert_close(curve[:1], ref.loss[:1], rtol=1e-6, atol=0)
    torch.testing.assert_close(curve, ref.loss, rtol=rtol_loss, atol=atol_loss)


@pytest.mark.parametrize("space", ["w", "w+"])
def test_optimize_is_the_reference_loop_for_one_image(noisy_sg2, targets, space):
    # NVIDIA's setting (in w): noise maps, the projector schedule and latent noise (auto for StyleGAN2)
    steps = 100
    r = invertkit.invert(noisy_sg2, targets[1:], "optimize", space=space, noise=True, steps=steps, loss="mse=1",
                         seed=4, image_ids=[1], adam_kernel="reference")
    ref = reference_projector(noisy_sg2, targets[1:], space=space, steps=steps, noise=True, loss={"mse": 1.0},
                              noise_weight=NVIDIA_WEIGHT_FOR_MSE, seed=4, image_id=1)
    assert r.config["loss"] == "mse=1,noise=6.151"
    assert r.config["schedule"] == "projector" and r.config["latent_noise"] == 0.05 and r.config["restarts"] == 1
    _assert_matches(r, 0, ref)
    # the default kernel (PyTorch's fused Adam) orders the same update's arithmetic differently: rounding
    fused = invertkit.invert(noisy_sg2, targets[1:], "optimize", space=space, noise=True, steps=steps, loss="mse=1",
                             seed=4, image_ids=[1])
    assert fused.config["adam_kernel"] == "fused"
    assert not torch.equal(fused.latents[0], ref.latent[0])  # it is another kernel ...
    _assert_matches(fused, 0, ref, atol=BATCH_ATOL, rtol_loss=BATCH_RTOL_LOSS)  # ... of the same loop
    # the run did something: the latent left the mean, the loss fell, the maps stay renormalised
    assert (ref.latent - noisy_sg2.mean_latent(space)).abs().max() > 0.5
    assert ref.loss[-1] < 0.1 * ref.loss[0]
    for maps in ref.noise.values():
        assert abs(float(maps.mean())) < 1e-5 and abs(float(maps.square().mean()) - 1) < 1e-5


def test_optimize_without_noise_maps_and_two_terms(noisy_sg2, targets):
    # the generator's stored noise, two weighted image terms, other schedule lengths and lr
    kw = dict(space="w+", steps=50, lr=0.05, lr_rampup=0.1, lr_rampdown=0.4, latent_noise=0.1, latent_noise_ramp=0.5, seed=2)
    r = invertkit.invert(noisy_sg2, targets[:1], "optimize", loss="mse=1,l1=0.5", image_ids=[7], adam_kernel="reference", **kw)
    ref = reference_projector(noisy_sg2, targets[:1], noise=False, loss={"mse": 1.0, "l1": 0.5}, image_id=7, **kw)
    assert ref.noise == {} and r.noise is None
    _assert_matches(r, 0, ref)


@pytest.mark.parametrize("space", ["w", "w+"])
def test_optimize_batch_is_reference_per_image(noisy_sg2, targets, space):
    # a batch of 2 gives each image the reference run of its own id (0 and 1)
    steps = 60
    r = invertkit.invert(noisy_sg2, targets, "optimize", space=space, noise=True, steps=steps, loss="mse=1", seed=1)
    for i in range(2):
        ref = reference_projector(noisy_sg2, targets[i : i + 1], space=space, steps=steps, noise=True,
                                  loss={"mse": 1.0}, noise_weight=NVIDIA_WEIGHT_FOR_MSE, seed=1, image_id=i)
        _assert_matches(r, i, ref, atol=BATCH_ATOL, rtol_loss=BATCH_RTOL_LOSS)
    # ids matter: image 1 run as id 0 starts from other noise maps and ends elsewhere
    other = reference_projector(noisy_sg2, targets[1:], space=space, steps=steps, noise=True, loss={"mse": 1.0},
                                noise_weight=NVIDIA_WEIGHT_FOR_MSE, seed=1, image_id=0)
    assert not torch.allclose(r.latents[1], other.latent[0], atol=1e-2)


def test_optimize_z_only_generator_constant_schedule(tiny_mlp):
    # z-only generators: a seeded random start, constant learning rate, no latent noise, no noise maps
    with torch.no_grad():
        target = tiny_mlp.synthesize(tiny_mlp.sample_latent(2, "z", seed=9), "z")
    r = invertkit.invert(tiny_mlp, target, "optimize", steps=80, loss="mse=1", restarts=1, seed=5)
    assert r.config["schedule"] == "constant" and r.config["latent_noise"] == 0.0
    for i in range(2):
        ref = reference_projector(tiny_mlp, target[i : i + 1], space="z", steps=80, schedule="constant", latent_noise=0.0,
                                  noise=False, loss={"mse": 1.0}, init="random", seed=5, image_id=i)
        # a batch of 2 through the MLP: matmul rounding; the loss falls to ~1e-5 (exact recovery)
        _assert_matches(r, i, ref, atol=1e-6, rtol_loss=1e-6, atol_loss=1e-9)
