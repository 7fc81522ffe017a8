"""Diffusion and rectified-flow inversion: the pure-PyTorch mathematical core.

No diffusers dependency: schedules are built from diffusers-style config dicts, a model is any
denoiser callable ``(x_t [N, ...], t [N], cond=None) -> output``, and every sampler/inversion is a
function returning the end point and its number of model evaluations (NFE), in the input's dtype.

Modules: ``schedules`` (alpha_bar, timesteps, flow sigmas), ``parameterisation`` (eps / v / sample /
velocity conversions), ``guidance`` (classifier-free guidance), ``analytic`` (exact denoisers for
Gaussian data), ``ddim`` (DDIM + inversion, ReNoise-style fixed point), ``edict``, ``bdia``,
``flow`` (Euler, midpoint/RF-Solver, FireFlow), ``coupled_flow`` (exactly invertible flow integrator).
Inversions for guided editing: ``nulltext`` (null-text and negative-prompt inversion), ``direct``
(PnP Direct Inversion), ``rf_inversion`` (RF-Inversion's controlled flow ODEs).
"""

from invertkit.diffusion import family as _family  # noqa: F401  (registers diffusers:, analytic:, diffusion-faces32 and diffusion-mnist32)
from invertkit.diffusion.analytic import AnalyticGaussian, discrete_alpha_bar_fn
from invertkit.diffusion.bdia import bdia_invert, bdia_sample
from invertkit.diffusion.coupled_flow import coupled_flow_invert, coupled_flow_sample
from invertkit.diffusion.ddim import ddim_coefficients, ddim_invert, ddim_sample
from invertkit.diffusion.direct import DirectResult, direct_inversion, direct_sample
from invertkit.diffusion.edict import edict_invert, edict_sample
from invertkit.diffusion.flow import (
    fireflow_invert,
    fireflow_sample,
    flow_euler_invert,
    flow_euler_sample,
    flow_midpoint_invert,
    flow_midpoint_sample,
)
from invertkit.diffusion.guidance import Guidance, evaluate, evaluate_eps
from invertkit.diffusion.nulltext import (
    NullTextResult,
    ddim_inversion_path,
    negative_prompt_uncond,
    null_text_optimize,
    null_text_sample,
)
from invertkit.diffusion.parameterisation import (
    Denoiser,
    diffuse,
    eps_x0_to_output,
    flow_interpolate,
    flow_velocity,
    output_to_eps_x0,
    velocity_to_x0_noise,
)
from invertkit.diffusion.results import PairTrajectory, Trajectory
from invertkit.diffusion.rf_inversion import rf_invert, rf_sample
from invertkit.diffusion.schedules import (
    DiffusionGrid,
    FlowGrid,
    alphas_cumprod,
    betas,
    diffusion_grid,
    final_alpha_cumprod,
    flow_grid,
    inference_timesteps,
    prediction_type,
    shift_sigmas,
    uniform_flow_grid,
)

__all__ = [
    "AnalyticGaussian", "Denoiser", "DiffusionGrid", "FlowGrid", "Guidance", "PairTrajectory", "Trajectory",
    "alphas_cumprod", "bdia_invert", "bdia_sample", "betas", "coupled_flow_invert", "coupled_flow_sample",
    "ddim_coefficients", "ddim_invert", "ddim_sample", "diffuse", "diffusion_grid", "discrete_alpha_bar_fn",
    "edict_invert", "edict_sample", "eps_x0_to_output", "evaluate", "evaluate_eps", "final_alpha_cumprod",
    "fireflow_invert", "fireflow_sample", "flow_euler_invert", "flow_euler_sample", "flow_grid",
    "flow_interpolate", "flow_midpoint_invert", "flow_midpoint_sample", "flow_velocity", "inference_timesteps",
    "output_to_eps_x0", "prediction_type", "shift_sigmas", "uniform_flow_grid", "velocity_to_x0_noise",
    "DirectResult", "NullTextResult", "ddim_inversion_path", "direct_inversion", "direct_sample",
    "negative_prompt_uncond", "null_text_optimize", "null_text_sample", "rf_invert", "rf_sample",
]
