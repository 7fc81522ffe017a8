"""invertkit: image inversion into pretrained generative models.

    >>> import invertkit
    >>> G = invertkit.load_generator("dcgan-digiface64")
    >>> result = invertkit.invert(G, images, method="optimize", steps=200)
    >>> run = invertkit.load_run("runs/faces")          # a run folder read back, typed
    >>> table = invertkit.load_results("runs/photos")   # a dataset run's rows (pyarrow Table)

Images crossing the API are float tensors ``N x C x H x W`` in [-1, 1] on the generator's device.
"""

from . import diffusion as _diffusion  # noqa: E402,F401  (registers the diffusion model family with the loader)
from . import metrics  # noqa: E402
from .errors import CapabilityError, CheckpointError, ConfigError, ImageError, InvertkitError, LatentSpaceError  # noqa: E402
from .generators import ZOO, Generator, load_generator, wrap  # noqa: E402
from .methods import invert  # noqa: E402
from .results import DiffusionInversion, InversionResult, LatentInversion, Timings, TunedInversion  # noqa: E402
from .runs import Run, load_results, load_run  # noqa: E402
from .version import __version__

__all__ = [
    "ZOO",
    "CapabilityError",
    "CheckpointError",
    "ConfigError",
    "DiffusionInversion",
    "Generator",
    "ImageError",
    "InversionResult",
    "InvertkitError",
    "LatentInversion",
    "LatentSpaceError",
    "Run",
    "Timings",
    "TunedInversion",
    "__version__",
    "invert",
    "load_generator",
    "load_results",
    "load_run",
    "metrics",
    "wrap",
]
