"""Noise schedules built from diffusers-style scheduler config dicts.

Two families:

* **Discrete DDPM/DDIM schedules** (Ho et al. 2020, "Denoising Diffusion Probabilistic Models";
  Song et al. 2021, "Denoising Diffusion Implicit Models"): betas over ``num_train_timesteps``
  training steps, ``alpha_bar[t] = prod_{s<=t} (1 - beta_s)``, forward process
  ``x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps``.
* **Rectified-flow schedules** (Liu et al. 2023, "Flow Straight and Fast"; Esser et al. 2024,
  "Scaling Rectified Flow Transformers", the SD3 time shift): ``x_t = (1 - t) x0 + t noise`` with
  ``t = sigma`` in [0, 1], t = 1 pure noise.

Config keys follow diffusers' ``DDIMScheduler`` and ``FlowMatchEulerDiscreteScheduler`` so a
``scheduler_config.json`` can be passed as a dict. Keys we do not use (``_class_name`` ...) are ignored (``clip_sample`` and ``thresholding`` shape only
sampling: :func:`x0_clipper`); keys whose values would change the maths in a way we do not
implement (``trained_betas`` and FLUX's ``use_dynamic_shifting`` are supported; ``rescale_betas_zero_snr``,
``use_karras_sigmas`` are refused) raise :class:`~invertkit.errors.ConfigError`.

Everything is computed in float64 (diffusers computes betas in float32; differences are ~1e-7).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from invertkit.errors import ConfigError

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")

# Defaults of diffusers' DDIMScheduler / FlowMatchEulerDiscreteScheduler.
_DDIM_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "trained_betas": None,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "steps_offset": 0,
    "set_alpha_to_one": True,
}
_FLOW_DEFAULTS: dict[str, Any] = {"num_train_timesteps": 1000, "shift": 1.0}


def _get(config: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> Any:
    value = config.get(key, defaults[key])
    return defaults[key] if value is None and key != "trained_betas" else value


def _positive_int(config: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> int:
    value = _get(config, key, defaults)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"scheduler config: {key}={value!r} must be a positive integer")
    return value


def _choice(config: Mapping[str, Any], key: str, choices: tuple[str, ...], defaults: Mapping[str, Any]) -> str:
    value = _get(config, key, defaults)
    if value not in choices:
        raise ConfigError(f"scheduler config: {key}={value!r} is not supported; use one of {', '.join(choices)}")
    return value


def _refuse_true(config: Mapping[str, Any], key: str) -> None:
    if config.get(key):
        raise ConfigError(f"scheduler config: {key}=true is not supported by invertkit.diffusion; set it to false")


def _check_mapping(config: Any) -> Mapping[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigError(f"scheduler config must be a dict (a parsed scheduler_config.json), got {type(config).__name__}")
    return config


def prediction_type(config: Mapping[str, Any]) -> str:
    """The model output kind named by ``config['prediction_type']``: epsilon, v_prediction or sample."""
    return _choice(_check_mapping(config), "prediction_type", PREDICTION_TYPES, _DDIM_DEFAULTS)


def betas(config: Mapping[str, Any]) -> Tensor:
    """Training betas ``[num_train_timesteps]`` float64, each in (0, 1).

    linear: ``linspace(beta_start, beta_end)``; scaled_linear (Stable Diffusion):
    ``linspace(sqrt(beta_start), sqrt(beta_end))**2``; squaredcos_cap_v2 (Nichol & Dhariwal 2021,
    "Improved DDPM"): ``beta_i = min(1 - f((i+1)/T) / f(i/T), 0.999)`` with
    ``f(u) = cos((u + 0.008) / 1.008 * pi / 2)**2``. ``trained_betas`` (a list) overrides all.
    """
    config = _check_mapping(config)
    _refuse_true(config, "rescale_betas_zero_snr")
    n = _positive_int(config, "num_train_timesteps", _DDIM_DEFAULTS)
    trained = config.get("trained_betas")
    if trained is not None:
        out = torch.as_tensor(trained, dtype=torch.float64)
        if out.ndim != 1 or out.numel() != n or not bool(((out > 0) & (out < 1)).all()):
            raise ConfigError(f"scheduler config: trained_betas must be {n} values in (0, 1)")
        return out
    kind = _choice(config, "beta_schedule", BETA_SCHEDULES, _DDIM_DEFAULTS)
    if kind == "squaredcos_cap_v2":
        def f(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)], dtype=torch.float64)
    start, end = float(_get(config, "beta_start", _DDIM_DEFAULTS)), float(_get(config, "beta_end", _DDIM_DEFAULTS))
    if not (0 < start < 1 and 0 < end < 1):
        raise ConfigError(f"scheduler config: beta_start={start} and beta_end={end} must lie in (0, 1)")
    if kind == "linear":
        return torch.linspace(start, end, n, dtype=torch.float64)
    return torch.linspace(math.sqrt(start), math.sqrt(end), n, dtype=torch.float64) ** 2


def alphas_cumprod(config: Mapping[str, Any]) -> Tensor:
    """``alpha_bar[t] = prod_{s<=t}(1 - beta_s)``, shape ``[num_train_timesteps]``, float64, decreasing in (0, 1)."""
    return torch.cumprod(1.0 - betas(config), dim=0)


def final_alpha_cumprod(config: Mapping[str, Any]) -> float:
    """alpha_bar of the level after the last inference step: 1.0 if ``set_alpha_to_one`` else ``alpha_bar[0]``."""
    config = _check_mapping(config)
    if bool(_get(config, "set_alpha_to_one", _DDIM_DEFAULTS)):
        return 1.0
    return float(alphas_cumprod(config)[0])


def inference_timesteps(config: Mapping[str, Any], steps: int) -> Tensor:
    """Descending int64 timesteps ``[steps]`` in ``[0, num_train_timesteps)`` as DDIMScheduler.set_timesteps.

    leading: ``arange(steps) * (T // steps)`` reversed, plus ``steps_offset``; trailing:
    ``round(arange(T, 0, -T / steps)) - 1``; linspace: ``round(linspace(0, T - 1, steps))`` reversed.
    (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2.)
    """
    config = _check_mapping(config)
    n = _positive_int(config, "num_train_timesteps", _DDIM_DEFAULTS)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= n:
        raise ConfigError(f"steps={steps!r} must be an integer in [1, num_train_timesteps={n}]")
    spacing = _choice(config, "timestep_spacing", TIMESTEP_SPACINGS, _DDIM_DEFAULTS)
    offset = _get(config, "steps_offset", _DDIM_DEFAULTS)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"scheduler config: steps_offset={offset!r} must be a non-negative integer")
    if spacing == "leading":
        t = torch.arange(steps, dtype=torch.float64) * (n // steps) + offset
    elif spacing == "trailing":
        ratio = n / steps
        t = torch.round(n - ratio * torch.arange(steps, dtype=torch.float64)).flip(0) - 1
    else:
        t = torch.round(torch.linspace(0, n - 1, steps, dtype=torch.float64))
    t = t.flip(0).to(torch.int64)
    if int(t.max()) >= n:
        raise ConfigError(f"scheduler config: steps_offset={offset} pushes timesteps past num_train_timesteps={n}")
    return t


@dataclass(frozen=True)
class DiffusionGrid:
    """A chain of S+1 noise levels for deterministic samplers and inversions.

    ``timesteps``: ``[S]`` model time inputs (float64; integer-valued for discrete schedules), noisiest
    first. ``alpha_bar``: ``[S+1]`` float64; ``alpha_bar[j]`` belongs to ``timesteps[j]`` for j < S and
    ``alpha_bar[S]`` is the clean end (the final alpha). Sampling walks j = 0 -> S, inversion S -> 0;
    step j (between levels j and j+1) evaluates the model at time ``timesteps[j]``.
    ``final_timestep``: the model time of the clean end ``alpha_bar[S]``, which no DDIM step evaluates
    (BDIA's reference inversion does); None means "extrapolate": see :meth:`clean_time`.
    """

    timesteps: Tensor
    alpha_bar: Tensor
    final_timestep: float | None = None

    def __post_init__(self) -> None:
        s = self.timesteps.shape[0]
        if self.timesteps.ndim != 1 or self.alpha_bar.shape != (s + 1,) or s < 1:
            raise ConfigError("DiffusionGrid: need timesteps [S] and alpha_bar [S+1] with S >= 1")
        ab = self.alpha_bar
        if not bool(((ab > 0) & (ab <= 1)).all()) or not bool((ab[:-1] < 1).all()):
            raise ConfigError("DiffusionGrid: alpha_bar must lie in (0, 1], with 1 allowed only at the clean end")

    @property
    def steps(self) -> int:
        """Number of steps S."""
        return int(self.timesteps.shape[0])

    def clean_time(self) -> float:
        """Model time of the clean end: ``final_timestep``, else the last timestep continued by the last
        spacing ``2 t[S-1] - t[S-2]`` (0 for a uniform grid ending at 0). Needs S >= 2 without it."""
        if self.final_timestep is not None:
            return float(self.final_timestep)
        if self.steps < 2:
            raise ConfigError("DiffusionGrid: a one-step grid needs final_timestep (the model time of the clean end)")
        return float(2 * self.timesteps[-1] - self.timesteps[-2])


def diffusion_grid(config: Mapping[str, Any], steps: int) -> DiffusionGrid:
    """The DDIM level chain for ``steps`` inference steps of a discrete scheduler config.

    Each level's successor is the next listed timestep; after the last timestep ``t`` comes level
    ``t - T // steps`` as in diffusers' ``DDIMScheduler.step`` (the final alpha when that is negative:
    always for leading spacing; trailing spacing ends at ``alphas_cumprod[0]``). That timestep ``t - T // steps``
    (negative where the final alpha is used) is the grid's ``final_timestep``. This equals diffusers'
    ``t - T // steps`` rule everywhere when ``T`` is a multiple of ``steps`` (50 steps of 1000, the usual
    case). Otherwise diffusers' trailing and linspace chains skip levels by a timestep or more between
    steps; we keep a consistent chain (exact inversion needs every step to start where the last ended).
    """
    ts = inference_timesteps(config, steps)
    ab = alphas_cumprod(config)
    end = int(ts[-1]) - _positive_int(config, "num_train_timesteps", _DDIM_DEFAULTS) // steps
    last = float(ab[end]) if end >= 0 else final_alpha_cumprod(config)
    chain = torch.cat([ab[ts], torch.tensor([last], dtype=torch.float64)])
    return DiffusionGrid(timesteps=ts.to(torch.float64), alpha_bar=chain, final_timestep=float(end))


@dataclass(frozen=True)
class FlowGrid:
    """A chain of S+1 flow times ``sigmas`` (float64, strictly decreasing, ``sigmas[0] <= 1``, ``sigmas[S] = 0``).

    The model sees time ``sigma * time_scale`` (diffusers passes ``sigma * num_train_timesteps`` to
    SD3/FLUX transformers; use 1.0 for a model that takes t in [0, 1]).
    """

    sigmas: Tensor
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        s = self.sigmas
        if s.ndim != 1 or s.shape[0] < 2 or not bool((s[1:] < s[:-1]).all()) or float(s[0]) > 1 or float(s[-1]) < 0:
            raise ConfigError("FlowGrid: sigmas must be [S+1] strictly decreasing within [0, 1]")

    @property
    def steps(self) -> int:
        """Number of steps S."""
        return int(self.sigmas.shape[0]) - 1


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """SD3 time shift ``shift * s / (1 + (shift - 1) * s)`` (Esser et al. 2024, eq. 23); maps [0,1] onto itself."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def dynamic_shift_mu(config: Mapping[str, Any], image_seq_len: int) -> float:
    """FLUX's resolution-dependent shift ``mu``: linear in the number of image tokens, from
    ``base_shift`` at ``base_image_seq_len`` to ``max_shift`` at ``max_image_seq_len``."""
    b0, b1 = float(config.get("base_shift", 0.5)), float(config.get("max_shift", 1.15))
    n0, n1 = int(config.get("base_image_seq_len", 256)), int(config.get("max_image_seq_len", 4096))
    if n1 <= n0:
        raise ConfigError(f"scheduler config: max_image_seq_len={n1} must exceed base_image_seq_len={n0}")
    return b0 + (b1 - b0) * (image_seq_len - n0) / (n1 - n0)


