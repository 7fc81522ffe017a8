"""Reading pytorch-pretrained-biggan checkpoints safely: ``config.json`` + ``pytorch_model.bin``.

Layouts claimed (:func:`claims`):

- a folder holding ``config.json`` and ``pytorch_model.bin`` (``BigGAN.from_pretrained(folder)``);
- a ``.bin`` file with its config beside it: ``config.json``, or ``<prefix>config.json`` for a file
  named ``<prefix>pytorch_model.bin`` (the package's download names,
  ``biggan-deep-128-pytorch_model.bin`` / ``biggan-deep-128-config.json``).

A folder or file is claimed when its config is a JSON object with one of BigGAN's own keys
(``channel_width``, ``attention_layer_position``, ``n_stats``, ``class_embed_dim``), or is no JSON
object at all (then the error is ours, naming the config). Reading
(:func:`read_biggan`) checks, in this order, before any weight is copied: the config's types and
ranges (:class:`~.config.BigGANConfig`), the parameter count it implies
(``untrusted.check_parameter_count``), then the weight file, loaded with
``torch.load(weights_only=True, mmap=True)`` (a pickle naming any other global is refused), that it
is a dict of tensors backed by the bytes it stores, and that its names and shapes equal the ones the
config implies; finally every value must be a finite float. Each failure is one CheckpointError line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError
from ...store.tensorfiles import layout_problems, torch_load_safe
from ...untrusted import check_parameter_count, check_stored_bytes, one_line
from .config import MAX_CONFIG_BYTES, BigGANConfig
from .generator import BigGANGenerator
from .network import BigGANNetwork, sn_prefixes

WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
CLAIM_KEYS = ("channel_width", "attention_layer_position", "n_stats", "class_embed_dim")


def locate(path: Path) -> tuple[Path, Path] | None:
    """``(config, weights)`` of a BigGAN folder or weight file by their names, or None (never raises)."""
    try:
        if path.is_dir():
            cfg, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
            return (cfg, weights) if cfg.is_file() and weights.is_file() else None
        if path.is_file() and path.suffix == ".bin":
            candidates = [path.with_name(CONFIG_NAME)]
            if path.name.endswith(WEIGHTS_NAME) and path.name != WEIGHTS_NAME:
                candidates.insert(0, path.with_name(path.name[: -len(WEIGHTS_NAME)] + CONFIG_NAME))
            for cfg in candidates:
                if cfg.is_file():
                    return cfg, path
    except OSError:
        return None
    return None


def claims(path: Path) -> bool:
    """Whether ``path`` is a BigGAN checkpoint (see the module docstring); reads only the config."""
    found = locate(Path(path))
    if found is None:
        return False
    cfg = found[0]
    try:
        if cfg.stat().st_size > MAX_CONFIG_BYTES:
            return True  # named like ours, refused by read_biggan with a clear line
        obj = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return True
    # a JSON object is ours when it has a BigGAN-only key (other libraries' config.json beside a .bin: not ours)
    return not isinstance(obj, dict) or any(k in obj for k in CLAIM_KEYS)


def read_config(path: Path) -> BigGANConfig:
    """The checked config of ``path`` (a config.json)."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path}: {size:,} bytes, too large for a BigGAN config.json (limit {MAX_CONFIG_BYTES:,}); "
                                  "the file is not a config")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({one_line(exc.strerror or exc)})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not UTF-8 text; copy the model's config.json again") from None
    return BigGANConfig.from_json_text(text, path)


def _plain_layers(cfg: BigGANConfig, state: Mapping[str, object], where: Path) -> set[str]:
    """Layers stored already normalised (``weight`` instead of ``weight_orig``/``weight_u``/``weight_v``)."""
    with torch.device("meta"):
        prefixes = sn_prefixes(BigGANNetwork(cfg))
    plain = set()
    for p in prefixes:
        if f"{p}.weight" in state and f"{p}.weight_orig" not in state:
            plain.add(p)
        elif f"{p}.weight_orig" in state and f"{p}.weight_v" not in state and f"{p}.weight" in state:
            # torch < 1.0's spectral-norm layout: torch's loader re-derives v by a pseudo-inverse
            raise CheckpointError(
                f"{where}: {p} is stored in the pre-1.0 spectral-norm layout (weight_orig, weight_u, weight; no weight_v); "
                "load it once with the package under a current torch and save its state_dict() again"
            )
    return plain


def expected_shapes(cfg: BigGANConfig, plain: Collection[str] = ()) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the package's state dict for ``cfg`` (built on the meta device: nothing allocated)."""
    with torch.device("meta"):
        net = BigGANNetwork(cfg, plain)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def read_biggan(path: str | os.PathLike[str]) -> tuple[BigGANConfig, dict[str, Tensor], set[str]]:
    """``(config, state dict (float32, CPU), plain layers)`` of a BigGAN folder or ``.bin`` file.

    Raises:
        CheckpointError: one line naming the file and the fix (missing config, bad config numbers,
            too many parameters, a pickle with code, truncated file, wrong names/shapes, NaN/Inf).
    """
    p = Path(path)
    found = locate(p)
    if found is None:
        raise CheckpointError(f"{p}: not a BigGAN checkpoint; pass a folder with {CONFIG_NAME} and {WEIGHTS_NAME}, "
                              f"or the .bin file with its {CONFIG_NAME} beside it")
    cfg_path, weights_path = found
    cfg = read_config(cfg_path)
    shapes = expected_shapes(cfg)
    check_parameter_count(sum(torch.Size(s).numel() for s in shapes.values()), cfg_path, "this BigGAN config")
    obj = torch_load_safe(weights_path, weights_path, mmap=True)
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{weights_path}: expected a state dict (names -> tensors), got {type(obj).__name__}; "
                              "save BigGAN's model.state_dict()")
    plain = _plain_layers(cfg, obj, weights_path)
    if plain:
        shapes = expected_shapes(cfg, plain)
    problems = layout_problems(shapes, obj)
    if problems:
        raise CheckpointError(f"{weights_path}: weights do not fit the BigGAN of {cfg_path.name} "
                              f"(channel_width {cfg.channel_width}, {len(cfg.layers)} layers): {'; '.join(problems)}")
    check_stored_bytes(obj, weights_path)
    state: dict[str, Tensor] = {}
    for name, t in obj.items():
        if not t.is_floating_point():
            raise CheckpointError(f"{weights_path}: tensor {name} has dtype {t.dtype}, not floating point; the file is not BigGAN weights")
        t = t.to(torch.float32)  # a copy for float16 files; float32 ones stay mapped until loaded
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{weights_path}: tensor {name} holds NaN or infinite values; the weights are damaged, copy them again")
        state[name] = t
    return cfg, state, plain


def load_biggan(path: str | os.PathLike[str], device: torch.device | str = "cpu", **kwargs: Any) -> BigGANGenerator:
    """A :class:`~.generator.BigGANGenerator` from a BigGAN folder or ``.bin`` file; ``kwargs`` go to
    the generator (``truncation``, ``class_index``)."""
    cfg, state, plain = read_biggan(path)
    return BigGANGenerator(cfg, state, plain=plain, name=Path(path).name, device=device, **kwargs)


def save_biggan(G: BigGANGenerator, folder: str | os.PathLike[str]) -> Path:
    """Write ``G`` in the package's layout, ``folder/config.json`` + ``folder/pytorch_model.bin``
    (``BigGAN.from_pretrained(folder)`` reads it); returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(G.config.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    torch.save({k: v.detach().cpu() for k, v in G.state_dict().items()}, out / WEIGHTS_NAME)
    return out
