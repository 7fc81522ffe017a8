"""PGGANGenerator: a progressive-growing GAN (pytorch_GAN_zoo PGAN) behind the Generator protocol."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..simple import SequentialGenerator
from .config import PGGANConfig
from .network import PGGANNetwork


class PGGANGenerator(SequentialGenerator):
    """A PGGAN generator (Karras et al. 2018) with the single latent space ``"z"``: z ~ N(0, I) of
    ``config.latent_dim`` (the authors' ``buildNoiseData``; the network pixel-normalises it first).

    Output range: ``synthesize`` returns the network's output as the authors' ``GNet`` produces it,
    ``N x C x R x R``. For the MSE and DCGAN losses that ends in a ``tanh`` and lies in (-1, 1); for
    WGANGP and Logistic (the authors' default, and their released models) there is no final
    activation: the values are nominally in [-1, 1] but are *not* clamped, so a few pixels can lie
    slightly outside. That keeps gradients intact for inversion; invertkit's image writers clamp to
    [-1, 1] as the authors' own ``saveTensor`` does.

    Capabilities: :class:`~..capabilities.Tunable` (the whole network, for PTI) and
    :class:`~..capabilities.LayerSplitting` (``f:LAYER`` cuts between the stages of
    :meth:`PGGANNetwork.as_sequence`: ``"1"`` after the latent input, ``"2"`` after the 4x4 format
    layer, ``"3"`` after scale 0, then after each further scale).
    """

    family_label = "PGGAN checkpoints (pytorch_GAN_zoo PGAN .pth)"

    def __init__(self, config: PGGANConfig, state_dict: Mapping[str, Tensor], *, name: str = "pggan",
                 meta: dict[str, Any] | None = None) -> None:
        network = PGGANNetwork(config).load(dict(state_dict))
        super().__init__(network, (config.latent_dim,), config.resolution, config.dim_output, name=name)
        self.config = config
        self.meta = dict(meta or {})

    def describe(self) -> dict[str, object]:
        out = super().describe()
        out["config"] = self.config.to_dict()
        if self.meta:
            out["checkpoint"] = dict(self.meta)
        return out


def load_pggan(path: str | os.PathLike[str], device: torch.device | str = "cpu", *, which: str | None = None) -> PGGANGenerator:
    """Read a pytorch_GAN_zoo PGAN checkpoint (see :func:`.checkpoint.read_pggan`) as a generator on ``device``."""
    from .checkpoint import read_pggan

    loaded = read_pggan(path, which=which)
    return PGGANGenerator(loaded.config, loaded.state_dict, name=os.path.basename(os.fspath(path)),
                          meta=loaded.meta).to(device)
