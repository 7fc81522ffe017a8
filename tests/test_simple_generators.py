"""Simple generators (wrap) and the offline zoo."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invertkit
from invertkit.errors import CheckpointError, ConfigError, LatentSpaceError
from invertkit.generators import ZOO, wrap
from invertkit.generators.architectures import mlp_generator


def test_wrap_interface(tiny_mlp):
    G = tiny_mlp
    assert G.spaces == ("z",) and G.resolution == 8 and G.channels == 1
    z = G.sample_latent(3, seed=5)
    assert z.shape == (3, 8)
    assert torch.equal(z, G.sample_latent(3, seed=5))
    assert not torch.equal(z, G.sample_latent(3, seed=6))
    x = G.synthesize(z, "z")
    assert x.shape == (3, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(G.mean_latent("z"), torch.zeros(1, 8))
    assert torch.equal(G.convert(z, "z", "z"), z)
    # gradients reach the latent but not the frozen weights
    z.requires_grad_(True)
    G.synthesize(z, "z").sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in G.module.parameters())


def test_wrap_errors(tiny_mlp):
    with pytest.raises(LatentSpaceError, match="'w'.*choose one of: z"):
        tiny_mlp.synthesize(torch.zeros(1, 8), "w")
    with pytest.raises(LatentSpaceError, match=r"shape \[N, 8\]"):
        tiny_mlp.synthesize(torch.zeros(2, 7), "z")
    bad = wrap(mlp_generator(8, 16, 50), 8, 8, 1, name="bad")
    with pytest.raises(LatentSpaceError, match="returned shape"):
        bad.synthesize(torch.zeros(2, 8))
    with pytest.raises(ConfigError, match=r"latent_shape must be a tuple of positive sizes, got \(0,\)"):
        wrap(nn.Identity(), (0,), 8, 1)


def test_single_latent_without_batch_dim(tiny_mlp):
    assert tiny_mlp.synthesize(torch.zeros(8)).shape == (1, 1, 8, 8)


def test_dcgan_digiface64_loads_and_draws_faces():
    G = invertkit.load_generator("dcgan-digiface64")
    assert (G.resolution, G.channels, G.spaces) == (64, 3, ("z",))
    with torch.inference_mode():
        x = G.synthesize(G.sample_latent(4, seed=0))
    assert x.shape == (4, 3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1
    # real faces: varied images, not a constant or noise (neighbouring pixels strongly correlated)
    assert x.std() > 0.2
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9
    # batch-norm in eval mode: an image does not depend on the rest of the batch
    with torch.inference_mode():
        single = G.synthesize(G.sample_latent(4, seed=0)[:1])
    assert torch.allclose(single, x[:1], atol=1e-5)


def test_mnist_mlp_gan_needs_and_takes_weights(shared_data, tmp_path, monkeypatch):
    path = shared_data / "mnist_mlp_gan" / "generator.ckpt"
    G = invertkit.load_generator("mnist-mlp-gan", weights=path)
    assert (G.resolution, G.channels) == (28, 1)
    with torch.inference_mode():
        x = G.synthesize(G.sample_latent(8, seed=0))
    assert x.shape == (8, 1, 28, 28)
    # MNIST digits: mostly black background (-1) with bright strokes
    assert (x < -0.9).float().mean() > 0.5 and (x > 0.5).float().mean() > 0.05
    # a wrong file is a CheckpointError naming it
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(CheckpointError, match="wrong.ckpt"):
        invertkit.load_generator("mnist-mlp-gan", weights=wrong)


def test_zoo_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path))
    entry = ZOO.get("mnist-mlp-gan")
    monkeypatch.setattr(type(entry), "locate", lambda self, weights=None: None)
    with pytest.raises(CheckpointError, match="--weights"):
        invertkit.load_generator("mnist-mlp-gan")


def test_zoo_cache_folder_is_searched(tmp_path, monkeypatch, tiny_mlp):
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path))
    target = tmp_path / "zoo" / "mnist-mlp-gan" / "generator.ckpt"
    target.parent.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save(mlp_generator().state_dict(), target)
    assert ZOO.get("mnist-mlp-gan").locate() == target
    G = invertkit.load_generator("mnist-mlp-gan")
    assert G.synthesize(G.sample_latent(1, seed=0)).shape == (1, 1, 28, 28)


def test_unknown_name_or_path():
    with pytest.raises(CheckpointError, match="not a zoo model name"):
        invertkit.load_generator("no-such-model")


def test_device_follows_the_module_when_parameters_are_replaced():
    # the device is read from the first parameter's owner each time, so a .to() that swaps the
    # Parameter objects (meta tensors do) is seen, through G.to() or the module itself
    G = wrap(nn.Sequential(nn.Linear(4, 12), nn.Tanh()), (4,), 2, 3)
    assert G.device == torch.device("cpu")
    G.module.to("meta")
    assert G.device == torch.device("meta")
    buffers_only = wrap(nn.Sequential(nn.Flatten()), (12,), 2, 3)
    assert buffers_only.device == torch.device("cpu")
