"""One judge for digit edits: did an edit turn a digit into the target class, and what did it keep?

Used by ``benchmarks/edit_benchmark.py`` to score every route (GAN latent edits, diffusion edits) the
same way. Sources and edits are MNIST-size digits ``[N, 1, 28, 28]`` in [-1, 1] (white ink on black);
a route that works at 32 px (the MNIST diffusion models pad 28 -> 32 with -1, 2 px a side) crops back
with :func:`crop_32_to_28`, which is exact for such padding.

Columns of :func:`judge` (one dict per route):

- ``success``: share of the *eligible* images (LeNet-5 does not already call the source its target)
  that LeNet-5 calls the target after the edit. Images already of the target are left out of every
  column below and counted in ``n_already_target``.
- ``thickness_change`` (px) and ``slant_change`` (degrees): mean absolute change of Morpho-MNIST
  thickness and slant (:func:`invertkit.morphometry.digit_shape`) between source and edit, over the
  eligible images with ink in both. An image without ink (source or edit) has no shape: it is never
  scored, only counted in ``n_no_ink``; a column with no image to score is NaN (JSON ``null``).
  ``thickness_change_successful`` and ``slant_change_successful``: the same over the successful edits
  only (an edit that changes nothing preserves everything; these compare routes where they succeed).
- ``ssim`` and ``perceptual``: mean SSIM and MobileNetV2 perceptual distance
  (:func:`invertkit.metrics.ssim`, :func:`invertkit.metrics.perceptual`: ImageNet MobileNetV2
  features, offline; lower is closer; NaN where its weights are missing) of edit to source, over the
  eligible images.
- ``n_images``, ``n_eligible``, ``n_already_target``, ``n_no_ink``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from ..metrics import perceptual, ssim
from ..morphometry import digit_shape

SIDE = 28


def crop_32_to_28(images: Tensor) -> Tensor:
    """``[N, C, 32, 32]`` -> ``[N, C, 28, 28]``: drop the 2 px border a 28 -> 32 pad (value -1) added."""
    if images.dim() != 4 or tuple(images.shape[-2:]) != (32, 32):
        raise ConfigError(f"crop_32_to_28 takes [N, C, 32, 32] images, got {list(images.shape)}")
    return images[..., 2:30, 2:30]


def pad_28_to_32(images: Tensor) -> Tensor:
    """``[N, C, 28, 28]`` -> ``[N, C, 32, 32]`` padded with -1 (black), 2 px a side."""
    if images.dim() != 4 or tuple(images.shape[-2:]) != (SIDE, SIDE):
        raise ConfigError(f"pad_28_to_32 takes [N, C, 28, 28] images, got {list(images.shape)}")
    return torch.nn.functional.pad(images, (2, 2, 2, 2), value=-1.0)


def _check(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, SIDE, SIDE):
        got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ConfigError(f"{name} must be [N, 1, 28, 28] digits in [-1, 1] (crop 32 px ones with crop_32_to_28), got {got}")
    if not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{name} contain NaN or infinite values")
    return x.detach().float().cpu().clamp(-1, 1)


@torch.no_grad()
def classify_digits(classifier: Callable[[Tensor], Tensor], images: Tensor, batch: int = 512) -> Tensor:
    """The classifier's decision per image, int64 ``[N]`` (argmax of its ``[N, 10]`` outputs)."""
    out = [classifier(images[i:i + batch]).argmax(1).cpu() for i in range(0, images.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _mean(x: Tensor) -> float:
    return float(x.mean()) if x.numel() else math.nan


def judge(sources: Tensor, edits: Tensor, targets: Tensor | int, classifier: Callable[[Tensor], Tensor], *,
          with_perceptual: bool = True, source_classes: Tensor | None = None) -> dict[str, float | int | None]:
    """Score edits of digits toward target classes (columns in the module docstring).

    Args:
        sources, edits: ``[N, 1, 28, 28]`` in [-1, 1], edit ``i`` made from source ``i``.
        targets: one target class for all (int) or ``[N]`` int64, one per image.
        classifier: images ``[N, 1, H, W]`` in [-1, 1] -> ``[N, 10]`` scores (``load_lenet5()``).
        with_perceptual: False skips the perceptual column (NaN).
        source_classes: the classifier's decisions on ``sources`` if already known.
    Returns:
        A dict of plain numbers (NaN where nothing could be scored).
    """
    src, edt = _check(sources, "sources"), _check(edits, "edits")
    n = src.shape[0]
    if edt.shape[0] != n:
        raise ConfigError(f"{edt.shape[0]} edits for {n} sources")
    t = torch.full((n,), int(targets), dtype=torch.long) if isinstance(targets, int) else torch.as_tensor(targets).long().reshape(-1).cpu()
    if t.numel() != n:
        raise ConfigError(f"{t.numel()} targets for {n} sources; give one target or one per image")
    c_src = classify_digits(classifier, src) if source_classes is None else torch.as_tensor(source_classes).long().cpu()
    c_edit = classify_digits(classifier, edt)
    eligible = c_src != t
    k = int(eligible.sum())
    row: dict[str, float | int | None] = {
        "n_images": n, "n_eligible": k, "n_already_target": n - k,
        "success": float((c_edit[eligible] == t[eligible]).float().mean()) if k else math.nan,
    }
    s, e = src[eligible], edt[eligible]
    if k:
        shape_s, shape_e = digit_shape(s), digit_shape(e)
        inked = torch.isfinite(shape_s.thickness) & torch.isfinite(shape_e.thickness)
        row["n_no_ink"] = int((~inked).sum())
        row["thickness_change"] = _mean((shape_e.thickness - shape_s.thickness)[inked].abs())
        row["slant_change"] = _mean(torch.rad2deg((shape_e.slant - shape_s.slant)[inked]).abs())
        ok = inked & (c_edit[eligible] == t[eligible])
        row["thickness_change_successful"] = _mean((shape_e.thickness - shape_s.thickness)[ok].abs())
        row["slant_change_successful"] = _mean(torch.rad2deg((shape_e.slant - shape_s.slant)[ok]).abs())
        row["ssim"] = _mean(ssim(e, s))
        value = math.nan
        if with_perceptual:
            try:
                value = _mean(perceptual(e, s))
            except CheckpointError:
                pass  # MobileNetV2 weights missing: the column stays NaN
        row["perceptual"] = value
    else:
        row.update({"n_no_ink": 0, "thickness_change": math.nan, "slant_change": math.nan,
                    "thickness_change_successful": math.nan, "slant_change_successful": math.nan, "ssim": math.nan,
                    "perceptual": math.nan})
    return row
