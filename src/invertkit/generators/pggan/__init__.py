"""Progressive-growing GAN generators (Karras et al. 2018) from pytorch_GAN_zoo PGAN checkpoints."""

from .checkpoint import claims_pggan, read_pggan
from .config import PGGANConfig
from .generator import PGGANGenerator, load_pggan
from .network import PGGANNetwork

__all__ = ["PGGANConfig", "PGGANGenerator", "PGGANNetwork", "claims_pggan", "load_pggan", "read_pggan"]
