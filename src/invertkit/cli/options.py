"""Small argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse

from ..errors import ConfigError


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7,10-11"`` -> ``[0, 1, 2, 3, 7, 10, 11]`` (NVIDIA's gen_images.py syntax)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected integers and ranges like 0-7,10") from None
    if not seeds:
        raise ConfigError("--seeds is empty; give e.g. 0-7")
    return seeds


def add_generator_args(p: argparse.ArgumentParser) -> None:
    """``GENERATOR`` positional plus ``--weights`` and ``--device``."""
    p.add_argument("generator", help="zoo name (see `invertkit zoo`) or checkpoint path (.pkl, .pt, .safetensors)")
    p.add_argument("--weights", default=None, help="weight file for zoo models that need one (mnist-mlp-gan)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
