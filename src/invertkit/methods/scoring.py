"""Per-image metrics of an inversion, with the metric protocol of ``invertkit.metrics``."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import metrics as M  # the metrics package (a lower layer), not the root
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces


@torch.inference_mode()
def score(
    G: Generator,
    reconstructions: Tensor,
    reference: Tensor,
    *,
    latents: Tensor | None = None,
    space: str | None = None,
    observed: tuple[Tensor, Tensor] | None = None,
    extra: tuple[str, ...] = (),
) -> list[dict[str, float]]:
    """One dict per image: psnr, ssim, mse, mae (and ``extra`` metrics such as perceptual, lpips),
    ``nscd`` for StyleGAN2 latents, and ``psnr_observed`` (degraded reconstruction vs observation) when
    ``observed = (degraded reconstructions, observations)`` is given.

    Args:
        reconstructions, reference: ``N x C x H x W`` in [-1, 1] (reference: the clean target).
    """
    cols: dict[str, Tensor] = {
        "psnr": M.psnr(reconstructions, reference),
        "ssim": M.ssim(reconstructions, reference),
        "mse": M.mse(reconstructions, reference),
        "mae": M.mae(reconstructions, reference),
    }
    for name in extra:
        cols[name] = M.METRICS.get(name)(reconstructions, reference)
    if observed is not None and observed[0].shape == observed[1].shape:
        cols["psnr_observed"] = M.psnr(*observed)
    if latents is not None and isinstance(G, StyleSpaces) and space in G.spaces and space != "z":
        from ..metrics.nscd import nscd

        cols["nscd"] = nscd(G, latents, space)
    rows = {k: v.detach().float().cpu().tolist() for k, v in cols.items()}
    return [{k: float(rows[k][i]) for k in rows} for i in range(reconstructions.shape[0])]
