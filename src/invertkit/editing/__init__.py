"""Latent editing: find directions (SeFa, GANSpace, InterFaceGAN, StyleSpace), move inverted latents
along them, interpolate and mix, and measure editability."""

from .apply import edit_latents, parse_layers, render_edits
from .directions import Directions, latent_sigmas, load_directions, save_directions

__all__ = ["Directions", "edit_latents", "latent_sigmas", "load_directions", "parse_layers", "render_edits",
           "save_directions"]
