"""Image-quality metrics, one per file, all on ``N x C x H x W`` batches in [-1, 1].

Protocol (printed into every run.json): images are quantised to uint8 first, as users see them,
then scored on [0, 1]; PSNR = 10 log10(1 / MSE).
"""

from .protocol import PROTOCOL, quantize
from .psnr import PSNR, mse, psnr

__all__ = ["PROTOCOL", "PSNR", "mse", "psnr", "quantize"]
