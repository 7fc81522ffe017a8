"""Latents to edit: one latent file, a folder of them, or an ``invertkit invert`` run folder.

A run folder holds ``run.json`` and ``latents/<stem>.npz`` (see :mod:`invertkit.runs`); each file is
read into the typed result it came from (``runs.load_items``), so a PTI pivot comes with its
weight delta (``latents/<stem>_delta.safetensors``) and is edited as PTI does: the pivot moves, the
image's own tuned generator (:func:`item_generator`) renders it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..results import LatentInversion, TunedInversion
from ..results.files import read_item
from ..results.latent import generator_space
from ..runs import load_items
from ..runs.dataset_reader import dataset_run, is_dataset_run

_EXPECTED = ("latent .npz files written by `invertkit invert` (a run folder's latents/<name>.npz), "
             "or a run folder holding run.json and latents/")


@dataclass
class LatentItem:
    """One latent read from a file.

    Attributes:
        name: the file's stem (``"a"`` for ``latents/a.npz``), used to name outputs.
        result: the image's typed result (one image; a PTI pivot is a ``TunedInversion`` with its delta).
        file: the latent file.
    """

    name: str
    result: LatentInversion
    file: Path

    @property
    def latent(self) -> Tensor:
        """``[1, *G.latent_shape(space)]`` float32 on CPU (``z-sphere`` latents are z)."""
        return self.result.latents

    @property
    def space(self) -> str:
        """The space recorded in the file (``"w+"``, ``"w"``, ``"z-sphere"`` ...)."""
        return self.result.space

    @property
    def tuned(self) -> bool:
        """Whether the latent is a PTI pivot with its own tuned weights."""
        return isinstance(self.result, TunedInversion)

    @property
    def edit_space(self) -> str:
        """The space an edit starts from: ``space``, or a layerwise result's latent space."""
        return self.result.latent_space if self.result.layer_state is not None else self.space

    @property
    def base_space(self) -> str:
        """The generator space the latent lives in (``z`` for ``z-sphere``)."""
        return self.result.latent_space


def latent_files(path: str | os.PathLike[str]) -> list[Path]:
    """The latent files ``path`` names: itself (a ``.npz``), the ``.npz`` files of a folder, or, for a
    folder without any, those of its ``latents/`` (a run folder), sorted by name.

    Raises:
        ConfigError: the path does not exist, is not a ``.npz`` file, or holds no latent files.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise ConfigError(f"{p}: not a latent file; expected {_EXPECTED}")
        return [p]
    if not p.is_dir():
        raise ConfigError(f"{p}: no such file or folder; expected {_EXPECTED}")
    files = _npz_in(p)
    folder = p
    if not files and (p / "latents").is_dir():  # a run folder (run.json is written last: an interrupted run counts too)
        folder = p / "latents"
        files = _npz_in(folder)
    if not files:
        raise ConfigError(f"{p}: no latents found (no .npz files in {folder}); expected {_EXPECTED}")
    return files


def _npz_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() == ".npz")


def read_latent(file: str | os.PathLike[str], G: Generator, *, layerwise: bool = False) -> LatentItem:
    """One latent file, read into its typed result and checked against ``G`` (space and shape).

    ``layerwise``: also accept a layerwise (``f:LAYER``: ``fs-encoder``, ``optimize`` in ``f:LAYER``)
    result, whose latent edits with its feature residual re-added (``editing.apply.render_layer_edits``);
    interpolation has no such rule and leaves it False.

    Raises:
        LatentSpaceError: unreadable file, a diffusion result or (unless ``layerwise``) a layerwise one
            (no latent code to edit), or a space or shape ``G`` does not have.
    """
    f = Path(file)
    item = read_item(f)  # checked against G before anything is rendered with it
    if item.kind == "diffusion" or (not layerwise and (item.layer is not None or item.space.startswith("f:"))):
        raise LatentSpaceError(f"{f}: a {item.space} {item.kind} result holds no latent code of a GAN (layerwise state "
                               "or a diffusion state); it cannot be edited or interpolated (invert in w+ or w for that)")
    base = item.latent_space or generator_space(item.space)
    if base not in G.spaces:
        raise LatentSpaceError(f"{f}: a {item.space!r} latent, but {G.name} has only {', '.join(G.spaces)}; "
                               "pass the generator the latent was inverted into (see the run's run.json)")
    want = tuple(G.latent_shape(base))
    if tuple(item.latent.shape) != (1, *want):
        raise LatentSpaceError(f"{f}: latent is {list(item.latent.shape)}, but one {base} latent of {G.name} is {[1, *want]}; "
                               "pass the generator the latent was inverted into (see the run's run.json)")
    result = load_items([f], G)  # its reconstruction: the run's saved image, else rendered by G
    assert isinstance(result, LatentInversion)
    return LatentItem(f.stem, result, f)


def read_latents(path: str | os.PathLike[str], G: Generator, ids: list[str] | None = None, *,
                 layerwise: bool = False) -> list[LatentItem]:
    """Every latent ``path`` names (see :func:`latent_files`), each checked against ``G``; for a dataset
    run (``results/part-*.parquet``), the rows ``ids`` (all of them for a run of at most 1000 rows).

    All files are read before anything is returned, so a bad one stops a command before any work.

    Raises:
        ConfigError: nothing to read at ``path``.
        LatentSpaceError: a file is unreadable or does not fit ``G`` (the message names it).
    """
    if is_dataset_run(path):
        return _dataset_latents(Path(path), G, ids, layerwise=layerwise)
    if ids:
        raise ConfigError(f"{path}: --ids selects rows of a dataset run (a folder with results/part-*.parquet); this is not one")
    return [read_latent(f, G, layerwise=layerwise) for f in latent_files(path)]


def _dataset_latents(folder: Path, G: Generator, ids: list[str] | None, *, layerwise: bool = False) -> list[LatentItem]:
    """Rows of a dataset run as latent items, named by their ids (made file-name safe)."""
    run = dataset_run(folder, G, ids)
    result = run.result
    if not isinstance(result, LatentInversion) or (not layerwise and (result.layer_state is not None or result.space.startswith("f:"))):
        raise LatentSpaceError(f"{folder}: a {result.space} {result.kind} run holds no latent code of a GAN; it cannot be "
                               "edited or interpolated (invert in w+ or w for that)")
    return [LatentItem(stem, result.select([k]), folder / "results") for k, stem in enumerate(run.stems)]


def item_generator(G: Generator, item: LatentItem) -> Generator:
    """The generator that renders ``item``: ``G`` itself, or for a PTI result a tuned copy of ``G``
    with the image's weight delta added. Nothing is cached: drop the copy when done with the item.

    Raises:
        CheckpointError: the delta was made for another generator.
    """
    if isinstance(item.result, TunedInversion):
        return item.result.generator(G, 0)
    return G
