"""Reading a run folder back: ``load_run(path)`` returns the typed result the run produced.

``run.json`` (written first, and again after each batch) names the result type, the run format and
every image whose files are complete: an interrupted run reads back as the images it finished.
Temporary files of unfinished writes (``.tmp-*``) are never read. A folder without run.json (written
by an older invertkit that was interrupted) has only ``latents/``, whose files describe themselves,
so it reads back too (in file-name order, without metrics). Reconstructions come from ``images/<stem>_recon.png``
(what the run delivered, 8-bit); ``run.result.render(G)`` re-renders them from the saved state.

Run format 1 (invertkit 0.1.0) folders read the same for plain latents, PTI deltas and diffusion
states; layerwise (``f:LAYER``) and noise-map runs of that version did not keep what re-renders them
and are refused with one line saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import CheckpointError, ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..io.atomic import is_temporary
from ..io.images import pil_to_tensor
from ..results import DiffusionInversion, InversionResult, LatentInversion, Timings, TunedInversion
from ..results.diffusion import STATE_SUFFIX, diffusion_from_items
from ..results.files import FORMAT_VERSION, ItemArrays, read_item
from ..results.tuned import DELTA_SUFFIX
from .writer import TIMING_COLUMNS, unique_stem

_EXPECTED = "a run folder written by `invertkit invert` (run.json, latents/), its latents/ folder, or one of its latents/<name>.npz files"


@dataclass
class Run:
    """A run folder read back.

    Attributes:
        path: the folder.
        names: the images' names (their file names when inverted), in run order.
        stems: their file stems inside the folder (``latents/<stem>.npz``).
        result: the typed result of all images (reconstructions: the saved 8-bit images).
        config: the run's resolved options (run.json).
        generator: the description of the generator the run used (run.json; empty if absent).
        failures: inputs that failed, name -> message.
        run_format: 1 (invertkit 0.1.0) or 2.
    """

    path: Path
    names: list[str]
    stems: list[str]
    result: InversionResult
    config: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    run_format: int = FORMAT_VERSION

    def check_generator(self, G: Generator) -> None:
        """Refuse a generator other than the run's (by weight fingerprint when the run recorded one)."""
        want = self.generator.get("fingerprint")
        if want and want != G.fingerprint():
            raise ConfigError(f"{self.path} was inverted into {self.generator.get('name')!r}; {G.name!r} has other weights: "
                              "pass the generator the run used (see its run.json)")
        shapes = self.generator.get("latent_shapes")
        if not want and isinstance(shapes, dict) and self.result.space in shapes and self.result.space in G.spaces:
            if list(G.latent_shape(self.result.space)) != list(shapes[self.result.space]):
                raise ConfigError(f"{self.path} holds {self.result.space} latents of {self.generator.get('name')!r}, not of {G.name!r}")

    def render(self, G: Generator) -> Tensor:
        """The run's images re-rendered by ``G`` from the saved state (``result.render(G)``)."""
        self.check_generator(G)
        return self.result.render(G)


def _run_json(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); the run folder is damaged") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a run description (expected a JSON object)")
    return doc


def _read_png(path: Path) -> Tensor:
    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_tensor(img)
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"{path}: the run's reconstruction is unreadable ({exc}); re-render it with result.render(G)") from None


def _kind(item: ItemArrays, npz: Path) -> str:
    if item.format_version >= 2:
        return item.kind
    stem = npz.name[: -len(".npz")]  # format 1 said nothing: the sibling files tell
    if npz.with_name(stem + STATE_SUFFIX).is_file():
        return "diffusion"
    if npz.with_name(stem + DELTA_SUFFIX).is_file():
        return "tuned"
    return "latent"


