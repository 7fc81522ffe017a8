"""HyperStyle-style refinement: a hypernetwork predicts per-image offsets of chosen generator layers.

After Alaluf, Tov, Richardson, Bermano, Cohen-Or, "HyperStyle: StyleGAN Inversion with HyperNetworks
for Real Image Editing" (CVPR 2022). The pivot latent (from an encoder or any inversion method) stays
fixed; the hypernetwork sees the target image and the current reconstruction (channel-concatenated,
like ReStyle) and predicts, for every target layer, a multiplicative offset of its weight

    W' = W + W * D,    D = A @ B^T  (``rows x rank`` times ``rank x columns``, broadcast over the kernel)

where ``rows x columns`` are the weight's first two dimensions (a conv's output x input channels, a
conv-transpose's input x output channels; StyleGAN2's modulated convs are offset before modulation
and demodulation, as in HyperStyle). This low-rank form is the parameter-efficient choice here:
HyperStyle predicts a full ``out x in`` offset per layer through shared refinement blocks; a rank-r
factor costs ``r * (rows + columns)`` outputs per layer instead of ``rows * columns``. A rank-r
product is not a per-channel scaling, so StyleGAN2's demodulation does not cancel it.

Iterations accumulate, as in HyperStyle's inference: ``D_t = D_{t-1} + A_t B_t^T``, each from the
image and the reconstruction of the generator offset by ``D_{t-1}``. The ``A`` heads start at zero,
so a fresh network reproduces the pivot's image exactly.

The per-image weights are applied with ``torch.func.functional_call`` on the generator's tunable
module, batched with ``torch.func.vmap`` (a convolution with a per-image weight becomes one grouped
convolution over the batch): this works for every ``Tunable`` generator (wrapped ``nn.Sequential``
DCGANs, StyleGAN2 at any block resolution) without touching its code. A generator whose forward pass
``vmap`` cannot batch falls back to one image at a time (:func:`render_offset_loop`, same numbers).

**Layerwise pivots.** The pivot may be a layerwise result (``f:LAYER``: an fs encoder's latent plus
its feature residual, or ``optimize`` in ``f:LAYER``): its state at the cut is fixed, so only the
layers after the cut can change the image; the offsets then apply to the generator's tail, which
renders the pivot's state (``split`` and ``state`` below), and ``auto`` targets are the tail's conv
layers (:func:`tail_layers`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ImageError
from ..generators.base import Generator
from ..generators.capabilities import Tunable, require
from ..generators.layers import LayerSplit
from ..untrusted import one_line
from .config import EncoderConfig
from .nets import Backbone, _sizes

HIDDEN = 256  # width of the shared feature vector the per-layer heads read
OFFSET_SCALE = 0.02  # A = 0.02 x head output: one Adam step moves weights by a fraction of a percent, not tens of percent
SKIPPED = ("torgb", "skip")  # StyleGAN2's RGB and skip convolutions: HyperStyle leaves them alone


def _module_names(G: Generator) -> dict[str, str]:
    """Tunable-module parameter name -> the same tensor's name in ``G.weights()`` (found by identity)."""
    require(G, Tunable, "hyperstyle (per-image weight offsets)")
    by_ptr = {t.data_ptr(): name for name, t in G.weights().items()}
    module = G.tunable_module()  # type: ignore[attr-defined]
    return {rel: by_ptr[p.data_ptr()] for rel, p in module.named_parameters() if p.data_ptr() in by_ptr}


def candidate_layers(G: Generator) -> list[tuple[str, int, int]]:
    """Every conv weight (4-d) of ``G``'s tunable module but StyleGAN2's toRGB/skip ones, in network order,
    as ``(name in G.weights(), rows, columns)``."""
    names = _module_names(G)
    module = G.tunable_module()  # type: ignore[attr-defined]
    out = []
    for rel, p in module.named_parameters():
        if p.dim() == 4 and rel in names and not any(s in rel.split(".")[-2] for s in SKIPPED):
            out.append((names[rel], int(p.shape[0]), int(p.shape[1])))
    return out


def _call(G: Generator) -> _Call:
    return _Call(G.tunable_module())  # type: ignore[attr-defined]


