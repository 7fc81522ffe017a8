"""Schedules from diffusers-style configs: values checked against the defining formulas."""

from __future__ import annotations

import math

import pytest
import torch

from invertkit.diffusion import (
    DiffusionGrid,
    alphas_cumprod,
    betas,
    diffusion_grid,
    discrete_alpha_bar_fn,
    final_alpha_cumprod,
    flow_grid,
    inference_timesteps,
    prediction_type,
)
from invertkit.errors import ConfigError

SD = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
      "steps_offset": 1, "set_alpha_to_one": False, "_class_name": "DDIMScheduler", "clip_sample": False}


def test_scaled_linear_matches_formula_and_known_values() -> None:
    ab = alphas_cumprod(SD)
    assert ab.dtype == torch.float64 and ab.shape == (1000,)
    # Independent scalar evaluation of prod(1 - (sqrt(b0) + i/(T-1) (sqrt(b1) - sqrt(b0)))^2).
    r0, r1 = math.sqrt(0.00085), math.sqrt(0.012)
    prod = 1.0
    for i in range(1000):
        prod *= 1 - (r0 + i / 999 * (r1 - r0)) ** 2
    assert abs(float(ab[-1]) - prod) < 1e-14
    assert float(ab[0]) == pytest.approx(0.99915, abs=1e-15)
    assert float(ab[-1]) == pytest.approx(0.0046601, abs=5e-8)  # the value Stable Diffusion users quote (0.00466)
    assert bool((ab[1:] < ab[:-1]).all())
    assert final_alpha_cumprod(SD) == float(ab[0])
    assert final_alpha_cumprod({**SD, "set_alpha_to_one": True}) == 1.0


def test_linear_and_cosine_schedules() -> None:
    b = betas({"beta_schedule": "linear"})
    assert float(b[0]) == pytest.approx(1e-4) and float(b[-1]) == pytest.approx(0.02)
    cos = betas({"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 10})

    def f(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    assert float(cos[3]) == pytest.approx(1 - f(0.4) / f(0.3), rel=1e-12)
    assert float(cos[-1]) == pytest.approx(0.999)  # clipped: f(1) = 0
    assert torch.allclose(betas({"trained_betas": [0.1, 0.2], "num_train_timesteps": 2}),
                          torch.tensor([0.1, 0.2], dtype=torch.float64))


def test_timestep_spacings() -> None:
    lead = inference_timesteps(SD, 50)
    assert lead.tolist() == list(range(981, 0, -20))
    trail = inference_timesteps({**SD, "timestep_spacing": "trailing"}, 50)
    assert trail.tolist() == list(range(999, 18, -20))
    assert inference_timesteps({**SD, "timestep_spacing": "linspace"}, 4).tolist() == [999, 666, 333, 0]
    assert inference_timesteps({"timestep_spacing": "trailing"}, 3).tolist() == [999, 666, 332]  # round(1000 - k*333.3) - 1


def test_diffusion_grid_chain() -> None:
    g = diffusion_grid(SD, 10)
    ab = alphas_cumprod(SD)
    assert g.timesteps.tolist() == [901.0, 801.0, 701.0, 601.0, 501.0, 401.0, 301.0, 201.0, 101.0, 1.0]
    assert torch.equal(g.alpha_bar[:-1], ab[[901, 801, 701, 601, 501, 401, 301, 201, 101, 1]])
    assert float(g.alpha_bar[-1]) == float(ab[0])


def test_clean_end_time() -> None:
    """The model time of the clean end (BDIA's first inversion step evaluates there): diffusers' next
    timestep ``t - T // S`` after the last one, or the grid's spacing continued; negative times map to the
    final alpha in the analytic model instead of wrapping around."""
    assert diffusion_grid(SD, 50).clean_time() == -19.0  # 1 - 20: the final alpha's level
    assert diffusion_grid({**SD, "timestep_spacing": "trailing"}, 50).clean_time() == -1.0
    t = torch.linspace(1, 0, 5, dtype=torch.float64)
    assert DiffusionGrid(timesteps=t[:-1], alpha_bar=0.5 + 0.1 * t).clean_time() == 0.0
    with pytest.raises(ConfigError, match="final_timestep"):
        DiffusionGrid(timesteps=t[:1], alpha_bar=torch.tensor([0.5, 0.9], dtype=torch.float64)).clean_time()
    levels = discrete_alpha_bar_fn(alphas_cumprod(SD), final=0.9995)
    got = levels(torch.tensor([-19.0, 0.0, 999.0], dtype=torch.float64))
    assert got.tolist() == [0.9995, float(alphas_cumprod(SD)[0]), float(alphas_cumprod(SD)[999])]


def test_flow_grid_shift() -> None:
    g = flow_grid({"num_train_timesteps": 1000, "shift": 3.0}, 4)
    smin = 3 * 1e-3 / (1 + 2 * 1e-3)
    raw = torch.linspace(1.0, smin, 4, dtype=torch.float64)
    assert torch.allclose(g.sigmas[:-1], 3 * raw / (1 + 2 * raw), atol=1e-15)
    assert float(g.sigmas[0]) == 1.0 and float(g.sigmas[-1]) == 0.0 and g.time_scale == 1000.0
    plain = flow_grid({}, 3).sigmas
    assert torch.allclose(plain, torch.tensor([1.0, 0.5005, 0.001, 0.0], dtype=torch.float64))


@pytest.mark.parametrize(
    "config,reader,message",
    [({"beta_schedule": "cosine"}, "alphas_cumprod", "beta_schedule='cosine' is not supported; use one of linear, scaled_linear, squaredcos_cap_v2"),
     ({"prediction_type": "x0"}, "prediction_type", "prediction_type='x0' is not supported; use one of epsilon, v_prediction, sample"),
     ({"timestep_spacing": "middle"}, "inference_timesteps", "timestep_spacing='middle' is not supported; use one of leading, trailing, linspace"),
     ({"num_train_timesteps": 0}, "alphas_cumprod", "num_train_timesteps=0 must be a positive integer"),
     ({"num_train_timesteps": 0}, "inference_timesteps", "num_train_timesteps=0 must be a positive integer"),
     ({"rescale_betas_zero_snr": True}, "alphas_cumprod", "rescale_betas_zero_snr=true is not supported by invertkit.diffusion; set it to false"),
     ({"beta_start": 0.0}, "alphas_cumprod", r"beta_start=0.0 and beta_end=0.02 must lie in \(0, 1\)")],
)
def test_bad_config_values_raise(config: dict, reader: str, message: str) -> None:
    """Each bad value is refused by the reader that uses it, with a message naming the key and the fix."""
    read = {"alphas_cumprod": alphas_cumprod, "inference_timesteps": lambda c: inference_timesteps(c, 10),
            "prediction_type": prediction_type}[reader]
    with pytest.raises(ConfigError, match=f"^scheduler config: {message}"):
        read(config)


def test_bad_steps_and_flow_options_raise() -> None:
    with pytest.raises(ConfigError, match="steps"):
        inference_timesteps(SD, 0)
    with pytest.raises(ConfigError, match="use_dynamic_shifting"):
        flow_grid({"use_dynamic_shifting": True}, 10)
    with pytest.raises(ConfigError, match="prediction_type"):
        prediction_type({"prediction_type": "x0"})
