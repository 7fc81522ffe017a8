"""Latents to edit: one latent file, a folder of them, or an ``invertkit invert`` run folder.

A run folder holds ``run.json`` and ``latents/<stem>.npz`` (see :mod:`invertkit.runs`); a PTI run
also holds ``latents/<stem>_delta.safetensors`` beside each pivot, the image's tuned weights as a
difference from the base generator. Such a latent is edited as PTI does: the pivot moves, the
image's own tuned generator (:func:`item_generator`) renders it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..io.latents import load_latent_file

DELTA_SUFFIX = "_delta.safetensors"
_EXPECTED = ("latent .npz files written by `invertkit invert` (a run folder's latents/<name>.npz), "
             "or a run folder holding run.json and latents/")


@dataclass
class LatentItem:
    """One latent read from a file.

    Attributes:
        name: the file's stem (``"a"`` for ``latents/a.npz``), used to name outputs.
        latent: ``[1, *G.latent_shape(space)]`` float32 on CPU (``z-sphere`` latents are z).
        space: the space recorded in the file (``"w+"``, ``"w"``, ``"z-sphere"`` ...).
        delta: the PTI weight delta beside the file (``<stem>_delta.safetensors``), or None.
        file: the latent file.
    """

    name: str
    latent: Tensor
    space: str
    delta: Path | None
    file: Path

    @property
    def base_space(self) -> str:
        """The generator space the latent lives in (``z`` for ``z-sphere``)."""
        return "z" if self.space == "z-sphere" else self.space


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


def read_latent(file: str | os.PathLike[str], G: Generator) -> LatentItem:
    """One latent file, checked against ``G`` (space and shape); its PTI delta is found beside it.

    Raises:
        LatentSpaceError: unreadable file, or a space or shape ``G`` does not have.
    """
    f = Path(file)
    latent, space = load_latent_file(f)
    if space.startswith("f:"):
        raise LatentSpaceError(f"{f}: a layerwise ({space}) result holds an intermediate feature map, not a latent "
                               "code; it cannot be edited or interpolated (invert in w+ or w for that)")
    base = "z" if space == "z-sphere" else space
    if base not in G.spaces:
        raise LatentSpaceError(f"{f}: a {space!r} latent, but {G.name} has only {', '.join(G.spaces)}; "
                               "pass the generator the latent was inverted into (see the run's run.json)")
    want = tuple(G.latent_shape(base))
    if tuple(latent.shape) != (1, *want):
        raise LatentSpaceError(f"{f}: latent is {list(latent.shape)}, but one {base} latent of {G.name} is {[1, *want]}; "
                               "pass the generator the latent was inverted into (see the run's run.json)")
    delta = f.with_name(f.stem + DELTA_SUFFIX)
    return LatentItem(f.stem, latent, space, delta if delta.is_file() else None, f)


def read_latents(path: str | os.PathLike[str], G: Generator) -> list[LatentItem]:
    """Every latent ``path`` names (see :func:`latent_files`), each checked against ``G``.

    All files are read before anything is returned, so a bad one stops a command before any work.

    Raises:
        ConfigError: nothing to read at ``path``.
        LatentSpaceError: a file is unreadable or does not fit ``G`` (the message names it).
    """
    return [read_latent(f, G) for f in latent_files(path)]


def item_generator(G: Generator, item: LatentItem) -> Generator:
    """The generator that renders ``item``: ``G`` itself, or for a PTI result a tuned copy of ``G``
    with the image's weight delta added. Nothing is cached: drop the copy when done with the item.

    Raises:
        CheckpointError: the delta file is unreadable or was made for another generator.
    """
    if item.delta is None:
        return G
    from ..generators.tuning import apply_delta, read_delta

    tensors, meta = read_delta(item.delta)
    return apply_delta(G, tensors, meta=meta, source=str(item.delta))
