"""One image's diffusion inversion state on disk, so it can be regenerated (edited) later.

``latents/<stem>_state.safetensors`` holds the noise latent ``x_T [1, ...]`` and every tensor the
method needs to come back (EDICT's ``y_T``, BDIA's ``x_next``, RF-Inversion's ``y_0``; per-step lists
such as null-text's ``uncond`` or Direct Inversion's ``corrections`` stacked to ``[S, 1, ...]``), with
a JSON header: method, resolved options, generator name. Reading it rebuilds the method's sampler on
the same generator: ``regenerate_file(G, path, prompt="drawing")``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError, ConfigError
from ...io.safetensors_file import read_safetensors, write_safetensors
from ..result import InversionResult
from .common import SAMPLERS, DiffusionState, Setup, resample

HEADER = "invertkit_diffusion_state"
# Options added after states were first saved, with the value every older file was made with: a file
# without the key regenerates with the variant it was inverted with, not the newer default.
ASSUMED_WHEN_ABSENT: dict[str, dict[str, Any]] = {"edict": {"leapfrog": False}}


def _identity(G: Any) -> str:
    """A cheap fingerprint of the model: class, latent shape, parameter count (hashing the weights of a
    multi-GB model would cost more than the regeneration)."""
    info = G.describe()
    return f"{info.get('network', type(G).__name__)} {info['latent_shapes']['noise']} {info.get('parameters', 0)} parameters"


def save_state(path: str | os.PathLike[str], result: InversionResult, i: int, generator: str) -> Path:
    """Write image ``i`` of a diffusion ``result`` to ``path`` (float32 tensors; float64 runs lose
    their last digits, which only matters for exactness checks)."""
    state: DiffusionState = result.extras["diffusion_state"]
    setup: Setup = result.extras["diffusion_setup"]
    tensors = {"x_T": state.x_T[i : i + 1]}
    lists = []
    for key, value in state.tensors.items():
        if isinstance(value, list):
            tensors[key] = torch.stack([v[i : i + 1] for v in value])
            lists.append(key)
        else:
            tensors[key] = value[i : i + 1]
    meta = {"method": result.config["method"], "options": dataclasses.asdict(setup.options), "generator": generator,
            "model": _identity(setup.G), "lists": lists}
    cpu = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    return write_safetensors(path, cpu, {HEADER: json.dumps(meta)}, "diffusion state")


def load_state(path: str | os.PathLike[str], G: Any) -> tuple[str, DiffusionState, Setup]:
    """The method name, the state and a sampling setup for ``G`` (the generator the state was made with)."""
    from .. import make_options

    tensors, meta = read_safetensors(path, HEADER, "diffusion state file",
                                     "`invertkit invert` with a diffusion method writes latents/<name>_state.safetensors")
    method = meta.get("method")
    if method not in SAMPLERS:
        raise CheckpointError(f"{path}: unknown diffusion method {method!r} in its header")
    if meta.get("generator") != G.name or meta.get("model") != _identity(G):
        raise ConfigError(f"{path} was made with generator {meta.get('generator')!r} ({meta.get('model')}); "
                          f"pass that generator, not {G.name!r} ({_identity(G)})")
    options = make_options(method, **{**ASSUMED_WHEN_ABSENT.get(method, {}), **meta["options"]})
    from ...diffusion.generator import parse_dtype

    dtype = parse_dtype(options.dtype)
    to = {k: v.to(G.device, dtype) for k, v in tensors.items()}
    extra: dict[str, Any] = {k: (list(v.unbind(0)) if k in meta["lists"] else v) for k, v in to.items() if k != "x_T"}
    setup = Setup(G, G.denoiser(dtype), G.grid(options.steps), G.prediction_type,
                  G.guidance(options.prompt, options.guidance, options.negative, dtype), None, dtype, options)
    return method, DiffusionState(to["x_T"], 0, extra), setup


@torch.no_grad()
def regenerate_file(G: Any, path: str | os.PathLike[str], *, prompt: str | None = None, guidance: float | None = None,
                    negative: str | None = None) -> Tensor:
    """Regenerate a saved state (see ``common.regenerate``): images ``1 x C x H x W`` in [-1, 1]."""
    method, state, setup = load_state(path, G)
    return resample(G, method, setup, state, prompt=prompt, guidance=guidance, negative=negative)