def load_items(files: Sequence[Path], G: Generator | None = None, *, config: dict[str, Any] | None = None,
               reconstructions: Tensor | None = None) -> InversionResult:
    """The typed result of latent files of one run (``latents/<stem>.npz``, siblings beside them).

    Args:
        files: the latent files, in order.
        G: the run's generator; needed for diffusion results (states are checked against it) and to
            re-render when ``reconstructions`` is None and a file has no saved image.
        config: the run's config (run.json), used to spot format-1 runs whose state was not saved.
        reconstructions: the images to attach (default: ``images/<stem>_recon.png`` beside the
            latents folder, else ``G``'s rendering).
    """
    if not files:
        raise ConfigError(f"no latent files given; expected {_EXPECTED}")
    items = [read_item(f) for f in files]
    kinds = {_kind(it, f) for it, f in zip(items, files)}
    spaces = {it.space for it in items}
    if len(kinds) != 1 or len(spaces) != 1:
        raise ConfigError(f"{files[0].parent}: latent files of different kinds or spaces ({', '.join(sorted(kinds | spaces))}) "
                          "are not one run; pass one run's files")
    kind = kinds.pop()
    where = str(files[0] if len(files) == 1 else files[0].parent)
    cfg = config or {}
    if items[0].format_version < 2 and cfg.get("noise") is True:
        raise LatentSpaceError(f"{where}: written by invertkit 0.1 (run format 1), which did not keep the optimised noise "
                               "maps; re-run the inversion with this version to re-render it")
    recon = reconstructions if reconstructions is not None else _saved_images(files)
    if kind == "diffusion":
        if G is None:
            raise ConfigError(f"{where}: reading a diffusion run needs its model (load_run(path, G))")
        states = [f.with_name(f.name[: -len(".npz")] + STATE_SUFFIX) for f in files]
        missing = [s for s in states if not s.is_file()]
        if missing:
            raise CheckpointError(f"{missing[0]}: missing; the diffusion state beside {missing[0].name.replace(STATE_SUFFIX, '.npz')} is needed to re-render it")
        result: InversionResult = diffusion_from_items(items, states, recon if recon is not None else torch.zeros(0), G)
    else:
        result = LatentInversion.from_items(items, recon if recon is not None else torch.zeros(0), where=where)
        if kind == "tuned":
            deltas = [f.with_name(f.name[: -len(".npz")] + DELTA_SUFFIX) for f in files]
            missing = [d for d in deltas if not d.is_file()]
            if missing:
                raise CheckpointError(f"{missing[0]}: missing; a pti result needs each image's weight delta to re-render it")
            result = TunedInversion.with_deltas(result, deltas)  # type: ignore[arg-type]
        elif kind != "latent":
            raise CheckpointError(f"{where}: unknown result kind {kind!r} (written by a newer invertkit?)")
    if cfg:
        result.config = dict(cfg)
    if recon is None:
        if G is None:
            raise ConfigError(f"{where}: no saved reconstruction images beside the latents; pass the generator to render them")
        result.reconstructions = result.render(G)
    return result


def _saved_images(files: Sequence[Path]) -> Tensor | None:
    """``images/<stem>_recon.png`` of every latent file, as one batch, or None if any is missing."""
    pngs = [f.parent.parent / "images" / f"{f.name[: -len('.npz')]}_recon.png" for f in files]
    if not all(p.is_file() for p in pngs):
        return None
    return torch.cat([_read_png(p) for p in pngs])


def _latent_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.name.endswith(".npz") and not is_temporary(f.name)
                  and not f.name.endswith(".tmp.npz"))  # the temporary name of invertkit 0.1 too


