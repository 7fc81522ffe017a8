"""The shipped StyleGAN2 (``stylegan2-faces32``): what users rely on when they pick it from the zoo.

Its weights ship inside the package (float16, read back as float32); the model is distilled from the
DigiFace DCGAN with paired latents, so its z means the DCGAN's z, and its coarse W+ rows carry layout.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from invertkit.generators import ZOO, load_generator
from invertkit.generators.stylegan2 import StyleGAN2Generator

ENTRY = ZOO.get("stylegan2-faces32")
pytestmark = pytest.mark.skipif(ENTRY.locate() is None, reason="stylegan2-faces32 weights are not in this checkout")


@pytest.fixture(scope="module")
def G() -> StyleGAN2Generator:
    torch.set_num_threads(1)
    return load_generator("stylegan2-faces32")


def test_listed_shipped_small_and_float16():
    from safetensors import safe_open

    path = ENTRY.locate()
    assert ENTRY.name.startswith("stylegan2-") and "stylegan2-faces32" in ZOO.names()
    assert path.stat().st_size < 10 * 2**20
    with safe_open(str(path), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in list(f.keys())[:5])


def test_spaces_and_shapes(G):
    assert isinstance(G, StyleGAN2Generator)
    assert (G.resolution, G.channels, G.num_ws) == (32, 3, 8)
    assert set(G.spaces) >= {"z", "w", "w+", "s", "p", "pn"}
    z = G.sample_latent(4, "z", seed=0)
    assert torch.equal(z, G.sample_latent(4, "z", seed=0))
    x = G.synthesize(z, "z")
    assert x.shape == (4, 3, 32, 32) and torch.isfinite(x).all()
    assert float(x.std()) > 0.1  # images, not a constant


def test_z_is_the_teachers_z(G):
    """Distillation paired the latents: G(z) is closer to the DCGAN's face for the same z than to the
    DCGAN's face for another z (a model whose pairing failed draws faces unrelated to its z)."""
    dcgan = load_generator("dcgan-digiface64")
    z = torch.randn(32, 100, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        t = F.avg_pool2d(dcgan.synthesize(z, "z"), 2).clamp(-1, 1)
        g = G.synthesize(z, "z").clamp(-1, 1)
    paired = (g - t).abs().mean((1, 2, 3))
    shuffled = (g - t.roll(1, 0)).abs().mean((1, 2, 3))
    assert float(paired.mean()) < 0.9 * float(shuffled.mean())


def test_coarse_rows_carry_layout(G):
    """Style mixing: coarse rows (4 and 8 px) from A, the rest from B; the mix's 8x8 layout is A's."""
    def layout(x):
        g = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 8).flatten(1)
        g = g - g.mean(1, keepdim=True)
        return g / g.norm(dim=1, keepdim=True)

    with torch.no_grad():
        wa = G.convert(G.sample_latent(16, "z", seed=1), "z", "w+")
        wb = G.convert(G.sample_latent(16, "z", seed=2), "z", "w+")
        xa, xb = G.synthesize(wa, "w+"), G.synthesize(wb, "w+")
        xm = G.synthesize(torch.cat([wa[:, :4], wb[:, 4:]], 1), "w+")
    to_a = (layout(xm) * layout(xa)).sum(1).mean()
    to_b = (layout(xm) * layout(xb)).sum(1).mean()
    assert float(to_a) > float(to_b) + 0.2
