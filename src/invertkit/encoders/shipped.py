"""Finding the encoder for a generator: an explicit file, the user's cache, or the encoders shipped
with invertkit for the offline zoo generators.

Lookup for ``"auto"``: ``$INVERTKIT_HOME/encoders/<generator>/<arch>.safetensors`` (where a user
keeps encoders they trained for their own checkpoints), then ``invertkit/encoders/weights/<generator>/
<arch>.safetensors`` inside the package (trained by the command in the README).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..generators.base import Generator
from ..store.home import home_path
from .files import load_encoder
from .nets import Encoder

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


def encoder_candidates(generator: str, arch: str) -> list[Path]:
    """Where an encoder of ``arch`` for the generator named ``generator`` is looked for, in order."""
    return [home_path("encoders", generator, f"{arch}.safetensors"), SHIPPED_DIR / generator / f"{arch}.safetensors"]


def find_encoder(G: Generator, archs: tuple[str, ...]) -> Path | None:
    """The first existing encoder file for ``G`` among ``archs`` (in preference order), or None."""
    for arch in archs:
        for path in encoder_candidates(G.name, arch):
            if path.is_file():
                return path
    return None


def shipped_encoders() -> dict[str, list[str]]:
    """Generator name -> architectures shipped in the package."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {d.name: sorted(p.stem for p in d.glob("*.safetensors") if "." not in p.stem)  # not x.bootstrap files
            for d in sorted(SHIPPED_DIR.iterdir()) if d.is_dir()}


_CACHE: dict[tuple[str, float, str], Encoder] = {}


def check_compatible(encoder: Encoder, G: Generator, where: str) -> None:
    """Refuse an encoder made for another image size or latent layout than ``G``'s."""
    c = encoder.config
    if (c.space not in G.spaces or (c.resolution, c.channels) != (G.resolution, G.channels)
            or tuple(G.latent_shape(c.space)) != c.latent_shape):
        theirs = f"{c.space} {list(G.latent_shape(c.space))}" if c.space in G.spaces else f"no {c.space} space"
        raise ConfigError(
            f"{where}: the encoder was trained for {c.generator} ({c.channels}x{c.resolution}px, {c.space} {list(c.latent_shape)}), "
            f"not for {G.name} ({G.channels}x{G.resolution}px, {theirs}); "
            f"train one with: invertkit train-encoder --generator GENERATOR --arch {c.arch} --out DIR"
        )


def resolve_encoder(G: Generator, spec: str, archs: tuple[str, ...]) -> Encoder:
    """Load the encoder ``spec`` names for ``G``: a file path, or ``"auto"`` (see the module docstring).

    Args:
        archs: acceptable architectures, preferred first (``("psp", "e4e")`` or ``("restyle",)``).

    Raises:
        ConfigError: no encoder found for ``"auto"``, or the encoder does not fit ``G`` / ``archs``.
        CheckpointError: the file is missing or malformed.
    """
    if spec == "auto":
        path = find_encoder(G, archs)
        if path is None:
            shipped = ", ".join(f"{k} ({'/'.join(v)})" for k, v in shipped_encoders().items()) or "none"
            raise ConfigError(
                f"no {'/'.join(archs)} encoder for {G.name} (shipped ones: {shipped}); train one with "
                f"`invertkit train-encoder --generator GENERATOR --arch {archs[0]} --out DIR` and pass --encoder DIR/encoder.safetensors"
            )
    else:
        path = Path(spec)
        if not path.is_file():
            raise CheckpointError(f"{spec}: no such encoder file; pass a .safetensors written by invertkit train-encoder, or 'auto'")
    key = (str(path.resolve()), path.stat().st_mtime, str(G.device))
    if key not in _CACHE:
        _CACHE[key] = load_encoder(path, G.device)
    enc = _CACHE[key]
    if enc.config.arch not in archs:
        raise ConfigError(f"{path}: a {enc.config.arch} encoder, but this method needs {' or '.join(archs)}")
    check_compatible(enc, G, str(path))
    enc.source = str(path)
    return enc


def encoder_iterations(encoder: Encoder, iterations: int | None) -> int:
    """ReStyle iterations to run: as asked, else as many as the encoder was trained with (1 for pSp/e4e)."""
    if encoder.config.arch != "restyle":
        return 1
    if iterations is not None:
        return int(iterations)
    trained = encoder.meta.get("options", {}).get("iterations") if isinstance(getattr(encoder, "meta", None), dict) else None
    return int(trained) if isinstance(trained, int) and trained > 0 else 5


__all__ = ["SHIPPED_DIR", "check_compatible", "encoder_candidates", "encoder_iterations", "find_encoder",
           "resolve_encoder", "shipped_encoders"]
