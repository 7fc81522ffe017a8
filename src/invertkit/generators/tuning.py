"""Generator tuning support: a trainable copy of a generator, and tuned weights kept as a difference.

Methods that refine the generator itself (PTI, Roich et al. 2022) tune a copy of it per image. What
is worth keeping of such a copy is its difference from the base weights, a *delta*: the tensors that
changed, ``tuned - base``, named as in the generator's own ``weights()`` (NVIDIA naming for
StyleGAN2, e.g. ``synthesis.b16.conv0.weight``; the module's naming for ``wrap``-ped networks).

A delta file is one ``.safetensors`` file: the delta tensors (float32) plus, in the header metadata
under ``"invertkit_delta"``, JSON with at least::

    {"format": "invertkit-delta", "format_version": 1, "base": "<generator name>",
     "base_digest": "<sha256 of the base generator's state dict>", ...}

so that a delta made for another generator is refused (by digest when present, else by name).
Reading one executes nothing: safetensors is a length-prefixed JSON header and raw bytes.

**Low-rank deltas** (format_version 2, ``"layout": "lowrank"``, ``"rank": r``). A weight tensor ``W``
is seen as a matrix ``out x rest`` (its first dimension by all the others: ``out x in`` for a linear
layer, ``out x (in*k*k)`` for a convolution, ``in x (out*k*k)`` for a transposed convolution, as
PyTorch stores it) and its change is kept as two factors, ``<name>.lora_B`` (``out x r``) and
``<name>.lora_A`` (``r x rest``): ``W_tuned = W + (B @ A).reshape(W.shape)``. Tensors where the
factors would not be smaller than ``W`` itself (biases, 1-D tensors, small matrices) stay full
tensors in the same file. Files of the full layout keep format_version 1, so older readers still
read them.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import CheckpointError, ConfigError
from ..io.safetensors_file import write_safetensors
from ..untrusted import short_repr
from .base import Generator
from .capabilities import Tunable, require

METADATA_KEY = "invertkit_delta"
FORMAT = "invertkit-delta"
FORMAT_VERSION = 2  # 2: low-rank factors (files of the full layout are still written as 1)
LORA_A, LORA_B = ".lora_A", ".lora_B"
MAX_RANK = 4096  # the largest rank a pti run may ask for (a file's ranks are bounded by its tensors' shapes)
# Factor A starts at entries of size ~1/sqrt(r) while Adam moves a parameter by about the learning rate
# per step whatever its scale: at PTI's 3e-4, A would stay the random projection it started as and
# only B would learn. A learns at this multiple of the learning rate (measured on dcgan-digiface64,
# benchmarks/pti_rank.py: rank 4 reaches the full delta's fit only with A learning 10-30x faster).
FACTOR_A_LR_SCALE = 30.0

__all__ = [
    "FORMAT",
    "apply_delta",
    "delta_layout",
    "expand_delta",
    "generator_digest",
    "largest_changes",
    "lowrank_copy",
    "read_delta",
    "save_delta",
    "tunable_copy",
    "weight_delta",
]


def tunable_copy(G: Generator) -> tuple[Generator, list[nn.Parameter]]:
    """An independent deep copy of ``G`` whose tunable weights require grad.

    Tunable: ``G.tunable_module()`` (a ``wrap``-ped network: the whole module; StyleGAN2: the
    synthesis network, the mapping stays frozen as in PTI). The copy stays in eval mode, so
    batch-norm keeps using (and never updates) its running statistics and the tuned generator draws
    as the base one does. ``G`` itself is not touched.

    Returns:
        ``(copy, parameters)``: the parameters to hand to an optimiser.

    Raises:
        ConfigError: ``G`` does not support weight tuning, or has no weights to tune.
    """
    require(G, Tunable, "generator tuning")  # fail before copying anything
    tuned = copy.deepcopy(G)
    module = tuned.tunable_module().eval()  # type: ignore[attr-defined]
    params = list(module.parameters())
    if not params:
        raise ConfigError(f"generator {G.name} has no weights to tune ({type(module).__name__} has no parameters)")
    for p in params:
        p.requires_grad_(True)
    return tuned, params


@torch.no_grad()
def weight_delta(base: Generator, tuned: Generator) -> dict[str, Tensor]:
    """``tuned - base`` for every floating-point tensor that changed (float32, on CPU).

    Names are the generators' own ``state_dict`` names; unchanged tensors (StyleGAN2's mapping,
    buffers) are left out, so the delta holds only what tuning moved.
    """
    a, b = base.weights(), tuned.weights()
    if a.keys() != b.keys():
        raise ConfigError(f"weight_delta: {tuned.name} does not have the same tensors as {base.name}; pass a copy of the base generator")
    out: dict[str, Tensor] = {}
    for name, t in a.items():
        u = b[name]
        if t.shape != u.shape:
            raise ConfigError(f"weight_delta: {name} is {list(u.shape)} in {tuned.name} but {list(t.shape)} in {base.name}")
        if t.is_floating_point() and not torch.equal(t, u):
            out[name] = (u.float() - t.float()).cpu().contiguous()
    return out


def matrix_shape(shape: torch.Size | tuple[int, ...]) -> tuple[int, int]:
    """The matrix a weight tensor is seen as for low-rank deltas: ``(shape[0], prod(shape[1:]))``."""
    return int(shape[0]), int(math.prod(shape[1:]))


def factorable(shape: torch.Size | tuple[int, ...], rank: int) -> bool:
    """Whether a tensor of ``shape`` gets rank-``rank`` factors: at least 2-D, and the factors
    (``rank * (out + rest)`` numbers) smaller than the tensor itself."""
    if rank <= 0 or len(shape) < 2:
        return False
    m, n = matrix_shape(shape)
    return rank * (m + n) < m * n


class _LowRankChange(nn.Module):
    """Parametrization ``W -> W + (B @ A).reshape(W.shape)`` with B zero (the copy starts equal to
    the base, as in LoRA) and A random. A's entries have standard deviation 1/sqrt(r), so that Adam's
    steps on B (about ``lr`` each) move each entry of ``W`` by about ``lr`` per step, as full tuning
    does: the same learning rate serves both."""

    def __init__(self, shape: torch.Size, rank: int, generator: torch.Generator, device: torch.device) -> None:
        super().__init__()
        m, n = matrix_shape(shape)
        self.lora_A = nn.Parameter((torch.randn(rank, n, generator=generator) / math.sqrt(rank)).to(device))
        self.lora_B = nn.Parameter(torch.zeros(m, rank, device=device))

    def forward(self, W: Tensor) -> Tensor:
        return W + (self.lora_B @ self.lora_A).reshape(W.shape).to(W.dtype)


def lowrank_copy(G: Generator, rank: int, *, seed: int = 0) -> tuple[Generator, list[dict[str, Any]], Any]:
    """A tunable copy of ``G`` (as :func:`tunable_copy`) whose matrices are tuned through rank-``rank`` factors.

    Every tunable tensor that :func:`factorable` accepts is frozen and changed only through
    ``B @ A`` (B zero, A seeded random); the others (biases, 1-D and small tensors) are tuned in full.

    Returns:
        ``(copy, groups, finish)``: optimiser parameter groups (``{"params": [...], "lr_scale": s}``:
        the A factors at :data:`FACTOR_A_LR_SCALE`, B factors and full tensors at 1); ``finish()`` returns
        the delta (``<name>.lora_A`` / ``<name>.lora_B`` factors and full ``tuned - base`` tensors for
        the rest, named as in ``G.weights()``; float32, CPU; tensors that did not change are left
        out), ready for :func:`save_delta`.
    """
    if rank <= 0:
        raise ConfigError(f"lowrank_copy needs rank >= 1, got {rank} (rank 0 is the full delta: tunable_copy)")
    T, _ = tunable_copy(G)
    names = {(t.data_ptr(), tuple(t.shape)): n for n, t in T.weights().items() if t.numel()}
    base = G.weights()
    g = torch.Generator().manual_seed(seed)
    factors: dict[str, _LowRankChange] = {}
    full: dict[str, nn.Parameter] = {}
    for module in list(T.tunable_module().modules()):  # type: ignore[attr-defined]
        for pname, p in list(module.named_parameters(recurse=False)):
            name = names.get((p.data_ptr(), tuple(p.shape)))
            if name is None:  # not one of the generator's named weights (cannot be stored): keep it as it is
                p.requires_grad_(False)
                continue
            if factorable(p.shape, rank):
                change = _LowRankChange(p.shape, rank, g, p.device)
                parametrize.register_parametrization(module, pname, change)
                module.parametrizations[pname].original.requires_grad_(False)
                factors[name] = change
            else:
                full[name] = p
    groups = [{"params": [c.lora_B for c in factors.values()] + list(full.values()), "lr_scale": 1.0},
              {"params": [c.lora_A for c in factors.values()], "lr_scale": FACTOR_A_LR_SCALE}]

    @torch.no_grad()
    def finish() -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for name, c in factors.items():
            if not c.lora_B.any():  # B still zero: this tensor did not change, as weight_delta leaves it out
                continue
            out[name + LORA_A] = c.lora_A.detach().float().cpu().contiguous()
            out[name + LORA_B] = c.lora_B.detach().float().cpu().contiguous()
        for name, p in full.items():
            if not torch.equal(p, base[name]):
                out[name] = (p.detach().float() - base[name].float()).cpu().contiguous()
        return out

    return T, [g for g in groups if g["params"]], finish


def delta_layout(delta: Mapping[str, Tensor]) -> tuple[str, int]:
    """``("lowrank", r)`` when ``delta`` holds factors (r: the largest rank among them), else ``("full", 0)``."""
    ranks = [int(t.shape[0]) for k, t in delta.items() if k.endswith(LORA_A) and t.dim() == 2]
    if ranks or any(k.endswith(LORA_B) for k in delta):
        return "lowrank", max(ranks, default=0)
    return "full", 0


def expand_delta(G: Generator, delta: Mapping[str, Tensor], *, source: str = "weight delta") -> dict[str, Tensor]:
    """A delta with every factor pair multiplied out: ``{name: tuned - base}`` in full (float32, CPU).

    Raises:
        CheckpointError: the delta does not fit ``G`` (see :func:`apply_delta`).
    """
    problems = _problems(G, delta)
    if problems:
        raise CheckpointError(f"{source}: the weight delta does not fit {G.name} ({'; '.join(problems)})")
    return {name: d.float().cpu() for name, d in _changes(G.weights(), delta)}


def _changes(state: Mapping[str, Tensor], delta: Mapping[str, Tensor]) -> list[tuple[str, Tensor]]:
    """``(name, full-size change)`` of a checked delta: full tensors as they are, factor pairs multiplied out."""
    out = []
    for name, d in delta.items():
        if name.endswith(LORA_B):
            continue
        if name.endswith(LORA_A):
            name = name[: -len(LORA_A)]
            d = (delta[name + LORA_B].float() @ d.float()).reshape(state[name].shape)
        out.append((name, d))
    return out


# the largest |tuned - base| a weight delta may hold. Tuning moves a weight by about the learning rate
# per step (Adam), so real deltas are far below 1; a larger value only comes from a damaged file
# (3e38 is finite, yet renders every image black or NaN).
MAX_ABS_DELTA = 1e6


def largest_changes(delta: Mapping[str, Tensor]) -> dict[str, float]:
    """``{name: max |change|}`` of a delta's finite tensors, factor pairs multiplied out (``B @ A``):
    bounded factors can still multiply to a huge change. Pairs whose shapes do not chain are left to
    :func:`apply_delta`, which knows the generator's shapes."""
    out: dict[str, float] = {}
    for key, d in delta.items():
        if key.endswith(LORA_B) or not d.numel() or not d.is_floating_point():
            continue
        name = key[: -len(LORA_A)] if key.endswith(LORA_A) else key
        if key.endswith(LORA_A):
            B = delta.get(name + LORA_B)
            if B is None or B.dim() != 2 or d.dim() != 2 or B.shape[1] != d.shape[0] or not B.is_floating_point():
                continue
            d = B.float() @ d.float()
        out[name] = float(d.abs().max()) if d.numel() else 0.0
    return out


