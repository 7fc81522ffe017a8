"""Read NVIDIA StyleGAN2-ADA and StyleGAN3 network pickles without executing anything in them.

A network pickle (``network-snapshot-*.pkl``, ``ffhq.pkl`` ...) is ``pickle.dump`` of
``dict(G, D, G_ema, training_set_kwargs, augment_pipe)``. Each network is written by NVIDIA's
``torch_utils.persistence`` as a call ``_reconstruct_persistent_obj(meta)`` where ``meta`` holds the
*Python source of the module that defines it* (``module_src``), the class name, and ``state``: the
``nn.Module.__dict__`` (``_parameters``, ``_buffers``, ``_modules`` with nested networks of the same
form, ``_non_persistent_buffers_set``, ``_init_kwargs`` ...). A normal ``pickle.load`` runs
``exec(module_src)``: loading such a file is running its author's code.

:class:`RestrictedUnpickler` resolves globals from an allow-list only. The persistence hook becomes
:class:`PersistentRecord`, which keeps ``meta`` as plain data (``module_src`` stays an unexecuted
string); ``dnnlib.util.EasyDict`` becomes a plain dict subclass; tensors, storages and numpy scalars
rebuild through small wrappers around torch/numpy functions (storages via
``torch.load(..., weights_only=True)``). Any other global (``os.system``, ``builtins.exec``,
``subprocess.Popen`` ...) stops the load with a :class:`CheckpointError`.

Verified against real pickles written by stylegan2-ada-pytorch's ``training.networks.Generator``
with ``pickle.dump`` as in ``training_loop.py`` (see ``tests/test_checkpoints_nvidia.py``).

StyleGAN3 pickles (github.com/NVlabs/stylegan3, ``training.networks_stylegan3``) use the same persistence
records and the same globals (plus numpy arrays for layer sizes), so the same unpickler reads them:
:func:`read_stylegan3_pkl` checks that every record has the class networks_stylegan3 builds at its place
(``Generator``, ``SynthesisNetwork``, ``SynthesisInput``, ``SynthesisLayer``, ``MappingNetwork``,
``FullyConnectedLayer``), takes the configuration from ``_init_kwargs`` and the tensors (the designed
up/down filters and the input transform included) from the records' state. :func:`claims_stylegan3_pkl`
tells such a file from a StyleGAN2 one by a bounded scan of its bytes (``load_generator`` asks it first).
Real stylegan3 pickles are pinned by ``tests/golden/stylegan3_*.pkl`` (``benchmarks/stylegan3_reference.py``).
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from ...errors import CheckpointError
from ...store.tensorfiles import torch_load_safe
from ...untrusted import MetaBudget, one_line, short_repr
from ..stylegan2.config import ARCHITECTURES, StyleGAN2Config
from ..stylegan3.config import StyleGAN3Config
from ..stylegan3.config import nvidia_layout as sg3_layout
from .detect import (
    NVIDIA_PKL,
    LoadedCheckpoint,
    check_file,
    detect_format,
    estimate_w_avg,
    jsonable,
    validate_state_dict,
    validate_tensors,
)

__all__ = [
    "LoadedStyleGAN3",
    "PersistentRecord",
    "RestrictedUnpickler",
    "claims_stylegan3_pkl",
    "config_from_nvidia_kwargs",
    "flatten_module_state",
    "read_nvidia_pkl",
    "read_stylegan3_pkl",
    "safe_unpickle",
]

_LEGACY_HINT = (
    "convert it to a PyTorch pickle first with NVIDIA's stylegan2-ada-pytorch: "
    "`python legacy.py --source=OLD.pkl --dest=NEW.pkl` (in a trusted environment), then load NEW.pkl"
)


# ------------------------------------------------------------------------------------------------
# inert stand-ins
# ------------------------------------------------------------------------------------------------


class PersistentRecord:
    """What ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` becomes here: the data, no code.

    ``meta`` is a dict with ``type``, ``version``, ``module_src`` (never executed), ``class_name``
    and ``state`` (the module's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` ...).
    """

    __slots__ = ("meta",)

    def __init__(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            raise TypeError("persistent object record is not a dict")
        self.meta = meta

    def __setstate__(self, state: Any) -> None:  # real persistent objects never get BUILD state
        raise pickle.UnpicklingError("unexpected state for a persistent object record")

    @property
    def class_name(self) -> str:
        name = self.meta.get("class_name", "")
        return one_line(name, 80) if isinstance(name, str) else ""

    @property
    def state(self) -> dict[str, Any]:
        st = self.meta.get("state")
        return st if isinstance(st, dict) else {}

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name!r})"


class InertEasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (attribute access is not needed here)."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        if state:
            raise pickle.UnpicklingError("unexpected attribute state for an EasyDict")


# ------------------------------------------------------------------------------------------------
# allow-listed rebuild functions (wrappers: they check their arguments and drop hooks)
# ------------------------------------------------------------------------------------------------

_STORAGE_TYPES = (torch.TypedStorage, torch.UntypedStorage)


def _load_storage_from_bytes(b: Any) -> Any:
    # torch.storage._load_from_bytes calls an unrestricted torch.load; a weights-only load of the
    # same bytes accepts every storage torch itself writes.
    if not isinstance(b, (bytes, bytearray)):
        raise TypeError("storage payload is not bytes")
    obj = torch_load_safe(io.BytesIO(bytes(b)), "a tensor storage inside the pickle")
    if not isinstance(obj, _STORAGE_TYPES):
        raise TypeError(f"storage payload holds a {type(obj).__name__}, not a storage")
    return obj


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any, **__: Any) -> Tensor:
    if not isinstance(storage, _STORAGE_TYPES):
        raise TypeError("tensor rebuilt from something that is not a storage")
    return torch._utils._rebuild_tensor_v2(  # bounds are checked by Tensor.set_
        storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride), False, OrderedDict()
    )


def _rebuild_parameter(data: Any, *_: Any, **__: Any) -> Tensor:
    if not isinstance(data, Tensor):
        raise TypeError("parameter rebuilt from something that is not a tensor")
    return data  # parameters are read as plain tensors; hooks and extra state are dropped


def _numpy_reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise TypeError("numpy array of a subclass")
    # numpy pickles an array as an empty one that __setstate__ fills from stored bytes; a declared
    # non-empty shape here would allocate memory the file does not hold
    if not isinstance(shape, tuple) or len(shape) > 32 or 0 not in shape:
        raise TypeError("numpy array rebuilt with a non-empty shape")
    return np.ndarray.__new__(np.ndarray, shape, typecode)


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    # pickle protocol 2 has no bytes opcode and writes bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise TypeError("only latin-1 byte strings are rebuilt")
    return text.encode("latin1")


def _numpy_multiarray() -> Any:
    core = getattr(np, "_core", None)
    if core is not None and hasattr(core, "multiarray"):
        return core.multiarray
    return np.core.multiarray  # numpy < 2


def _allowed_globals() -> dict[tuple[str, str], Any]:
    ma = _numpy_multiarray()
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentRecord,
        ("dnnlib.util", "EasyDict"): InertEasyDict,
        ("dnnlib", "EasyDict"): InertEasyDict,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,  # pickle protocol <= 3 writes sets as set(list)
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_bytes,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "scalar")] = ma.scalar
        allowed[(mod, "_reconstruct")] = _numpy_reconstruct
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            allowed[("torch", name)] = value
        elif name.endswith("Storage") and isinstance(value, type) and issubclass(value, _STORAGE_TYPES):
            allowed[("torch", name)] = value
    return allowed


_ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only allow-listed globals and executes nothing.

    Raises :class:`CheckpointError` for any other global (naming it), for legacy TensorFlow
    networks and for persistent IDs (which plain network pickles never contain).
    """

    def __init__(self, file: BinaryIO, path: str | os.PathLike[str]) -> None:
        super().__init__(file)
        self._path = str(path)

    def find_class(self, module: str, name: str) -> Any:
        mod, nm = module, name
        # protocol <= 2 pickles from Python 2 name modules the old way (``__builtin__``, ``copy_reg``)
        if (mod, nm) in _compat_pickle.NAME_MAPPING:
            mod, nm = _compat_pickle.NAME_MAPPING[(mod, nm)]
        elif mod in _compat_pickle.IMPORT_MAPPING:
            mod = _compat_pickle.IMPORT_MAPPING[mod]
        if mod == "dnnlib.tflib" or mod.startswith("dnnlib.tflib."):
            raise CheckpointError(
                f"{self._path} is a legacy TensorFlow StyleGAN/StyleGAN2 pickle ({one_line(module, 80)}.{one_line(name, 80)}), which invertkit "
                f"cannot read directly; {_LEGACY_HINT}"
            )
        value = _ALLOWED.get((mod, nm))
        if value is None:
            raise CheckpointError(
                f"refusing to load {self._path}: pickle references {one_line(module, 80)}.{one_line(name, 80)}, which is not allowed in a "
                "network pickle (only tensors, arrays and NVIDIA persistence records are read; nothing in the file "
                "is executed). The file is not a StyleGAN2/StyleGAN3 network pickle or has been tampered with"
            )
        return value

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(
            f"{self._path}: pickle uses persistent IDs, which NVIDIA network pickles do not; if it was written "
            "with torch.save, it is not a network pickle"
        )


