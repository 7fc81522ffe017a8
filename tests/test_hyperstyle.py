"""``hyperstyle``: hypernetwork weight offsets (encoders.hyper), their training, files and the method."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from invertkit import invert, load_run
from invertkit.encoders import TrainOptions, config_for, load_encoder, train_encoder
from invertkit.encoders.config import EncoderConfig
from invertkit.encoders.hyper import HyperNet, conv_targets, offsets, refine, render_offset, zero_offsets
from invertkit.encoders.train import Trainer
from invertkit.errors import CheckpointError, ConfigError
from invertkit.generators import wrap
from invertkit.metrics import psnr

FAST = dict(width=8, max_width=16, perceptual_weight=0.0, eval_images=8, log_every=5)


class _Reshape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, 1, 1)


@pytest.fixture(scope="module")
def tiny_dcgan():
    """A seeded 16 px DCGAN-like wrapped nn.Sequential (three conv-transpose layers)."""
    torch.manual_seed(0)
    net = nn.Sequential(_Reshape(), nn.ConvTranspose2d(8, 16, 4, 1, 0), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh())
    return wrap(net.eval(), (8,), 16, 1, name="tiny-dcgan")


@pytest.fixture(scope="module")
def sg2_psp(tiny_sg2, tmp_path_factory):
    """A briefly trained pSp encoder for the tiny StyleGAN2: a pivot that leaves room to refine."""
    return train_encoder(tiny_sg2, tmp_path_factory.mktemp("psp") / "psp", steps=20, batch=8, checkpoint_every=20, **FAST)


def _drawn(G, n, seed):
    space = "w+" if "w+" in G.spaces else "z"
    with torch.no_grad():
        return G.synthesize(G.sample_latent(n, space, seed=seed), space).clamp(-1, 1)


def test_default_layers_and_choices(tiny_dcgan, tiny_sg2):
    # the later half of the conv layers; StyleGAN2's toRGB layers are never offset
    assert conv_targets(tiny_dcgan) == (("4.weight", 16, 8), ("7.weight", 8, 1))
    assert [t[0] for t in conv_targets(tiny_dcgan, "all")] == ["1.weight", "4.weight", "7.weight"]
    assert [t[0] for t in conv_targets(tiny_sg2)] == ["synthesis.b8.conv1.weight", "synthesis.b16.conv0.weight",
                                                       "synthesis.b16.conv1.weight"]
    assert not any("torgb" in t[0] for t in conv_targets(tiny_sg2, "all"))
    assert conv_targets(tiny_sg2, "synthesis.b4.conv1.weight") == (("synthesis.b4.conv1.weight", 32, 32),)
    with pytest.raises(ConfigError, match="not a conv layer"):
        conv_targets(tiny_sg2, "synthesis.b4.torgb.weight")


@pytest.mark.parametrize("which", ["tiny_dcgan", "tiny_sg2"])
def test_offset_shapes_and_a_fresh_network_keeps_the_pivot(which, request):
    G = request.getfixturevalue(which)
    space = "w+" if "w+" in G.spaces else "z"
    targets = conv_targets(G, "all")
    net = HyperNet(config_for(G, "hyperstyle", targets=targets, rank=3, width=8, max_width=16)).eval()
    x = _drawn(G, 3, 1)
    latent = G.sample_latent(3, space, seed=2)
    with torch.no_grad():
        pivot_image = torch.cat([G.synthesize(latent[i:i + 1], space) for i in range(3)])  # one by one, as render_offset
        factors = net(x, pivot_image)
        assert [(tuple(a.shape), tuple(b.shape)) for a, b in factors] == [((3, r, 3), (3, c, 3)) for _, r, c in targets]
        D = offsets(factors)
        assert [tuple(d.shape) for d in D] == [(3, r, c) for _, r, c in targets]
        assert all(not d.any() for d in D)  # the A heads start at zero
        # zero offsets draw the pivot's image exactly, also after iterations
        assert torch.equal(render_offset(G, net.config, latent, space, zero_offsets(net.config, 3, x.device)), pivot_image)
        _, recon = refine(net, G, x, latent, pivot_image, 2)
        assert torch.equal(recon, pivot_image)
        # a non-zero offset changes each image by its own weights
        D = [torch.full_like(d, 0.3) * torch.arange(1, 4).view(3, 1, 1) for d in D]
        moved = render_offset(G, net.config, latent, space, D)
        assert not torch.allclose(moved, pivot_image)
        one = render_offset(G, net.config, latent[1:2], space, [d[1:2] for d in D])
        assert torch.allclose(one, moved[1:2], atol=1e-6)


def test_training_beats_the_pivot_and_the_file_round_trips(tiny_sg2, sg2_psp, tmp_path):
    opts = TrainOptions(arch="hyperstyle", bootstrap=str(sg2_psp), steps=30, batch=8, iterations=2, checkpoint_every=15,
                        rank=2, **FAST)
    trainer = Trainer(tiny_sg2, tmp_path / "hs", opts)
    before, _ = trainer.evaluate()  # a fresh network: exactly the pivot
    path = trainer.run()
    after = load_encoder(path).meta["heldout_psnr"]
    assert after > before + 0.3
    log = [json.loads(line) for line in (tmp_path / "hs" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert sum(losses[-2:]) < sum(losses[:2])
    net = load_encoder(path)
    assert isinstance(net, HyperNet) and net.config.targets == conv_targets(tiny_sg2) and net.config.rank == 2
    assert net.start_encoder is not None and net.config.bootstrap == "bootstrap.safetensors"
    mine = trainer.encoder.state_dict()
    assert all(torch.equal(v.cpu(), mine[k].cpu()) for k, v in net.state_dict().items() if v.is_floating_point())
    # resume: more steps continue from the checkpoint
    more = train_encoder(tiny_sg2, tmp_path / "hs", opts, steps=35)
    assert load_encoder(more).meta["trained_steps"] == 35
    # the method with the trained network beats its pivot on images it never saw
    x = _drawn(tiny_sg2, 4, 77)
    res = invert(tiny_sg2, x, "hyperstyle", hypernet=str(path), iterations=2)
    assert float(psnr(res.reconstructions, x).mean()) > sum(m["psnr_pivot"] for m in res.metrics) / 4
    assert res.history["psnr"].shape == (2, 4) and res.pivot.method == "encoder"
    # by default as many passes as it was trained with; any registered method can give the pivots
    assert invert(tiny_sg2, x[:1], "hyperstyle", hypernet=str(path)).config["iterations"] == 2
    other = invert(tiny_sg2, x[:1], "hyperstyle", hypernet=str(path), pivot="plain", pivot_options="steps=3;space=w+")
    assert other.pivot.method == "plain" and other.space == "w+"


def test_stored_configs_are_checked(tiny_sg2, sg2_psp, tmp_path):
    good = config_for(tiny_sg2, "hyperstyle", targets=conv_targets(tiny_sg2), rank=2).to_dict()
    good = json.loads(json.dumps(good))
    assert EncoderConfig.from_dict(good).targets == conv_targets(tiny_sg2)
    for bad in ([["x", 0, 3]], [["x", 3]], "x", [["a", 2, 2], ["a", 2, 2]], [[1, 2, 2]]):
        with pytest.raises(CheckpointError, match="invalid encoder config"):
            EncoderConfig.from_dict({**good, "targets": bad})
    with pytest.raises(CheckpointError, match="invalid encoder config|targets"):
        EncoderConfig.from_dict({**good, "targets": []})
    with pytest.raises(CheckpointError):
        EncoderConfig.from_dict({**good, "rank": 10**6})
    with pytest.raises(ConfigError, match="--bootstrap"):
        train_encoder(tiny_sg2, tmp_path / "nob", arch="hyperstyle", steps=1, **FAST)
    # a network trained for other layers is refused by name
    other = train_encoder(tiny_sg2, tmp_path / "other", arch="hyperstyle", bootstrap=str(sg2_psp), steps=1, batch=2,
                          layers="synthesis.b4.conv1.weight", checkpoint_every=1, **FAST)
    assert load_encoder(other).config.targets == (("synthesis.b4.conv1.weight", 32, 32),)
    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    narrow = StyleGAN2Generator(StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, mapping_layers=2, channel_base=128,
                                                channel_max=16), name="narrow", init_seed=0)
    with pytest.raises(ConfigError, match=r"offsets synthesis.b4.conv1.weight \[32 x 32 x k x k\].*has shape \[16, 16, 3, 3\]"):
        invert(narrow, _drawn(narrow, 1, 0), "hyperstyle", hypernet=str(other))


def test_no_network_for_auto_says_how_to_train_one(tiny_dcgan):
    with pytest.raises(ConfigError, match="train-encoder --generator tiny-dcgan --arch hyperstyle --bootstrap"):
        invert(tiny_dcgan, _drawn(tiny_dcgan, 1, 0), "hyperstyle")


def test_cli_invert_writes_deltas_that_reload_and_edit(tiny_sg2, sg2_psp, tmp_path):
    from invertkit.cli.main import main
    from invertkit.generators import load_generator
    from invertkit.generators.checkpoints import save_native
    from invertkit.io.images import read_images, save_image

    net = train_encoder(tiny_sg2, tmp_path / "hs", arch="hyperstyle", bootstrap=str(sg2_psp), steps=10, batch=4,
                        iterations=2, checkpoint_every=10, **FAST)
    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    x = _drawn(tiny_sg2, 2, 31)
    for i, name in enumerate(("a.png", "b.png")):
        save_image(x[i], tmp_path / "imgs" / name)
    out = tmp_path / "run"
    assert main(["invert", str(tmp_path / "imgs"), "-g", str(ckpt), "-m", "hyperstyle", "--hypernet", str(net),
                 "--iterations", "3", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["deltas"] == {"a.png": "latents/a_delta.safetensors", "b.png": "latents/b_delta.safetensors"}
    assert run["config"]["method"] == "hyperstyle" and run["config"]["iterations"] == 3
    G = load_generator(str(ckpt))
    res = load_run(out, G).result
    assert type(res).__name__ == "TunedInversion"
    again = res.render(G)
    read = read_images([tmp_path / "imgs" / "a.png", tmp_path / "imgs" / "b.png"], G.resolution, G.channels).images
    fresh = invert(G, read, "hyperstyle", hypernet=str(net), iterations=3)
    assert torch.allclose(again, fresh.reconstructions, atol=1e-5)
    assert set(res.deltas[0]) == {t[0] for t in conv_targets(G)}
    # an edit of the pivot renders through the image's offset generator, not the base one
    edited = res.latents[:1] + 0.5 * torch.randn_like(res.latents[:1])
    with torch.no_grad():
        tuned = res.generator(G, 0).synthesize(edited, res.space)
        base = G.synthesize(edited, res.space)
    assert tuned.shape == base.shape and not torch.allclose(tuned, base)
    # from the files alone, `generate --delta` draws the reconstruction
    gen = tmp_path / "gen"
    assert main(["generate", str(ckpt), "--delta", str(out / "latents" / "a_delta.safetensors"),
                 "--latent", str(out / "latents" / "a.npz"), "--out", str(gen)]) == 0
    assert (gen / "a.png").read_bytes() == (out / "images" / "a_recon.png").read_bytes()
    # installed where "auto" looks (its bootstrap travels with it), and usable by the bench
    from invertkit.bench import run_bench
    from invertkit.encoders.files import copy_encoder
    from invertkit.encoders.shipped import encoder_candidates

    copy_encoder(net, encoder_candidates(G.name, "hyperstyle")[0])
    auto = invert(G, read, "hyperstyle", iterations=3)
    assert torch.allclose(auto.reconstructions, fresh.reconstructions, atol=1e-5)
    rows = run_bench(G, read, ["a", "b"], [f"hyperstyle@hypernet={net};iterations=2"], tmp_path / "bench")
    assert rows[0]["method"].startswith("hyperstyle") and {"psnr_mean", "psnr_pivot_mean"} <= set(rows[0])
    assert len(list((tmp_path / "bench").rglob("*_delta.safetensors"))) == 2