def generator_digest(G: Generator) -> str:
    """sha256 of ``G``'s whole state dict (names, dtypes, shapes, bytes): identifies the base of a delta
    independently of file names (a converted checkpoint with the same weights has the same digest)."""
    return G.fingerprint()


def _problems(G: Generator, delta: Mapping[str, Tensor]) -> list[str]:
    state = G.weights()
    problems = []

    def check_values(name: str, d: Tensor, what: str = "changes a weight by") -> None:
        if not torch.isfinite(d).all():
            problems.append(f"{name} contains NaN or infinity")
        elif d.numel() and float(d.abs().max()) > MAX_ABS_DELTA:
            problems.append(f"{name} {what} {float(d.abs().max()):.3g} (more than {MAX_ABS_DELTA:g})")

    for key, d in delta.items():
        factor = key.endswith(LORA_A) or key.endswith(LORA_B)
        name = key[: -len(LORA_A)] if factor else key
        if name not in state:
            problems.append(f"{G.name} has no tensor {name!r}")
        elif not isinstance(d, Tensor) or not d.is_floating_point():
            problems.append(f"{key} is not a floating-point tensor")
        elif not factor:
            if tuple(d.shape) != tuple(state[name].shape):
                problems.append(f"{name} is {list(d.shape)}, the generator's is {list(state[name].shape)}")
            elif name + LORA_A in delta or name + LORA_B in delta:
                problems.append(f"{name} is stored both in full and as factors")
            else:
                check_values(name, d)
        elif key.endswith(LORA_A):
            B = delta.get(name + LORA_B)
            m, n = matrix_shape(state[name].shape) if state[name].dim() >= 1 else (1, 1)
            if state[name].dim() < 2:
                problems.append(f"{name} is {list(state[name].shape)} in {G.name}: a tensor with fewer than 2 dimensions has no factors")
            elif not isinstance(B, Tensor) or not B.is_floating_point():
                problems.append(f"{key} comes without its floating-point {name + LORA_B}")
            elif d.dim() != 2 or B.dim() != 2 or d.shape[1] != n or B.shape[0] != m or B.shape[1] != d.shape[0] or d.shape[0] < 1:
                problems.append(f"the factors of {name} are {list(B.shape)} @ {list(d.shape)}; {name} is {list(state[name].shape)} "
                                f"in {G.name} and needs [{m}, r] @ [r, {n}]")
            else:
                before = len(problems)
                check_values(key, d, "holds a value of")
                check_values(name + LORA_B, B, "holds a value of")
                if len(problems) == before:  # bounded factors can still multiply to a huge change
                    check_values(name, B.float() @ d.float())
        elif name + LORA_A not in delta:
            problems.append(f"{key} comes without its {name + LORA_A}")
        if len(problems) >= 3:  # enough to say what is wrong in one line
            problems.append("...")
            break
    return problems


