"""StyleGAN3 (alias-free, configs T and R) in pure PyTorch, faithful to NVIDIA's ``networks_stylegan3``."""

from .config import StyleGAN3Config
from .generator import StyleGAN3Generator, make_transform
from .network import StyleGAN3Network

__all__ = ["StyleGAN3Config", "StyleGAN3Generator", "StyleGAN3Network", "make_transform"]
