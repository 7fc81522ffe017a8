"""invertkit: image inversion into pretrained generative models.

    >>> import invertkit
    >>> G = invertkit.load_generator("dcgan-digiface64")
    >>> result = invertkit.invert(G, images, method="optimize", steps=200)

Images crossing the API are float tensors ``N x C x H x W`` in [-1, 1] on the generator's device.
"""

from . import metrics
from .errors import CheckpointError, ConfigError, ImageError, InvertkitError, LatentSpaceError
from .generators import ZOO, Generator, load_generator, wrap
from .methods import InversionResult, invert

__version__ = "0.1.0"

__all__ = [
    "ZOO",
    "CheckpointError",
    "ConfigError",
    "Generator",
    "ImageError",
    "InversionResult",
    "InvertkitError",
    "LatentSpaceError",
    "__version__",
    "invert",
    "load_generator",
    "metrics",
    "wrap",
]
