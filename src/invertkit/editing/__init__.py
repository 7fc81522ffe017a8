"""Latent editing: find directions (SeFa, GANSpace, InterFaceGAN, StyleSpace), move inverted latents
along them, interpolate and mix, and measure editability.

Discovery lives in one module per method (``sefa``, ``ganspace``, ``interfacegan``, ``stylespace``;
imported on use, InterFaceGAN needs scikit-learn); this package re-exports what every user needs.
"""

from .apply import (
           edit_latents,
           edit_result,
           parse_layers,
           render_edits,
           result_generators,
)
from .directions import Directions, latent_sigmas, load_directions, save_directions
from .editability import EditProbe, editability, parse_strengths, result_editability
from .interpolate import interpolate, style_mix

__all__ = ["Directions", "EditProbe", "edit_latents", "edit_result", "result_generators", "editability", "interpolate", "latent_sigmas", "load_directions",
           "parse_layers", "parse_strengths", "render_edits", "result_editability", "save_directions", "style_mix"]
