"""Moving latents along a direction, optionally on chosen W+ rows only, and rendering the result.

``edit_latents(G, latents, space, directions, index, strengths)`` works on latents from every
inversion method: a Z direction edits z (and PULSE's ``z-sphere`` codes, which are z); a W direction
edits w, or the chosen rows of w+ (latents in P or P_N are mapped to w+ first); an S direction edits
style vectors (any latent is mapped to S first). Conversions only go downstream, so an edit that
would need an upstream one (a Z direction on a w+ latent) is refused with the fix.

Rendering a PTI result's edits uses each image's tuned generator (``render_edits(..., generators=)``),
as PTI does: the pivot is edited, the tuned weights render it.

A layerwise result (``fs-encoder``) edits its latent and re-adds its feature residual
(:func:`render_layer_edits`): as it is (``residual="raw"``) or moved with the edit by the residual
aligner trained for its encoder (``"auto"``, the default when one is found, or ``"aligned"``; see
``editing.aligner``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, StyleSpaces, require
from ..results import InversionResult, LatentInversion, TunedInversion
from .directions import Directions

# StyleGAN's layer groups (Karras et al. 2019): coarse rows 0-3 (pose, shape), middle 4-7, fine 8+.
LAYER_GROUPS = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, None)}


def parse_layers(spec: str | Sequence[int] | None, rows: int) -> tuple[int, ...] | None:
    """W+ rows from ``"all"``, ``"coarse"``/``"middle"``/``"fine"``, ``"0-3"``, ``"0,2,5"`` (combinable
    with commas) or a sequence of ints; None and ``"all"`` mean every row (returned as None)."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        out = sorted({int(i) for i in spec})
    elif spec.strip() in ("", "all"):
        return None
    else:
        out_set: set[int] = set()
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            try:
                if part in LAYER_GROUPS:
                    lo, hi = LAYER_GROUPS[part]
                    out_set.update(range(lo, rows if hi is None else min(hi, rows)))
                elif "-" in part:
                    a, b = part.split("-", 1)
                    out_set.update(range(int(a), int(b) + 1))
                else:
                    out_set.add(int(part))
            except ValueError:
                raise ConfigError(f"layers {spec!r}: use 'all', 'coarse', 'middle', 'fine', 'A-B' or 'A,B,C' (W+ row numbers)") from None
        out = sorted(out_set)
    if not out or out[0] < 0 or out[-1] >= rows:
        outside = [i for i in out if not 0 <= i < rows]
        shown = ", ".join(map(str, outside[:5])) + (f" (+{len(outside) - 5} more)" if len(outside) > 5 else "")
        raise ConfigError(f"layers {spec!r} select no row or rows outside W+ ({shown or 'none selected'}); "
                          f"W+ has rows 0..{rows - 1}")
    return None if out == list(range(rows)) else tuple(out)


def edit_space(G: Generator, latent_space: str, directions: Directions, layers: tuple[int, ...] | None) -> str:
    """The space edited latents live in: the direction's space, or ``w+`` for row-restricted W edits
    and for W edits of per-row latents."""
    d = directions.space
    if d == "z":
        if latent_space not in ("z", "z-sphere"):
            raise LatentSpaceError(f"a Z direction cannot edit a {latent_space!r} latent (no conversion back to z); "
                                   "find the direction in w (or s) for this generator, or invert in z")
        return "z"
    if d == "w":
        if latent_space in ("s",) or latent_space.startswith("f:"):
            raise LatentSpaceError(f"a W direction cannot edit a {latent_space!r} latent (no conversion back to w); "
                                   "use an S direction (stylespace) or invert in w / w+")
        return "w+" if layers is not None or latent_space not in ("z", "z-sphere", "w") else "w"
    if latent_space.startswith("f:"):
        raise LatentSpaceError(f"an S direction cannot edit a {latent_space!r} latent (intermediate features have no styles)")
    return "s"


