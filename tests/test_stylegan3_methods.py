"""StyleGAN3 generators through invertkit's methods: they ask for capabilities, never for StyleGAN2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import invertkit
from invertkit.results import TunedInversion

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def G():
    return invertkit.load_generator(GOLDEN / "stylegan3_r16.pkl")


@pytest.fixture(scope="module")
def target(G):
    with torch.no_grad():
        return G.synthesize(G.sample_latent(1, "w+", seed=9), "w+").clamp(-1, 1)


def test_optimize_in_w_plus_lowers_the_loss(G, target) -> None:
    r = invertkit.invert(G, target, method="optimize", space="w+", steps=4, loss="mse=1", seed=0)
    assert r.space == "w+" and r.latents.shape == (1, G.num_ws, G.config.w_dim)
    loss = r.history["loss"][:, 0]
    assert float(loss[-1]) < float(loss[0])
    assert "nscd" in r.metrics[0]  # the StyleSpaces metric reads the style anchors of every row
    assert torch.allclose(r.render(G), r.reconstructions, atol=1e-5)


def test_pti_tunes_the_synthesis_network(G, target) -> None:
    r = invertkit.invert(G, target, method="pti", pivot="optimize", pivot_steps=2, steps=3, loss="mse=1",
                         pivot_options="loss=mse=1", seed=0)
    assert isinstance(r, TunedInversion)
    assert r.deltas[0] and all(k.startswith("synthesis.") for k in r.deltas[0])
    assert torch.allclose(r.render(G), r.reconstructions, atol=1e-5)
