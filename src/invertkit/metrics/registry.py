"""All paired image metrics by name, and which of them can run on this machine."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..features.arcface import arcface_available
from ..features.lpips import lpips_available
from ..features.mobilenet import mobilenet_available
from ..registry import Registry
from .identity import identity_similarity
from .lpips import lpips
from .mse_mae import mae, mse
from .perceptual import perceptual
from .psnr import psnr
from .ssim import ssim

METRICS: Registry[Callable[[Tensor, Tensor], Tensor]] = Registry("metric")
METRICS.add("psnr", psnr)
METRICS.add("ssim", ssim)
METRICS.add("mse", mse)
METRICS.add("mae", mae)
METRICS.add("perceptual", perceptual)
METRICS.add("lpips", lambda a, b: lpips(a, b, "alex"))
METRICS.add("lpips-vgg", lambda a, b: lpips(a, b, "vgg"))
METRICS.add("identity", identity_similarity)

# Direction of each metric, for reports and "best run" choices.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "mse": False, "mae": False, "perceptual": False, "lpips": False, "lpips-vgg": False,
                    "identity": True, "nscd": False, "psnr_observed": True}

_NEEDS_WEIGHTS: dict[str, Callable[[], bool]] = {
    "perceptual": mobilenet_available,
    "lpips": lambda: lpips_available("alex"),
    "lpips-vgg": lambda: lpips_available("vgg"),
    "identity": arcface_available,
}


def available_metrics() -> list[str]:
    """Names in :data:`METRICS` whose weight files (if any) are found here, sorted."""
    return [name for name in METRICS if _NEEDS_WEIGHTS.get(name, lambda: True)()]
