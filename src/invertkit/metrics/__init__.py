"""Image-quality metrics, one per file, all on ``N x C x H x W`` batches in [-1, 1], returning ``[N]``.

Protocol (printed into every run.json, see :data:`PROTOCOL`): images are quantised to uint8 first,
as users see them, then scored on [0, 1]; PSNR = 10 log10(1 / MSE); SSIM with an 11-tap Gaussian
window (sigma 1.5); LPIPS (AlexNet) at 256 px; perceptual = ImageNet MobileNetV2 feature distance.
PIE-Bench's edit scores (structure distance, background metrics outside the edit mask, CLIP
similarity) are in ``edit_scores`` / ``pie_bench`` (``python -m invertkit.metrics.pie_bench``).
``METRICS`` maps names to ``fn(a, b) -> [N]``; ``available_metrics()`` lists those that can run here.
"""

from .distribution import (
    DISTRIBUTION_PROTOCOL,
    extract_features,
    feature_statistics,
    fid,
    fmd,
    frechet_distance,
    frechet_distance_features,
    kid,
    kid_score,
)
from .edit_masks import decode_rle, load_mask
from .edit_scores import EditScorers, score_edit
from .identity import IDENTITY_PROTOCOL, IdentitySimilarity, identity_similarity
from .lpips import LPIPSMetric, lpips
from .mse_mae import MAE, MSE, mae, mse
from .nscd import nscd, nscd_defined, nscd_of_samples
from .perceptual import Perceptual, perceptual
from .protocol import PROTOCOL, finite_rows, quantize
from .psnr import PSNR, psnr
from .registry import HIGHER_IS_BETTER, METRICS, available_metrics
from .requested import LATENT_METRICS, check_extra_metrics, known_metrics
from .ssim import SSIM, ssim
from .structure_distance import structure_distance

PROTOCOL = {
    **PROTOCOL,
    **DISTRIBUTION_PROTOCOL,
    "identity": IDENTITY_PROTOCOL,
    "nscd": ("LSAP: of the result's latent (a pti/hyperstyle result: its pivot), mean over modulated convs + last ToRGB of "
             "1 - cos(s_l, mu_l), mu_l = mean unit style over 10^4 mapped samples (z ~ N(0, I), seed 0), once per generator"),
}

__all__ = [
    "DISTRIBUTION_PROTOCOL",
    "EditScorers",
    "HIGHER_IS_BETTER",
    "IDENTITY_PROTOCOL",
    "IdentitySimilarity",
    "extract_features",
    "finite_rows",
    "feature_statistics",
    "fid",
    "fmd",
    "frechet_distance",
    "frechet_distance_features",
    "identity_similarity",
    "kid",
    "kid_score",
    "load_mask",
    "nscd",
    "nscd_defined",
    "nscd_of_samples",
    "LPIPSMetric",
    "MAE",
    "METRICS",
    "MSE",
    "PROTOCOL",
    "PSNR",
    "Perceptual",
    "SSIM",
    "available_metrics",
    "check_extra_metrics",
    "known_metrics",
    "LATENT_METRICS",
    "decode_rle",
    "lpips",
    "mae",
    "mse",
    "perceptual",
    "psnr",
    "quantize",
    "score_edit",
    "ssim",
    "structure_distance",
]
