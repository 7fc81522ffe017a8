"""Tiny PGGAN checkpoints in pytorch_GAN_zoo's layout, written at test time.

``write_pggan`` saves ``{"config": ..., "netG": ..., "netD": {}, "avgG": ...}`` as the authors'
``BaseGAN.save`` does. A ``"record"`` config is pickled as ``models.utils.config.BaseConfig`` (the
authors' class) through fake modules registered only while saving; ``"dict"`` is the plain-dict
config their ``updateConfig`` also accepts.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from invertkit.generators.pggan import PGGANConfig

TINY = dict(latent_dim=8, depths=(8, 8, 4), dim_output=3)  # 16 px


def authors_config(cfg: PGGANConfig, loss: str = "WGANGP") -> dict[str, Any]:
    """The fields pytorch_GAN_zoo's ProgressiveGAN puts in its config for ``cfg``."""
    return {
        "depthScale0": cfg.depths[0], "initBiasToZero": cfg.init_bias_to_zero, "leakyReluLeak": cfg.leaky_relu,
        "depthOtherScales": list(cfg.depths[1:]), "perChannelNormalization": True, "alpha": cfg.alpha,
        "miniBatchStdDev": False, "equalizedlR": cfg.equalized_lr, "noiseVectorDim": cfg.latent_dim,
        "dimOutput": cfg.dim_output, "learningRate": 0.001, "attribKeysOrder": None, "categoryVectorDim": 0,
        "weightConditionG": 0.0, "weightConditionD": 0.0, "GDPP": False, "latentVectorDim": cfg.latent_dim,
        "lossCriterion": loss, "lambdaGP": 0.0, "epsilonD": 0.0, "logisticGradReal": 0.0,
    }


def random_state(cfg: PGGANConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded N(0, 1) weights and N(0, 0.2) biases in the authors' naming."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * (0.2 if k.endswith("bias") else 1.0) for k, s in cfg.layout().items()}


@contextlib.contextmanager
def authors_modules() -> Iterator[type]:
    """Register fake ``models.utils.config`` modules holding a ``BaseConfig`` class; yields the class."""
    names = ("models", "models.utils", "models.utils.config")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    base_config = type("BaseConfig", (), {"__module__": "models.utils.config"})
    mods["models.utils.config"].BaseConfig = base_config  # type: ignore[attr-defined]
    sys.modules.update(mods)
    try:
        yield base_config
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def write_pggan(path: Path, cfg: PGGANConfig | None = None, *, seed: int = 0, config: str | None = "record",
                loss: str = "WGANGP", legacy: bool = False, extra: dict[str, Any] | None = None,
                fields: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> Path:
    """Write a PGAN checkpoint: avgG with ``seed``, netG with ``seed + 1``.

    Args:
        config: ``"record"`` (the authors' BaseConfig), ``"dict"``, or None (no config entry).
        legacy: torch's pre-1.6 stream format (as the 2019 released weights).
        extra: more top-level entries; ``fields``: config fields to override; ``state``: avgG to use.
    """
    cfg = cfg or PGGANConfig(**TINY)
    payload: dict[str, Any] = {}
    values = {**authors_config(cfg, loss), **(fields or {})}
    with authors_modules() as base_config:
        if config == "record":
            rec = base_config()
            rec.__dict__.update(values)
            payload["config"] = rec
        elif config == "dict":
            payload["config"] = values
        payload["netG"] = random_state(cfg, seed + 1)
        payload["netD"] = {}
        payload["avgG"] = state if state is not None else random_state(cfg, seed)
        payload.update(extra or {})
        torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path
