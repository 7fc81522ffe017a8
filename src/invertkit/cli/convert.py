"""``invertkit convert SRC DST``: any readable StyleGAN2 checkpoint to invertkit's native format or rosinality's."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

TARGETS = {".safetensors": "native", ".pt": "rosinality", ".pth": "rosinality"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a StyleGAN2 checkpoint (NVIDIA .pkl, rosinality .pt, native) to native or rosinality",
                       description="Convert a StyleGAN2 checkpoint (NVIDIA .pkl, rosinality .pt or native .safetensors; "
                       "read without executing code) to the native format (.safetensors) or rosinality's (.pt). "
                       "The converted generator draws the same images. Example: invertkit convert ffhq.pkl ffhq.safetensors")
    p.add_argument("src", help="checkpoint to read")
    p.add_argument("dst", help="file to write: .safetensors (native) or .pt (rosinality)")
    p.add_argument("--to", choices=["native", "rosinality"], default=None, help="output format (default: from DST's suffix)")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.add_argument("--lossy", action="store_true", help="rosinality output: drop conv_clamp, which rosinality does not implement")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..generators.checkpoints import read_checkpoint, save_native, save_rosinality

    dst = Path(args.dst)
    fmt = args.to or TARGETS.get(dst.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{dst}: cannot tell the output format from the suffix; use .safetensors or .pt, or pass --to")
    if dst.exists() and not args.force:
        raise ConfigError(f"{dst}: exists; pass --force to overwrite it")
    from ..errors import CheckpointError
    from ..generators.checkpoints.families import claimed_by

    family = claimed_by(Path(args.src))
    if family is not None:  # other families are read where they are used, not converted to StyleGAN2 formats
        raise CheckpointError(f"{args.src}: a {family.label} file; convert writes StyleGAN2 checkpoints only, "
                              "so use this file directly (-g/--generator)")
    loaded = read_checkpoint(args.src)
    if fmt == "native":
        save_native(loaded, dst)
    else:
        save_rosinality(loaded, dst, strict=not args.lossy)
    print(f"wrote {dst} ({fmt}, {loaded.config.img_resolution}x{loaded.config.img_resolution} StyleGAN2 from {loaded.format})")
    return 0