def apply_delta(
    G: Generator,
    delta: Mapping[str, Tensor],
    *,
    meta: Mapping[str, Any] | None = None,
    source: str = "weight delta",
    copy_generator: bool = True,
) -> Generator:
    """A generator with the weights ``base + delta`` (a deep copy of ``G``; ``G`` is unchanged unless
    ``copy_generator=False``). The result is frozen, like every loaded generator.

    Args:
        G: the base generator the delta was made from.
        delta: ``{state_dict name: tensor}`` as from :func:`weight_delta` or :func:`read_delta`; a
            low-rank delta's factor pairs ``<name>.lora_A`` / ``<name>.lora_B`` add ``B @ A``.
        meta: the delta file's metadata; its ``base_digest`` (else ``base`` name) must match ``G``.
        source: how to name the delta in messages (its file path).

    Raises:
        CheckpointError: the delta was made for another generator, or names, shapes or values do
            not fit ``G`` (nothing is modified then).
    """
    base = (meta or {}).get("base")
    base = short_repr(base, 80)[1:-1] if isinstance(base, str) else (None if base is None else short_repr(base, 80))
    fix = f"load it onto the generator it was tuned from ({base!r})" if base else "load it onto the generator it was tuned from"
    if meta and meta.get("base_digest") and meta["base_digest"] != generator_digest(G):
        raise CheckpointError(f"{source}: this weight delta was made for generator {base!r}, not for {G.name!r} (their weights differ); {fix}")
    if meta and not meta.get("base_digest") and base and base != G.name:
        raise CheckpointError(f"{source}: this weight delta was made for generator {base!r}, not {G.name!r}; {fix}")
    problems = _problems(G, delta)
    if problems:
        raise CheckpointError(f"{source}: the weight delta does not fit {G.name} ({'; '.join(problems)}); {fix}")
    out = copy.deepcopy(G) if copy_generator else G
    state = dict(out.weights())  # tensors share storage with the live weights
    with torch.no_grad():
        for name, d in _changes(state, {k: v.to(state[k.removesuffix(LORA_A).removesuffix(LORA_B)].device) for k, v in delta.items()}):
            state[name].add_(d.to(state[name].dtype))
    return out


