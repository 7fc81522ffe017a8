"""Registers the diffusion model family with the generator loader (``invertkit.load_generator``).

- ``diffusers:FOLDER[@PIXELS]`` / ``diffusers:ORG/NAME``: a diffusers-layout folder (``generator``);
- ``analytic:diffusion`` / ``analytic:flow[:SIZE]``: the exact Gaussian model (``analytic_generator``);
- the zoo entries ``diffusion-faces32`` and ``diffusion-mnist32``: the models shipped in
  ``diffusion/weights/faces32`` and ``diffusion/weights/mnist32``.

Only registration happens here; the loaders import diffusers (optional) when first used, so
``import invertkit`` stays light and ``invertkit.generators`` never imports this package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..generators.base import Generator
from ..generators.loading import SCHEMES, Scheme
from ..generators.zoo import ZOO, ZooEntry

FACES32 = Path(__file__).resolve().parent / "weights" / "faces32"
MNIST32 = Path(__file__).resolve().parent / "weights" / "mnist32"


def _load_diffusers(spec: str, device: torch.device | str) -> Generator:
    from .generator import load_diffusers

    return load_diffusers(spec, device)


def _load_analytic(spec: str, device: torch.device | str) -> Generator:
    from .analytic_generator import load_analytic

    return load_analytic(spec).to(device)


def _build_faces32(path: Path) -> Generator:
    from .generator import load_diffusers

    return load_diffusers(str(path.parent), name="diffusion-faces32")


def _build_mnist32(path: Path) -> Generator:
    from .generator import load_diffusers

    return load_diffusers(str(path.parent), name="diffusion-mnist32")


SCHEMES.add("diffusers", Scheme(_load_diffusers, "diffusers:FOLDER[@PIXELS] (a diffusers model folder or a cached hub id)"))
SCHEMES.add("analytic", Scheme(_load_analytic, "analytic:diffusion|flow[:SIZE] (the exact Gaussian model)"))
ZOO.add(
    "diffusion-faces32",
    ZooEntry(
        name="diffusion-faces32",
        description="prompt-conditioned pixel diffusion model, 32x32 greyscale faces; prompts '', 'photo', 'drawing'",
        resolution=32,
        channels=1,
        spaces=("noise",),
        source="trained by invertkit (python -m invertkit.diffusion.train) on ORL/LFW photos and DCGAN-drawn faces",
        how_to_get="it ships inside the invertkit package (diffusion/weights/faces32); reinstall invertkit, or retrain with make diffusion-model",
        filename="model_index.json",
        candidates=lambda: [FACES32 / "model_index.json"],
        build=_build_faces32,
    ),
)
ZOO.add(
    "diffusion-mnist32",
    ZooEntry(
        name="diffusion-mnist32",
        description="word-conditioned pixel diffusion model, 32x32 MNIST digits; prompts are sentences of up to 3 words: "
                    "a digit (zero..nine), then thin/medium/thick, then left/upright/right ('' = null prompt)",
        resolution=32,
        channels=1,
        spaces=("noise",),
        source="trained by invertkit (python -m invertkit.diffusion.train_mnist) on MNIST test digits 5000-9999 "
               "(digits 0-4999 unseen)",
        how_to_get="it ships inside the invertkit package (diffusion/weights/mnist32); reinstall invertkit, or retrain "
                   "with make mnist-diffusion-model",
        filename="model_index.json",
        candidates=lambda: [MNIST32 / "model_index.json"],
        build=_build_mnist32,
    ),
)
