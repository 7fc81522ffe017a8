"""Diffusion and rectified-flow inversion methods (one file each), registered in ``METHODS``.

Diffusion models: ``ddim``, ``renoise``, ``nulltext``, ``negprompt``, ``direct``, ``edict``, ``bdia``,
``ddpm-ef`` (edit-friendly DDPM, stochastic).
Rectified flows: ``flow-euler``, ``flow-midpoint``, ``fireflow``, ``rf-inversion``, ``coupled-flow``.
Shared options, the run and ``regenerate`` (editing by re-sampling) are in ``common``; the result type
(``invertkit.results.DiffusionInversion``) saves each image's state beside its latent in a run folder
and re-renders it later.
"""

from ...diffusion.state import SAMPLERS
from . import (  # noqa: F401
    bdia,
    coupled_flow,
    ddim,
    ddpm_ef,
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
from .common import DiffusionOptions, DiffusionState, add_edits, regenerate

DIFFUSION_METHODS = tuple(SAMPLERS.names())

__all__ = ["DIFFUSION_METHODS", "SAMPLERS", "DiffusionOptions", "DiffusionState", "add_edits", "regenerate"]