def save_delta(path: str | os.PathLike[str], delta: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a weight delta as one ``.safetensors`` file (atomically).

    Args:
        path: destination file; its folder is created.
        delta: ``{state_dict name: tensor}`` (stored as float32), full tensors and/or low-rank factor pairs.
        meta: JSON-friendly facts; must hold ``base`` (the base generator's name) and should hold
            ``base_digest`` (:func:`generator_digest`). ``format``/``format_version``, ``layout``
            (``full`` or ``lowrank``) and ``rank`` are added.

    Raises:
        ConfigError: no ``base`` in ``meta``, or non-finite values in the delta.
        CheckpointError: the file cannot be written.
    """
    p = Path(path)
    if not meta.get("base"):
        raise ConfigError("save_delta: meta must name the base generator (meta['base'])")
    bad = [k for k, v in delta.items() if not torch.isfinite(v).all()]
    if bad:
        raise ConfigError(f"save_delta: {bad[0]} contains NaN or infinity; the tuning diverged (lower the learning rate)")
    big = [k for k, v in delta.items() if v.numel() and float(v.abs().max()) > MAX_ABS_DELTA]
    big += [k for k, v in largest_changes(delta).items() if v > MAX_ABS_DELTA]
    if big:
        raise ConfigError(f"save_delta: {big[0]} changes a weight by more than {MAX_ABS_DELTA:g}; the tuning diverged (lower the learning rate)")
    layout, rank = delta_layout(delta)
    header = json.dumps({**dict(meta), "format": FORMAT, "format_version": 2 if layout == "lowrank" else 1,
                         "layout": layout, "rank": rank}, sort_keys=True, default=str)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in delta.items()}
    return write_safetensors(p, tensors, {METADATA_KEY: header}, "weight delta")


def read_delta(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_delta`: ``(delta, meta)``. Nothing in the file executes.

    Raises:
        CheckpointError: missing file, not a safetensors file, no invertkit delta metadata, a newer
            format, or NaN/infinity in the tensors.
    """
    from ..io.safetensors_file import read_safetensors

    p = Path(path)
    tensors, meta = read_safetensors(p, METADATA_KEY, "weight delta", "pass a <name>_delta.safetensors file written by a pti run")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: the weight delta's metadata is malformed (no format {FORMAT!r}); the file is corrupted")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{p}: weight delta format_version {version!r} is not supported (this invertkit reads <= {FORMAT_VERSION}); upgrade invertkit")
    if delta_layout(tensors)[0] == "lowrank" and (version < 2 or meta.get("layout", "lowrank") != "lowrank"):
        raise CheckpointError(f"{p}: the weight delta holds low-rank factors but its header says layout {meta.get('layout', 'full')!r} "
                              f"(format_version {version}); the file is corrupted, re-run the inversion that wrote it")
    bad = [k for k, v in tensors.items() if not v.is_floating_point() or not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{p}: tensor {bad[0]} of the weight delta is not finite floating point; the file is corrupted, re-run the inversion that wrote it")
    big = [(k, float(v.abs().max())) for k, v in tensors.items() if v.numel() and float(v.abs().max()) > MAX_ABS_DELTA]
    big += [(k, v) for k, v in largest_changes(tensors).items() if v > MAX_ABS_DELTA and not big]
    if big:
        raise CheckpointError(f"{p}: tensor {big[0][0]} of the weight delta changes a weight by {big[0][1]:.3g}, more than "
                              f"{MAX_ABS_DELTA:g} (tuning moves weights by far less); the file is corrupted, re-run the inversion that wrote it")
    return tensors, meta
