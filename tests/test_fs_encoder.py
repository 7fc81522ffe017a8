"""Feature-space (fs) encoders: a latent plus a residual of G's features at one split layer, on a tiny
wrapped convolutional generator and a tiny StyleGAN2 (at every layer with a feature map), and on a
tiny MLP generator (a vector residual at a hidden layer)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import invertkit
from invertkit import LatentInversion, load_run
from invertkit.editing.apply import edit_latents, edit_result, render_layer_edits
from invertkit.editing.directions import Directions
from invertkit.editing.sources import read_latents
from invertkit.encoders import Encoder, TrainOptions, config_for, load_encoder, save_encoder, train_encoder
from invertkit.encoders.config import EncoderConfig, feature_shapes
from invertkit.encoders.inference import encode_features, feature_split, render_features
from invertkit.encoders.nets import FlatFeatureBranch
from invertkit.encoders.train import Trainer
from invertkit.errors import ConfigError, LatentSpaceError
from invertkit.generators import wrap
from invertkit.runs.writer import RunWriter

from .conftest import tiny_conv_generator

FAST = dict(width=8, max_width=16, perceptual_weight=0.0, eval_images=8, log_every=5)


@pytest.fixture(scope="module")
def tiny_conv():
    """A seeded DCGAN-like generator: z in R^8 -> 1 x 16 x 16, feature maps at 4, 8 px."""
    return tiny_conv_generator("tiny-conv")


def _layers(G):
    """The split layers with feature maps, or (an MLP) those with vector states."""
    shapes = feature_shapes(G, "w+" if G.name == "tiny-sg2" else "z")
    return [k for k, s in shapes.items() if len(s) == 3] or list(shapes)


def _images(G, n=4, seed=3):
    space = G.spaces[0]
    with torch.no_grad():
        return G.synthesize(G.sample_latent(n, space, seed=seed), space).clamp(-1, 1)


@pytest.mark.parametrize("which", ["tiny_conv", "tiny_sg2"])
def test_shapes_at_every_layer_and_a_fresh_branch_adds_nothing(which, request):
    G = request.getfixturevalue(which)
    layers = _layers(G)
    shapes = feature_shapes(G, "w+" if which == "tiny_sg2" else "z")
    quarter = [k for k, s in shapes.items() if len(s) == 3 and s[1] <= G.resolution // 4]
    assert quarter and config_for(G, "fs").layer == quarter[-1]  # the deepest at a quarter of the image size
    if which == "tiny_conv":  # its first split state (after the Linear) is a vector: not the default, but allowed
        assert shapes["1"] == (256,) and config_for(G, "fs", layer="1").feature_shape == (256,)
    x = _images(G)
    for layer in layers:
        cfg = config_for(G, "fs", width=8, max_width=16, layer=layer)
        assert cfg.layer == layer and len(cfg.feature_shape) == 3
        enc = Encoder(cfg).eval()
        with torch.no_grad():
            latent, residual, plain, head = encode_features(enc, G, x)
            recon, state = render_features(G, feature_split(enc, G), latent, cfg.space, residual, head)
            again, _ = render_features(G, feature_split(enc, G), latent, cfg.space, residual)
        assert torch.allclose(again, recon, atol=1e-6)
        assert latent.shape == (4, *cfg.latent_shape) and residual.shape == (4, *cfg.feature_shape)
        assert state[0].shape == residual.shape and recon.shape == x.shape
        assert torch.allclose(recon, plain, atol=1e-5)  # the zero-initialised last layer: recon = G(latent)
    with pytest.raises(ConfigError, match="no split layer"):
        config_for(G, "fs", layer="999")
    with pytest.raises(ConfigError, match="belongs to an fs encoder"):
        config_for(G, "psp", layer=layers[0])


def test_mlp_vector_residual_shapes_and_a_fresh_branch_adds_nothing(tiny_mlp):
    shapes = feature_shapes(tiny_mlp, "z")  # Linear ReLU Linear ReLU Linear Tanh: hidden 32, output 64
    assert shapes == {"1": (32,), "2": (32,), "3": (32,), "4": (32,), "5": (64,)}
    assert config_for(tiny_mlp, "fs").layer == "4"  # the deepest hidden vector smaller than the image
    x = _images(tiny_mlp)
    for layer, shape in shapes.items():
        cfg = config_for(tiny_mlp, "fs", width=8, max_width=16, layer=layer)
        assert cfg.feature_shape == shape
        enc = Encoder(cfg).eval()
        assert isinstance(enc.features, FlatFeatureBranch)
        with torch.no_grad():
            latent, residual, plain, head = encode_features(enc, tiny_mlp, x)
            recon, state = render_features(tiny_mlp, feature_split(enc, tiny_mlp), latent, cfg.space, residual, head)
        assert residual.shape == (4, *shape) and state[0].shape == residual.shape and recon.shape == x.shape
        assert torch.allclose(recon, plain, atol=1e-6)
        with torch.no_grad():  # a non-zero last layer moves the image
            enc.features.out.weight.normal_(0, 0.5)
            assert (render_features(tiny_mlp, feature_split(enc, tiny_mlp), latent, cfg.space,
                                    enc.residual(x, plain))[0] - plain).abs().max() > 1e-3


def test_a_generator_without_usable_features_is_refused_in_one_line():
    G = wrap(nn.Sequential(nn.Linear(8, 64), nn.Tanh()), (8,), 8, 1, name="one-layer")  # its only state is the image
    with pytest.raises(ConfigError, match="no split layer with features"):
        config_for(G, "fs")
    assert config_for(G, "fs", layer="1").feature_shape == (64,)  # named explicitly, it is allowed


@pytest.mark.parametrize("which", ["tiny_conv", "tiny_sg2", "tiny_mlp"])
def test_training_steps_reduce_the_loss(which, request, tmp_path):
    G = request.getfixturevalue(which)
    trainer = Trainer(G, tmp_path, TrainOptions(arch="fs", layer=_layers(G)[0], batch=8, lr=3e-3, **FAST), progress=False)
    batch = trainer.data.next()
    trainer.encoder.train()
    before, logs, _ = (t.detach() if torch.is_tensor(t) else t for t in trainer.fs_losses(batch))
    assert {"pixel", "latent", "fs_pixel", "residual"} <= set(logs)
    for _ in range(15):
        trainer.train_step(batch)
    trainer.encoder.train()
    after = trainer.fs_losses(batch)[0].detach()
    assert after.item() < 0.8 * before.item()


def test_file_round_trip_and_config_checks(tiny_sg2, tmp_path):
    cfg = config_for(tiny_sg2, "fs", width=8, max_width=16, layer="8")
    enc = Encoder(cfg).eval()
    with torch.no_grad():
        for p in enc.features.out.parameters():
            p.normal_(0, 0.1)  # a non-trivial branch
    save_encoder(enc, tmp_path / "fs.safetensors")
    back = load_encoder(tmp_path / "fs.safetensors")
    assert back.config == cfg and back.config.feature_shape == cfg.feature_shape
    x = _images(tiny_sg2)
    with torch.no_grad():
        a, b = encode_features(enc, tiny_sg2, x), encode_features(back, tiny_sg2, x)
    assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a[:3], b[:3], strict=True))
    with pytest.raises(ConfigError, match="feature layer"):
        EncoderConfig(**{**cfg.to_dict(), "arch": "psp"})
    with pytest.raises(ConfigError, match="--layer"):
        Trainer(tiny_sg2, tmp_path / "x", TrainOptions(arch="psp", layer="8", **FAST))


def test_mlp_file_round_trip(tiny_mlp, tmp_path):
    cfg = config_for(tiny_mlp, "fs", width=8, max_width=16, layer="3")
    enc = Encoder(cfg).eval()
    with torch.no_grad():
        for p in enc.features.out.parameters():
            p.normal_(0, 0.1)
    save_encoder(enc, tmp_path / "fs.safetensors")
    back = load_encoder(tmp_path / "fs.safetensors")
    assert back.config == cfg and back.config.feature_shape == (32,)
    x = _images(tiny_mlp)
    with torch.no_grad():
        a, b = encode_features(enc, tiny_mlp, x), encode_features(back, tiny_mlp, x)
    assert a[1].abs().max() > 1e-3 and all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a[:3], b[:3], strict=True))
    with pytest.raises(ConfigError, match="feature_shape"):
        EncoderConfig(**{**cfg.to_dict(), "feature_shape": (32, 4)})


def test_warm_start_from_psp_and_resume(tiny_conv, tmp_path):
    psp = train_encoder(tiny_conv, tmp_path / "psp", steps=10, batch=8, checkpoint_every=10, **FAST)
    opts = TrainOptions(arch="fs", steps=6, batch=8, checkpoint_every=3, init_from=str(psp), **FAST)
    trainer = Trainer(tiny_conv, tmp_path / "fs", opts, progress=False)
    x = _images(tiny_conv)
    with torch.no_grad():  # before training: the pSp encoder's latent, and no residual
        assert torch.allclose(trainer.encoder.eval()(x), load_encoder(psp)(x), atol=1e-5)
    path = trainer.run()
    enc = load_encoder(path)
    assert enc.config.arch == "fs" and enc.meta["trained_steps"] == 6 and enc.meta["heldout_psnr"] is not None
    again = train_encoder(tiny_conv, tmp_path / "fs", opts, steps=8)  # resumes at 6
    assert load_encoder(again).meta["trained_steps"] == 8


@pytest.mark.parametrize("which", ["tiny_conv", "tiny_sg2", "tiny_mlp"])
def test_method_run_folder_reload_and_edit(which, request, tmp_path):
    G = request.getfixturevalue(which)
    layer = _layers(G)[0]
    path = train_encoder(G, tmp_path / "enc", arch="fs", layer=layer, steps=8, batch=8, checkpoint_every=8, **FAST)
    x = _images(G, 2, seed=9)
    res = invertkit.invert(G, x, "fs-encoder", encoder=str(path), chunk=1)
    assert isinstance(res, LatentInversion) and res.space == f"f:{layer}" and res.layer_state.layer == layer
    enc = load_encoder(path)
    with torch.no_grad():
        latent, residual, _, _ = encode_features(enc, G, x)
        recon, _ = render_features(G, feature_split(enc, G), latent, enc.config.space, residual)
    assert torch.allclose(res.reconstructions, recon, atol=1e-5)
    assert torch.allclose(res.render(G), res.reconstructions, atol=1e-5)
    writer = RunWriter(tmp_path / "run", G)
    writer.add(res, x, ["a.png", "b.png"])
    writer.finish()
    run = load_run(tmp_path / "run", G)
    assert run.result.space == res.space and torch.allclose(run.render(G), res.reconstructions, atol=1e-5)

    # an edit moves the latent; the residual rides along on the edited latent's features
    space = enc.config.space
    dim = G.latent_shape("w" if space == "w+" else space)
    v = torch.randn(1, *dim)
    d = Directions(v / v.norm(), torch.ones(1), torch.ones(1), "w" if space == "w+" else "z", "test")
    frames = edit_result(G, res, d, 0, [0.0, 3.0])
    assert frames.shape == (2, 2, *x.shape[1:])
    assert torch.allclose(frames[:, 0], res.reconstructions.clamp(-1, 1), atol=1e-5)
    assert (frames[:, 1] - frames[:, 0]).abs().mean() > 1e-3
    split = feature_split(enc, G)
    with torch.no_grad():
        kept = res.layer_state.tensors[0] - split.head(res.latents, space)[0]
    assert torch.allclose(kept, residual, atol=1e-5)

    # `invertkit edit` reads the run's layerwise latents (interpolation still refuses them)
    items = read_latents(tmp_path / "run", G, layerwise=True)
    assert [it.edit_space for it in items] == [space, space]
    edited, target = edit_latents(G, items[0].latent, items[0].edit_space, d, 0, [0.0])
    assert torch.allclose(render_layer_edits(G, items[0].result, edited, target)[0, 0], res.reconstructions[0].clamp(-1, 1), atol=1e-5)
    with pytest.raises(LatentSpaceError, match="cannot be edited or interpolated"):
        read_latents(tmp_path / "run", G)


@pytest.mark.slow  # real data and the shipped encoders: 64 digits through pSp and fs, one edit (under 1 s)
def test_shipped_mnist_fs_encoder_beats_psp_on_real_digits(shared_data):
    """Digits 0-63 of the MNIST test set: the shipped fs encoder trained on digits 5000-9999 only."""
    from invertkit.generators import load_generator
    from invertkit.io.samples import mnist_test

    G = load_generator("mnist-mlp-gan", weights=shared_data / "mnist_mlp_gan" / "generator.ckpt")
    x, _ = mnist_test(shared_data / "mnist", 64)
    psp = invertkit.invert(G, x, "encoder")
    fs = invertkit.invert(G, x, "fs-encoder")  # encoder="auto": the shipped one
    assert fs.config["encoder"].endswith("mnist-mlp-gan/fs.safetensors") and fs.space.startswith("f:")
    mean = lambda r: sum(m["psnr"] for m in r.metrics) / len(r.metrics)  # noqa: E731
    assert mean(fs) > mean(psp) + 3, (mean(fs), mean(psp))
    assert torch.allclose(fs.render(G), fs.reconstructions, atol=1e-5)
    v = torch.randn(1, 64)
    d = Directions(v / v.norm(), torch.ones(1), torch.ones(1), "z", "test")
    frames = edit_result(G, fs, d, 0, [0.0, 2.0])  # the residual rides on the edited latent's features
    assert torch.allclose(frames[:, 0], fs.reconstructions.clamp(-1, 1), atol=1e-5)
    assert (frames[:, 1] - frames[:, 0]).abs().mean() > 0.02


def test_result_editability_scores_edits_as_invertkit_edit_renders_them(tiny_mlp, tmp_path):
    from invertkit.editing.editability import EditProbe, editability, frame_records, result_editability, summarize

    path = train_encoder(tiny_mlp, tmp_path / "enc", arch="fs", steps=4, batch=8, checkpoint_every=4, lr=3e-3, **FAST)
    x = _images(tiny_mlp, 3, seed=5)
    res = invertkit.invert(tiny_mlp, x, "fs-encoder", encoder=str(path))
    v = torch.randn(1, 8, generator=torch.Generator().manual_seed(1))
    d = Directions(v / v.norm(), torch.ones(1), torch.ones(1), "z", "test")
    probe = EditProbe(d, 0, (-3.0, 0.0, 3.0), lambda im: im.flatten(1)[:, :2], 1)  # a two-class "classifier"
    got = result_editability(tiny_mlp, res, probe, perceptual_change=False)
    frames = edit_result(tiny_mlp, res, d, 0, probe.strengths)  # latent moved, residual kept
    assert got == summarize([frame_records(frames, probe, perceptual_change=False)])
    assert {"edit_flip", "edit_change"} <= set(got) and "edit_perceptual" not in got
    assert "edit_perceptual" in result_editability(tiny_mlp, res, probe)
    plain = invertkit.invert(tiny_mlp, x, "optimize", steps=2)  # a latent-only result: the same as editability()
    assert result_editability(tiny_mlp, plain, probe) == editability(tiny_mlp, plain.latents, plain.space, probe)
