"""All PIE-Bench scores of an edit from tensors: (source, edited, edit mask, prompts) -> one row per image.

The columns and their meaning are the official ``evaluation/evaluate.py`` defaults:

=======================================  ==========================================================
structure_distance                       DINO key self-similarity distance, whole images (lower better)
psnr_unedit_part, mse_unedit_part,       background preservation outside the edit mask
ssim_unedit_part, lpips_unedit_part      (``metrics.edit_background``)
clip_similarity_source_image             CLIP score of the source image to the source prompt
clip_similarity_target_image             CLIP score of the edited image to the target prompt
clip_similarity_target_image_edit_part   the same for the edited region only (rest blacked out)
=======================================  ==========================================================

A column whose network is absent (no DINO or LPIPS weights, no CLIP folder or no ``transformers``)
is NaN in every row and :attr:`EditScorers.unavailable` says why. An image whose edit mask covers
everything has NaN background columns; one whose edit mask is empty has a NaN edit-part CLIP score
(as the official code).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import InvertkitError
from ..features.dino_vit import DinoViT, cached_dino_vit
from .clip_similarity import ClipEncoder, clean_prompt, clip_similarity, load_clip
from .edit_background import BACKGROUND_METRICS, background_scores
from .edit_masks import as_batch_mask
from .structure_distance import structure_distance

COLUMNS = (
    "structure_distance",
    "psnr_unedit_part",
    "lpips_unedit_part",
    "mse_unedit_part",
    "ssim_unedit_part",
    "clip_similarity_source_image",
    "clip_similarity_target_image",
    "clip_similarity_target_image_edit_part",
)
# direction of each column, for readers of the table
HIGHER_IS_BETTER = {
    "structure_distance": False, "psnr_unedit_part": True, "lpips_unedit_part": False, "mse_unedit_part": False,
    "ssim_unedit_part": True, "clip_similarity_source_image": True, "clip_similarity_target_image": True,
    "clip_similarity_target_image_edit_part": True,
}  # fmt: skip
CLIP_COLUMNS = COLUMNS[5:]


@dataclass
class EditScorers:
    """The networks behind the scores, and why any of them is missing.

    ``vit``: DINO ViT for the structure distance (None -> NaN); ``clip``: a :class:`ClipEncoder`
    (None -> NaN); ``lpips_net``: ``"squeeze"`` (the official) / ``"alex"`` / ``"vgg"``; ``unavailable``: column -> reason."""

    vit: DinoViT | None = None
    clip: ClipEncoder | None = None
    lpips_net: str = "squeeze"
    psnr_identical_db: float = 100.0
    pixel_scale: float = 255.0
    unavailable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, *, dino_arch: str = "vitb8", dino_weights: str | os.PathLike[str] | None = None,
               clip_model: str | os.PathLike[str] | None = None, lpips_net: str = "squeeze",
               device: str | torch.device = "cpu", psnr_identical_db: float = 100.0,
               pixel_scale: float = 255.0) -> EditScorers:
        """Load what is available offline; each missing network is a recorded reason, not an error."""
        s = cls(lpips_net=lpips_net, psnr_identical_db=psnr_identical_db, pixel_scale=pixel_scale)
        try:
            s.vit = cached_dino_vit(dino_arch, dino_weights, device)
        except InvertkitError as exc:
            s.unavailable["structure_distance"] = f"DINO ViT ({dino_arch}) not loaded: {exc}"
        if clip_model is None:
            reason = "no CLIP model given (pass a local transformers CLIP folder, e.g. openai/clip-vit-large-patch14)"
        else:
            reason = None
            try:
                s.clip = load_clip(clip_model, device)
            except InvertkitError as exc:
                reason = str(exc)
        if reason is not None:
            s.unavailable.update({c: reason for c in CLIP_COLUMNS})
        return s


def score_edit(source: Tensor, edited: Tensor, edit_mask: Tensor, target_prompts: Sequence[str] | None = None,
               scorers: EditScorers | None = None, *, source_prompts: Sequence[str] | None = None,
               columns: Sequence[str] = COLUMNS) -> list[dict[str, float]]:
    """PIE-Bench scores of ``N`` edits -> ``N`` rows ``{column: value}`` (NaN where undefined).

    Args:
        source, edited: ``N x 3 x H x W`` in [-1, 1], same size (PIE-Bench: 512 x 512).
        edit_mask: ``H x W`` / ``N x H x W`` / ``N x 1 x H x W``, True = edited region
            (``metrics.edit_masks.decode_rle`` for PIE-Bench's RLE).
        target_prompts, source_prompts: N prompts each (``[`` ``]`` markers are removed); None ->
            those CLIP columns NaN.
        scorers: the networks (:meth:`EditScorers.create`); None -> ``EditScorers()``, i.e. background
            metrics only (LPIPS if its weights are found).
        columns: a subset of :data:`COLUMNS`.

    Column-level reasons for NaN are in ``scorers.unavailable`` (and ``lpips_unedit_part`` is added
    there when the LPIPS weights are missing).
    """
    scorers = scorers if scorers is not None else EditScorers()
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown PIE-Bench column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    n = source.shape[0]
    mask = as_batch_mask(edit_mask, source)
    nan = torch.full((n,), math.nan)
    out: dict[str, Tensor] = {}
    if "structure_distance" in columns:
        out["structure_distance"] = (structure_distance(source, edited, scorers.vit, pixel_scale=scorers.pixel_scale)
                                     if scorers.vit is not None else nan)
    wanted_bg = tuple(m for m in BACKGROUND_METRICS if f"{m}_unedit_part" in columns)
    if wanted_bg:
        bg = background_scores(source, edited, mask, metrics=wanted_bg, lpips_net=scorers.lpips_net,
                               psnr_identical_db=scorers.psnr_identical_db)
        out.update({f"{m}_unedit_part": v for m, v in bg.values.items()})
        if "lpips" in bg.notes:
            scorers.unavailable["lpips_unedit_part"] = bg.notes["lpips"]
    clip = scorers.clip
    if "clip_similarity_source_image" in columns:
        ok = clip is not None and source_prompts is not None
        out["clip_similarity_source_image"] = (
            clip_similarity(clip, source, [clean_prompt(p) for p in source_prompts]) if ok else nan)
    if "clip_similarity_target_image" in columns:
        ok = clip is not None and target_prompts is not None
        out["clip_similarity_target_image"] = (
            clip_similarity(clip, edited, [clean_prompt(p) for p in target_prompts]) if ok else nan)
    if "clip_similarity_target_image_edit_part" in columns:
        ok = clip is not None and target_prompts is not None
        v = clip_similarity(clip, edited, [clean_prompt(p) for p in target_prompts], mask) if ok else nan
        has_edit = mask.flatten(1).any(dim=1).cpu()
        out["clip_similarity_target_image_edit_part"] = torch.where(has_edit, v, nan)
    return [{c: float(out[c][i]) for c in columns} for i in range(n)]
