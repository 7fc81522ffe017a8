"""StyleGAN2 in pure PyTorch, faithful to NVIDIA's stylegan2-ada-pytorch generator."""

from .config import StyleGAN2Config
from .generator import StyleGAN2Generator
from .network import StyleGAN2Network

__all__ = ["StyleGAN2Config", "StyleGAN2Generator", "StyleGAN2Network"]
