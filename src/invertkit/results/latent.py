"""``LatentInversion``: the result of every method that finds a latent of a fixed generator (optimise,
gradient-free, encoders, hybrid, plain), including layerwise (``f:LAYER``) state and noise maps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import LayerSplitting, NoiseMaps, StyleSpaces, require
from .base import InversionResult, concat_history, select_rows
from .files import ItemArrays, write_item

W_SPACES = ("w", "w+", "p", "pn")
RENDER_BATCH = 32  # images per forward pass when re-rendering


def generator_space(space: str, layer: LayerState | None = None) -> str:
    """The generator space latents of ``space`` live in: ``z`` for PULSE's ``z-sphere``, the tail
    latent's space for a layerwise result, else ``space`` itself."""
    if space == "z-sphere":
        return "z"
    if layer is not None:
        return layer.latent_space
    return space


@dataclass
class LayerState:
    """A layerwise (``f:LAYER``) result's intermediate state.

    Attributes:
        layer: the split layer (``"16"`` for StyleGAN2's block b16, ``"2"`` for a sequential module).
        tensors: the state at the cut, each ``[N, ...]`` (None where the split has no such tensor,
            e.g. StyleGAN2's skip image of a non-skip architecture).
        latent_space: the space of the result's ``latents`` (``"w+"`` for StyleGAN2, whose layers
            after the cut read w+ rows; a sequential module's start latent space, unused by its tail).
    """

    layer: str
    tensors: tuple[Tensor | None, ...]
    latent_space: str

    def select(self, index: Sequence[int]) -> LayerState:
        return LayerState(self.layer, tuple(select_rows(t, index) for t in self.tensors), self.latent_space)

    @staticmethod
    def concat(parts: Sequence[LayerState]) -> LayerState:
        first = parts[0]
        cols = [None if first.tensors[k] is None else torch.cat([p.tensors[k] for p in parts])  # type: ignore[misc]
                for k in range(len(first.tensors))]
        return LayerState(first.layer, tuple(cols), first.latent_space)


