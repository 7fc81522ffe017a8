"""Gradient-free CMA-ES and BasinCMA."""

from __future__ import annotations

import torch

import invertkit


def drawn(G, n, seed):
    with torch.no_grad():
        return G.synthesize(G.sample_latent(n, seed=seed))


def test_cma_improves_and_counts(tiny_mlp):
    target = drawn(tiny_mlp, 2, 3)
    r = invertkit.invert(tiny_mlp, target, method="cma", steps=40, popsize=10, loss="mse=1")
    assert r.timings.evaluations == [400.0, 400.0]
    curve = r.history["loss"]
    assert (curve[-1] < curve[0]).all()  # best-so-far improves
    assert all(m["psnr"] > 20 for m in r.metrics)
    again = invertkit.invert(tiny_mlp, target, method="cma", steps=40, popsize=10, loss="mse=1")
    assert torch.equal(r.latents, again.latents)  # seeded per image


def test_basincma(tiny_mlp):
    target = drawn(tiny_mlp, 2, 4)
    r = invertkit.invert(tiny_mlp, target, method="basincma", steps=3, popsize=4, inner_steps=10, final_steps=20, loss="mse=1")
    assert r.timings.evaluations == [3 * 4 * 11 + 21.0] * 2
    assert all(m["psnr"] > 25 for m in r.metrics)


def test_cma_in_z_sphere(tiny_mlp):
    r = invertkit.invert(tiny_mlp, drawn(tiny_mlp, 1, 5), method="cma", space="z-sphere", steps=5, loss="mse=1")
    assert torch.allclose(r.latents.norm(dim=1), torch.tensor([8**0.5]), atol=1e-4)
