"""Shared fixtures: tiny seeded generators and the location of ../shared/data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from invertkit.generators import wrap
from invertkit.generators.architectures import mlp_generator

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread inside the block (module fixtures: the per-test fixture below does not reach them)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    # Tests compare bits across runs; keep thread count fixed so reductions are reproducible.
    with one_thread():
        yield


def off_range_images(G, n: int, seed: int, space: str) -> torch.Tensor:
    """Images ``G`` drew, plus noise it cannot draw: a pivot cannot fit them exactly ([-1, 1])."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(n, space, seed=seed), space)
    return (x + 0.4 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # statistics caches (P_N, NSCD anchors) go to a per-session folder, never the user's ~/.cache
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path_factory.getbasetemp() / "invertkit-home"))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repo; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repo in CI)")
    return SHARED_DATA


def tiny_conv_generator(name: str = "tiny-conv"):
    """A seeded DCGAN-like wrapped nn.Sequential: z in R^8 -> 1 x 16 x 16, feature maps at 4, 8 px."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16 * 4 * 4), nn.Unflatten(1, (16, 4, 4)), nn.ReLU(),
                        nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh())
    return wrap(net, (8,), 16, 1, name=name)


@pytest.fixture
def tiny_mlp():
    """A seeded MLP generator: z in R^8 -> 1 x 8 x 8 greyscale images."""
    torch.manual_seed(0)
    net = mlp_generator(z_dim=8, hidden=32, out_dim=64)
    return wrap(net, (8,), 8, 1, name="tiny-mlp")


@pytest.fixture(scope="session")
def tiny_sg2():
    """A seeded 16 px StyleGAN2 (32-d z/w, 2 mapping layers, 32/32/16 channels), random weights."""
    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32)
    return StyleGAN2Generator(cfg, name="tiny-sg2", init_seed=0)
