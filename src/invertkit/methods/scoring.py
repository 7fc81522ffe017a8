"""Per-image metrics of an inversion, with the metric protocol of ``invertkit.metrics``."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import metrics as M  # the metrics package (a lower layer), not the root
from ..generators.base import Generator
from .context import RunContext


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

    ``nscd`` (LSAP) is a metric of ``latents``, never of the images: it is scored whenever ``G`` has
    :class:`StyleSpaces` and ``latents`` fix its styles (``metrics.nscd.nscd_defined``: w, w+, s, p,
    pn, unconditional z), whether or not ``extra`` names it. Callers pass the latent the result keeps:
    a tuned result's (pti, hyperstyle) pivot, so its NSCD is that of the pivot under the base
    generator's anchors (tuning changes the weights, not the latent); a layerwise optimisation
    (``f:LAYER``) passes none, since the rows before its cut never reach the image, and gets no
    ``nscd`` value even when asked for (no value, not NaN: a NaN would mark the image failed); an fs
    encoder's layerwise result passes its W+ code, which drives the layers before and after the cut. Names of ``extra`` are checked by ``invert``
    (:func:`invertkit.metrics.check_extra_metrics`) before any work.

    Args:
        reconstructions, reference: ``N x C x H x W`` in [-1, 1] (reference: the clean target).
        latents: ``[N, *latent_shape(space)]``, the result's latents (None: no latent metric).
        space: their generator space (``z`` for a ``z-sphere`` result).
    """
    cols: dict[str, Tensor] = {
        "psnr": M.psnr(reconstructions, reference),
        "ssim": M.ssim(reconstructions, reference),
        "mse": M.mse(reconstructions, reference),
        "mae": M.mae(reconstructions, reference),
    }
    for name in extra:
        if name not in M.LATENT_METRICS:
            cols[name] = M.METRICS.get(name)(reconstructions, reference)
    if observed is not None and observed[0].shape == observed[1].shape:
        cols["psnr_observed"] = M.psnr(*observed)
    if latents is not None and space is not None and M.nscd_defined(G, space):
        cols["nscd"] = M.nscd(G, latents, space)
    # an image whose reconstruction or reference is not finite has no score: every metric NaN
    # (the run writer then records it as a failed image)
    finite = (M.finite_rows(reconstructions) & M.finite_rows(reference)).cpu()
    rows = {k: torch.where(finite, v.detach().float().cpu(), torch.tensor(float("nan"))).tolist() for k, v in cols.items()}
    return [{k: float(rows[k][i]) for k in rows} for i in range(reconstructions.shape[0])]


@torch.inference_mode()
def score_inversion(G: Generator, recon: Tensor, observation: Tensor, ctx: RunContext, *, latents: Tensor | None,
                    space: str | None) -> tuple[list[dict[str, float]], Tensor | None]:
    """The metric protocol every method applies to its reconstructions ``recon`` of ``observation``:
    against the clean reference when one is known (``ctx.reference``, or the observation itself
    without a degradation), else only the observed fit (``psnr_observed``); under inpainting also the
    delivered composite (known pixels as observed, the hole from the generator) and its PSNR and SSIM
    (``psnr_composite``, ``ssim_composite``).

    Returns ``(metrics per image, composite N x C x H x W or None)``.
    """
    degradation = ctx.degradation
    reference = ctx.reference if ctx.reference is not None else (observation if degradation is None else None)
    observed = (degradation(recon), observation) if degradation is not None else None
    metrics = score(G, recon, reference if reference is not None else recon, latents=latents, space=space,
                    observed=observed, extra=ctx.extra_metrics)
    composite = degradation.composite(recon, observation) if degradation is not None else None
    if composite is not None and reference is not None:  # the delivered image scored like the reconstruction
        for m, p, s in zip(metrics, M.psnr(composite, reference).tolist(), M.ssim(composite, reference).tolist()):
            m["psnr_composite"], m["ssim_composite"] = float(p), float(s)
    if reference is None:  # a real observation without its clean image: only the observed fit is meaningful
        for m in metrics:
            for key in ("psnr", "ssim", "mse", "mae"):
                m.pop(key, None)
    return metrics, composite
