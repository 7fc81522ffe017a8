"""``load_generator``: one entry point for zoo names and checkpoint files of every format."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from .base import Generator
from .zoo import ZOO


def load_generator(
    path_or_name: str | os.PathLike[str],
    device: torch.device | str = "cpu",
    *,
    weights: str | os.PathLike[str] | None = None,
    delta: str | os.PathLike[str] | None = None,
) -> Generator:
    """Load a generator by zoo name (``"dcgan-digiface64"``), from a checkpoint file, or from a
    diffusers model folder (``"diffusers:PATH"``, see ``invertkit.diffusion.generator``), or the exact
    Gaussian-data diffusion / flow model (``"analytic:diffusion"``, ``"analytic:flow"``).

    Checkpoint formats are detected from the file's content: NVIDIA StyleGAN2-ADA ``.pkl`` (read by a
    restricted unpickler: nothing in the file executes), rosinality ``.pt`` (``weights_only`` load)
    and invertkit's native ``.safetensors``.

    Args:
        path_or_name: a name listed by ``invertkit zoo`` or a path to a checkpoint.
        device: where the weights go.
        weights: for zoo models, the weight file to use instead of the default location.
        delta: a weight delta file (``<name>_delta.safetensors`` from a ``pti`` run) to add to the
            loaded weights; it must have been made from this generator (see ``generators.tuning``).

    Raises:
        CheckpointError: unknown name, missing or unreadable file, unsupported network, or a delta
            made for another generator.
    """
    key = os.fspath(path_or_name)
    if key.startswith("diffusers:"):  # a diffusers model folder (invertkit.diffusion)
        if weights is not None or delta is not None:
            raise CheckpointError(f"{key}: --weights and --delta are for GAN checkpoints; a diffusers folder holds its own weights")
        from ..diffusion.generator import load_diffusers

        return load_diffusers(key[len("diffusers:"):], device)
    if key.startswith("analytic:"):  # the exact Gaussian-data model (invertkit.diffusion.analytic_generator)
        from ..diffusion.analytic_generator import load_analytic

        return load_analytic(key[len("analytic:"):]).to(device)
    if key in ZOO:
        gen = ZOO.get(key).load(weights)
    else:
        if weights is not None:
            raise CheckpointError(f"--weights/weights= is only for zoo models; {key} is not one ({', '.join(ZOO.names())})")
        path = Path(key)
        if not path.exists():
            raise CheckpointError(
                f"{key}: no such file, and not a zoo model name (zoo: {', '.join(ZOO.names())}); check the path"
            )
        from .checkpoints import read_checkpoint  # local: keeps `import invertkit` light
        from .stylegan2 import StyleGAN2Generator

        loaded = read_checkpoint(path)
        gen = StyleGAN2Generator(loaded.config, loaded.state_dict, name=path.name)
    gen = gen.to(device)
    if delta is not None:
        from .tuning import apply_delta, read_delta

        tensors, meta = read_delta(delta)
        gen = apply_delta(gen, tensors, meta=meta, source=os.fspath(delta), copy_generator=False)
    return gen
