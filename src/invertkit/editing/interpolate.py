"""Interpolating between two latents and mixing their styles.

``interpolate`` morphs one latent into another: spherically in Z (Gaussian codes concentrate on a
sphere of radius ~sqrt(d), and a straight line between two of them dips towards the origin, where the
generator has seen few codes: White, "Sampling Generative Networks", 2016), linearly in the
learned spaces W, W+, P, P_N and S (the mapping already made them close to flat; StyleGAN's
perceptual-path-length measurements interpolate W linearly for that reason, Karras et al. 2019).

``style_mix`` takes chosen W+ rows of one latent and the others from another latent (StyleGAN's
style mixing): coarse rows 0-3 carry pose and shape, middle rows 4-7 finer features, fine rows 8+
colour and micro-structure.

Latents in different spaces are both converted *downstream* (z -> w -> w+/p/pn -> s) to a common
space first; a conversion upstream does not exist without an inversion, so it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, require
from .apply import LAYER_GROUPS, parse_layers

# how far downstream a space is; spaces of one rank convert into each other (w+, p, pn are per-row
# transforms of one another)
_RANK = {"z": 0, "w": 1, "w+": 2, "p": 2, "pn": 2, "s": 3}
_ORDER_TEXT = "z -> w -> w+/p/pn -> s"
PARALLEL_COS = 0.9995  # above this cosine two vectors count as parallel: slerp would divide by ~0


def _as_weight(t: float | Tensor, like: Tensor) -> Tensor:
    """``t`` as a tensor broadcasting against ``like`` ``[N, ...]``: a scalar, or one value per row ``[N]``."""
    w = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if w.dim() == 0:
        return w
    if w.dim() != 1 or w.shape[0] not in (1, like.shape[0]) or like.dim() < 1:
        raise ConfigError(f"interpolation weights must be a number or one per sample ([{like.shape[0]}]), got {list(w.shape)}")
    return w.reshape(-1, *([1] * (like.dim() - 1)))


def lerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """``a + t (b - a)``: ``a``, ``b`` ``[N, ...]``; ``t`` a number or one weight per sample ``[N]``.
    (``torch.lerp`` is exact at both ends: t=1 gives ``b`` itself, not ``a + (b - a)``.)"""
    return torch.lerp(a, b, _as_weight(t, a))


def slerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation of each sample, its values flattened into one vector.

    Args:
        a, b: ``[N, ...]`` (same shape).
        t: a number or one weight per sample ``[N]``; 0 gives ``a``, 1 gives ``b`` exactly.

    The direction moves along the great circle from ``a/|a|`` to ``b/|b|`` at constant angular
    speed and the norm is interpolated linearly, so for inputs of equal norm every point keeps that
    norm (the classic slerp), and in general it stays between the endpoints' norms. Samples whose
    vectors are (anti)parallel, or zero, fall back to :func:`lerp`: their great circle is undefined.
    """
    if a.shape != b.shape:
        raise ConfigError(f"slerp needs two latents of one shape, got {list(a.shape)} and {list(b.shape)}")
    if a.dim() == 0:
        raise ConfigError("slerp needs latents with a batch dimension [N, ...]")
    fa, fb = a.flatten(1), b.flatten(1)
    if not fa.is_floating_point():
        fa, fb = fa.float(), fb.float()
    w = _as_weight(t, fa).reshape(-1, 1)  # [1, 1] or [N, 1]
    na, nb = fa.norm(dim=1, keepdim=True), fb.norm(dim=1, keepdim=True)
    ua, ub = fa / na.clamp_min(1e-12), fb / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    degenerate = (cos.abs() > PARALLEL_COS) | (na < 1e-12) | (nb < 1e-12)
    safe_sin = torch.where(degenerate, torch.ones_like(sin), sin)
    direction = (torch.sin((1 - w) * omega) * ua + torch.sin(w * omega) * ub) / safe_sin
    out = torch.where(degenerate, torch.lerp(fa, fb, w), direction * torch.lerp(na, nb, w))
    # exact endpoints: a strength/weight of 0 must reproduce the input bit for bit
    out = torch.where(w == 0, fa, torch.where(w == 1, fb, out))
    return out.to(a.dtype).reshape(a.shape)


def _rank(G: Generator, space: str, what: str) -> int:
    base = "z" if space == "z-sphere" else space
    if base not in G.spaces or base not in _RANK:
        raise LatentSpaceError(f"{what}: space {space!r} cannot be interpolated or mixed with {G.name} "
                               f"(its spaces: {', '.join(G.spaces)})")
    return _RANK[base]


def common_space(G: Generator, space_a: str, space_b: str) -> str:
    """The space two latents are interpolated in: their own when they agree (``z-sphere`` counts as
    z), else the more downstream one (``w+`` when they are two different per-row spaces)."""
    ra, rb = _rank(G, space_a, "A"), _rank(G, space_b, "B")
    a = "z" if space_a == "z-sphere" else space_a
    b = "z" if space_b == "z-sphere" else space_b
    if a == b:
        return a
    if ra == rb:  # w+ / p / pn: interpolate in w+, the space the generator consumes
        return "w+"
    return a if ra > rb else b


