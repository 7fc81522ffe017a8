"""Background preservation of an edit: PSNR, MSE, SSIM and LPIPS outside the edit mask (PIE-Bench).

Protocol (PIE-Bench ``evaluation/matrics_calculator.py``, metrics ``*_unedit_part``): both images are
uint8, taken to [0, 1], multiplied by the background mask (1 - edit mask, at the images' own
resolution, 512 x 512 for PIE-Bench: the edited region becomes black in *both* images) and the
metric is computed over the whole masked image:

- MSE = mean over all ``3 H W`` values (the blacked-out region counts in the denominator with
  zero error, so it is not the error per background pixel);
- PSNR = ``10 log10(1 / MSE)``, data range 1;
- SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, over the whole masked image. torchmetrics up
  to 1.2 (current when PIE-Bench was published; the official code pins no version) reflect-pads by
  5 px and crops the 5-px border of the map again, which equals invertkit's ``metrics.ssim``; recent
  torchmetrics (1.9 checked) averages the full reflect-padded map instead, a slightly different number;
- LPIPS (SqueezeNet 1.1 backbone, torchmetrics ``net_type='squeeze'``) of the masked images at
  their own resolution (no resize).

These are invertkit's own metric functions (``psnr``, ``mse``, ``ssim``, ``lpips``) on the masked
images; what differs from the official numbers is stated in :data:`BACKGROUND_PROTOCOL`.

NaN policy: an image whose edit mask covers every pixel has no background; its four scores are NaN
(the official code writes "nan" too), never 0 or infinity, and means exclude them. An image with a
non-finite pixel scores NaN (``metrics.psnr``). LPIPS is NaN with a recorded reason when its weights
are not on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from .edit_masks import as_batch_mask, restrict
from .lpips import lpips as lpips_fn
from .mse_mae import mse as mse_fn
from .psnr import psnr as psnr_fn
from .ssim import ssim as ssim_fn

BACKGROUND_METRICS = ("psnr", "lpips", "mse", "ssim")

BACKGROUND_PROTOCOL = {
    "mask": "background = not edit mask (PIE-Bench RLE decoded at 512x512, outer 1-px border counted as edited); "
    "both images multiplied by it on [0, 1] and scored over the whole image",
    "psnr": "10 log10(1 / MSE) on [0, 1]; identical backgrounds (MSE = 0) report psnr_identical_db (100 dB) where "
    "the official torchmetrics call returns +inf",
    "mse": "mean over 3 x H x W of the masked images on [0, 1] (edited region counts with zero error)",
    "ssim": "Gaussian 11 / sigma 1.5 / K1 0.01 / K2 0.03, data range 1, 5-px border dropped (= torchmetrics <= 1.2 SSIM; "
    "torchmetrics 1.9 keeps the reflect-padded border)",
    "lpips": "LPIPS v0.1 at the images' own size (512 px, no resize), SqueezeNet 1.1 backbone as the official code "
    "(torchmetrics net_type='squeeze'); --lpips-net alex / vgg give numbers not comparable with the paper's",
    "full_mask": "no background pixel -> NaN for all four, counted and excluded from means",
}


@dataclass
class BackgroundScores:
    """Per-image background scores (``name -> [N]``, NaN where undefined) and why a column is NaN."""

    values: dict[str, Tensor]
    notes: dict[str, str] = field(default_factory=dict)


def background_scores(source: Tensor, edited: Tensor, edit_mask: Tensor, *, metrics: tuple[str, ...] = BACKGROUND_METRICS,
                      lpips_net: str = "squeeze", psnr_identical_db: float = 100.0) -> BackgroundScores:
    """PIE-Bench background metrics of ``edited`` against ``source`` outside ``edit_mask``.

    Args:
        source, edited: ``N x 3 x H x W`` in [-1, 1] (quantised to uint8 before scoring).
        edit_mask: ``H x W``, ``N x H x W`` or ``N x 1 x H x W``; True / nonzero = edited region.
        metrics: a subset of ``("psnr", "lpips", "mse", "ssim")``.
        lpips_net: ``"squeeze"`` (the official), ``"alex"`` or ``"vgg"`` (weights from the cache;
            absent -> NaN with a note).
        psnr_identical_db: PSNR reported for identical backgrounds.

    Returns:
        :class:`BackgroundScores` with ``[N]`` float tensors: psnr in dB (higher better), mse on
        [0, 1] (lower better), ssim in [-1, 1] (higher better), lpips >= 0 (lower better).
    """
    unknown = [m for m in metrics if m not in BACKGROUND_METRICS]
    if unknown:
        raise ConfigError(f"unknown background metric(s) {', '.join(unknown)}; known: {', '.join(BACKGROUND_METRICS)}")
    edit = as_batch_mask(edit_mask, source)
    keep = ~edit
    has_background = keep.flatten(1).any(dim=1)
    a, b = restrict(source, keep), restrict(edited, keep)
    nan = torch.full((source.shape[0],), float("nan"))
    values: dict[str, Tensor] = {}
    notes: dict[str, str] = {}
    for name in metrics:
        if name == "psnr":
            v = psnr_fn(a, b, max_db=psnr_identical_db)
        elif name == "mse":
            v = mse_fn(a, b)
        elif name == "ssim":
            v = ssim_fn(a, b)
        else:
            try:
                v = lpips_fn(a, b, lpips_net, size=a.shape[-1]) if a.shape[-1] == a.shape[-2] else lpips_fn(a, b, lpips_net)
            except CheckpointError as exc:
                notes["lpips"] = f"LPIPS ({lpips_net}) weights not available: {exc}"
                v = nan.clone()
        v = v.detach().float().cpu()
        values[name] = torch.where(has_background.cpu(), v, nan)
    return BackgroundScores(values, notes)
