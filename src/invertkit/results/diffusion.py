"""``DiffusionInversion``: the noise latent of a diffusion / flow model plus the method's state, and
how both are written beside a run's latent file (``latents/<stem>_state.safetensors``).

The state file holds ``x_T [1, ...]`` and every tensor the method needs to come back (EDICT's
``y_T``, BDIA's ``x_next``; per-step lists such as null-text's ``uncond`` or Direct Inversion's
``corrections`` stacked to ``[S, 1, ...]``) in the dtype the inversion ran in (float64 runs stay
exact), with a JSON header: method, resolved options, generator name and weight fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..diffusion.model import DiffusionModel, parse_dtype
from ..diffusion.state import SAMPLERS, DiffusionState, Setup, make_setup, options_from_dict, resample
from ..errors import CheckpointError, ConfigError
from ..generators.base import Generator
from ..generators.capabilities import require
from ..io.safetensors_file import read_safetensors, write_safetensors
from ..untrusted import short_repr
from .base import InversionResult
from .files import ItemArrays, write_item

HEADER = "invertkit_diffusion_state"
# options added after states were first written, with the value those older states were made with
# (EDICT's leapfrog order is the authors' default now; states without the key used the other order)
ASSUMED_WHEN_ABSENT: dict[str, dict[str, Any]] = {"edict": {"leapfrog": False}}
STATE_SUFFIX = "_state.safetensors"
STATE_FORMAT = 2


def _identity(G: DiffusionModel) -> str:
    """The cheap model identity run format 1 recorded: class, latent shape, parameter count."""
    info = G.describe()
    return f"{info.get('network', type(G).__name__)} {info['latent_shapes']['noise']} {info.get('parameters', 0)} parameters"


@dataclass
class DiffusionInversion(InversionResult):
    """A diffusion / flow inversion: ``latents`` are the noise latents ``x_T`` (space ``"noise"``).

    Attributes:
        diffusion_method: the method whose sampler brings the state back (``ddim``, ``edict`` ...).
        state: the method's state (``state.x_T`` equals ``latents``).
        options: the method's resolved options (a ``DiffusionOptions`` subclass): steps, prompt,
            negative prompt, guidance, dtype and the method's own.
        nfe_reconstruct: per image, model evaluations of sampling back (a guided one counts 2);
            ``timings.evaluations`` are those of the inversion.
        edits: regenerations with other prompts, label -> ``N x C x H x W`` (``add_edits``).
        setup: the run's sampling setup (in memory only; :meth:`render` rebuilds it from ``options``).
    """

    diffusion_method: str = ""
    state: DiffusionState | None = None
    options: Any = None
    nfe_reconstruct: list[float] = field(default_factory=list)
    edits: dict[str, Tensor] = field(default_factory=dict)
    setup: Setup | None = None

    kind: ClassVar[str] = "diffusion"

    def sampling_setup(self, G: Generator) -> Setup:
        """The setup to sample this result's state with ``G`` (the run's own when it is at hand)."""
        D = require(G, DiffusionModel, f"re-rendering a {self.diffusion_method} inversion")
        if self.setup is not None and self.setup.G is D:
            return self.setup
        return make_setup(D, self.options)

    @torch.no_grad()
    def render(self, G: Generator, *, prompt: str | None = None, guidance: float | None = None,
               negative: str | None = None) -> Tensor:
        """Sample the state back (``prompt`` / ``guidance`` / ``negative``: an edit; unset: the inversion's)."""
        setup = self.sampling_setup(G)
        state = self.state_on(setup)
        return resample(setup.G, self.diffusion_method, setup, state, prompt=prompt, guidance=guidance, negative=negative)

    def state_on(self, setup: Setup) -> DiffusionState:
        """The saved state on the setup's device and in its dtype."""
        s = self.state
        assert s is not None
        dev, dt = setup.G.device, setup.dtype

        def move(t: Tensor) -> Tensor:
            return t.to(dev, dt) if t.is_floating_point() else t.to(dev)

        tensors = {k: ([move(t) for t in v] if isinstance(v, list) else move(v)) for k, v in s.tensors.items()}
        return DiffusionState(move(s.x_T), s.nfe, tensors, dict(s.info), s.nfe_per_image)

    def select(self, index: Sequence[int]) -> DiffusionInversion:
        index = list(index)
        return DiffusionInversion(**self._common_select(index), diffusion_method=self.diffusion_method,
                                  state=None if self.state is None else self.state.select(index), options=self.options,
                                  nfe_reconstruct=[self.nfe_reconstruct[i] for i in index] if self.nfe_reconstruct else [],
                                  edits={k: v[torch.as_tensor(index, dtype=torch.long, device=v.device)] for k, v in self.edits.items()},
                                  setup=self.setup)

    @classmethod
    def concat(cls, parts: Sequence[DiffusionInversion]) -> DiffusionInversion:
        first = parts[0]
        states = [p.state for p in parts]
        return cls(**cls._common_concat(parts), diffusion_method=first.diffusion_method,
                   state=DiffusionState.concat(states) if all(s is not None for s in states) else None,  # type: ignore[arg-type]
                   options=first.options, nfe_reconstruct=[x for p in parts for x in p.nfe_reconstruct],
                   edits={k: torch.cat([p.edits[k] for p in parts]) for k in first.edits if all(k in p.edits for p in parts)},
                   setup=first.setup)

    # ---- files -----------------------------------------------------------------------------------
    def save_item(self, i: int, folder: Path, stem: str, G: Generator, *, image: str | None = None) -> list[str]:
        """``<stem>.npz`` (the noise latent) and ``<stem>_state.safetensors`` (everything to sample it back)."""
        write_item(folder / f"{stem}.npz", ItemArrays(self.space, self.latents[i : i + 1], self.kind, latent_space="noise",
                                                     history={k: v[:, i] for k, v in self.history.items()}, image=image))
        save_state(folder / f"{stem}{STATE_SUFFIX}", self, i, G)
        return [f"{stem}.npz", f"{stem}{STATE_SUFFIX}"]


def save_state(path: str | os.PathLike[str], result: DiffusionInversion, i: int, G: Generator) -> Path:
    """Write image ``i`` of ``result``'s state to ``path`` (in the inversion's dtype)."""
    state = result.state
    if state is None:
        raise ConfigError("this diffusion result holds no state to save")
    tensors = {"x_T": state.x_T[i : i + 1]}
    lists = []
    for key, value in state.tensors.items():
        if isinstance(value, list):
            tensors[key] = torch.stack([v[i : i + 1] for v in value])
            lists.append(key)
        else:
            tensors[key] = value[i : i + 1]
    D = require(G, DiffusionModel, "saving a diffusion state")
    meta = {"format_version": STATE_FORMAT, "method": result.diffusion_method, "options": dataclasses.asdict(result.options),
            "generator": G.name, "fingerprint": G.fingerprint(), "model": _identity(D), "lists": lists}
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return write_safetensors(path, cpu, {HEADER: json.dumps(meta)}, "diffusion state")


# the largest |value| a diffusion state file may hold: noise latents are about N(0, 1), the methods'
# extra tensors (null-text embeddings, coupled states) of order 1 to 100; a value beyond this
# only comes from a damaged file
MAX_ABS_STATE = 1e6

_OPTION_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                              "None": (type(None),)}
_MAX_STEPS = 100_000