@dataclass
class LatentInversion(InversionResult):
    """Latents of a fixed generator (see :class:`~.base.InversionResult` for the common fields).

    Attributes:
        noise: optimised unit noise maps ``{layer: [N, 1, H, W]}`` (capability ``NoiseMaps``), or None.
        layer_state: the intermediate state of a layerwise result (``space`` ``"f:LAYER"``), or None;
            ``latents`` then hold the latent driving the layers after the cut.
        composite: inpainting only: known pixels as observed, the hole from the generator
            ``N x C x H x W``, or None.
    """

    noise: dict[str, Tensor] | None = None
    layer_state: LayerState | None = None
    composite: Tensor | None = None

    kind: ClassVar[str] = "latent"

    @property
    def latent_space(self) -> str:
        """The generator space of ``latents`` (``z`` for ``z-sphere``; the tail latent's for ``f:LAYER``)."""
        return generator_space(self.space, self.layer_state)

    @torch.inference_mode()
    def render(self, G: Generator) -> Tensor:
        split = None
        if self.layer_state is not None:
            split = require(G, LayerSplitting, f"re-rendering a layerwise result ({self.space})").layer_split(self.layer_state.layer)
        noisy = require(G, NoiseMaps, "re-rendering noise maps") if self.noise and split is None else None
        parts = []
        for s in range(0, self.n, RENDER_BATCH):  # bounded memory for long runs
            rows = slice(s, s + RENDER_BATCH)
            latents = self.latents[rows].to(G.device)
            noise = {k: v[rows].to(G.device) for k, v in self.noise.items()} if self.noise else None
            if split is not None:
                state = tuple(None if t is None else t[rows].to(G.device) for t in self.layer_state.tensors)  # type: ignore[union-attr]
                parts.append(split.tail(state, latents if split.tail_space else None, noise=noise))
            elif noisy is not None:
                parts.append(noisy.synthesize_with_noise(latents, self.latent_space, noise or {}))
            else:
                parts.append(G.synthesize(latents, self.latent_space))
        return torch.cat(parts) if parts else self.reconstructions[:0]

    def _own_select(self, index: Sequence[int]) -> dict[str, Any]:
        return {"noise": None if self.noise is None else {k: select_rows(v, index) for k, v in self.noise.items()},
                "layer_state": None if self.layer_state is None else self.layer_state.select(index),
                "composite": select_rows(self.composite, index)}

    def select(self, index: Sequence[int]) -> LatentInversion:
        index = list(index)
        return LatentInversion(**self._common_select(index), **self._own_select(index))

    @staticmethod
    def _own_concat(parts: Sequence[LatentInversion]) -> dict[str, Any]:
        first = parts[0]
        return {"noise": None if first.noise is None else {k: torch.cat([p.noise[k] for p in parts]) for k in first.noise},  # type: ignore[index]
                "layer_state": None if first.layer_state is None else LayerState.concat([p.layer_state for p in parts]),  # type: ignore[misc]
                "composite": None if first.composite is None else torch.cat([p.composite for p in parts])}  # type: ignore[misc]

    @classmethod
    def concat(cls, parts: Sequence[LatentInversion]) -> LatentInversion:
        return cls(**cls._common_concat(parts), **cls._own_concat(parts))

    # ---- files -----------------------------------------------------------------------------------
    def item_arrays(self, i: int, G: Generator, image: str | None = None) -> ItemArrays:
        """Image ``i``'s latent file content (see ``results.files``)."""
        latent = self.latents[i : i + 1].detach()
        extra = {}
        if self.latent_space in W_SPACES and isinstance(G, StyleSpaces):
            with torch.no_grad():  # NVIDIA's tools read "w" as [1, num_ws, w_dim]
                extra["w"] = G.convert(latent.to(G.device), self.latent_space, "w+").detach().float().cpu().numpy()
        elif self.latent_space == "z":
            extra["z"] = latent.float().cpu().numpy()
        state: dict[int, Tensor] = {}
        if self.layer_state is not None:
            state = {k: t[i : i + 1] for k, t in enumerate(self.layer_state.tensors) if t is not None}
        return ItemArrays(
            self.space, latent, self.kind, latent_space=self.latent_space,
            noise={k: v[i : i + 1] for k, v in (self.noise or {}).items()},
            layer=None if self.layer_state is None else self.layer_state.layer, state=state,
            history={k: v[:, i] for k, v in self.history.items()}, extra=extra, image=image,
        )

    def save_item(self, i: int, folder: Path, stem: str, G: Generator, *, image: str | None = None) -> list[str]:
        write_item(folder / f"{stem}.npz", self.item_arrays(i, G, image))
        return [f"{stem}.npz"]

    @classmethod
    def from_items(cls, items: Sequence[ItemArrays], reconstructions: Tensor, *, where: str) -> LatentInversion:
        """The result of several latent files of one run (``where`` names them in errors)."""
        first = items[0]
        if first.space.startswith("f:") and first.layer is None:
            raise LatentSpaceError(f"{where}: written by invertkit 0.1 (run format 1), which kept only the start latent of a "
                                   "layerwise (f:LAYER) inversion; re-run the inversion with this version to re-render it")
        latents = torch.cat([it.latent for it in items])
        noise = {k: torch.cat([it.noise[k] for it in items]) for k in first.noise} if first.noise else None
        layer_state = None
        if first.layer is not None:
            count = max(first.state) + 1 if first.state else 0
            tensors = tuple(torch.cat([it.state[k] for it in items]) if k in first.state else None for k in range(count))
            layer_state = LayerState(first.layer, tensors, first.latent_space or generator_space(first.space))
        history = concat_history([{k: v[:, None] for k, v in it.history.items()} for it in items]) if first.history else {}
        return cls(latents=latents, space=first.space, reconstructions=reconstructions, history=history,
                   noise=noise, layer_state=layer_state)


def save_latent(path: str | Path, G: Generator, latent: Tensor, space: str) -> Path:
    """Write one latent ``[1, *latent_shape]`` of ``G`` in ``space`` as a latent file, like a run's
    ``latents/<stem>.npz`` (with NVIDIA's ``w`` key for W-type spaces); returns the path."""
    p = Path(path)
    if not p.name.endswith(".npz"):
        raise LatentSpaceError(f"{p}: a latent file's name ends in .npz")
    one = LatentInversion(latents=latent.detach().cpu(), space=space, reconstructions=torch.zeros(0))
    return p.parent / one.save_item(0, p.parent, p.name[: -len(".npz")], G)[0]
