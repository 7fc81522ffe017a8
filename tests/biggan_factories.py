"""Tiny BigGAN-deep generators and their package-layout folders, for the BigGAN tests."""

from __future__ import annotations

from pathlib import Path

from invertkit.generators.biggan import BigGANConfig, BigGANGenerator, save_biggan

# 32 px, width 8, attention before the third block: the golden "attn32" architecture
TINY = dict(output_dim=32, z_dim=16, class_embed_dim=16, channel_width=8, num_classes=10,
            layers=[[True, 16, 8], [True, 8, 4], [True, 4, 2], [False, 2, 1]], attention_layer_position=2,
            eps=1e-4, n_stats=51)


def tiny_config(**changes: object) -> BigGANConfig:
    return BigGANConfig.from_dict({**TINY, **changes})


def tiny_generator(seed: int = 1, **changes: object) -> BigGANGenerator:
    return BigGANGenerator(tiny_config(**changes), init_seed=seed, name="tiny-biggan")


def write_folder(folder: Path, seed: int = 1, **changes: object) -> Path:
    """``folder/config.json`` + ``folder/pytorch_model.bin`` of a tiny seeded BigGAN."""
    return save_biggan(tiny_generator(seed, **changes), folder)