def to_space(G: Generator, latent: Tensor, space: str, target: str, *, what: str = "latent") -> Tensor:
    """``latent`` ``[N, ...]`` in ``space`` converted downstream to ``target`` (no gradients).

    Raises:
        LatentSpaceError: ``target`` lies upstream of ``space`` (that needs an inversion).
    """
    src = "z" if space == "z-sphere" else space
    if _rank(G, space, what) > _rank(G, target, f"the target space {target!r}"):
        raise LatentSpaceError(f"{what} is a {space!r} latent and cannot be converted to {target!r}: conversions only go "
                               f"downstream ({_ORDER_TEXT}); work in {src!r} or a space after it, or invert the image in {target!r}")
    x = G.check_latent(latent, src)
    if src == target:
        return x
    with torch.no_grad():
        return G.convert(x, src, target)


def interpolate(G: Generator, a: Tensor, b: Tensor, space: str, steps: int, *, space_b: str | None = None,
                into: str | None = None) -> Tensor:
    """``steps`` latents from ``a`` to ``b`` (both ends included): ``[steps, *G.latent_shape(space)]``.

    Args:
        a, b: one latent each, ``[1, ...]`` or ``[...]``.
        space: the space of ``a`` (and of ``b`` unless ``space_b`` is given); ``z-sphere`` counts as z.
        steps: >= 2.
        space_b: the space of ``b`` when it differs from ``a``'s.
        into: the space to interpolate in (default :func:`common_space`); it must be downstream of
            both latents' spaces. The result lives in it.

    Slerp in Z (and ``z-sphere``), lerp in W, W+, P, P_N and S.
    """
    if steps < 2:
        raise ConfigError(f"an interpolation needs at least 2 steps (both ends), got {steps}")
    space_b = space if space_b is None else space_b
    target = common_space(G, space, space_b) if into is None else ("z" if into == "z-sphere" else into)
    xa = to_space(G, a, space, target, what="A")
    xb = to_space(G, b, space_b, target, what="B")
    if xa.shape[0] != 1 or xb.shape[0] != 1:
        raise ConfigError(f"interpolate takes one latent at each end, got batches of {xa.shape[0]} and {xb.shape[0]}")
    t = torch.linspace(0.0, 1.0, steps, device=xa.device)
    xa, xb = xa.expand(steps, *xa.shape[1:]), xb.expand(steps, *xb.shape[1:])
    return slerp(xa, xb, t) if target == "z" else lerp(xa, xb, t)


def _wplus_rows(G: Generator) -> int:
    return require(G, StyleSpaces, "style mixing (interpolate the two latents instead)").num_ws


def style_mix(G: Generator, a: Tensor, space_a: str, b: Tensor, space_b: str,
              layers: str | Sequence[int]) -> tuple[Tensor, str]:
    """W+ rows ``layers`` of ``b``, every other row of ``a`` (StyleGAN's style mixing).

    Args:
        a, b: one latent each, ``[1, ...]``, in a space upstream of or equal to w+ (z, w, w+, p, pn).
        layers: a :func:`~invertkit.editing.apply.parse_layers` spec (``"coarse"``, ``"middle"``,
            ``"fine"``, ``"0-3"``, ``"4,5"``) or row numbers; ``"all"`` takes ``b`` whole.

    Returns:
        ``(mixed [1, num_ws, w_dim], "w+")``.

    Raises:
        ConfigError: ``G`` has no W+ (z-only generators), or ``layers`` selects no valid row.
        LatentSpaceError: a latent in S (styles cannot be turned back into W+ rows).
    """
    rows = _wplus_rows(G)
    xa = to_space(G, a, space_a, "w+", what="A")
    xb = to_space(G, b, space_b, "w+", what="B")
    selected = parse_layers(layers, rows)
    mixed = xa.clone()
    take = list(range(rows)) if selected is None else list(selected)
    mixed[:, take] = xb[:, take]
    return mixed, "w+"


def mix_groups(G: Generator) -> list[str]:
    """The layer groups (``coarse``, ``middle``, ``fine``) that select at least one W+ row of ``G``
    (a 16 px StyleGAN2 has 6 rows: no fine ones)."""
    rows = _wplus_rows(G)
    return [name for name, (lo, _) in LAYER_GROUPS.items() if lo < rows]


def mix_grid(G: Generator, a: Tensor, space_a: str, b: Tensor, space_b: str,
             specs: Sequence[str] | None = None) -> tuple[Tensor, list[str]]:
    """One style mix per layer spec: ``(mixed [K, num_ws, w_dim] in w+, labels)``.

    ``specs`` defaults to :func:`mix_groups` (coarse, middle and fine rows taken from ``b``), the
    rows of the mixing figure in the StyleGAN paper.
    """
    specs = list(mix_groups(G) if specs is None else specs)
    if not specs:
        raise ConfigError("mix_grid: no layer specs given")
    mixes = [style_mix(G, a, space_a, b, space_b, spec)[0] for spec in specs]
    return torch.cat(mixes), [str(s) for s in specs]