def tail_layers(G: Generator, split: LayerSplit, space: str) -> set[str]:
    """Names (in ``G.weights()``) of the candidate conv layers the tail of ``split`` uses: the only
    ones whose offsets reach the image of a layerwise pivot cut there (found by differentiating the
    tail's image of the mean latent's state with respect to each weight)."""
    names = {v: k for k, v in _module_names(G).items()}
    state = G.weights()
    cands = [name for name, _, _ in candidate_layers(G)]
    with torch.enable_grad():
        params = {"m." + names[n]: state[n].detach().clone().requires_grad_(True) for n in cands}
        with torch.no_grad():
            mean = G.mean_latent(space)
            head = split.head(mean, space)
            tail_latent = None if split.tail_space is None else (
                mean if space == split.tail_space else G.convert(mean, space, split.tail_space))
        out = torch.func.functional_call(_call(G), params, (lambda: split.tail(head, tail_latent),))
        if not out.requires_grad:  # no conv layer after the cut
            return set()
        grads = torch.autograd.grad(out.sum(), list(params.values()), allow_unused=True)
    return {n for n, g in zip(cands, grads, strict=True) if g is not None}


def conv_targets(G: Generator, layers: str = "auto", *, split: LayerSplit | None = None,
                 space: str | None = None) -> tuple[tuple[str, int, int], ...]:
    """The layers a hypernetwork offsets: ``auto`` (the later half of :func:`candidate_layers`: the
    fine layers, where detail is drawn), ``all``, or comma-separated names from ``G.weights()``.

    With ``split`` (a layerwise pivot cut there; ``space``: its latent space) only the tail's layers
    count: ``auto`` and ``all`` are every conv layer after the cut, and a named layer before it is refused."""
    cands = candidate_layers(G)
    if split is not None:
        tail = tail_layers(G, split, space or G.spaces[0])
        before = [c[0] for c in cands if c[0] not in tail]
        cands = [c for c in cands if c[0] in tail]
        if not cands:
            raise ConfigError(f"{G.name} has no convolution weights after layer {split.name} a hypernetwork could offset")
        if layers in ("auto", "all"):
            return tuple(cands)
        wanted = [s.strip() for s in layers.split(",") if s.strip()]
        early = [w for w in wanted if w in before]
        if early:
            raise ConfigError(f"--layers: {', '.join(early)} come before the pivot's split layer {split.name} (its state there "
                              f"is fixed, so they cannot change the image); choose from auto, all or {', '.join(c[0] for c in cands)}")
    if not cands:
        raise ConfigError(f"{G.name} has no convolution weights a hypernetwork could offset")
    if layers == "auto":
        return tuple(cands[len(cands) // 2:])
    if layers == "all":
        return tuple(cands)
    known = {c[0]: c for c in cands}
    wanted = [s.strip() for s in layers.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise ConfigError(f"--layers: {', '.join(unknown) or 'nothing'} is not a conv layer of {G.name}; "
                          f"choose from auto, all or {', '.join(known)}")
    return tuple(known[w] for w in dict.fromkeys(wanted))


def check_targets(config: EncoderConfig, G: Generator, where: str) -> None:
    """Refuse a hypernetwork whose layers are not ``G``'s (names and shapes)."""
    layers = {name: (rows, cols) for name, rows, cols in candidate_layers(G)}
    state = G.weights()
    for name, rows, cols in config.targets:
        if layers.get(name) != (rows, cols):
            have = ("no such conv layer" if name not in layers else
                    f"shape {list(state[name].shape)}")
            raise ConfigError(f"{where}: the hypernetwork offsets {one_line(name, 120)} [{rows} x {cols} x k x k] of "
                              f"{one_line(config.generator, 80)}, "
                              f"but {G.name} has {have}; train one for this generator with "
                              "invertkit train-encoder --arch hyperstyle --bootstrap ENCODER (pSp, e4e or fs)")


class HyperNet(nn.Module):
    """``(image, reconstruction)`` -> per target layer the factors ``(A [N, rows, r], B [N, cols, r])``.

    A residual backbone (the encoders' one, on ``2 x channels`` inputs), the coarsest map flattened into
    one shared feature vector, and two small linear heads per layer (HyperStyle's lightweight heads);
    the ``A`` heads start at zero.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        if config.arch != "hyperstyle":
            raise ConfigError(f"HyperNet builds hyperstyle networks, not {config.arch}")
        self.config = config
        self.meta: dict = {}
        self.source = ""
        object.__setattr__(self, "start_encoder", None)  # the pivot's encoder, kept out of the module tree
        c = config
        self.backbone = Backbone(c.in_channels, c.widths, c.blocks)
        side = _sizes(c.resolution, len(c.widths))[-1]
        self.shared = nn.Sequential(nn.Linear(c.widths[-1] * side * side, HIDDEN), nn.LeakyReLU(0.2))
        self.heads_a = nn.ModuleList(nn.Linear(HIDDEN, rows * c.rank) for _, rows, _ in c.targets)
        self.heads_b = nn.ModuleList(nn.Linear(HIDDEN, cols * c.rank) for _, _, cols in c.targets)
        with torch.no_grad():
            for h in self.heads_a:
                h.weight.zero_()
                h.bias.zero_()
            for h in self.heads_b:  # B ~ unit scale per entry, so A's gradient is useful from the start
                h.weight.mul_(math.sqrt(3.0))
                h.bias.fill_(1.0)

    def forward(self, image: Tensor, reconstruction: Tensor) -> list[tuple[Tensor, Tensor]]:
        c = self.config
        for x, what in ((image, "images"), (reconstruction, "reconstructions")):
            if x.dim() != 4 or tuple(x.shape[1:]) != (c.channels, c.resolution, c.resolution):
                raise ImageError(f"the hypernetwork for {c.generator} takes {what} of shape N x {c.channels} x "
                                 f"{c.resolution} x {c.resolution}, got {list(x.shape)}")
        feats = self.backbone(torch.cat([image, reconstruction], 1))
        h = self.shared(feats[-1].flatten(1))
        n, r = image.shape[0], c.rank
        return [(ha(h).view(n, rows, r) * OFFSET_SCALE, hb(h).view(n, cols, r) / math.sqrt(r))
                for ha, hb, (_, rows, cols) in zip(self.heads_a, self.heads_b, c.targets, strict=True)]

    def set_start(self, start: nn.Module | None) -> None:
        """The encoder whose latents are the pivots (frozen, eval mode): pSp/e4e latents, or an fs encoder's
        layerwise pivots (latent plus feature residual; the offsets then apply to the generator's tail)."""
        if start is not None:
            sc = start.config  # type: ignore[attr-defined]
            if sc.arch not in ("psp", "e4e", "fs"):
                raise ConfigError("a hyperstyle network starts from a psp, e4e or fs encoder's latents")
            if (sc.space, sc.latent_shape) != (self.config.space, self.config.latent_shape):
                raise ConfigError(f"the bootstrap encoder predicts {sc.space} {list(sc.latent_shape)}, "
                                  f"this network expects {self.config.space} {list(self.config.latent_shape)}")
            start = start.eval().requires_grad_(False)
        object.__setattr__(self, "start_encoder", start)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def offsets(factors: Sequence[tuple[Tensor, Tensor]]) -> list[Tensor]:
    """Dense ``D = A @ B^T`` per layer, ``[N, rows, cols]``."""
    return [a @ b.transpose(1, 2) for a, b in factors]


def zero_offsets(config: EncoderConfig, n: int, device: torch.device) -> list[Tensor]:
    return [torch.zeros(n, rows, cols, device=device) for _, rows, cols in config.targets]


def weight_deltas(G: Generator, config: EncoderConfig, D: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """Per image ``{weight name: W * D}`` (what ``W' = W + W * D`` adds): TunedInversion's deltas."""
    state = G.weights()
    n = D[0].shape[0] if D else 0
    per_layer = [(state[name].float() * d.detach().float()[..., None, None]).cpu().unbind(0)  # one product per layer
                 for (name, _, _), d in zip(config.targets, D, strict=True)]
    return [{name: parts[i].clone() for (name, _, _), parts in zip(config.targets, per_layer, strict=True)}  # own storage each
            for i in range(n)]


class _Call(nn.Module):
    """Holds the tunable module so ``functional_call`` swaps its weights while ``fn`` renders."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.m = module

    def forward(self, fn):  # type: ignore[no-untyped-def]
        return fn()


def _draw(G: Generator, latent: Tensor, space: str, split: LayerSplit | None,
          state: Sequence[Tensor | None] | None) -> Tensor:
    """``G``'s image of ``latent`` (or, with ``split``, the tail's image of ``state``)."""
    if split is None:
        return G.synthesize(latent, space)
    tail_latent = None
    if split.tail_space is not None:
        tail_latent = latent if space == split.tail_space else G.convert(latent, space, split.tail_space)
    return split.tail(tuple(state), tail_latent)  # type: ignore[arg-type]


def _offset_params(G: Generator, config: EncoderConfig, D: Sequence[Tensor], rows: slice | int) -> dict[str, Tensor]:
    """``{"m.<module name>": W + W * D[rows]}`` (a batch of weights for a slice, one for an int)."""
    names = {v: k for k, v in _module_names(G).items()}
    state = G.weights()
    params = {}
    for (name, _, _), d in zip(config.targets, D, strict=True):
        w = state[name]
        d = d[rows].to(w.dtype)
        params["m." + names[name]] = w + w * d[..., None, None]
    return params


def check_split(config: EncoderConfig, G: Generator, split: LayerSplit | None, space: str) -> None:
    """Refuse offsets of layers before a layerwise pivot's cut (they cannot change its image)."""
    if split is not None:
        tail = tail_layers(G, split, space)
        early = [t[0] for t in config.targets if t[0] not in tail]
        if early:
            raise ConfigError(f"the hypernetwork offsets {', '.join(early)}, which come before the pivot's split layer "
                              f"{split.name}: they cannot change its image; use a pivot cut earlier (or a plain latent), "
                              "or a hypernetwork trained on this pivot")


def render_offset_loop(G: Generator, config: EncoderConfig, latent: Tensor, space: str, D: Sequence[Tensor], *,
                       split: LayerSplit | None = None, state: Sequence[Tensor | None] | None = None) -> Tensor:
    """:func:`render_offset` one image at a time (the reference the batched path is tested against)."""
    call = _call(G)
    out = []
    for i in range(latent.shape[0]):
        st = None if state is None else [None if t is None else t[i:i + 1] for t in state]
        out.append(torch.func.functional_call(call, _offset_params(G, config, D, i),
                                              (lambda i=i, st=st: _draw(G, latent[i:i + 1], space, split, st),)))
    return torch.cat(out)


def render_offset(G: Generator, config: EncoderConfig, latent: Tensor, space: str, D: Sequence[Tensor], *,
                  split: LayerSplit | None = None, state: Sequence[Tensor | None] | None = None) -> Tensor:
    """Images of ``latent`` ``[N, ...]`` drawn by ``G`` with image i's layers at ``W + W * D[i]``
    (differentiable in ``D``). With ``split`` and ``state`` (a layerwise pivot: the state at the cut,
    each ``[N, ...]`` or None), the tail of ``split`` renders ``state`` instead.

    Batched over the images with ``torch.func.vmap`` (each image's weights in one grouped pass);
    a generator whose forward pass ``vmap`` cannot batch is drawn one image at a time."""
    n = latent.shape[0]
    if n == 0:
        return _draw(G, latent, space, split, state)
    call = _call(G)
    params = _offset_params(G, config, D, slice(0, n))
    present = [] if state is None else [t for t in state if t is not None]
    where = [] if state is None else [t is not None for t in state]

    def one(p: dict[str, Tensor], lat: Tensor, *st: Tensor) -> Tensor:
        it = iter(st)
        full = None if state is None else [next(it)[None] if w else None for w in where]
        return torch.func.functional_call(call, p, (lambda: _draw(G, lat[None], space, split, full),))[0]

    try:
        return torch.func.vmap(one, randomness="error")(params, latent, *present)
    except (RuntimeError, NotImplementedError, ValueError):  # an op vmap cannot batch: one image at a time
        return render_offset_loop(G, config, latent, space, D, split=split, state=state)


def refine(net: HyperNet, G: Generator, images: Tensor, latent: Tensor, recon: Tensor, iterations: int,
           *, trace: list[Tensor] | None = None, detach: bool = True, split: LayerSplit | None = None,
           state: Sequence[Tensor | None] | None = None, space: str | None = None) -> tuple[list[Tensor], Tensor]:
    """HyperStyle's iterations from the pivot ``latent`` and its image ``recon``: returns the accumulated
    offsets ``D`` and the final reconstruction. ``trace`` receives the reconstruction after each pass.
    ``split``/``state``: a layerwise pivot (see :func:`render_offset`); ``space``: the latent's space
    (default the network's)."""
    if iterations < 1:
        raise ConfigError(f"hyperstyle needs iterations >= 1, got {iterations}")
    space = space or net.config.space
    D = zero_offsets(net.config, images.shape[0], images.device)
    for _ in range(iterations):
        step = offsets(net(images, recon.detach() if detach else recon))
        D = [d + s for d, s in zip(D, step, strict=True)]
        recon = render_offset(G, net.config, latent, space, D, split=split, state=state)
        if trace is not None:
            trace.append(recon)
    return D, recon


def pivot_start(net: HyperNet, G: Generator, images: Tensor) -> tuple[Tensor, Tensor, LayerSplit | None, tuple | None]:
    """The pivots of the network's bootstrap encoder for ``images`` (without gradients): ``(latent, image,
    split, state)``; ``split`` and ``state`` (the features at the cut: head plus residual) for an fs
    encoder, else None."""
    from .inference import encode_features, feature_split, render_features, start_point

    start = net.start_encoder
    if start is None or start.config.arch != "fs":
        latent, recon = start_point(net, G, images)  # type: ignore[arg-type]
        return latent, recon, None, None
    split = feature_split(start, G)
    with torch.no_grad():
        latent, residual, _, head = encode_features(start, G, images, split=split)
        recon, state = render_features(G, split, latent, start.config.space, residual, head)
    return latent, recon, split, state