def edit_latents(G: Generator, latents: Tensor, space: str, directions: Directions, index: int,
                 strengths: Sequence[float] | Tensor, *, layers: str | Sequence[int] | None = "default",
                 units: str = "sigma") -> tuple[Tensor, str]:
    """Latents moved along direction ``index`` by each strength.

    Args:
        latents: ``[N, *G.latent_shape(space)]`` (``z-sphere`` latents count as z).
        space: their space.
        directions: from a discovery method or :func:`~invertkit.editing.directions.load_directions`.
        strengths: S values; 0 reproduces the input (in the edit space).
        layers: W+ rows to change (W directions only): ``"default"`` takes the file's rows, None or
            ``"all"`` every row, or a spec for :func:`parse_layers`.
        units: ``"sigma"`` (strength 1 = one standard deviation of G's latents along the direction)
            or ``"raw"`` (strength 1 = a unit vector).

    Returns:
        ``(edited [N, S, *G.latent_shape(edit space)], edit space)``.
    """
    rows = G.num_ws if isinstance(G, StyleSpaces) else 0
    if layers == "default":
        layers = directions.layers
    if layers is not None and directions.space != "w":
        if not (isinstance(layers, str) and layers.strip() in ("", "all")):
            raise ConfigError(f"layers apply to W directions on W+ rows; these directions live in {directions.space!r}")
        layers = None
    if layers is not None and rows == 0:
        raise ConfigError(f"{G.name} has no W+ rows to restrict an edit to")
    rows_sel = parse_layers(layers, rows) if layers is not None else None
    target = edit_space(G, space, directions, rows_sel)
    base = G.check_space(target)
    x = latents.to(G.device, torch.float32)
    with torch.no_grad():
        if space not in ("z-sphere",) and space != target:
            x = G.convert(x, space, target)
    step = directions.unit(index, units).to(G.device)
    s = torch.as_tensor(strengths, dtype=torch.float32, device=G.device).reshape(-1)
    if base == "w+":
        delta = torch.zeros(G.latent_shape("w+"), device=G.device)
        delta[list(rows_sel) if rows_sel is not None else slice(None)] = step
    else:
        delta = step.reshape(G.latent_shape(base))
    edited = x[:, None] + s.reshape(1, -1, *([1] * delta.dim())) * delta
    return edited, target


@torch.no_grad()
def render_edits(G: Generator, edited: Tensor, space: str, *, generators: Sequence[Generator] | None = None,
                 batch: int = 32) -> Tensor:
    """Images of edited latents ``[N, S, *shape]`` -> ``[N, S, C, H, W]`` in [-1, 1] (clamped).

    ``generators``: one generator per latent (a PTI result's tuned generators); default ``G`` for all.
    """
    n, s = edited.shape[:2]
    if generators is None:  # one generator: render every (image, strength) pair in full batches
        flat = edited.reshape(n * s, *edited.shape[2:])
        images = torch.cat([G.synthesize(flat[j:j + batch], space) for j in range(0, n * s, batch)])
        return images.clamp(-1, 1).reshape(n, s, *images.shape[1:])
    if len(generators) != n:
        raise ConfigError(f"render_edits: {len(generators)} generators for {n} latents")
    out = []
    for i, g in enumerate(generators):
        parts = [g.synthesize(edited[i, j:j + batch], space) for j in range(0, s, batch)]
        out.append(torch.cat(parts).clamp(-1, 1))
    return torch.stack(out)


def result_generators(G: Generator, result: InversionResult) -> list[Generator] | None:
    """The generator of each image of an inversion result: a PTI result's tuned generators (image
    ``i``'s weights, ``result.generator(G, i)``), or None when ``G`` renders them all."""
    if isinstance(result, TunedInversion):
        return result.generators(G)
    return None


