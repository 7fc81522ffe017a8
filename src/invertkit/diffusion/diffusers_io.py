"""Read a model folder in the ``diffusers`` layout, safely and offline.

A folder holds one denoising network in a sub-folder (``unet/`` or ``transformer/``), its scheduler's
``scheduler/scheduler_config.json`` and optionally a VAE (``vae/``) for latent models::

    model_index.json                 (optional: which components exist)
    unet/config.json                 or transformer/config.json (SD3 / FLUX transformers)
    unet/diffusion_pytorch_model.safetensors   (or .fp16.safetensors, or sharded with an index)
    scheduler/scheduler_config.json
    vae/config.json + vae/diffusion_pytorch_model.safetensors          (latent models only)
    prompt_embeds.safetensors        (optional, invertkit: named prompt embeddings)
    tokens.json + token_embeds.safetensors   (optional, invertkit: a word-table text encoder, see WordTable)

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
        words: the folder's word-table text encoder, or None.
    """

    network: nn.Module
    network_class: str
    family: str
    scheduler: dict[str, Any]
    vae: nn.Module | None
    prompts: dict[str, Tensor] = field(default_factory=dict)
    path: Path = Path(".")
    words: WordTable | None = None


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


# bounds of a word table (tokens.json + token_embeds.safetensors): far beyond the tiny models that
# use one, small enough that a forged file cannot make invertkit allocate much
MAX_VOCABULARY = 10_000
MAX_WORD_CHARS = 64
MAX_PROMPT_TOKENS = 512
MAX_TOKENS_JSON_BYTES = 2 * 1024 * 1024
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


@dataclass(frozen=True)
class WordTable:
    """A text encoder that is a table of learned word embeddings (invertkit's own, for small models
    trained here; no tokenizer, no transformer).

    A prompt is a sentence of known words separated by spaces; its embedding ``[max_tokens, width]``
    is the rows of its words in order followed by rows of the padding word ``vocabulary[0] == ""`` up to
    ``max_tokens``. The empty prompt is all padding rows: the null embedding of classifier-free
    guidance. There are no positional embeddings (a UNet's cross-attention treats its keys as a set).

    Attributes:
        vocabulary: the words, ``""`` first.
        max_tokens: rows of every prompt embedding.
        embeds: ``[len(vocabulary), width]`` float32.
    """

    vocabulary: tuple[str, ...]
    max_tokens: int
    embeds: Tensor
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.index:
            self.index.update({w: i for i, w in enumerate(self.vocabulary)})

    @property
    def width(self) -> int:
        return int(self.embeds.shape[1])

    def known(self, limit: int = 40) -> str:
        """The vocabulary as a short phrase for error messages."""
        words = [w for w in self.vocabulary if w]
        head = ", ".join(words[:limit])
        return head + (f" ... ({len(words)} words in all)" if len(words) > limit else "")

    def words(self, prompt: str, model: str = "this model") -> list[str]:
        """The word of each row of ``prompt``'s embedding (``""`` for padding rows).

        Raises:
            ConfigError: an unknown word, or more words than ``max_tokens`` (one line).
        """
        split = prompt.split()
        for w in split:
            if w not in self.index or not w:
                raise ConfigError(f"{model}: unknown word {short_repr(w, 40)} in prompt {short_repr(prompt, 80)} "
                                  f"(known words: {self.known()})")
        if len(split) > self.max_tokens:
            raise ConfigError(f"{model}: prompt {short_repr(prompt, 80)} has {len(split)} words; this model takes at most "
                              f"{self.max_tokens}")
        return split + [""] * (self.max_tokens - len(split))

    def embed(self, prompt: str, model: str = "this model") -> Tensor:
        """The embedding ``[max_tokens, width]`` of ``prompt`` (see :meth:`words`)."""
        ids = torch.tensor([self.index[w] for w in self.words(prompt, model)], dtype=torch.long)
        return self.embeds[ids]


