"""StyleSpace (Wu et al., "StyleSpace Analysis: Disentangled Controls for StyleGAN Image Generation",
CVPR 2021): single style channels of StyleGAN2's S space as edit directions.

S is the concatenation of every modulated layer's style vector (``G.style_layer_names``); one
channel is one coordinate of it, named ``"b16.conv0 c12"``. Three ways to pick channels:

- :func:`channel_direction`: a channel you name.
- :func:`channels_for_label` / :func:`channels_for_classifier`: attribute-specific channels, ranked
  by the paper's relevance ``|mean over positives - mean over all| / std over all``.
- :func:`channels_for_mask`: locally-active channels, ranked by the share of the image change a
  channel causes that falls inside a region mask.

Every direction is a one-hot S vector (signed for attribute channels so that + adds the attribute);
its ``sigma`` is the standard deviation of that channel over sampled styles. By default only the
styles of the modulated convolutions are candidates, as in StyleSpace's released analyses (6048 of
FFHQ's 9088 channels); pass ``layers`` to include ToRGB styles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, require
from .classifiers import Classifier, attribute_score, classify
from .directions import SIGMA_SAMPLES, Directions, identity, sigma_samples


def _check(G: Generator) -> StyleSpaces:
    """``G`` as a style-space generator (StyleSpace edits single S channels), else one line saying so
    (sefa, ganspace and interfacegan work without an S space)."""
    return require(G, StyleSpaces, "StyleSpace (single S channels; else use sefa, ganspace or interfacegan)")


def layer_offsets(G: Generator) -> dict[str, tuple[int, int]]:
    """``{layer name: (offset in S, channels)}`` in S order."""
    out, start = {}, 0
    for name, dim in zip(_check(G).style_layer_names, G.style_dims):
        out[name] = (start, int(dim))
        start += int(dim)
    return out


def select_layers(G: Generator, layers: str | Sequence[str] | None = None) -> list[str]:
    """Style layer names: None = every modulated convolution (no ToRGB); ``"all"`` = every layer;
    otherwise names (``"b16.conv0"``) or block prefixes (``"b16"``: its conv0, conv1 and torgb),
    as a sequence or a comma-separated string."""
    names = list(_check(G).style_layer_names)
    if layers is None:
        return [n for n in names if not n.endswith("torgb")]
    parts = [p.strip() for p in layers.split(",")] if isinstance(layers, str) else [str(p).strip() for p in layers]
    parts = [p for p in parts if p]
    if parts == ["all"]:
        return names
    chosen: set[str] = set()
    for p in parts:
        hit = [n for n in names if n == p or n.split(".")[0] == p]
        if not hit:
            raise ConfigError(f"unknown style layer {p!r} for {G.name}; layers: {', '.join(names)} (or block prefixes, or 'all')")
        chosen.update(hit)
    if not chosen:
        raise ConfigError(f"no style layers selected from {layers!r}")
    return [n for n in names if n in chosen]


def channel_index(G: Generator, layer: str, channel: int) -> int:
    """Index in S of channel ``channel`` of style layer ``layer``."""
    offsets = layer_offsets(G)
    if layer not in offsets:
        raise ConfigError(f"unknown style layer {layer!r} for {G.name}; layers: {', '.join(offsets)}")
    start, dim = offsets[layer]
    if not 0 <= int(channel) < dim:
        raise ConfigError(f"channel {channel} is out of range for style layer {layer} ({dim} channels: 0..{dim - 1})")
    return start + int(channel)


def channel_name(G: Generator, index: int) -> str:
    """``"b16.conv0 c12"`` for index ``index`` of S."""
    for name, (start, dim) in layer_offsets(G).items():
        if start <= index < start + dim:
            return f"{name} c{index - start}"
    raise ConfigError(f"S index {index} is out of range for {G.name} (S has {sum(G.style_dims)} channels)")


def parse_channel(spec: str) -> tuple[str, int]:
    """``"b16.conv0 c12"``, ``"b16.conv0:12"`` or ``"b16.conv0 12"`` -> ``("b16.conv0", 12)``."""
    text = spec.strip().replace(":", " ")
    layer, _, ch = text.rpartition(" ")
    ch = ch[1:] if ch.lower().startswith("c") else ch
    if not layer.strip() or not ch.isdigit():
        raise ConfigError(f"channel {spec!r}: write LAYER cN, e.g. 'b16.conv0 c12'")
    return layer.strip(), int(ch)


@torch.no_grad()
def style_stds(G: Generator, n: int = SIGMA_SAMPLES, seed: int = 0) -> Tensor:
    """Standard deviation of every S channel over ``n`` sampled styles: ``[S]`` on CPU.

    Draws the same latents as :func:`~invertkit.editing.directions.latent_sigmas`, so for a one-hot
    vector the two agree; computed without the ``[S, S]`` projection that would cost.
    """
    _check(G)
    total, sq, count = None, None, 0
    for lat in sigma_samples(G, "s", n, seed):
        lat = lat.double()
        total = lat.sum(0) if total is None else total + lat.sum(0)
        sq = (lat * lat).sum(0) if sq is None else sq + (lat * lat).sum(0)
        count += lat.shape[0]
    var = (sq - total * total / count) / max(count - 1, 1)
    return var.clamp_min(0).sqrt().float().cpu()


def _one_hot(G: Generator, indices: Sequence[int], signs: Sequence[float] | None = None) -> Tensor:
    v = torch.zeros(len(indices), sum(G.style_dims))
    for row, i in enumerate(indices):
        v[row, i] = 1.0 if signs is None else float(signs[row])
    return v


def channel_direction(G: Generator, layer: str, channel: int) -> Directions:
    """One style channel as a direction: a one-hot S vector named ``"LAYER cN"``.

    ``sigmas``: the channel's standard deviation over sampled styles; ``values``: 0 (not ranked).
    """
    idx = channel_index(_check(G), layer, channel)
    vectors = _one_hot(G, [idx])
    sigma = style_stds(G)[idx:idx + 1]
    return Directions(vectors, sigma, torch.zeros(1), "s", "stylespace", [channel_name(G, idx)], None, identity(G),
                      {"selection": "channel", "layer": layer, "channel": int(channel), "index": idx})


def _candidates(G: Generator, layers: str | Sequence[str] | None) -> tuple[Tensor, list[str]]:
    offsets = layer_offsets(G)
    names = select_layers(G, layers)
    idx = torch.cat([torch.arange(offsets[n][0], offsets[n][0] + offsets[n][1]) for n in names])
    return idx, names


def channels_for_label(G: Generator, latents_s: Tensor, labels_or_scores: Tensor | Sequence[float] | Sequence[bool], *,
                       top: int = 10, positives: float = 0.1, layers: str | Sequence[str] | None = None,
                       source: str = "labels") -> Directions:
    """StyleSpace's attribute-specific channels from labelled styles.

    Relevance of channel c: ``|mean_c(positives) - mean_c(all)| / std_c(all)`` over the given
    samples; the ``top`` most relevant channels become one-hot directions signed by
    ``mean_c(positives) - mean_c(all)`` (so + moves towards the attribute), ``values`` = relevance.

    Args:
        latents_s: ``[N, S]`` style vectors (``G.sample_latent(N, "s")`` or converted latents).
        labels_or_scores: ``[N]`` bool (True = positive) or float scores (the top ``positives``
            share of samples are the positives).
        positives: share of samples taken as positives from float scores, in (0, 1).
        layers: candidate style layers (see :func:`select_layers`); default the convolutions.
        source: where the labels came from, recorded in ``info``.
    """
    _check(G)
    width = sum(G.style_dims)
    if latents_s.dim() != 2 or latents_s.shape[1] != width:
        raise LatentSpaceError(f"StyleSpace needs style vectors [N, {width}] of {G.name}, got {list(latents_s.shape)}")
    x = latents_s.detach().double().cpu()
    n = x.shape[0]
    t = torch.as_tensor(labels_or_scores).detach().cpu().reshape(-1)
    if t.numel() != n:
        raise ConfigError(f"{t.numel()} labels for {n} style vectors; give one label or score per sample")
    if t.dtype == torch.bool:
        pos = t
    else:
        if not 0 < positives < 1:
            raise ConfigError(f"positives must be a share in (0, 1), got {positives}")
        if not bool(torch.isfinite(t.double()).all()):
            raise ConfigError("scores contain NaN or infinity")
        pos = torch.zeros(n, dtype=torch.bool)
        pos[torch.argsort(t.double(), descending=True, stable=True)[:max(1, int(n * positives))]] = True
    k_pos = int(pos.sum())
    if k_pos == 0 or k_pos == n:
        raise ConfigError(f"StyleSpace needs both positive and other samples, got {k_pos} positive of {n}")
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    mean, std = x.mean(0), x.std(0)
    diff = x[pos].mean(0) - mean
    relevance = torch.where(std > 1e-8, diff.abs() / std.clamp_min(1e-8), torch.zeros_like(diff))
    cand, names = _candidates(G, layers)
    order = cand[torch.argsort(relevance[cand], descending=True, stable=True)][:top].tolist()
    signs = [1.0 if float(diff[i]) >= 0 else -1.0 for i in order]
    stds = style_stds(G)
    info = {"selection": "label", "samples": n, "positives": k_pos, "label_source": source, "layers": names,
            "labels": "binary" if t.dtype == torch.bool else "scores", "signs": signs}
    if t.dtype != torch.bool:
        info["positive_share"] = positives
    return Directions(_one_hot(G, order, signs), stds[order], relevance[order].float(), "s", "stylespace",
                      [channel_name(G, i) for i in order], None, identity(G), info)


def channels_for_classifier(G: Generator, classifier: Classifier, *, target: int | None = None, n: int = 2000,
                            top: int = 10, positives: float = 0.1, seed: int = 0,
                            layers: str | Sequence[str] | None = None, batch: int = 256,
                            source: str = "classifier") -> Directions:
    """:func:`channels_for_label` on ``n`` sampled styles scored by a classifier (the attribute score
    of class ``target`` for a K-class classifier); the top ``positives`` share are the positives."""
    if n < 2:
        raise ConfigError(f"n must be at least 2, got {n}")
    styles = _check(G).sample_latent(n, "s", seed=seed)
    scores = attribute_score(classify(G, styles, "s", classifier, batch=batch), target)
    d = channels_for_label(G, styles, scores, top=top, positives=positives, layers=layers, source=source)
    d.info.update({"target": target, "sample_seed": seed})
    return d


def _mask_at(mask: Tensor, resolution: int) -> Tensor:
    m = torch.as_tensor(mask).detach().cpu()
    if m.dim() != 2:
        raise ConfigError(f"a region mask is [H, W], got {list(m.shape)}")
    m = m.float()
    if tuple(m.shape) != (resolution, resolution):  # nearest keeps it a hard mask
        m = F.interpolate(m[None, None], size=(resolution, resolution), mode="nearest")[0, 0]
    m = m > 0.5
    if not bool(m.any()) or bool(m.all()):
        raise ConfigError("the region mask must cover some but not all pixels")
    return m


@torch.no_grad()
def channels_for_mask(G: Generator, mask: Tensor, *, n: int = 8, top: int = 10,
                      layers: str | Sequence[str] | None = None, seed: int = 0, strength: float = 3.0,
                      batch: int = 64, name: str = "mask") -> Directions:
    """Locally-active channels: those whose effect on the image concentrates inside ``mask``.

    For each candidate channel c, ``n`` sampled styles are moved by ``strength`` standard deviations of
    c and rendered; the change map is the per-pixel absolute image difference (summed over colour,
    averaged over the samples, unclamped output, like the paper's gradient maps). The score is the
    share of the change map inside the mask, in [0, 1], and nothing else: it is not weighted by how
    large the change is, so a weak but local channel ranks high (``info["change"]`` gives each chosen
    channel's mean absolute change per pixel to judge that). Channels that change nothing score 0.

    Args:
        mask: ``[H, W]`` bool (or 0/1) region; resized to ``G.resolution`` by nearest neighbour.
        n: sampled styles per channel.
        layers: candidate style layers (see :func:`select_layers`); default the convolutions.
        batch: images per forward pass (many channels share one pass).
    Returns:
        ``top`` one-hot directions (+ = increase the channel), ``values`` = share inside the mask.
    """
    _check(G)
    if n < 1 or top < 1 or batch < 1:
        raise ConfigError(f"n, top and batch must be at least 1, got {n}, {top}, {batch}")
    if not strength > 0:
        raise ConfigError(f"strength must be positive (in standard deviations), got {strength}")
    m = _mask_at(mask, G.resolution).to(G.device)
    cand, names = _candidates(G, layers)
    stds = style_stds(G)
    base = G.sample_latent(n, "s", seed=seed)
    base_img = G.synthesize(base, "s")
    per_pass = max(1, batch // n)  # channels per forward pass
    shares, changes = torch.zeros(len(cand)), torch.zeros(len(cand))
    for start in range(0, len(cand), per_pass):
        chunk = cand[start:start + per_pass]
        k = len(chunk)
        lat = base.unsqueeze(0).repeat(k, 1, 1)  # [k, n, S]
        rows = torch.arange(k)
        lat[rows, :, chunk] += (strength * stds[chunk]).to(lat)[:, None]
        img = G.synthesize(lat.reshape(k * n, -1), "s").reshape(k, n, *base_img.shape[1:])
        change = (img - base_img.unsqueeze(0)).abs().sum(2).mean(1)  # [k, H, W]
        total = change.sum((1, 2))
        inside = (change * m).sum((1, 2))
        ok = total > 1e-12 * change[0].numel()
        shares[start:start + k] = torch.where(ok, inside / total.clamp_min(1e-30), torch.zeros_like(total)).cpu()
        changes[start:start + k] = (total / change[0].numel()).cpu()
    pick = torch.argsort(shares, descending=True, stable=True)[:top]
    order = cand[pick].tolist()
    info = {"selection": "mask", "region": name, "samples": n, "strength": strength, "seed": seed, "layers": names,
            "mask_pixels": int(m.sum()), "change": [float(c) for c in changes[pick]],
            "score": "share of the mean absolute image change inside the mask (not weighted by its size)"}
    return Directions(_one_hot(G, order), stds[order], shares[pick], "s", "stylespace",
                      [channel_name(G, i) for i in order], None, identity(G), info)