def edit_result(G: Generator, result: InversionResult, directions: Directions, index: int,
                strengths: Sequence[float] | Tensor, *, residual: str = "auto", **kw: object) -> Tensor:
    """Images of an inversion result's latents edited along direction ``index``: ``[N, S, C, H, W]`` in
    [-1, 1]. PTI results edit the pivot and render with each image's tuned generator. Layerwise
    (fs-encoder) results re-add their feature residual, aligned to the edit when ``residual`` is
    ``"auto"`` / ``"aligned"`` and an aligner is found, as it is with ``"raw"`` (:func:`result_aligner`).
    ``kw``: layers, units (see :func:`edit_latents`)."""
    if not isinstance(result, LatentInversion):
        raise LatentSpaceError(f"a {result.space} {result.kind} result has no latent code of {G.name} to edit along a direction "
                               "(diffusion noise is not edited this way)")
    if result.layer_state is not None:
        edited, target = edit_latents(G, result.latents, result.latent_space, directions, index, strengths, **kw)  # type: ignore[arg-type]
        return render_layer_edits(G, result, edited, target, aligner=result_aligner(G, result, residual),
                                  generators=result_generators(G, result))
    edited, target = edit_latents(G, result.latents, result.space, directions, index, strengths, **kw)  # type: ignore[arg-type]
    return render_edits(G, edited, target, generators=result_generators(G, result))


@torch.no_grad()
def render_layer_edits(G: Generator, result: LatentInversion, edited: Tensor, space: str, *,
                       aligner: torch.nn.Module | None = None, generators: Sequence[Generator] | None = None) -> Tensor:
    """Images of a layerwise result's (``f:LAYER``: ``fs-encoder``, ``optimize`` in ``f:LAYER``) edited
    latents ``[N, S, *shape]`` in ``space`` -> ``[N, S, C, H, W]`` in [-1, 1] (clamped).

    The state at the cut is the head's features of the edited latent plus the result's residual there,
    ``layer_state - head(latent)``: re-added as it is (HFGI's rule: what the latent does not explain
    stays put while the latent moves), or, with an ``aligner`` (``editing.aligner.ResidualAligner``,
    see :func:`result_aligner`), first moved with the edit: ``aligner(residual, head(edited),
    head(latent))``. Strength 0 reproduces the result's image either way. The rest of the state
    (StyleGAN2's skip image) and the tail's latent follow the edited latent. ``generators``: one per
    image (a tuned result's generators), default ``G`` for all.
    """
    state = result.layer_state
    assert state is not None
    if generators is not None and len(generators) != edited.shape[0]:
        raise ConfigError(f"render_layer_edits: {len(generators)} generators for {edited.shape[0]} latents")
    base = result.latent_space
    out = []
    for i in range(edited.shape[0]):
        g = G if generators is None else generators[i]
        split = require(g, LayerSplitting, f"editing a layerwise result ({result.space})").layer_split(state.layer)
        own = split.head(result.latents[i:i + 1].to(g.device, torch.float32), base)
        residual = state.tensors[0][i:i + 1].to(g.device, torch.float32) - own[0]  # type: ignore[index,operator]
        moved = edited[i].to(g.device, torch.float32)
        head = split.head(moved, space)
        if aligner is not None:
            k = moved.shape[0]
            residual = aligner(residual.expand(k, *residual.shape[1:]), head[0], own[0].expand(k, *own[0].shape[1:]))
        tail = None
        if split.tail_space is not None:
            tail = moved if space == split.tail_space else g.convert(moved, space, split.tail_space)
        out.append(split.tail((head[0] + residual, *head[1:]), tail).clamp(-1, 1))
    return torch.stack(out)


def result_aligner(G: Generator, result: InversionResult, residual: str = "auto") -> torch.nn.Module | None:
    """The residual aligner editing ``result`` uses: for an fs-encoder result with ``residual``
    ``"auto"`` (the default: the aligner beside its encoder file when there is one) or ``"aligned"``
    (one is required); None for ``"raw"`` (HFGI's plain re-add) and for results without a residual.
    See ``editing.aligner.find_aligner``."""
    if residual not in ("auto", "aligned", "raw"):
        raise ConfigError(f"residual {residual!r}: choose auto, aligned or raw")
    if not isinstance(result, LatentInversion) or result.layer_state is None or residual == "raw":
        return None
    from .aligner import find_aligner

    return find_aligner(G, result, residual)
