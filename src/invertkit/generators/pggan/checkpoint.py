"""Read pytorch_GAN_zoo PGAN checkpoints safely: which files they are, and their generator.

The authors' ``BaseGAN.save`` (facebookresearch/pytorch_GAN_zoo, ``models/base_GAN.py``) writes
``torch.save({"config": BaseConfig, "netG": G.state_dict(), "netD": ..., "avgG": ...})``; the
checkpoints torch.hub's ``PGAN`` model downloads have the same layout (older ones in torch's legacy
stream format, with state-dict names that may lack ``.module``). ``config`` is an instance of
``models.utils.config.BaseConfig``, a class with no behaviour: the weights-only load maps that one
global to the inert :class:`AuthorsConfig`, everything else that is not a tensor or a plain container
is refused. Nothing a file declares is built before it is checked against the tensors it holds.

Which generator: ``avgG`` (the moving average, which the authors advise sampling from) when present,
else ``netG``; a bare ``GNet`` state dict is read too.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError
from ...store.tensorfiles import few, layout_problems, torch_load_safe
from ...untrusted import check_parameter_count, check_stored_bytes, short_repr
from ..checkpoints.detect import _TORCH_LEGACY_PREFIX, check_file
from .config import LOSS_ACTIVATION, MAX_SCALES, PGGANConfig

__all__ = ["AuthorsConfig", "LoadedPGGAN", "claims_pggan", "read_pggan"]

CONFIG_GLOBAL = "models.utils.config.BaseConfig"
GENERATOR_KEYS = ("avgG", "netG")
_ZIP_MAGIC = b"PK\x03\x04"
# a claim reads at most this much: the pickle (keys and config, no tensor data) of a PGAN file is a
# few tens of kB; the legacy stream writes that pickle before the tensors' bytes
_MAX_CLAIM_BYTES = 4 << 20
_MARKERS = (b"formatLayer", b"toRGBLayers")


class AuthorsConfig:
    """Inert stand-in for pytorch_GAN_zoo's ``BaseConfig``: it only receives the attributes the file sets."""


# ------------------------------------------------------------------------------------------------
# claims: a bounded look at the pickle, no tensors
# ------------------------------------------------------------------------------------------------


def _pickle_bytes(p: Path) -> bytes:
    """The pickle part of a torch.save file (bounded), or b"" when it is not a torch.save file."""
    with open(p, "rb") as f:
        head = f.read(len(_TORCH_LEGACY_PREFIX))
        if head.startswith(_TORCH_LEGACY_PREFIX):
            return head + f.read(_MAX_CLAIM_BYTES)
    if not head.startswith(_ZIP_MAGIC):
        return b""
    with zipfile.ZipFile(p) as zf:
        for info in zf.infolist()[:256]:
            if info.filename == "data.pkl" or info.filename.endswith("/data.pkl"):
                with zf.open(info) as member:
                    return member.read(_MAX_CLAIM_BYTES)
    return b""


def claims_pggan(path: Path) -> bool:
    """True when ``path`` is a torch.save file whose pickle names a PGGAN generator's layers
    (``formatLayer`` and ``toRGBLayers``: pytorch_GAN_zoo's GNet). Never raises, never loads tensors."""
    try:
        if not Path(path).is_file():
            return False
        data = _pickle_bytes(Path(path))
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, EOFError):
        return False
    return all(m in data for m in _MARKERS)


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------


