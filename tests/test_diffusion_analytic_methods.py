"""Methods through ``invertkit.invert`` on the analytic Gaussian model, whose exact inversion is known:
the measured error falls with the step count at the expected order."""

from __future__ import annotations

import math

import pytest
import torch

import invertkit
from invertkit.errors import ConfigError


def _slope(steps, errors):
    """Least-squares slope of log(error) against log(steps)."""
    xs, ys = [math.log(s) for s in steps], [math.log(e) for e in errors]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _errors(G, images, method, steps, **options):
    out = []
    for s in steps:
        result = invertkit.invert(G, images, method, steps=s, dtype="float64", prompt="up", **options)
        out.append(max(m["inversion_error"] for m in result.metrics))
    return out


@pytest.fixture(scope="module")
def data():
    out = {}
    for family in ("diffusion", "flow"):
        G = invertkit.load_generator(f"analytic:{family}")
        out[family] = G, G.synthesize(G.sample_latent(3, seed=0), steps=400, prompt="up", dtype="float64").double()
    return out


@pytest.mark.parametrize("family,method,steps,low,high", [
    ("diffusion", "ddim", (40, 80, 160, 320), -1.15, -0.85),  # first order
    ("flow", "flow-euler", (8, 16, 32, 64), -1.2, -0.85),  # first order
    ("flow", "flow-midpoint", (8, 16, 32, 64), -4.0, -1.8),  # (at least) second order
    ("flow", "fireflow", (8, 16, 32, 64), -4.0, -1.8),  # close to second order at one evaluation per step
])
def test_inversion_error_order(data, family, method, steps, low, high):
    G, images = data[family]
    errors = _errors(G, images, method, steps)
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert low < _slope(steps, errors) < high, (errors, _slope(steps, errors))


def test_guided_inversion_is_scored_against_the_guided_ode(data):
    """With guidance the exact answer is the ODE of the mixed condition; fine steps approach it."""
    G, images = data["flow"]
    coarse, fine = _errors(G, images, "flow-midpoint", (8, 64), guidance=3.0)
    assert fine < coarse / 50 and fine < 1e-4


def test_edits_on_the_analytic_model(data):
    """(BDIA's exact round trip on this model is asserted with the other exact methods in test_diffusion_methods.py.)"""
    G, images = data["diffusion"]
    result = invertkit.invert(G, images, "bdia", steps=30, dtype="float64", prompt="up", guidance=2.0)
    from invertkit.methods.diffusion import regenerate

    down = regenerate(G, result, prompt="down")
    # the edit moves the image along the model's condition direction: the mean shifts by -2 directions
    shift = (down - result.reconstructions).double().mean(0)[0]
    direction = G.model.direction[0]
    assert torch.corrcoef(torch.stack([shift.flatten(), direction.flatten()]))[0, 1] < -0.9


def test_analytic_spec_errors():
    with pytest.raises(ConfigError, match="analytic model family 'gauss'"):
        invertkit.load_generator("analytic:gauss")
    with pytest.raises(ConfigError, match="must be an integer"):
        invertkit.load_generator("analytic:flow:big")
    assert invertkit.load_generator("analytic:flow:16").resolution == 16
