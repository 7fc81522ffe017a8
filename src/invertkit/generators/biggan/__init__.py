"""BigGAN-deep (pytorch-pretrained-biggan layout) in pure PyTorch, read safely from config.json +
pytorch_model.bin; class-conditional with the class embedding as part of the ``zc`` latent."""

from .checkpoint import claims, load_biggan, read_biggan, save_biggan
from .config import BigGANConfig
from .generator import BigGANGenerator
from .network import BigGANNetwork, seeded_weights

__all__ = ["BigGANConfig", "BigGANGenerator", "BigGANNetwork", "claims", "load_biggan", "read_biggan", "save_biggan",
           "seeded_weights"]