class LoadedPGGAN:
    """A PGGAN generator read from a file: ``config``, float32 CPU ``state_dict`` in the authors'
    naming (exactly ``config.layout()``), and ``meta`` (JSON-friendly facts and notes)."""

    def __init__(self, config: PGGANConfig, state_dict: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.config, self.state_dict, self.meta = config, state_dict, meta


def _load(p: Path) -> Any:
    with open(p, "rb") as f:
        zipped = f.read(4) == _ZIP_MAGIC
    # torch >= 2.6 can map one named global to a stand-in; older versions refuse the authors' config
    # object (one line: re-save the weights), and still read files whose config is a plain dict
    stand_in = (torch.serialization.safe_globals([(AuthorsConfig, CONFIG_GLOBAL)])
                if torch.__version__ >= (2, 6) else contextlib.nullcontext())
    with stand_in:
        # mmap: the tensors' bytes are mapped, not read, until the validated ones are copied
        return torch_load_safe(p, p, mmap=zipped)


def _generator_state(data: Any, p: Path, which: str | None) -> tuple[str | None, Mapping[Any, Any]]:
    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: holds a {type(data).__name__}, not a pytorch_GAN_zoo checkpoint dict (config, netG, avgG)")
    if which is not None:
        if which not in GENERATOR_KEYS:
            raise CheckpointError(f"{p}: choose the generator as one of {GENERATOR_KEYS}, got {short_repr(which)}")
        keys = (which,)
    else:
        keys = GENERATOR_KEYS
    for key in keys:
        if key in data:
            state = data[key]
            if not isinstance(state, Mapping):
                raise CheckpointError(f"{p}: '{key}' holds a {type(state).__name__}, not a state dict")
            return key, state
    if which is None and any(isinstance(k, str) and k.startswith("formatLayer") for k in data):
        return None, data  # a bare GNet state dict
    names = few(sorted(short_repr(k, 40) for k in list(data)[:50])) or "none"
    want = f"'{which}'" if which else "'avgG' or 'netG'"
    raise CheckpointError(f"{p}: no {want} generator in this checkpoint (keys: {names}); pass a pytorch_GAN_zoo PGAN "
                          "checkpoint written by its save() (or torch.hub's PGAN weights)")


def _authors_names(state: Mapping[Any, Any], p: Path) -> dict[str, Tensor]:
    """Tensors under the current GNet names: ``X.weight`` -> ``X.module.weight`` (the authors' own
    compatibility rule for old files) and a ``module.`` prefix of DataParallel dropped."""
    if any(not isinstance(k, str) for k in state):
        raise CheckpointError(f"{p}: the generator's state dict has non-string keys; not a PyTorch state dict")
    keys = list(state)
    strip = bool(keys) and all(k.startswith("module.") for k in keys)
    out: dict[str, Any] = {}
    for k in keys:
        name = k[len("module."):] if strip else k
        if not name.endswith((".module.weight", ".module.bias")) and name.endswith((".weight", ".bias")):
            stem, _, leaf = name.rpartition(".")
            name = f"{stem}.module.{leaf}"
        out[name] = state[k]
    return out


def _declared(config: Any, p: Path) -> dict[str, Any]:
    """The file's config as a dict of the authors' field names (empty when there is none)."""
    if config is None:
        return {}
    if isinstance(config, AuthorsConfig):
        config = vars(config)
    if not isinstance(config, dict):
        raise CheckpointError(f"{p}: 'config' holds a {type(config).__name__}, not pytorch_GAN_zoo's BaseConfig or a dict")
    return {k: v for k, v in config.items() if isinstance(k, str)}


def _infer(tensors: Mapping[str, Any], p: Path) -> dict[str, Any]:
    """Architecture fields from the tensor shapes (what a file without a config still tells)."""
    def shape(key: str, ndim: int) -> tuple[int, ...]:
        t = tensors.get(key)
        if not isinstance(t, Tensor) or t.ndim != ndim:
            got = "missing" if t is None else f"{type(t).__name__} {list(t.shape) if isinstance(t, Tensor) else ''}"
            raise CheckpointError(f"{p}: not a pytorch_GAN_zoo GNet state dict: {key} is {got.strip()} (expected a {ndim}-D tensor)")
        return tuple(t.shape)

    fmt = shape("formatLayer.module.weight", 2)
    depths = [shape("groupScale0.0.module.weight", 4)[0]]
    for i in range(MAX_SCALES):  # bounded: a config of more scales is refused anyway
        t = tensors.get(f"scaleLayers.{i}.0.module.weight")
        if not isinstance(t, Tensor) or t.ndim != 4:
            break
        depths.append(int(t.shape[0]))
    return {"latent_dim": int(fmt[1]), "depths": depths, "dim_output": int(shape("toRGBLayers.0.module.weight", 4)[0])}


def _config(declared: dict[str, Any], inferred: dict[str, Any], p: Path) -> tuple[PGGANConfig, list[str]]:
    """The file's config where it has a field, the shapes' otherwise; checked, with notes on what was assumed."""
    notes: list[str] = []
    category, attrib = declared.get("categoryVectorDim", 0), declared.get("attribKeysOrder")
    # identity and type checks only: a hostile value (a tensor, say) must not decide its own truth
    no_labels = category is None or (type(category) is int and category == 0)
    no_attrib = attrib is None or (type(attrib) in (dict, list, tuple) and len(attrib) == 0)
    if not (no_labels and no_attrib):
        raise CheckpointError(f"{p}: a conditional (AC-GAN) PGGAN (categoryVectorDim={short_repr(category)}); invertkit reads "
                              "unconditional PGGAN generators only")
    if declared.get("perChannelNormalization", True) is not True:
        raise CheckpointError(f"{p}: perChannelNormalization={short_repr(declared['perChannelNormalization'])}; the authors' GNet "
                              "cannot run without pixel norm either (it normalises after the format layer unconditionally)")
    loss = declared.get("lossCriterion", "WGANGP")
    if not isinstance(loss, str) or loss not in LOSS_ACTIVATION:
        raise CheckpointError(f"{p}: config lossCriterion {short_repr(loss)} is not one of {sorted(LOSS_ACTIVATION)}; "
                              "the file's config is damaged")
    if "lossCriterion" not in declared:
        notes.append("output activation assumed none (the default WGANGP loss): the file does not say")
    fields: dict[str, Any] = dict(inferred)
    if "latentVectorDim" in declared:
        fields["latent_dim"] = declared["latentVectorDim"]
    if "depthScale0" in declared or "depthOtherScales" in declared:
        others = declared.get("depthOtherScales", inferred["depths"][1:])
        if not isinstance(others, (list, tuple)) or len(others) > MAX_SCALES:
            raise CheckpointError(f"{p}: config depthOtherScales must list at most {MAX_SCALES} channel counts, got {short_repr(others)}")
        fields["depths"] = [declared.get("depthScale0", inferred["depths"][0]), *others]
    if "dimOutput" in declared:
        fields["dim_output"] = declared["dimOutput"]
    for ours, theirs in (("equalized_lr", "equalizedlR"), ("init_bias_to_zero", "initBiasToZero"),
                         ("leaky_relu", "leakyReluLeak"), ("alpha", "alpha")):
        if theirs in declared:
            fields[ours] = declared[theirs]
    fields["generation_activation"] = LOSS_ACTIVATION[loss]
    if not declared:
        notes.append("no config in the file: architecture inferred from tensor shapes, equalized lr, leaky ReLU 0.2, alpha 0 assumed")
    try:
        return PGGANConfig(**fields), notes
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from None


def read_pggan(path: str | os.PathLike[str], *, which: str | None = None) -> LoadedPGGAN:
    """Read the generator of a pytorch_GAN_zoo PGAN checkpoint without executing anything in it.

    Args:
        path: a ``.pth`` written by pytorch_GAN_zoo's ``save()`` (or torch.hub's PGAN weights).
        which: ``"avgG"`` or ``"netG"``; None takes ``avgG`` when present, else ``netG``.

    Raises:
        CheckpointError: one line naming the file and the fix: unreadable or truncated file, Python
            objects other than tensors and the config, no generator, a config or shapes that do not
            form a GNet, too many parameters, or non-finite weights.
    """
    p = check_file(path)
    data = _load(p)
    key, state = _generator_state(data, p, which)
    tensors = _authors_names(state, p)
    # before any copy: zero-stride or shared views claim more than the file stores
    check_stored_bytes({short_repr(k, 60): v for k, v in tensors.items() if isinstance(v, Tensor)}, p)
    declared = _declared(data.get("config") if key is not None else None, p)
    cfg, notes = _config(declared, _infer(tensors, p), p)
    check_parameter_count(cfg.parameter_count(), p, "the PGGAN generator")
    where = f"'{key}'" if key else "the state dict"
    problems = layout_problems(cfg.layout(), tensors)
    if problems:
        raise CheckpointError(f"{p}: {where} does not fit a pytorch_GAN_zoo GNet of {cfg.resolution} px "
                              f"(depths {list(cfg.depths)}, latent {cfg.latent_dim}): {'; '.join(problems)}")
    sd: dict[str, Tensor] = {}
    for name in cfg.layout():
        t = tensors[name]
        if not t.is_floating_point():
            raise CheckpointError(f"{p}: {where} {name} holds {t.dtype} values, not floating-point weights; the file is damaged")
        t = t.detach().to("cpu", torch.float32).clone()  # a copy: nothing stays mapped to the file
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{p}: {where} {name} holds NaN or infinite values; the checkpoint is damaged (copy it again "
                                  "or take an earlier snapshot)")
        sd[name] = t
    meta: dict[str, Any] = {
        "source_format": "pytorch_GAN_zoo PGAN",
        "generator": key or "bare state dict",
        "config": "from the file's config" if declared else "inferred from tensor shapes",
    }
    if key == "netG":
        notes.append("no avgG in the checkpoint: loaded the training generator netG (not the moving average)")
    if notes:
        meta["notes"] = "; ".join(notes)
    return LoadedPGGAN(cfg, sd, meta)