def read_word_table(root: Path) -> WordTable | None:
    """The word table of a folder (``tokens.json`` + ``token_embeds.safetensors``), None when it has neither.

    ``tokens.json`` is ``{"vocabulary": [words...], "max_tokens": T}`` (the first word ``""``, the
    others distinct, without spaces, at most ``MAX_WORD_CHARS`` characters; at most ``MAX_VOCABULARY``
    words; ``1 <= T <= MAX_PROMPT_TOKENS``); ``token_embeds.safetensors`` holds one floating-point tensor
    ``token_embeds`` ``[len(vocabulary), width]`` of finite values within ``MAX_ABS_EMBEDDING``. Sizes and
    shapes are checked before anything is allocated.

    Raises:
        CheckpointError: one line naming the file and what is wrong with it.
    """
    from safetensors import SafetensorError, safe_open

    tokens, weights = root / "tokens.json", root / "token_embeds.safetensors"
    if not tokens.exists() and not weights.exists():
        return None
    for have, miss in ((tokens, weights), (weights, tokens)):
        if not miss.is_file():
            raise CheckpointError(f"{have}: found without {miss.name}; a word table needs both files (remove {have.name} or add {miss.name})")
    try:
        size = tokens.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{tokens}: cannot be read ({one_line(exc.strerror or exc)})") from None
    if size > MAX_TOKENS_JSON_BYTES:
        raise CheckpointError(f"{tokens}: {size} bytes, beyond the {MAX_TOKENS_JSON_BYTES} bytes any word table needs; "
                              "the file is damaged or forged")
    data = _read_json(tokens)
    vocabulary, max_tokens = data.get("vocabulary"), data.get("max_tokens")
    if not isinstance(vocabulary, list) or not 1 < len(vocabulary) <= MAX_VOCABULARY:
        raise CheckpointError(f"{tokens}: field vocabulary must be a list of 2 to {MAX_VOCABULARY} words, got "
                              f"{short_repr(vocabulary, 60) if not isinstance(vocabulary, list) else f'{len(vocabulary)} entries'}")
    if type(max_tokens) is not int or not 1 <= max_tokens <= MAX_PROMPT_TOKENS:
        raise CheckpointError(f"{tokens}: field max_tokens must be an integer from 1 to {MAX_PROMPT_TOKENS}, got {short_repr(max_tokens, 40)}")
    if vocabulary[0] != "":
        raise CheckpointError(f"{tokens}: the first vocabulary word must be the padding word \"\", got {short_repr(vocabulary[0], 40)}")
    seen: set[str] = set()
    for w in vocabulary[1:]:
        if (not isinstance(w, str) or not w or len(w) > MAX_WORD_CHARS or w != w.strip() or len(w.split()) != 1
                or not w.isprintable()):
            raise CheckpointError(f"{tokens}: vocabulary entry {short_repr(w, 40)} is not a word (a string of 1 to "
                                  f"{MAX_WORD_CHARS} printable characters without spaces)")
        if w in seen:
            raise CheckpointError(f"{tokens}: the word {short_repr(w, 40)} appears twice in the vocabulary")
        seen.add(w)
    header = safetensors_header(weights, "word-embedding file")[0]
    if set(header) != {"token_embeds"}:
        raise CheckpointError(f"{weights}: expected one tensor named token_embeds, found "
                              f"{short_repr(sorted(header)[:5], 80)}")
    dtype, shape = header["token_embeds"]
    if dtype not in _FLOAT_DTYPES:
        raise CheckpointError(f"{weights}: token_embeds is {dtype}, not floating point; the file is damaged")
    if len(shape) != 2 or shape[0] != len(vocabulary) or not 0 < shape[1] <= _MAX_SIZE:
        raise CheckpointError(f"{weights}: token_embeds has shape {list(shape)}; expected [{len(vocabulary)}, width] "
                              f"(one row per word of {tokens.name}, width 1 to {_MAX_SIZE})")
    try:
        with safe_open(str(weights), framework="pt") as f:
            table = f.get_tensor("token_embeds").float()
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({one_line(exc, 160)})") from exc
    if not bool(torch.isfinite(table).all()):
        raise CheckpointError(f"{weights}: token_embeds holds NaN or infinite values; the file is damaged")
    if table.numel() and float(table.abs().max()) > MAX_ABS_EMBEDDING:
        raise CheckpointError(f"{weights}: token_embeds holds a value of {float(table.abs().max()):.3g}, beyond "
                              f"{MAX_ABS_EMBEDDING:g}; the file is damaged")
    return WordTable(tuple(vocabulary), max_tokens, table)


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
    words = read_word_table(root)
    if words is not None:
        dim = network.config.get("cross_attention_dim") if name == "UNet2DConditionModel" else None
        if name != "UNet2DConditionModel" or dim != words.width:
            raise CheckpointError(f"{root / 'token_embeds.safetensors'}: a word table of width {words.width} does not fit "
                                  f"the {name} (word tables condition a UNet2DConditionModel with cross_attention_dim "
                                  f"equal to their width, here {short_repr(dim, 20)})")
    return DiffusersFolder(network, name, family, scheduler, vae, prompts, root, words)


def vae_scale(vae: nn.Module | None) -> int:
    """Pixels per latent cell: ``2 ** (len(block_out_channels) - 1)`` for an AutoencoderKL, 1 without one."""
    return 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)