def safe_unpickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; every failure becomes a CheckpointError."""
    p = check_file(path)
    try:
        with open(p, "rb") as f:
            return RestrictedUnpickler(f, p).load()
    except CheckpointError as exc:
        if str(exc).startswith(str(p)) or str(exc).startswith(f"refusing to load {p}"):
            raise
        raise CheckpointError(f"{p}: {exc}") from exc
    except (EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"{p}: not a complete pickle ({one_line(exc, 160) or type(exc).__name__}); the file is truncated or corrupted, "
            "download or copy it again"
        ) from exc
    except RecursionError:
        raise CheckpointError(f"{p}: pickle is nested too deeply to be a network pickle") from None
    except MemoryError:
        raise CheckpointError(f"{p}: not enough memory to read this pickle") from None
    except Exception as exc:  # noqa: BLE001 - any rebuild error means a malformed file
        raise CheckpointError(
            f"{p}: cannot be read as a network pickle ({type(exc).__name__}: {one_line(exc, 160)}); the file is corrupted "
            "or not a StyleGAN2-ADA / StyleGAN3 pickle"
        ) from exc


# ------------------------------------------------------------------------------------------------
# records -> state dict and config
# ------------------------------------------------------------------------------------------------


def flatten_module_state(
    record: PersistentRecord, path: str | os.PathLike[str], prefix: str = ""
) -> dict[str, Tensor]:
    """NVIDIA-named state dict of a persistent module record, in ``nn.Module.state_dict()`` order.

    Parameters, then persistent buffers (``_non_persistent_buffers_set`` excluded), then submodules.
    """
    out: dict[str, Tensor] = {}
    budget = MetaBudget(str(path))

    def visit(rec: PersistentRecord, pre: str, depth: int) -> None:
        budget.visit(depth)  # a record may be referenced from many places: bound the walk in nodes and depth
        if depth > 32:
            raise CheckpointError(f"{path}: network modules are nested too deeply")
        st = rec.state
        non_persistent = st.get("_non_persistent_buffers_set") or ()
        for group in ("_parameters", "_buffers"):
            entries = st.get(group) or {}
            if not isinstance(entries, Mapping):
                raise CheckpointError(f"{path}: {pre or 'network'} has a malformed {group} entry")
            for name, value in entries.items():
                budget.visit(depth + 1)
                if not isinstance(name, str):
                    raise CheckpointError(f"{path}: {pre or 'network'} has a {group} entry named {short_repr(name)}")
                if value is None or (group == "_buffers" and name in non_persistent):
                    continue
                if not isinstance(value, Tensor):
                    raise CheckpointError(f"{path}: {pre}{name} is a {type(value).__name__}, not a tensor")
                out[f"{pre}{name}"] = value
        modules = st.get("_modules") or {}
        if not isinstance(modules, Mapping):
            raise CheckpointError(f"{path}: {pre or 'network'} has a malformed _modules entry")
        for name, sub in modules.items():
            if not isinstance(name, str):
                raise CheckpointError(f"{path}: {pre or 'network'} has a submodule named {short_repr(name)}")
            if sub is None:
                continue
            if not isinstance(sub, PersistentRecord):
                raise CheckpointError(f"{path}: submodule {pre}{name} is not an NVIDIA persistent module")
            visit(sub, f"{pre}{name}.", depth + 1)

    visit(record, prefix, 0)
    return out


_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
# runtime-only options: they change speed or training, not the function the weights compute
_IGNORED_SYNTHESIS = {"fp16_channels_last", "fused_modconv_default", "channels_last"}
_IGNORED_MAPPING = {"w_avg_beta"}


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise CheckpointError(f"{what} must be an integer, got {value!r}")
    if hasattr(value, "__index__"):
        return int(value.__index__())  # int, numpy integers
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{what} must be a number, got {short_repr(value)}") from exc
    if not math.isfinite(f) or f != int(f):
        raise CheckpointError(f"{what} must be an integer, got {short_repr(value)}")
    return int(f)


def _as_float(value: Any, what: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{what} must be a number, got {short_repr(value)}") from exc
    if not math.isfinite(f):
        raise CheckpointError(f"{what} must be a finite number, got {short_repr(value)}")
    return f


def config_from_nvidia_kwargs(
    init_kwargs: Mapping[str, Any], init_args: tuple[Any, ...] = (), attrs: Mapping[str, Any] | None = None
) -> tuple[StyleGAN2Config, dict[str, Any]]:
    """``StyleGAN2Config`` from NVIDIA ``Generator`` constructor arguments, plus the ignored options.

    Handles stylegan2-ada-pytorch (``synthesis_kwargs`` nested) and the stylegan3 repository's
    ``networks_stylegan2.Generator`` (synthesis options flat beside ``mapping_kwargs``). ``attrs``
    (the network's plain attributes) fills top-level values the kwargs lack.
    """
    kw: dict[str, Any] = {}
    for name, value in zip(_GENERATOR_ARGS, init_args):
        kw[name] = value
    kw.update(init_kwargs)
    attrs = attrs or {}
    for name in _GENERATOR_ARGS[:5]:
        if name not in kw and name in attrs:
            kw[name] = attrs[name]
    missing = [n for n in _GENERATOR_ARGS[:5] if n not in kw]
    if missing:
        raise CheckpointError(f"generator constructor arguments lack {missing}")
    mapping_kw = kw.pop("mapping_kwargs", None) or {}
    synthesis_kw = kw.pop("synthesis_kwargs", None) or {}
    if not isinstance(mapping_kw, Mapping) or not isinstance(synthesis_kw, Mapping):
        raise CheckpointError("generator mapping_kwargs/synthesis_kwargs are not dicts")
    mapping, synthesis = dict(mapping_kw), dict(synthesis_kw)
    top = {n: kw.pop(n) for n in _GENERATOR_ARGS[:5]}
    synthesis.update(kw)  # stylegan3 repository: everything else is a synthesis option
    ignored: dict[str, Any] = {}

    activation = mapping.pop("activation", "lrelu")
    if activation != "lrelu":
        raise CheckpointError(f"mapping activation {short_repr(activation)} is not supported (only 'lrelu')")
    cfg: dict[str, Any] = {
        "z_dim": _as_int(top["z_dim"], "z_dim"),
        "c_dim": _as_int(top["c_dim"], "c_dim"),
        "w_dim": _as_int(top["w_dim"], "w_dim"),
        "img_resolution": _as_int(top["img_resolution"], "img_resolution"),
        "img_channels": _as_int(top["img_channels"], "img_channels"),
    }
    if "num_layers" in mapping:
        cfg["mapping_layers"] = _as_int(mapping.pop("num_layers"), "mapping num_layers")
    if "lr_multiplier" in mapping:
        cfg["mapping_lr_multiplier"] = _as_float(mapping.pop("lr_multiplier"), "mapping lr_multiplier")
    for src, dst in (("layer_features", "mapping_layer_features"), ("embed_features", "embed_features")):
        if src in mapping:
            v = mapping.pop(src)
            cfg[dst] = None if v is None else _as_int(v, f"mapping {src}")
    for k in _IGNORED_MAPPING & set(mapping):
        ignored[f"mapping.{k}"] = mapping.pop(k)
    if mapping:
        raise CheckpointError(f"unsupported mapping network options {short_repr(sorted(map(str, mapping)), 160)}")

    act = synthesis.pop("activation", "lrelu")
    if act != "lrelu":
        raise CheckpointError(f"synthesis activation {short_repr(act)} is not supported (only 'lrelu')")
    ks = synthesis.pop("kernel_size", 3)
    if _as_int(ks, "kernel_size") != 3:
        raise CheckpointError(f"synthesis kernel_size {short_repr(ks)} is not supported (only 3)")
    for src in ("channel_base", "channel_max", "num_fp16_res"):
        if src in synthesis:
            cfg[src] = _as_int(synthesis.pop(src), src)
    if "conv_clamp" in synthesis:
        v = synthesis.pop("conv_clamp")
        cfg["conv_clamp"] = None if v is None else _as_float(v, "conv_clamp")
    if "architecture" in synthesis:
        arch = synthesis.pop("architecture")
        if not isinstance(arch, str) or arch not in ARCHITECTURES:
            raise CheckpointError(f"synthesis architecture {short_repr(arch)} is not supported ({', '.join(ARCHITECTURES)})")
        cfg["architecture"] = str(arch)
    if "resample_filter" in synthesis:
        taps = synthesis.pop("resample_filter")
        if not isinstance(taps, (list, tuple)) or len(taps) > 16:
            raise CheckpointError(f"synthesis resample_filter must be a short list of integers, got {short_repr(taps)}")
        cfg["resample_filter"] = tuple(_as_int(v, "resample_filter tap") for v in taps)
    if "use_noise" in synthesis:
        noise = synthesis.pop("use_noise")
        if not isinstance(noise, (bool, np.bool_)):
            raise CheckpointError(f"synthesis use_noise must be true or false, got {short_repr(noise)}")
        cfg["use_noise"] = bool(noise)
    for k in _IGNORED_SYNTHESIS & set(synthesis):
        ignored[f"synthesis.{k}"] = synthesis.pop(k)
    if synthesis:
        raise CheckpointError(f"unsupported synthesis network options {short_repr(sorted(map(str, synthesis)), 160)}")
    return StyleGAN2Config(**cfg), ignored


def _is_stylegan3(record: PersistentRecord) -> bool:
    src = record.meta.get("module_src")
    if isinstance(src, str) and "Alias-Free Generative Adversarial Networks" in src:
        return True
    synthesis = (record.state.get("_modules") or {}).get("synthesis")
    if isinstance(synthesis, PersistentRecord):
        subs = synthesis.state.get("_modules") or {}
        inp = subs.get("input")
        if isinstance(inp, PersistentRecord) and inp.class_name == "SynthesisInput":
            return True
    return False


def _source_repository(record: PersistentRecord) -> str:
    src = record.meta.get("module_src")
    if isinstance(src, str) and "Analyzing and Improving the Image Quality of StyleGAN" in src:
        return "stylegan3 (training/networks_stylegan2.py)"
    return "stylegan2-ada-pytorch (training/networks.py)"


def _generator_record(p: Path, family: str) -> tuple[PersistentRecord, str | None, dict[str, Any], MetaBudget]:
    """Unpickle ``p`` safely and pick its generator: ``G_ema``, else ``G``, else a bare network record.

    Returns ``(record, key or None, meta, budget)``; ``family`` names the expected pickles in messages.
    """
    data = safe_unpickle(p)
    meta: dict[str, Any] = {"source_format": NVIDIA_PKL}
    budget = MetaBudget(str(p))  # one budget for every walk of this file's metadata
    if isinstance(data, PersistentRecord):
        record, key = data, None
        meta["pickle_content"] = "a single network"
    elif isinstance(data, dict):
        keys = [short_repr(k, 40) if not isinstance(k, str) else one_line(k, 40) for k in list(data.keys())[:50]]
        meta["pickle_keys"] = keys
        key = "G_ema" if data.get("G_ema") is not None else ("G" if data.get("G") is not None else None)
        if key is None:
            raise CheckpointError(
                f"{p}: pickle has no generator network (no 'G_ema' or 'G'; keys: {', '.join(keys) or 'none'}); "
                f"pass a {family} network pickle such as network-snapshot-*.pkl"
            )
        record = data[key]
        if key == "G":
            meta["note"] = "no G_ema in the pickle: loaded the training generator G (not the moving average)"
        if isinstance(data.get("training_set_kwargs"), Mapping):
            meta["training_set_kwargs"] = jsonable(data["training_set_kwargs"], budget=budget)
    elif isinstance(data, tuple):
        raise CheckpointError(f"{p}: pickle holds a tuple, not a network dict; if it is a TensorFlow pickle, {_LEGACY_HINT}")
    else:
        raise CheckpointError(f"{p}: pickle holds a {type(data).__name__}, not a {family} network dict")
    where = key or "the pickle"
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(
            f"{p}: {where} is a {type(record).__name__}, not an NVIDIA persistent network; "
            "pass a network pickle written by stylegan2-ada-pytorch or stylegan3"
        )
    if record.meta.get("type", "class") != "class":
        raise CheckpointError(f"{p}: {where} has unknown persistent record type {short_repr(record.meta.get('type'))}")
    return record, key, meta, budget


def _constructor_args(record: PersistentRecord, p: Path, where: str, family: str) -> tuple[Mapping[str, Any], tuple[Any, ...], dict[str, Any]]:
    state = record.state
    init_kwargs = state.get("_init_kwargs")
    init_args = state.get("_init_args") or ()
    if not isinstance(init_kwargs, Mapping) or not isinstance(init_args, (tuple, list)):
        raise CheckpointError(f"{p}: {where} lacks its constructor arguments (_init_kwargs); not a {family} network")
    attrs = {k: v for k, v in state.items() if isinstance(k, str) and not k.startswith("_")}
    return init_kwargs, tuple(init_args), attrs


def read_nvidia_pkl(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Read an NVIDIA StyleGAN2-ADA network pickle safely; ``G_ema`` preferred, ``G`` as fallback.

    Raises:
        CheckpointError: unreadable or unsafe pickle, legacy TensorFlow pickle, StyleGAN3 network (read by
            :func:`read_stylegan3_pkl`; ``load_generator`` picks the reader), no generator inside, or
            weights that do not fit the pickled configuration.
    """
    p = check_file(path)
    record, key, meta, budget = _generator_record(p, "StyleGAN2-ADA")
    where = key or "the pickle"
    if _is_stylegan3(record):
        raise CheckpointError(
            f"{p}: {where} is a StyleGAN3 (alias-free) generator, which the StyleGAN2 readers (read_checkpoint) do not "
            "read; load it with invertkit.load_generator (or generators.checkpoints.read_stylegan3_pkl)"
        )
    if record.class_name != "Generator":
        raise CheckpointError(f"{p}: {where} is a {record.class_name or 'unnamed'} network, not a StyleGAN2 Generator")
    init_kwargs, init_args, attrs = _constructor_args(record, p, where, "StyleGAN2-ADA")
    try:
        config, ignored = config_from_nvidia_kwargs(init_kwargs, init_args, attrs)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from exc
    meta.update(
        network=key or "single network",
        class_name=record.class_name,
        code=_source_repository(record),
        persistence_version=jsonable(record.meta.get("version"), budget=budget),
        init_kwargs=jsonable(dict(init_kwargs), budget=budget),
    )
    if ignored:
        meta["ignored_kwargs"] = jsonable(ignored, budget=budget)
    sd = flatten_module_state(record, p)
    if "mapping.w_avg" not in sd:  # networks built with w_avg_beta=None do not track it
        sd["mapping.w_avg"] = torch.zeros(config.w_dim)  # placeholder so shapes validate
        sd = validate_state_dict(sd, config, p)
        sd["mapping.w_avg"] = estimate_w_avg(config, sd)
        meta["w_avg"] = "estimated: mean of the mapping over 10000 z (seed 0); the pickle tracks none"
    else:
        sd = validate_state_dict(sd, config, p, hint="the pickle's weights disagree with its _init_kwargs")
        meta["w_avg"] = "from checkpoint (mapping.w_avg)"
    return LoadedCheckpoint(format=NVIDIA_PKL, config=config, state_dict=sd, meta=meta)


# ------------------------------------------------------------------------------------------------
# StyleGAN3 (github.com/NVlabs/stylegan3, training/networks_stylegan3.py)
# ------------------------------------------------------------------------------------------------

# A pickle string opcode holding exactly the class name of StyleGAN3's Fourier-feature input, as
# protocols 4-5 (SHORT_BINUNICODE), 2-3 (BINUNICODE) and 0-1 (UNICODE) write it. The module source embedded
# in the pickle mentions the name too, but only inside a longer string, never behind these prefixes.
_SG3_MARKERS = (b"\x8c\x0eSynthesisInput", b"X\x0e\x00\x00\x00SynthesisInput", b"VSynthesisInput\n")
# NVIDIA's training loop pickles G first, and a generator's record names its SynthesisInput after the module
# source (~25 kB) and before any tensor: the marker lies within the first few tens of kB of a snapshot.
CLAIM_SCAN_BYTES = 16 << 20

# module path pattern -> the class NVIDIA's networks_stylegan3 builds there
_SG3_CLASSES = (
    ("", "Generator"),
    ("synthesis", "SynthesisNetwork"),
    ("synthesis.input", "SynthesisInput"),
    ("synthesis.input.affine", "FullyConnectedLayer"),
    ("synthesis.L*", "SynthesisLayer"),
    ("synthesis.L*.affine", "FullyConnectedLayer"),
    ("mapping", "MappingNetwork"),
    ("mapping.*", "FullyConnectedLayer"),
)


@dataclass
class LoadedStyleGAN3:
    """A StyleGAN3 network pickle read into memory.

    Attributes:
        config: the architecture (``StyleGAN3Config``).
        state_dict: NVIDIA-named float32 CPU tensors, exactly the keys of ``G_ema.state_dict()`` in its order.
        meta: JSON-friendly facts (network key, class, constructor arguments, training kwargs, notes).
    """

    config: StyleGAN3Config
    state_dict: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


def claims_stylegan3_pkl(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` looks like an NVIDIA pickle holding a StyleGAN3 generator: a pickle (not a
    safetensors / torch.save file) in whose first ``CLAIM_SCAN_BYTES`` a pickled string is exactly
    ``"SynthesisInput"`` (a persistent record's class name). Reads bytes only; never raises for other files."""
    try:
        p = Path(path)
        if not p.is_file() or detect_format(p) != NVIDIA_PKL:
            return False
        with open(p, "rb") as f:
            seen, tail = 0, b""
            while seen < CLAIM_SCAN_BYTES:
                chunk = f.read(min(1 << 20, CLAIM_SCAN_BYTES - seen))
                if not chunk:
                    return False
                buf = tail + chunk
                if any(m in buf for m in _SG3_MARKERS):
                    return True
                tail = buf[-24:]
                seen += len(chunk)
    except (OSError, CheckpointError):
        return False
    return False


def _check_sg3_classes(record: PersistentRecord, p: Path, where: str) -> None:
    """Every module record of the generator has the class networks_stylegan3 builds at its place."""
    budget = MetaBudget(str(p))

    def expected(path: str) -> str | None:
        parts = path.split(".") if path else []
        for pattern, cls in _SG3_CLASSES:
            pp = pattern.split(".") if pattern else []
            if len(pp) == len(parts) and all(a == b or (a.endswith("*") and b.startswith(a[:-1])) for a, b in zip(pp, parts)):
                return cls
        return None

    def visit(rec: PersistentRecord, path: str, depth: int) -> None:
        budget.visit(depth)
        want = expected(path)
        name = path or where
        if want is None:
            raise CheckpointError(f"{p}: {where} has an unexpected submodule {short_repr(path, 60)} ({rec.class_name or 'unnamed'}); "
                                  "not a networks_stylegan3 generator")
        if rec.class_name != want:
            raise CheckpointError(f"{p}: {name} is a {rec.class_name or 'unnamed'} network where networks_stylegan3 has a {want}")
        modules = rec.state.get("_modules") or {}
        if not isinstance(modules, Mapping):
            raise CheckpointError(f"{p}: {name} has a malformed _modules entry")
        for sub_name, sub in modules.items():
            if sub is None:
                continue
            if not isinstance(sub_name, str) or not isinstance(sub, PersistentRecord):
                raise CheckpointError(f"{p}: submodule {short_repr(sub_name, 60)} of {name} is not an NVIDIA persistent module")
            visit(sub, f"{path}.{sub_name}" if path else sub_name, depth + 1)

    visit(record, "", 0)


def _estimate_sg3_w_avg(config: StyleGAN3Config, state: Mapping[str, Tensor], n: int = 10_000, seed: int = 0) -> Tensor:
    from ..stylegan3.network import MappingNetwork  # local: the network module is heavier than this one

    mapping = MappingNetwork(config)
    sub = {k[len("mapping."):]: v for k, v in state.items() if k.startswith("mapping.")}
    sub["w_avg"] = torch.zeros(config.w_dim)
    mapping.load_state_dict(sub, strict=True)
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros(config.w_dim, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, n, 2048):
            m = min(2048, n - start)
            z = torch.randn(m, config.z_dim, generator=g)
            c = None
            if config.c_dim > 0:
                c = torch.zeros(m, config.c_dim)
                c[:, 0] = 1
            total += mapping(z, c).double().sum(0)
    return (total / n).float()


def read_stylegan3_pkl(path: str | os.PathLike[str]) -> LoadedStyleGAN3:
    """Read an NVIDIA StyleGAN3 network pickle (``training.networks_stylegan3``, configs T and R) safely.

    The same restricted unpickler as StyleGAN2 pickles (nothing in the file executes; ``module_src`` stays
    a string); ``G_ema`` preferred, ``G`` as fallback. Every module record must have the class
    networks_stylegan3 builds at its place, the configuration comes from the generator's ``_init_kwargs``
    (:meth:`StyleGAN3Config.from_nvidia_kwargs`) and the tensors must be exactly those of NVIDIA's
    ``state_dict()`` for it (the stored up/down filters and input transform included).

    Raises:
        CheckpointError: unreadable or unsafe pickle, not a StyleGAN3 generator, unsupported options, or
            weights that do not fit the pickled configuration.
    """
    p = check_file(path)
    record, key, meta, budget = _generator_record(p, "StyleGAN3")
    where = key or "the pickle"
    if not _is_stylegan3(record):
        raise CheckpointError(f"{p}: {where} is not a StyleGAN3 generator (no SynthesisInput); read StyleGAN2 pickles "
                              "with read_checkpoint, or load any of them with invertkit.load_generator")
    _check_sg3_classes(record, p, where)
    init_kwargs, init_args, attrs = _constructor_args(record, p, where, "StyleGAN3")
    try:
        config, ignored = StyleGAN3Config.from_nvidia_kwargs(init_kwargs, init_args, attrs)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from exc
    meta.update(
        network=key or "single network",
        class_name=record.class_name,
        code="stylegan3 (training/networks_stylegan3.py)",
        variant=config.variant,
        persistence_version=jsonable(record.meta.get("version"), budget=budget),
        init_kwargs=jsonable(dict(init_kwargs), budget=budget),
    )
    if ignored:
        meta["ignored_kwargs"] = jsonable(ignored, budget=budget)
    want = sg3_layout(config)
    what = (f"the StyleGAN3 configuration ({config.img_resolution}px, config {config.variant}, {config.num_layers} layers, "
            f"w_dim={config.w_dim})")
    sd = flatten_module_state(record, p)
    estimate = "mapping.w_avg" not in sd
    if estimate:
        sd["mapping.w_avg"] = torch.zeros(config.w_dim)  # placeholder so shapes validate
    sd = validate_tensors(sd, want, p, what, hint="the pickle's weights disagree with its _init_kwargs")
    bad = [k for k in want if k.endswith(".magnitude_ema") and not float(sd[k]) > 0]
    if bad:
        raise CheckpointError(f"{p}: {bad[0]} is {float(sd[bad[0]]):g}; input magnitudes must be positive (the checkpoint is corrupted)")
    if estimate:
        sd["mapping.w_avg"] = _estimate_sg3_w_avg(config, sd)
        meta["w_avg"] = "estimated: mean of the mapping over 10000 z (seed 0); the pickle tracks none"
    else:
        meta["w_avg"] = "from checkpoint (mapping.w_avg)"
    if not torch.equal(sd["synthesis.input.transform"], torch.eye(3)):
        meta["note_transform"] = "the pickle stores a non-identity input transform; images are drawn with it"
    return LoadedStyleGAN3(config=config, state_dict=sd, meta=meta)
