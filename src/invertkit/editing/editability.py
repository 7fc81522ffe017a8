"""Editability: how far an edit moves an attribute versus how much else it changes.

Inverting an image is half the job; the code must also respond to edits the way the generator's own
codes do (the W-vs-W+ and NSCD trade-off of Tov et al. and of the LSAP paper). For latents of any
inversion method, :func:`editability` moves each along one direction over a range of strengths and
reports, with a classifier for the attribute:

- ``edit_flip``: share of the images whose classifier decision was not the target class at strength
  0 that reach it at some strength of the range (InterFaceGAN's "does the edit work");
- ``edit_reach``: share of all images decided as the target at some strength;
- ``edit_strength``: mean smallest |strength| at which a flipped image first reaches the target;
- ``edit_slope``: attribute score change per unit strength (least-squares slope, mean over images;
  the score is the target's log-probability for a K-class classifier);

and, with or without a classifier, what else moves:

- ``edit_change``: RMS pixel change on [0, 1] per unit strength, against the strength-0 image (over
  the pixels outside ``mask`` when one is given: the region the edit should leave alone);
- ``edit_perceptual``: MobileNetV2 perceptual distance per unit strength (same pairs);
- ``edit_efficiency``: ``edit_slope / edit_change``: attribute moved per unit of pixel change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from ..results import LatentInversion
from .apply import edit_latents, render_edits
from .directions import Directions


def parse_strengths(spec: str | Sequence[float], steps: int = 7) -> tuple[float, ...]:
    """``"-3:3"`` with ``steps`` -> evenly spaced strengths from -3 to 3; ``"0,1,2"`` -> those values;
    a sequence passes through. At least one strength; ``steps`` >= 2 for a range."""
    if not isinstance(spec, str):
        out = tuple(float(s) for s in spec)
    else:
        if ":" in spec and steps < 2:
            raise ConfigError(f"a strength range needs --steps >= 2, got {steps}")
        try:
            if ":" in spec:
                a, b = (float(x) for x in spec.split(":", 1))
                out = tuple(a + (b - a) * i / (steps - 1) for i in range(steps))
            else:
                out = tuple(float(x) for x in spec.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"strength {spec!r}: use a range A:B (with a number of steps) or values like -2,0,2") from None
    if not out or not all(math.isfinite(s) for s in out):
        raise ConfigError(f"strength {spec!r}: give at least one finite value")
    return out


@dataclass
class EditProbe:
    """One edit to measure: direction ``index`` of ``directions`` over ``strengths``, judged by
    ``classifier`` (images [N, C, H, W] in [-1, 1] -> scores [N] or logits [N, K]) for class ``target``."""

    directions: Directions
    index: int = 0
    strengths: tuple[float, ...] = field(default_factory=lambda: parse_strengths("-3:3", 7))
    classifier: object | None = None
    target: int | None = None
    layers: str | Sequence[int] | None = "default"
    units: str = "sigma"
    mask: Tensor | None = None  # [H, W] bool: where the edit is meant to act (change is measured outside it)
    residual: str = "auto"  # fs-encoder results: auto / aligned / raw (how the feature residual follows the edit)

    def __post_init__(self) -> None:
        if 0.0 not in self.strengths:  # the unedited image is the reference of every change
            self.strengths = tuple(sorted({*self.strengths, 0.0}))


def _outputs(classifier, images: Tensor) -> Tensor:  # noqa: ANN001 - any callable
    with torch.no_grad():
        return classifier(images)


@torch.no_grad()
def edit_frames(G: Generator, latents: Tensor, space: str, probe: EditProbe, *,
                generators: Sequence[Generator] | None = None) -> Tensor:
    """The edited images ``[N, S, C, H, W]`` in [-1, 1] for ``probe.strengths`` (in that order)."""
    edited, target_space = edit_latents(G, latents, space, probe.directions, probe.index, probe.strengths,
                                        layers=probe.layers, units=probe.units)
    return render_edits(G, edited, target_space, generators=generators)


@torch.no_grad()
def result_edit_frames(G: Generator, result: LatentInversion, probe: EditProbe, *, residual: str = "auto") -> Tensor:
    """The edited images ``[N, S, C, H, W]`` of an inversion result for ``probe.strengths``: a tuned
    result (PTI, hyperstyle) edits its pivot and renders with each image's generator; a layerwise
    result (fs-encoder) edits its latent and re-adds its feature residual (aligned to the edit by the
    aligner of its encoder when ``residual`` is ``"auto"`` and there is one, see ``editing.apply``)."""
    from .apply import edit_result  # one edit path: what `invertkit edit` renders is what is scored

    return edit_result(G, result, probe.directions, probe.index, probe.strengths, residual=residual,
                       layers=probe.layers, units=probe.units)


@torch.no_grad()
def edit_records(G: Generator, latents: Tensor | None, space: str, probe: EditProbe, *,
                 generators: Sequence[Generator] | None = None, frames: Tensor | None = None) -> dict[str, Tensor]:
    """Per-image editability records (``[N]`` tensors; combine batches with :func:`summarize`):
    ``change`` and ``perceptual`` per unit strength and, with a classifier, ``slope``, ``start`` (target
    at strength 0), ``reached`` (target at some strength) and ``first`` (smallest |strength| reaching
    it, NaN if none). ``frames``: the edited images when already rendered (``[N, S, C, H, W]`` for
    ``probe.strengths``, e.g. from :func:`result_edit_frames`); then ``latents`` are not read."""
    if frames is None:
        frames = edit_frames(G, latents, space, probe, generators=generators)  # type: ignore[arg-type]
    return frame_records(frames, probe)


@torch.no_grad()
def frame_records(frames: Tensor, probe: EditProbe, *, perceptual_change: bool = True) -> dict[str, Tensor]:
    """:func:`edit_records` of edited images already rendered, ``frames [N, S, C, H, W]`` in [-1, 1] for
    ``probe.strengths`` in that order (e.g. from :func:`result_edit_frames`). ``perceptual_change=False``
    skips the MobileNetV2 distances (most of the time on small images)."""
    from ..editing.classifiers import attribute_score, predicted_class
    from ..metrics import perceptual, quantize

    s = torch.tensor(probe.strengths)
    if frames.shape[1] != len(probe.strengths):
        raise ConfigError(f"edit_records: {frames.shape[1]} frames per image for {len(probe.strengths)} strengths")
    n, k = frames.shape[:2]
    zero = int((s == 0).nonzero()[0])
    ref = frames[:, zero : zero + 1].expand_as(frames)
    diff = (quantize(frames) - quantize(ref)).square().cpu()  # on uint8 levels, as the metric protocol scores
    if probe.mask is not None:
        keep = ~probe.mask.to(torch.bool).cpu()
        if keep.shape != frames.shape[-2:]:
            raise ConfigError(f"the edit mask is {list(keep.shape)}, the images are {list(frames.shape[-2:])}")
        rms = (diff * keep).sum((2, 3, 4)).div(keep.sum() * frames.shape[2]).sqrt()
    else:
        rms = diff.mean((2, 3, 4)).sqrt()  # [N, S]
    away = s != 0
    flat, flat_ref = frames.flatten(0, 1), ref.flatten(0, 1)
    rec = {"change": (rms[:, away] / s[away].abs()).mean(1)}
    if perceptual_change:
        dist = perceptual(flat, flat_ref).reshape(n, k).cpu()
        rec["perceptual"] = (dist[:, away] / s[away].abs()).mean(1)
    if probe.classifier is None:
        return rec
    outputs = torch.cat([_outputs(probe.classifier, flat[i:i + 256]) for i in range(0, flat.shape[0], 256)]).cpu()
    score = attribute_score(outputs, probe.target).reshape(n, k)
    decided = predicted_class(outputs).reshape(n, k)
    one_score = outputs.dim() == 1 or outputs.shape[1] == 1  # a score: the attribute is "score > 0"
    hit = decided.bool() if one_score else decided == probe.target
    sc = s - s.mean()  # least-squares slope of the score against strength, per image
    rec["slope"] = ((score - score.mean(1, keepdim=True)) * sc).sum(1) / sc.square().sum().clamp_min(1e-12)
    rec["start"], rec["reached"] = hit[:, zero], hit.any(1)
    rec["first"] = torch.where(hit, s.abs().expand(n, k), torch.full((n, k), math.inf)).min(1).values
    rec["first"][~rec["reached"]] = math.nan
    return rec


def summarize(records: Sequence[dict[str, Tensor]]) -> dict[str, float]:
    """The editability numbers (module docstring) from one or more batches of :func:`edit_records`."""
    r = {key: torch.cat([x[key] for x in records]) for key in records[0]}
    out = {"edit_change": float(r["change"].mean())}
    if "perceptual" in r:
        out["edit_perceptual"] = float(r["perceptual"].mean())
    if "slope" not in r:
        return out
    start, reached = r["start"], r["reached"]
    flipped = reached & ~start
    out["edit_flip"] = float(flipped.sum() / (~start).sum()) if bool((~start).any()) else math.nan
    out["edit_reach"] = float(reached.float().mean())
    out["edit_strength"] = float(r["first"][flipped].mean()) if bool(flipped.any()) else math.nan
    out["edit_slope"] = float(r["slope"].mean())
    out["edit_efficiency"] = out["edit_slope"] / out["edit_change"] if out["edit_change"] > 0 else math.nan
    return out


def editability(G: Generator, latents: Tensor, space: str, probe: EditProbe, *,
                generators: Sequence[Generator] | None = None) -> dict[str, float]:
    """Editability numbers of ``latents`` (``[N, *shape]`` in ``space``) for one edit (see the module
    docstring for each key). ``generators``: one per latent for PTI results (tuned weights render)."""
    return summarize([edit_records(G, latents, space, probe, generators=generators)])


def result_editability(G: Generator, result: LatentInversion, probe: EditProbe, *,
                       perceptual_change: bool = True) -> dict[str, float]:
    """:func:`editability` of an inversion result, rendered as ``invertkit edit`` renders it
    (:func:`result_edit_frames`, with ``probe.residual``): a layerwise result (``fs-encoder``,
    ``optimize`` in ``f:LAYER``) moves its latent and re-applies its feature residual; a tuned result
    renders with its tuned generators. ``perceptual_change=False``: no ``edit_perceptual``."""
    frames = result_edit_frames(G, result, probe, residual=probe.residual)
    return summarize([frame_records(frames, probe, perceptual_change=perceptual_change)])
