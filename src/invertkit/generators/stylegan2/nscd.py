"""NSCD anchors: the mean normalised style vector of each StyleGAN2 layer (LSAP).

LSAP (Cao et al., "LSAP: Rethinking Inversion Fidelity, Perception and Editability in GAN Latent
Space", arXiv 2209.12746) observes that a demodulated convolution ignores the scale of its style
vector (the paper's Proposition 1), so only the direction ``s_l / ||s_l||`` (the normalised style
space S^N) matters. The anchor of layer ``l`` is

    mu_l = (1/n) sum_i s_l(w_i) / ||s_l(w_i)||,    w_i = mapping(z_i), z_i ~ N(0, I)

i.e. the plain mean of unit vectors, *not* re-normalised (as the authors' code computes it,
``anchor = (s / s.norm(dim=-1)).mean(0)`` in caopulan/GANInverter ``training/encoder_trainer.py``;
NSCD uses the cosine, for which the anchor's length does not matter). The layers NSCD reads are
the modulated convolutions and the *last* ToRGB (the style layers of rosinality's
``get_modulation_modules``: ``conv1``, every ``convs[k]``, ``to_rgbs[-1]``), one per w+ row, so
their count is ``num_ws``; the intermediate ToRGBs of the skip architecture are left out.

Anchors are computed once per generator (default n = 10^4 samples; the authors use 10^5) and cached
in memory and on disk like the P-space statistics (``invertkit.store.statcache``), keyed by a hash of
the weights they depend on (mapping and affine layers) and the fit settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ...store.statcache import cached_stats
from . import spaces as _sp

if TYPE_CHECKING:
    from .generator import StyleGAN2Generator

__all__ = ["style_anchors", "nscd_layer_indices", "nscd_layer_names", "nscd_from_styles", "ANCHOR_SAMPLES"]

ANCHOR_SAMPLES = 10_000
_ANCHOR_SEED_OFFSET = 1_000_003  # keeps anchor draws apart from sample_latent(seed=...) and the P fit


def _check(G: object) -> StyleGAN2Generator:
    from ..capabilities import StyleSpaces, require

    return require(G, StyleSpaces, "NSCD")  # type: ignore[arg-type,return-value]


def nscd_layer_indices(G: StyleGAN2Generator) -> list[int]:
    """Indices into ``G.style_layer_names`` of the layers NSCD reads: every modulated conv and the
    last ToRGB, one per W+ row (``G.row_layers()``)."""
    return _check(G).row_layers()


def nscd_layer_names(G: StyleGAN2Generator) -> list[str]:
    """Names of the NSCD layers, e.g. ``["b4.conv1", "b8.conv0", "b8.conv1", ..., "b16.torgb"]``."""
    names = _check(G).style_layer_names
    return [names[i] for i in nscd_layer_indices(G)]


def nscd_from_styles(styles: Sequence[Tensor], anchors: Sequence[Tensor], layers: Sequence[int]) -> Tensor:
    """``mean over layers of 1 - cos(styles[l], anchors[l])`` for ``l`` in ``layers``; returns ``[N]``.

    The one NSCD formula, shared by ``objectives.nscd`` (loss) and ``metrics.nscd`` (metric).
    """
    terms = [1.0 - F.cosine_similarity(styles[i], anchors[i].unsqueeze(0), dim=1, eps=1e-8) for i in layers]
    return torch.stack(terms, dim=1).mean(dim=1)


def _compute(G: StyleGAN2Generator, n: int, seed: int) -> dict[str, Tensor]:
    syn = G.net.synthesis
    sums = [torch.zeros(d, dtype=torch.float64) for d in syn.style_dims]
    with torch.no_grad():
        for w in _sp.mapped_w_batches(G, n, seed + _ANCHOR_SEED_OFFSET):
            for k, name in enumerate(syn.layer_names):
                s = syn.layer(name).affine(w)
                s = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)
                sums[k] += s.to("cpu", torch.float64).sum(0)
    return {f"anchor_{k}": (t / n).contiguous() for k, t in enumerate(sums)}


def style_anchors(G: StyleGAN2Generator, n: int = ANCHOR_SAMPLES, seed: int = 0, *, refresh: bool = False,
                  disk: bool = True) -> list[Tensor]:
    """Per style layer (all of ``G.style_layer_names``, in order): ``mu_l``, the mean of ``s_l/||s_l||``.

    Args:
        G: a StyleGAN2 generator.
        n: latents sampled through the mapping (z ~ N(0, I); uniform random labels if conditional).
        seed: seed of those draws (a stream separate from ``sample_latent(seed=...)``).
        refresh: recompute even if cached; disk: also keep them under ``$INVERTKIT_HOME/stats``.

    Returns:
        float32 tensors ``[style_dims[l]]`` on G's device (not re-normalised; ``||mu_l|| <= 1``).
    """
    G = _check(G)
    if n < 1:
        raise ValueError(f"style_anchors needs n >= 1, got {n}")
    # anchors first needed inside torch.inference_mode() (a metric) must still be usable in autograd
    with torch.inference_mode(False), torch.no_grad():
        return _anchors(G, int(n), int(seed), refresh, disk)


def _anchors(G: StyleGAN2Generator, n: int, seed: int, refresh: bool, disk: bool) -> list[Tensor]:
    syn = G.net.synthesis
    weights = dict(G.net.mapping.named_parameters())
    for name in syn.layer_names:
        weights.update({f"{name}.affine.{k}": v for k, v in syn.layer(name).affine.named_parameters()})
    cfg = G.config
    info = {"n": int(n), "seed": int(seed), "config": cfg.to_dict()}
    expect = {f"anchor_{k}": (d,) for k, d in enumerate(syn.style_dims)}
    t = cached_stats(G, "nscd_anchors", weights=weights, info=info, expect=expect,
                         compute=lambda: _compute(G, int(n), int(seed)), refresh=refresh, disk=disk)
    dev = G.device
    memo = G.__dict__.setdefault("_invertkit_stats", {})
    key = ("nscd_anchors_on", int(n), int(seed), str(dev))
    hit = memo.get(key)
    if hit is None or hit[0] is not t:  # one float32 copy per device, reused by every loss evaluation
        hit = memo[key] = (t, [t[f"anchor_{k}"].to(dev, torch.float32) for k in range(len(syn.style_dims))])
    return hit[1]
