"""Generators behind one interface: StyleGAN2, simple ``z -> image`` modules, and the offline zoo."""

from .base import Generator
from .loading import load_generator
from .simple import SimpleGenerator, wrap
from .zoo import ZOO, ZooEntry

__all__ = ["ZOO", "Generator", "SimpleGenerator", "ZooEntry", "load_generator", "wrap"]
