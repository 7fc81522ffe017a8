"""Objectives for inversion: image reconstruction losses (and, from other files, regularisers).

``IMAGE_LOSSES.get(name)(device=...)`` builds an :class:`ImageLoss`: ``mse``, ``l1``,
``perceptual`` (ImageNet MobileNetV2 features), ``lpips`` (= ``lpips-alex``), ``lpips-vgg``.
"""

from .combined import Objective, parse_loss_spec
from .image_losses import (
    IMAGE_LOSSES,
    ImageLoss,
    L1Loss,
    LPIPSLoss,
    MSELoss,
    PerceptualLoss,
    l1_loss,
    mse_loss,
    perceptual_distance,
    perceptual_from_features,
)
from .latent_terms import (
    LatentPrior,
    NoiseRegularizer,
    WPlusSpread,
    latent_prior,
    noise_regularizer,
    normalize_noise_,
    wplus_spread,
)
from .nscd import NSCDLoss, nscd_loss

__all__ = [
    "LatentPrior",
    "NSCDLoss",
    "NoiseRegularizer",
    "Objective",
    "WPlusSpread",
    "latent_prior",
    "noise_regularizer",
    "normalize_noise_",
    "nscd_loss",
    "parse_loss_spec",
    "wplus_spread",
    "IMAGE_LOSSES",
    "ImageLoss",
    "L1Loss",
    "LPIPSLoss",
    "MSELoss",
    "PerceptualLoss",
    "l1_loss",
    "mse_loss",
    "perceptual_distance",
    "perceptual_from_features",
]