def _check_saved_options(cls: type, saved: dict[str, Any], path: Any) -> None:
    """Each saved option has its declared type (finite numbers, integers of sane size) and one of its
    choices: a state file is untrusted input, and its options drive the sampler's loops."""
    for f in dataclasses.fields(cls):
        if f.name not in saved:
            continue
        value = saved[f.name]
        names = [t.strip() for t in str(f.type).split("|")]
        kinds = [_OPTION_TYPES[t] for t in names if t in _OPTION_TYPES]
        if len(kinds) != len(names):
            continue  # a composite type: left to the options class
        ok = any(isinstance(value, k) and not (isinstance(value, bool) and bool not in k) for k in kinds)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and isinstance(value, int) and not isinstance(value, bool):
            ok = abs(value) <= (_MAX_STEPS if f.name == "steps" else 1 << 31)
        choices = f.metadata.get("choices") if f.metadata else None
        if ok and choices and value not in choices:
            ok = False
        if not ok:
            raise CheckpointError(f"{path}: field options.{f.name} of the diffusion state's header is {short_repr(value)}, "
                                  f"not a valid {f.type}; the file is corrupted")


def load_state(path: str | os.PathLike[str], G: Generator) -> tuple[str, DiffusionState, Any]:
    """``(method, state [1, ...] on G's device in the run dtype, options)`` of a state file made with ``G``.

    Raises:
        CheckpointError: unreadable file or unknown method. ConfigError: ``G`` is not the model it was made with.
    """
    D = require(G, DiffusionModel, "reading a diffusion state")
    tensors, meta = read_safetensors(path, HEADER, "diffusion state file",
                                     "`invertkit invert` with a diffusion method writes latents/<name>_state.safetensors")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the diffusion state's header is malformed; the file is corrupted")
    method = meta.get("method")
    if not isinstance(method, str) or method not in SAMPLERS:
        raise CheckpointError(f"{path}: unknown diffusion method {short_repr(method)} in its header")
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: field format_version of the diffusion state's header is {short_repr(version)}, "
                              "not a format number; the file is corrupted")
    if version > STATE_FORMAT:
        raise CheckpointError(f"{path}: diffusion state format {short_repr(version)} is newer than this invertkit reads ({STATE_FORMAT}); upgrade invertkit")
    same = meta.get("fingerprint") == G.fingerprint() if meta.get("fingerprint") else meta.get("model") == _identity(D)
    if meta.get("generator") != G.name or not same:
        raise ConfigError(f"{path} was made with generator {short_repr(meta.get('generator'))}; pass that generator, not {G.name!r} "
                          "(their weights differ)" if meta.get("generator") == G.name else
                          f"{path} was made with generator {short_repr(meta.get('generator'))}; pass that generator, not {G.name!r}")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} of the diffusion state is not finite; the file is corrupted, "
                              "re-run the inversion that wrote it")
    big = [(k, float(v.abs().max())) for k, v in tensors.items()
           if v.is_floating_point() and v.numel() and float(v.abs().max()) > MAX_ABS_STATE]
    if big:
        raise CheckpointError(f"{path}: tensor {big[0][0]} of the diffusion state holds a value of {big[0][1]:.3g}, beyond "
                              f"{MAX_ABS_STATE:g} (noise latents and method states are of order 1 to 100); the file is "
                              "corrupted, re-run the inversion that wrote it")
    saved = meta.get("options") or {}
    lists = meta.get("lists") or []
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: field options of the diffusion state's header is not an object; the file is corrupted")
    if not isinstance(lists, list) or not all(isinstance(k, str) and k in tensors for k in lists):
        raise CheckpointError(f"{path}: field lists of the diffusion state's header does not name its tensors; the file is corrupted")
    if "x_T" not in tensors:
        raise CheckpointError(f"{path}: the diffusion state holds no x_T tensor; the file is corrupted")
    _check_saved_options(SAMPLERS.get(method).options, saved, path)
    options = options_from_dict(method, {**ASSUMED_WHEN_ABSENT.get(method, {}), **saved}, str(path))
    dtype = parse_dtype(options.dtype)
    to = {k: v.to(D.device, dtype) if v.is_floating_point() else v.to(D.device) for k, v in tensors.items()}
    lists = set(lists)
    extra: dict[str, Any] = {k: (list(v.unbind(0)) if k in lists else v) for k, v in to.items() if k != "x_T"}
    return method, DiffusionState(to["x_T"], 0, extra), options


def diffusion_from_items(items: Sequence[ItemArrays], state_files: Sequence[Path], reconstructions: Tensor,
                         G: Generator) -> DiffusionInversion:
    """The result of several latent files and their state files (read with ``G``, the run's model)."""
    loaded = [load_state(p, G) for p in state_files]
    methods = {m for m, _, _ in loaded}
    if len(methods) != 1:
        raise ConfigError(f"{state_files[0].parent}: the state files were made by different methods ({', '.join(sorted(methods))})")
    method, _, options = loaded[0]
    state = DiffusionState.concat([s for _, s, _ in loaded])
    return DiffusionInversion(latents=state.x_T.float().cpu(), space="noise", reconstructions=reconstructions,
                              config={"method": method, **dataclasses.asdict(options)},
                              diffusion_method=method, state=state, options=options)
