"""Diffusion and rectified-flow inversion methods (one file each), registered in ``METHODS``.

Diffusion models: ``ddim``, ``renoise``, ``nulltext``, ``negprompt``, ``direct``, ``edict``, ``bdia``.
Rectified flows: ``flow-euler``, ``flow-midpoint``, ``fireflow``, ``rf-inversion``, ``coupled-flow``.
Shared options, the run and ``regenerate`` (editing by re-sampling) are in ``common``; ``state_io``
saves one image's state (``latents/<name>_state.safetensors`` of a run) and regenerates it later.
"""

from . import (  # noqa: F401
    bdia,
    coupled_flow,
    ddim,
    direct,
    edict,
    fireflow,
    flow_euler,
    flow_midpoint,
    negprompt,
    nulltext,
    renoise,
    rf_inversion,
)
from .common import SAMPLERS, DiffusionOptions, DiffusionState, add_edits, regenerate
from .state_io import load_state, regenerate_file, save_state

DIFFUSION_METHODS = tuple(SAMPLERS)

__all__ = ["DIFFUSION_METHODS", "SAMPLERS", "DiffusionOptions", "DiffusionState", "add_edits", "load_state",
           "regenerate", "regenerate_file", "save_state"]
