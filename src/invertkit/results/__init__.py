"""Typed inversion results: what each family of methods returns, and how it writes itself into a run
folder and reads itself back (``invertkit.runs.load_run``).

| type | returned by | re-rendered by |
|---|---|---|
| :class:`LatentInversion` | optimize, plain, cma, basincma, encoder, restyle, hybrid | ``G`` at the latents (with the layer state and noise maps) |
| :class:`TunedInversion` | pti | each image's tuned copy of ``G`` at its pivot |
| :class:`DiffusionInversion` | ddim, nulltext, edict, ... (every diffusion / flow method) | the method's sampler from the saved state |

Every type has the fields of :class:`InversionResult` (latents, space, reconstructions, metrics,
history, timings, config) with documented units (:class:`Timings`), plus its own.
"""

from .base import InversionResult, Timings
from .diffusion import DiffusionInversion
from .latent import LatentInversion, LayerState, save_latent
from .tuned import DeltaBase, Pivot, TunedInversion

__all__ = ["DeltaBase", "DiffusionInversion", "InversionResult", "LatentInversion", "LayerState", "Pivot", "Timings",
           "TunedInversion", "save_latent"]
