"""Read a model folder in the ``diffusers`` layout, safely and offline.

A folder holds one denoising network in a sub-folder (``unet/`` or ``transformer/``), its scheduler's
``scheduler/scheduler_config.json`` and optionally a VAE (``vae/``) for latent models::

    model_index.json                 (optional: which components exist)
    unet/config.json                 or transformer/config.json (SD3 / FLUX transformers)
    unet/diffusion_pytorch_model.safetensors   (or .fp16.safetensors, or sharded with an index)
    scheduler/scheduler_config.json
    vae/config.json + vae/diffusion_pytorch_model.safetensors          (latent models only)
    prompt_embeds.safetensors        (optional, invertkit: named prompt embeddings)

Networks are built with diffusers from their ``config.json`` (``from_config`` never touches the
network) and their weights are read from safetensors only: pickled ``.bin`` files are refused,
because nothing in a checkpoint may execute. The scheduler is always the model's own config (a
model sampled with another scheduler's betas or prediction type silently produces noise).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import torch
from torch import Tensor, nn

from invertkit.errors import CheckpointError, ConfigError
from invertkit.untrusted import MetaBudget, check_parameter_count, numel, one_line, safetensors_header, shape_problems, short_repr

# class name in config.json -> (role, parameterisation family)
NETWORKS = {
    "UNet2DModel": "diffusion",
    "UNet2DConditionModel": "diffusion",
    "SD3Transformer2DModel": "flow",
    "FluxTransformer2DModel": "flow",
}
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler",)


@dataclass
class DiffusersFolder:
    """The parts of a loaded folder.

    Attributes:
        network: the denoiser network (eval mode, float32, CPU).
        network_class: its diffusers class name (a key of ``NETWORKS``).
        family: ``"diffusion"`` (discrete alpha-bar schedule) or ``"flow"`` (rectified flow).
        scheduler: the parsed ``scheduler_config.json``.
        vae: an ``AutoencoderKL`` or None (pixel-space model).
        prompts: name -> prompt embedding ``[tokens, width]`` (and ``pooled:<name>`` -> ``[width']``).
        path: the folder.
    """

    network: nn.Module
    network_class: str
    family: str
    scheduler: dict[str, Any]
    vae: nn.Module | None
    prompts: dict[str, Tensor] = field(default_factory=dict)
    path: Path = Path(".")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a diffusers model folder needs it") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({one_line(exc, 160)}); re-export the model folder") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


# config.json fields that size a network: positive integers (or lists of them), each at most _MAX_SIZE
_SIZE_FIELDS = (
    "sample_size", "in_channels", "out_channels", "layers_per_block", "block_out_channels", "norm_num_groups",
    "attention_head_dim", "num_attention_heads", "cross_attention_dim", "num_layers", "num_single_layers",
    "patch_size", "latent_channels", "joint_attention_dim", "pooled_projection_dim", "caption_projection_dim",
    "transformer_layers_per_block", "pos_embed_max_size", "num_class_embeds", "axes_dims_rope",
    "projection_class_embeddings_input_dim", "time_embedding_dim", "encoder_hid_dim",
)
_MAX_SIZE = 1 << 16
_MAX_DEPTH_FIELDS = {"layers_per_block": 64, "num_layers": 256, "num_single_layers": 256, "transformer_layers_per_block": 64}
_MAX_INT = 1 << 24  # any other integer of a config (timesteps, class counts ...)


def check_config_values(config: dict[str, Any], path: Path) -> None:
    """Refuse a config.json / scheduler_config.json whose values are of the wrong type or absurd, with
    one line naming ``path`` and the field: non-finite numbers, integers beyond sane sizes, size
    fields that are not positive integers, and structures beyond the metadata limits."""
    budget = MetaBudget(str(path))

    def walk(key: str, value: Any, depth: int) -> None:
        budget.visit(depth)
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise CheckpointError(f"{path}: field {key} is {value}, not a finite number")
        if isinstance(value, int) and abs(value) > _MAX_INT:
            raise CheckpointError(f"{path}: field {key} is {short_repr(value, 40)}, beyond any real model's size")
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{one_line(k, 40)}", v, depth + 1)
        elif isinstance(value, list):
            for v in value:
                walk(key, v, depth + 1)

    for k, v in config.items():
        walk(one_line(k, 60), v, 0)
    for k in _SIZE_FIELDS:
        value = config.get(k)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        hi = _MAX_DEPTH_FIELDS.get(k, _MAX_SIZE)
        if not items or len(items) > 64 or not all(type(x) is int and 0 < x <= hi for x in items):
            raise CheckpointError(f"{path}: field {k} must be a positive integer (or a list of them) of at most {hi}, "
                                  f"got {short_repr(value)}")


def _inside(file: Path, folder: Path, roots: list[Path]) -> bool:
    try:
        real = file.resolve()
    except (OSError, RuntimeError):
        return False
    return any(real == r or r in real.parents for r in roots)


def _allowed_roots(folder: Path) -> list[Path]:
    """Where a component's weight files may lie: inside the folder, or, for a Hugging Face cache snapshot
    (``models--org--name/snapshots/REV/unet``), in that repository's ``blobs`` (the cache links files there)."""
    roots = [folder.resolve()]
    for parent in folder.absolute().parents:
        if parent.name == "snapshots":
            roots.append((parent.parent / "blobs").resolve())
            break
    return roots


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors weight file(s) of a component folder; pickles are refused by name."""
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"):
        if (folder / name).is_file():
            return [folder / name]
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map", {})
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: its weight_map is not a map of tensor names to file names")
        shards = sorted(set(weight_map.values()))
        if not shards:
            raise CheckpointError(f"{index}: its weight_map is empty")
        roots = _allowed_roots(folder)
        for shard in shards:
            # a shard is a file of this component folder: no absolute path, no "..", no link leading out
            parts = Path(shard).parts
            if (not shard or Path(shard).is_absolute() or PureWindowsPath(shard).is_absolute() or ".." in parts
                    or "\\" in shard or not _inside(folder / shard, folder, roots)):
                raise CheckpointError(f"{index}: weight_map names {short_repr(shard, 80)}, which lies outside the "
                                      f"component folder {folder}; refusing to read it")
        return [folder / s for s in shards]
    pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.ckpt"))
    if pickles:
        raise CheckpointError(
            f"{folder / pickles[0]}: pickled weights are refused (loading them could run code); "
            "save the model with safe_serialization=True (diffusers' default) to get diffusion_pytorch_model.safetensors"
        )
    raise CheckpointError(f"{folder}: no diffusion_pytorch_model.safetensors; is this a diffusers component folder?")


def _load_weights(model: nn.Module, folder: Path, files: list[Path]) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state: dict[str, Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{file}: not a readable safetensors file ({one_line(exc, 160)})") from exc
    result = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{folder}: weights do not match config.json (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}); the folder mixes files of different models"
        )
    return model.float().eval().requires_grad_(False)


def _build(folder: Path, allowed: dict[str, str] | tuple[str, ...]) -> tuple[nn.Module, str]:
    """Build the diffusers class named in ``folder/config.json`` (one of ``allowed``) and load its weights."""
    config = _read_json(folder / "config.json")
    name = config.get("_class_name")
    if not isinstance(name, str) or name not in allowed:
        raise CheckpointError(
            f"{folder / 'config.json'}: network class {short_repr(name)} is not supported; invertkit loads {', '.join(allowed)}"
        )
    try:
        import diffusers
    except ImportError:
        raise ConfigError("diffusers models need the diffusers package: pip install 'invertkit[diffusion]' (or pip install diffusers)") from None
    cls = getattr(diffusers, name)
    check_config_values(config, folder / "config.json")
    files = _weight_files(folder)
    stored: dict[str, tuple[int, ...]] = {}
    for file in files:  # headers only: every declared shape is backed by bytes in the file
        if not file.is_file():
            raise CheckpointError(f"{file}: missing; the model folder's weight_map names it")
        stored.update({k: shape for k, (_, shape) in safetensors_header(file, "diffusers weight file")[0].items()})
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    try:
        with torch.device("meta"):  # the declared network's shapes, without memory
            expected = {k: tuple(v.shape) for k, v in cls.from_config(kwargs).state_dict().items()}
    except Exception as exc:  # noqa: BLE001 - diffusers raises many types for a config it cannot build
        raise CheckpointError(f"{folder / 'config.json'}: diffusers cannot build {name} from it "
                              f"({type(exc).__name__}: {one_line(exc, 160)})") from exc
    check_parameter_count(sum(numel(s) for s in expected.values()), folder / "config.json", f"its {name}")
    problems = shape_problems(expected, stored)
    if problems:
        raise CheckpointError(f"{folder}: weights do not match config.json ({'; '.join(problems)}); "
                              "the folder mixes files of different models")
    try:
        model = cls.from_config(kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: diffusers cannot build {name} from it ({one_line(exc, 160)})") from exc
    return _load_weights(model, folder, files), name


# the largest |value| of a prompt embedding read from a file: text encoders (CLIP, T5) give values
# of order 1 to 100; a larger one only comes from a damaged file
MAX_ABS_EMBEDDING = 1e5


def read_prompts(path: Path) -> dict[str, Tensor]:
    """Named prompt embeddings from a safetensors file: ``name -> [tokens, width]`` float32.

    Keys ``pooled:<name>`` hold the pooled embedding ``[width']`` that SD3-style transformers also take.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.is_file():
        safetensors_header(path, "prompt-embedding file")  # declared shapes backed by the file's bytes
    try:
        raw = load_file(str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such prompt-embedding file") from None
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable safetensors file of prompt embeddings ({one_line(exc, 160)})") from exc
    out = {}
    for key, value in raw.items():
        want = 1 if key.startswith("pooled:") else 2
        if value.dim() == want + 1 and value.shape[0] == 1:  # tolerate a leading batch of 1
            value = value[0]
        if value.dim() != want:
            raise ConfigError(f"{path}: prompt embedding {key!r} has shape {list(value.shape)}; expected {want} dimensions")
        if not value.is_floating_point():
            raise ConfigError(f"{path}: prompt embedding {key!r} is {value.dtype}, not floating point; the file is damaged")
        value = value.float()
        if not bool(torch.isfinite(value).all()):
            raise ConfigError(f"{path}: prompt embedding {key!r} holds NaN or infinite values; the file is damaged, "
                              "compute the embeddings again")
        if value.numel() and float(value.abs().max()) > MAX_ABS_EMBEDDING:
            raise ConfigError(f"{path}: prompt embedding {key!r} holds a value of {float(value.abs().max()):.3g}, beyond "
                              f"{MAX_ABS_EMBEDDING:g} (text encoders give far smaller values); the file is damaged")
        out[key] = value
    return out


def hub_cache_dirs() -> list[Path]:
    """Where Hugging Face keeps downloaded models: ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``."""
    import os

    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return dirs


def resolve_folder(spec: str | Path) -> Path:
    """A model folder from a path, or from a hub id ``org/name`` already in the local Hugging Face
    cache (the snapshot ``refs/main`` points at, else the newest); nothing is downloaded."""
    path = Path(spec)
    if path.is_dir() or str(spec).count("/") != 1 or str(spec).startswith((".", "/")):
        return path
    searched = []
    for cache in hub_cache_dirs():
        repo = cache / ("models--" + str(spec).replace("/", "--"))
        searched.append(str(repo))
        ref = repo / "refs" / "main"
        if ref.is_file() and (repo / "snapshots" / ref.read_text().strip()).is_dir():
            return repo / "snapshots" / ref.read_text().strip()
        snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if (repo / "snapshots").is_dir() else []
        if snapshots:
            return snapshots[-1]
    raise CheckpointError(
        f"{spec}: not a folder, and not in the local Hugging Face cache (looked in {', '.join(searched)}); "
        f"invertkit never downloads: fetch it where there is internet (huggingface-cli download {spec}) and pass the folder"
    )


def read_folder(path: str | Path) -> DiffusersFolder:
    """Load the network, scheduler config, optional VAE and optional prompt embeddings of a folder
    (a path, or a hub id ``org/name`` found in the local Hugging Face cache: see ``resolve_folder``).

    Raises:
        CheckpointError: a missing part, an unsupported class, pickled weights or mismatched weights,
            each naming the file.
    """
    root = resolve_folder(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a folder; --generator diffusers:PATH takes a diffusers model folder")
    parts = [p for p in ("unet", "transformer") if (root / p / "config.json").is_file()]
    if not parts:
        raise CheckpointError(f"{root}: no unet/config.json or transformer/config.json; not a diffusers model folder")
    network, name = _build(root / parts[0], NETWORKS)
    family = NETWORKS[name]
    scheduler = _read_json(root / "scheduler" / "scheduler_config.json")
    check_config_values(scheduler, root / "scheduler" / "scheduler_config.json")
    steps = scheduler.get("num_train_timesteps", 1000)
    if type(steps) is not int or not 0 < steps <= 100_000:
        raise CheckpointError(f"{root / 'scheduler' / 'scheduler_config.json'}: field num_train_timesteps must be an "
                              f"integer between 1 and 100000, got {short_repr(steps)}")
    sched_name = scheduler.get("_class_name", "")
    if (family == "flow") != (sched_name in FLOW_SCHEDULERS):
        raise CheckpointError(
            f"{root / 'scheduler' / 'scheduler_config.json'}: scheduler {short_repr(sched_name)} does not fit a {name} "
            f"({'flow-matching' if family == 'flow' else 'discrete diffusion'} model)"
        )
    vae = _build(root / "vae", ("AutoencoderKL",))[0] if (root / "vae" / "config.json").is_file() else None
    prompts = read_prompts(root / "prompt_embeds.safetensors") if (root / "prompt_embeds.safetensors").is_file() else {}
    return DiffusersFolder(network, name, family, scheduler, vae, prompts, root)


def vae_scale(vae: nn.Module | None) -> int:
    """Pixels per latent cell: ``2 ** (len(block_out_channels) - 1)`` for an AutoencoderKL, 1 without one."""
    return 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)