def load_run(path: str | os.PathLike[str], G: Generator | None = None, *, ids: Sequence[str] | None = None) -> Run:
    """Read a run folder (or its ``latents/`` folder, or one latent file) into a :class:`Run`.

    Args:
        path: what ``invertkit invert`` (or ``bench``, for each method) wrote.
        G: the run's generator, checked against the one the run recorded; needed for diffusion runs.
        ids: dataset runs (``results/part-*.parquet``): the rows to read (with ``G``; all rows of a
            run of at most 1000); see ``runs.dataset_reader.load_results``.

    Raises:
        ConfigError: not a run, a damaged ``run.json``, or another generator than the run's.
        LatentSpaceError / CheckpointError: a damaged or format-1 file that cannot be re-rendered
            (the message names it).
    """
    p = Path(path)
    from .dataset_reader import dataset_run, is_dataset_run  # it builds on this module

    if p.is_dir() and is_dataset_run(p):
        if G is None:
            raise ConfigError(f"{p}: reading a dataset run's results needs its generator (load_run(path, G, ids=[...]))")
        return dataset_run(p, G, ids)
    if ids:
        raise ConfigError(f"{p}: ids select rows of a dataset run (results/part-*.parquet); this is not one")
    if p.is_file():
        if not p.name.endswith(".npz"):
            raise ConfigError(f"{p}: not a latent file; expected {_EXPECTED}")
        folder, files = p.parent.parent, [p]
    elif p.is_dir():
        folder = p if (p / "latents").is_dir() or (p / "run.json").is_file() else p.parent
        files = []
    else:
        raise ConfigError(f"{p}: no such file or folder; expected {_EXPECTED}")
    doc = _run_json(folder) if (folder / "run.json").is_file() else {}
    fmt = int(doc.get("run_format", 1)) if doc else FORMAT_VERSION
    if fmt > FORMAT_VERSION:
        raise ConfigError(f"{folder}: run format {fmt} was written by invertkit {doc.get('invertkit', '?')}, newer than this "
                          f"one (reads format {FORMAT_VERSION}); upgrade invertkit")
    latents = folder / "latents"
    if not files:
        if doc.get("items"):
            stems = [str(e["stem"]) for e in doc["items"]]
            names = [str(e["image"]) for e in doc["items"]]
        elif doc.get("images") is not None and latents.is_dir():
            names = [str(n) for n in doc["images"]]
            used: set[str] = set()
            stems = [unique_stem(n, used) for n in names]  # run format 1 named its files the same way
        else:
            if not latents.is_dir() and p.is_dir() and _latent_files(p):
                latents = p
            if not latents.is_dir():
                raise ConfigError(f"{p}: no latents/ folder; expected {_EXPECTED}")
            stems = [f.name[: -len(".npz")] for f in _latent_files(latents)]
            names = [read_item(latents / f"{s}.npz").image or s for s in stems]  # files name their image
        files = [latents / f"{s}.npz" for s in stems]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"{missing[0]}: listed in {folder / 'run.json'} but missing; the run folder is incomplete")
        if not files:
            raise ConfigError(f"{p}: no latents found; expected {_EXPECTED}")
    else:
        stems = [files[0].name[: -len(".npz")]]
        names = stems
        if doc.get("items"):
            names = [str(e["image"]) for e in doc["items"] if e.get("stem") == stems[0]] or stems
    result = load_items(files, G, config=doc.get("config") or {})
    _attach_rows(result, folder, names)
    run = Run(folder, names, stems, result, dict(doc.get("config") or {}), dict(doc.get("generator") or {}),
              dict(doc.get("failures") or {}), fmt)
    if G is not None:
        run.check_generator(G)
    return run


def _attach_rows(result: InversionResult, folder: Path, names: Sequence[str]) -> None:
    """Metrics and per-image timings from ``metrics.json`` (absent for an interrupted run)."""
    path = folder / "metrics.json"
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = {str(r.get("image")): r for r in data if isinstance(r, dict)}
        except (OSError, ValueError):
            rows = {}
    own = [rows.get(n, {}) for n in names]
    result.metrics = [{k: float(v) for k, v in r.items() if k not in TIMING_COLUMNS and isinstance(v, (int, float))} for r in own]
    seconds = [float(r.get("seconds", 0.0)) for r in own]
    result.timings = Timings(seconds=float(np.sum(seconds)), steps=int(result.config.get("steps", 0) or 0),
                             evaluations=[float(r.get("evaluations", 0.0)) for r in own], per_image=seconds)
    nfe_back = [float(r["nfe_reconstruct"]) for r in own if "nfe_reconstruct" in r]
    if len(nfe_back) == len(own) and isinstance(result, DiffusionInversion):
        result.nfe_reconstruct = nfe_back
