"""Edit directions: K unit vectors in one latent space of one generator, saved as one small file.

Every discovery method (``sefa``, ``ganspace``, ``interfacegan``, ``stylespace``) returns a
:class:`Directions`; :mod:`invertkit.editing.apply` moves latents along them. A direction's strength
unit is, by default, one standard deviation of the generator's own latent distribution along it
(``sigmas``), so ``--strength -3:3`` means the same thing for a SeFa eigenvector in W, a GANSpace
component and an InterFaceGAN normal in Z (in Z the two units coincide: z ~ N(0, I)).

File format: one ``.safetensors`` with tensors ``vectors [K, *shape]``, ``sigmas [K]``, ``values [K]``
and a JSON header (``invertkit.directions``) holding space, layers, names, method, the generator's
identity (name, shapes, sha256 of its weights) and how the directions were found. Nothing in the
file executes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces
from ..untrusted import one_line

METADATA_KEY = "invertkit.directions"
FORMAT_VERSION = 1
DIRECTION_SPACES = ("z", "w", "s")  # spaces a direction lives in (W+ edits are W directions on chosen rows)
SIGMA_SAMPLES = 10_000  # latents drawn to measure the spread along each direction
_SIGMA_SEED = 3_000_017  # keeps those draws apart from sample_latent(seed=...) of users and tests


@dataclass
class Directions:
    """K edit directions in ``space`` of one generator.

    Attributes:
        vectors: ``[K, *G.latent_shape(space)]`` float32, each of unit Euclidean norm.
        sigmas: ``[K]`` standard deviation of ``G``'s latent distribution along each vector (the
            strength unit of ``units="sigma"`` edits).
        values: ``[K]`` what the method ranks by: eigenvalue (SeFa), explained variance (GANSpace),
            boundary accuracy (InterFaceGAN), channel relevance (StyleSpace).
        space: ``"z"``, ``"w"`` or ``"s"``.
        layers: W+ rows an edit changes by default (W directions on StyleGAN generators); None: all.
        names: one label per direction (``"sefa 0"``, ``"digit 3"``, ``"b16.conv0 c12"``).
        method: the discovery method.
        generator: identity of the generator they were found for (``describe()`` plus ``digest``).
        info: how they were found (options, samples, layers of the weights used ...).
    """

    vectors: Tensor
    sigmas: Tensor
    values: Tensor
    space: str
    method: str
    names: list[str] = field(default_factory=list)
    layers: tuple[int, ...] | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.space not in DIRECTION_SPACES:
            raise LatentSpaceError(f"directions live in one of {', '.join(DIRECTION_SPACES)}, got {self.space!r}")
        k = self.vectors.shape[0] if self.vectors.dim() >= 2 else -1
        if k < 1 or tuple(self.sigmas.shape) != (k,) or tuple(self.values.shape) != (k,):
            raise ConfigError(f"directions need vectors [K, ...] with K >= 1 and sigmas/values [K]; got "
                              f"{list(self.vectors.shape)}, {list(self.sigmas.shape)}, {list(self.values.shape)}")
        if not self.names:
            self.names = [f"{self.method} {i}" for i in range(k)]
        if len(self.names) != k:
            raise ConfigError(f"directions need {k} names, got {len(self.names)}")
        if self.layers is not None:
            self.layers = tuple(int(i) for i in self.layers)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def select(self, index: int) -> Directions:
        """Direction ``index`` alone (negative indices count from the end)."""
        k = len(self)
        if not -k <= index < k:
            raise ConfigError(f"direction index {index} is out of range: the file holds {k} directions (0..{k - 1})")
        i = index % k
        return Directions(self.vectors[i:i + 1], self.sigmas[i:i + 1], self.values[i:i + 1], self.space,
                          self.method, [self.names[i]], self.layers, dict(self.generator), {**self.info, "index": i})

    def unit(self, index: int, units: str = "sigma") -> Tensor:
        """The step of strength 1 along direction ``index``: ``[*shape]``, the unit vector times its
        sigma (``units="sigma"``) or the bare unit vector (``units="raw"``, the reference codes' unit)."""
        if units not in ("sigma", "raw"):
            raise ConfigError(f"units must be 'sigma' or 'raw', got {units!r}")
        v = self.select(index).vectors[0]
        return v * float(self.sigmas[index % len(self)]) if units == "sigma" else v


def identity(G: Generator) -> dict[str, Any]:
    """What a direction file records about its generator: ``describe()`` plus the weights' sha256."""
    from ..generators.tuning import generator_digest

    try:
        digest = generator_digest(G)
    except ConfigError:  # a generator that does not expose its weights: name and shapes only
        digest = None
    return {**G.describe(), "digest": digest}


def unit_rows(vectors: Tensor) -> Tensor:
    """Each row scaled to unit norm (``[K, ...]``); a zero row is refused (it is no direction)."""
    flat = vectors.detach().float().flatten(1)
    norms = flat.norm(dim=1, keepdim=True)
    if bool((norms < 1e-12).any()):
        raise ConfigError("a direction vector is zero; it cannot be normalised (check the labels or layers used)")
    return (flat / norms).reshape(vectors.shape).cpu()


def sigma_samples(G: Generator, space: str, n: int = SIGMA_SAMPLES, seed: int = 0, batch: int = 2000) -> Iterator[Tensor]:
    """The latents strength units are measured on: ``n`` draws of ``G`` in ``space``, in batches
    ``[<= batch, *shape]`` (seeded apart from users' seeds; the same draws for every caller)."""
    for start in range(0, n, batch):
        yield G.sample_latent(min(batch, n - start), space, seed=_SIGMA_SEED + seed + start)


@torch.no_grad()
def latent_sigmas(G: Generator, space: str, vectors: Tensor, n: int = SIGMA_SAMPLES, seed: int = 0) -> Tensor:
    """Standard deviation of ``G``'s latents in ``space`` projected on each unit vector: ``[K]``.

    In Z (N(0, I)) it is 1 for every unit vector; in W and S it is measured on ``n`` sampled latents.
    """
    if space == "z":
        return torch.ones(vectors.shape[0])
    flat = vectors.flatten(1).to(G.device)
    proj = [lat.flatten(1) @ flat.T for lat in sigma_samples(G, space, n, seed)]
    return torch.cat(proj).std(0).cpu()


def save_directions(directions: Directions, path: str | os.PathLike[str]) -> Path:
    """Write ``directions`` to ``path`` (``.safetensors``) atomically."""
    from ..io.safetensors_file import write_safetensors

    d = directions
    header = {"format_version": FORMAT_VERSION, "space": d.space, "method": d.method, "names": d.names,
              "layers": None if d.layers is None else list(d.layers), "generator": d.generator, "info": d.info}
    tensors = {"vectors": d.vectors.detach().float().cpu().contiguous(),
               "sigmas": d.sigmas.detach().float().cpu().contiguous(),
               "values": d.values.detach().float().cpu().contiguous()}
    return write_safetensors(path, tensors, {METADATA_KEY: json.dumps(header, sort_keys=True)}, "directions file")


# a saved direction is a unit vector: its norm may differ from 1 by float32 rounding, never by more
UNIT_TOLERANCE = 1e-3
# the largest strength unit (a standard deviation of a latent distribution along a unit vector):
# W, Z, S and P spreads are of order 0.01 to 100; a larger sigma only comes from a damaged file
MAX_SIGMA = 1e4


def check_direction_values(vectors: Tensor, sigmas: Tensor, *, where: str) -> None:
    """Refuse direction vectors that are not of unit norm and strength units (sigmas) that are not
    finite, positive and below :data:`MAX_SIGMA`, naming the tensor and the direction."""
    if vectors.dim() >= 1 and vectors.shape[0]:
        norms = vectors.detach().double().reshape(vectors.shape[0], -1).norm(dim=1)
        off = (norms - 1).abs() > UNIT_TOLERANCE
        if bool(off.any()):
            k = int(off.nonzero()[0])
            raise CheckpointError(f"{where}: tensor vectors, direction {k} has norm {float(norms[k]):.4g}, not 1 "
                                  f"(within {UNIT_TOLERANCE:g}); the file is damaged, find the directions again")
    bad = (~torch.isfinite(sigmas)) | (sigmas <= 0) | (sigmas.abs() > MAX_SIGMA)
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise CheckpointError(f"{where}: tensor sigmas, direction {k} has strength unit {float(sigmas[k]):.4g}; a sigma is "
                              f"a finite number in (0, {MAX_SIGMA:g}]: the file is damaged, find the directions again")


def load_directions(path: str | os.PathLike[str], G: Generator | None = None) -> Directions:
    """Read a file written by :func:`save_directions`; with ``G``, check that they were found for it.

    Raises:
        CheckpointError: missing, unreadable or malformed file; vectors that do not fit ``G``'s space;
            directions found for a generator with other weights.
    """
    from ..io.safetensors_file import read_safetensors

    p = Path(path)
    tensors, header = read_safetensors(p, METADATA_KEY, "directions file", "find directions with `invertkit directions`")
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: unsupported directions format (this invertkit reads version {FORMAT_VERSION})")
    missing = [k for k in ("vectors", "sigmas", "values") if k not in tensors]
    if missing:
        raise CheckpointError(f"{p}: the directions file lacks {', '.join(missing)}; it is damaged")
    for name, t in tensors.items():
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{p}: tensor {name} of the directions holds NaN or infinity (or is not floating point); "
                                  "the file is damaged, find the directions again")
    check_direction_values(tensors["vectors"], tensors["sigmas"], where=str(p))
    try:
        d = Directions(tensors["vectors"].float(), tensors["sigmas"].float(), tensors["values"].float(),
                       str(header["space"]), str(header["method"]), [str(n) for n in header.get("names") or []],
                       header.get("layers"), dict(header.get("generator") or {}), dict(header.get("info") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{p}: invalid directions header ({one_line(exc, 160)})") from exc
    if G is not None:
        check_generator(d, G, where=str(p))
    return d


def check_generator(d: Directions, G: Generator, *, where: str = "directions") -> None:
    """Refuse directions whose vectors do not fit ``G`` or that were found for other weights."""
    if d.space not in G.spaces:
        raise LatentSpaceError(f"{where}: directions in {d.space!r} space, but {G.name} has only {', '.join(G.spaces)}")
    want = tuple(G.latent_shape(d.space))
    if tuple(d.vectors.shape[1:]) != want:
        raise LatentSpaceError(f"{where}: direction vectors are {list(d.vectors.shape[1:])}, but {d.space} of {G.name} "
                               f"is {list(want)}; these directions belong to another generator")
    if d.layers is not None and isinstance(G, StyleSpaces):
        rows = G.num_ws
        if any(not 0 <= i < rows for i in d.layers):
            raise LatentSpaceError(f"{where}: layers {list(d.layers)} out of range for {G.name}'s {rows} W+ rows")
    digest = d.generator.get("digest")
    if digest:
        mine = identity(G).get("digest")
        if mine and mine != digest:
            raise CheckpointError(f"{where}: found for {d.generator.get('name', '?')} with other weights "
                                  f"(sha256 {digest[:12]}, this generator {mine[:12]}); find directions for this generator")
