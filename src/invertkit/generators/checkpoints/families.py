"""Checkpoint families beyond StyleGAN2: which files they claim and how they become generators.

``load_generator(path)`` asks each family in :data:`FAMILIES`, in registration order, whether it
claims ``path`` (a cheap look at the file or folder: its leading bytes, the names inside a zip, a
companion ``config.json``; never a full load). The first that does builds the generator; a file no
family claims is read as a StyleGAN2 checkpoint (``read_checkpoint``), as before.

Each family's code lives in its own package under ``generators/`` and is imported only when one of
its files is loaded, so ``import invertkit`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...registry import Registry
from ..base import Generator


@dataclass(frozen=True)
class CheckpointFamily:
    """One kind of checkpoint.

    Attributes:
        label: what users call it and the file layout, for help and errors, e.g.
            ``"BigGAN (pytorch-pretrained-biggan folder: config.json + pytorch_model.bin)"``.
        claims: ``path -> bool``; True when ``path`` is this family's file (or folder). Must not raise
            for files of other families, and must not load tensors.
        build: ``(path, device) -> Generator``; raises CheckpointError (one line naming the file and the
            fix) for a damaged or hostile file of this family.
    """

    label: str
    claims: Callable[[Path], bool]
    build: Callable[[Path, torch.device | str], Generator]


FAMILIES: Registry[CheckpointFamily] = Registry("checkpoint family")


def claimed_by(path: Path) -> CheckpointFamily | None:
    """The first registered family that claims ``path``, or None (then it is a StyleGAN2 file)."""
    for name in FAMILIES.names():
        family = FAMILIES.get(name)
        if family.claims(path):
            return family
    return None


# ------------------------------------------------------------------------------------------------
# registered families (each imports its package only when asked)
# ------------------------------------------------------------------------------------------------


def _claims_pggan(path: Path) -> bool:
    from ..pggan.checkpoint import claims_pggan

    return claims_pggan(path)


def _build_pggan(path: Path, device: torch.device | str) -> Generator:
    from ..pggan import load_pggan

    return load_pggan(path, device)


FAMILIES.add("pggan", CheckpointFamily(
    label="PGGAN (pytorch_GAN_zoo PGAN .pth: torch.save dict with config, netG, avgG)",
    claims=_claims_pggan,
    build=_build_pggan,
))


def _biggan_claims(path: Path) -> bool:
    from ..biggan.checkpoint import claims

    return claims(path)


def _biggan_build(path: Path, device: torch.device | str) -> Generator:
    from ..biggan.checkpoint import load_biggan

    return load_biggan(path, device)


FAMILIES.register("biggan")(CheckpointFamily(
    label="BigGAN-deep (pytorch-pretrained-biggan folder: config.json + pytorch_model.bin)",
    claims=_biggan_claims,
    build=_biggan_build,
))


# StyleGAN3: NVIDIA stylegan3 network pickles (the same .pkl container as StyleGAN2-ADA's)
# ------------------------------------------------------------------------------------------------


def _stylegan3_claims(path: Path) -> bool:
    from .nvidia_pkl import claims_stylegan3_pkl  # a bounded scan of the file's bytes for the input's class name

    return claims_stylegan3_pkl(path)


def _stylegan3_build(path: Path, device: torch.device | str) -> Generator:
    from ..stylegan3 import StyleGAN3Generator
    from .nvidia_pkl import read_stylegan3_pkl

    loaded = read_stylegan3_pkl(path)
    return StyleGAN3Generator(loaded.config, loaded.state_dict, name=path.name, device=device)


FAMILIES.add("stylegan3", CheckpointFamily(
    label="StyleGAN3 (NVIDIA stylegan3 network pickle .pkl, configs T and R)",
    claims=_stylegan3_claims,
    build=_stylegan3_build,
))
