"""``load_generator``: one entry point for zoo names, checkpoint files and registered model schemes.

What a spec means is registered by the model families, never hard-wired here:

- ``SCHEMES``: prefixed specs, ``"diffusers:FOLDER"``, ``"analytic:flow"`` ... (registered by
  ``invertkit.diffusion``, which sits above this package);
- ``ZOO``: named offline models (``generators.zoo``; families add their own entries);
- anything else is a checkpoint file or folder: a family registered in
  ``generators.checkpoints.families.FAMILIES`` that claims it builds it; else it is read by the safe
  StyleGAN2 readers of ``generators.checkpoints`` (NVIDIA ``.pkl``, rosinality ``.pt``, invertkit
  ``.safetensors``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..registry import Registry
from .base import Generator
from .zoo import ZOO


@dataclass(frozen=True)
class Scheme:
    """A prefixed generator spec: ``<name>:<rest>`` is loaded by ``load(rest, device)``.

    Attributes:
        load: builds the generator from the text after the prefix, on ``device``.
        usage: one line for help and errors, e.g. ``"diffusers:FOLDER[@PIXELS] (a diffusers model folder)"``.
        own_weights: the spec names its weights itself (``--weights`` / ``--delta`` do not apply).
    """

    load: Callable[[str, torch.device | str], Generator]
    usage: str
    own_weights: bool = True


SCHEMES: Registry[Scheme] = Registry("generator scheme")


def _scheme_of(key: str) -> tuple[str, str] | None:
    name, sep, rest = key.partition(":")
    if sep and name in SCHEMES:
        return name, rest
    return None


def load_generator(
    path_or_name: str | os.PathLike[str],
    device: torch.device | str = "cpu",
    *,
    weights: str | os.PathLike[str] | None = None,
    delta: str | os.PathLike[str] | None = None,
) -> Generator:
    """Load a generator by zoo name (``"dcgan-digiface64"``), from a checkpoint file, or from a
    registered scheme (``"diffusers:PATH"``, ``"analytic:flow"``; see ``SCHEMES``).

    Checkpoint formats are detected from the file's content: first the registered families
    (``checkpoints.families.FAMILIES``: NVIDIA stylegan3 ``.pkl``, PGGAN ``.pth`` of pytorch_GAN_zoo,
    pytorch-pretrained-biggan folders), then NVIDIA StyleGAN2-ADA ``.pkl`` (read by a restricted
    unpickler: nothing in the file executes; stylegan3 pickles go through the same one), rosinality
    ``.pt`` (``weights_only`` load) and invertkit's native ``.safetensors``.

    Args:
        path_or_name: a name listed by ``invertkit zoo``, a scheme spec, or a path to a checkpoint.
        device: where the weights go.
        weights: for zoo models, the weight file to use instead of the default location.
        delta: a weight delta file (``<name>_delta.safetensors`` from a ``pti`` run) to add to the
            loaded weights; it must have been made from this generator (see ``generators.tuning``).

    Raises:
        CheckpointError: unknown name, missing or unreadable file, unsupported network, or a delta
            made for another generator.
        ConfigError: ``device`` is not a device name, or this machine has no such device.
    """
    from .devices import check_device

    check_device(device, flag="device")  # one line for "cuda" on a machine without CUDA, before any weights move
    key = os.fspath(path_or_name)
    scheme = _scheme_of(key)
    if scheme is not None:
        entry = SCHEMES.get(scheme[0])
        if entry.own_weights and (weights is not None or delta is not None):
            raise CheckpointError(f"{key}: --weights and --delta are for GAN checkpoints; {entry.usage} holds its own weights")
        gen = entry.load(scheme[1], device)
    elif key in ZOO:
        gen = ZOO.get(key).load(weights).to(device)
    else:
        if weights is not None:
            raise CheckpointError(f"--weights/weights= is only for zoo models; {key} is not one ({', '.join(ZOO.names())})")
        path = Path(key)
        if not path.exists():
            schemes = ", ".join(SCHEMES.get(s).usage for s in SCHEMES)
            raise CheckpointError(
                f"{key}: no such file, and not a zoo model name (zoo: {', '.join(ZOO.names())}) nor a scheme ({schemes}); check the path"
            )
        from .checkpoints.families import claimed_by

        family = claimed_by(path)
        if family is not None:
            gen = family.build(path, device)
        else:
            from .checkpoints import read_checkpoint  # local: keeps `import invertkit` light
            from .stylegan2 import StyleGAN2Generator

            loaded = read_checkpoint(path)
            gen = StyleGAN2Generator(loaded.config, loaded.state_dict, name=path.name).to(device)
    if delta is not None:
        from .tuning import apply_delta, read_delta

        tensors, meta = read_delta(delta)
        gen = apply_delta(gen, tensors, meta=meta, source=os.fspath(delta), copy_generator=False)
    return gen
