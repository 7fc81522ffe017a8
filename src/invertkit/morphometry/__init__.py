"""Measurements of what an image shows, computed from the pixels alone (no learned network).

:mod:`.digits`: stroke thickness and slant of handwritten digits from image moments (Morpho-MNIST's
definitions), used to label the text-token MNIST diffusion model's prompts and to score how much an
edit kept of what should not change.
"""

from .digits import DigitShape, digit_shape, slant, thickness

__all__ = ["DigitShape", "digit_shape", "slant", "thickness"]