def flow_grid(config: Mapping[str, Any], steps: int, *, image_seq_len: int | None = None) -> FlowGrid:
    """Flow-matching sigmas as FlowMatchEulerDiscreteScheduler.set_timesteps.

    Static shift: ``sigma_min = shift(1 / T)``; sigmas = ``shift(linspace(1, sigma_min, steps))`` with a 0
    appended (diffusers applies the shift to the already-shifted minimum; we reproduce that).
    Dynamic shift (``use_dynamic_shifting``, FLUX): the FluxPipeline's chain ``linspace(1, 1 / steps,
    steps)`` time-shifted with ``mu = dynamic_shift_mu(image_seq_len)``: ``e^mu / (e^mu + 1/s - 1)``
    ("exponential", the default) or ``mu / (mu + 1/s - 1)`` ("linear"), then 0.
    ``time_scale = num_train_timesteps``.
    """
    config = _check_mapping(config)
    for key in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas", "shift_terminal"):
        _refuse_true(config, key)
    n = _positive_int(config, "num_train_timesteps", _FLOW_DEFAULTS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer")
    if config.get("use_dynamic_shifting"):
        if image_seq_len is None:
            raise ConfigError("scheduler config: use_dynamic_shifting needs the image token count (image_seq_len)")
        mu = dynamic_shift_mu(config, image_seq_len)
        base = torch.linspace(1.0, 1.0 / steps, steps, dtype=torch.float64)
        kind = config.get("time_shift_type", "exponential")
        if kind == "exponential":
            sig = math.exp(mu) / (math.exp(mu) + (1 / base - 1))
        elif kind == "linear":
            sig = mu / (mu + (1 / base - 1))
        else:
            raise ConfigError(f"scheduler config: time_shift_type={kind!r} is not supported; use exponential or linear")
        return FlowGrid(sigmas=torch.cat([sig, sig.new_zeros(1)]), time_scale=float(n))
    shift = float(_get(config, "shift", _FLOW_DEFAULTS))
    if not shift > 0:
        raise ConfigError(f"scheduler config: shift={shift} must be positive")
    sigma_min = float(shift_sigmas(torch.tensor(1.0 / n, dtype=torch.float64), shift))
    sig = shift_sigmas(torch.linspace(1.0, sigma_min, steps, dtype=torch.float64), shift)
    return FlowGrid(sigmas=torch.cat([sig, sig.new_zeros(1)]), time_scale=float(n))


def uniform_flow_grid(steps: int, t_max: float = 1.0) -> FlowGrid:
    """Uniform flow times ``linspace(t_max, 0, steps + 1)`` for a model taking t in [0, 1]."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or not 0 < t_max <= 1:
        raise ConfigError(f"uniform_flow_grid: steps={steps!r} must be >= 1 and t_max={t_max} in (0, 1]")
    return FlowGrid(sigmas=torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64))


def x0_clipper(config: Mapping[str, Any]) -> Callable[[Tensor], Tensor] | None:
    """The x0 clipping a discrete scheduler config asks for when *sampling*, or None.

    ``thresholding`` (Saharia et al. 2022, "Imagen", dynamic thresholding): per image, ``s`` = the
    ``dynamic_thresholding_ratio`` quantile of |x0| clamped to [1, ``sample_max_value``], then
    ``clamp(x0, -s, s) / s``; else ``clip_sample``: ``clamp(x0, -clip_sample_range, clip_sample_range)``.
    """
    config = _check_mapping(config)
    if config.get("thresholding"):
        ratio, top = float(config.get("dynamic_thresholding_ratio", 0.995)), float(config.get("sample_max_value", 1.0))

        def threshold(x0: Tensor) -> Tensor:
            flat = x0.reshape(x0.shape[0], -1)
            s = torch.quantile(flat.abs(), ratio, dim=1).clamp(1.0, top)[:, None]
            return (flat.clamp(-s, s) / s).reshape(x0.shape)

        return threshold
    if config.get("clip_sample", False):
        r = float(config.get("clip_sample_range", 1.0))
        return lambda x0: x0.clamp(-r, r)
    return None
