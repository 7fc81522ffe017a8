"""``hyperstyle``: hypernetwork weight offsets (encoders.hyper), their training, files and the method."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from invertkit import invert, load_run
from invertkit.encoders import TrainOptions, config_for, load_encoder, train_encoder
from invertkit.encoders.config import EncoderConfig, feature_shapes
from invertkit.encoders.hyper import (
    HyperNet,
    conv_targets,
    offsets,
    refine,
    render_offset,
    render_offset_loop,
    tail_layers,
    zero_offsets,
)
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
        # zero offsets draw the pivot's image (to float rounding: batched, each image's conv is a group of
        # one grouped convolution), also after iterations
        assert torch.allclose(render_offset(G, net.config, latent, space, zero_offsets(net.config, 3, x.device)),
                              pivot_image, atol=1e-5)
        _, recon = refine(net, G, x, latent, pivot_image, 2)
        assert torch.allclose(recon, pivot_image, atol=1e-5)
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


# ---- batched offsets and layerwise (f:LAYER) pivots ---------------------------------------------------
def _space(G):
    return "w+" if "w+" in G.spaces else "z"


def _first_split(G):
    """The earliest split layer with a feature map that still has conv layers after it."""
    space = _space(G)
    for layer in feature_shapes(G, space):
        split = G.layer_split(layer)
        if tail_layers(G, split, space):
            return layer, split
    raise AssertionError("no split with a conv tail")


@pytest.mark.parametrize("which", ["tiny_dcgan", "tiny_sg2"])
def test_batched_offsets_match_one_image_at_a_time(which, request):
    G = request.getfixturevalue(which)
    space = _space(G)
    layer, split = _first_split(G)
    for kw, targets in (({}, conv_targets(G, "all")), ({"split": split}, conv_targets(G, split=split, space=space))):
        cfg = config_for(G, "hyperstyle", targets=targets, rank=3, width=8, max_width=16)
        latent = G.sample_latent(4, space, seed=5)
        gen = torch.Generator().manual_seed(1)
        D = [0.3 * torch.randn(4, r, c, generator=gen) for _, r, c in targets]
        if kw:
            with torch.no_grad():
                kw["state"] = [None if t is None else t + 0.1 * torch.randn(t.shape, generator=gen)
                               for t in split.head(latent, space)]
        with torch.no_grad():
            batched = render_offset(G, cfg, latent, space, D, **kw)
            single = render_offset_loop(G, cfg, latent, space, D, **kw)
        assert batched.shape == (4, G.channels, G.resolution, G.resolution)
        assert torch.allclose(batched, single, atol=1e-5), (batched - single).abs().max()
        # gradients flow to the offsets through the batched path, equal to the per-image ones
        Dg = [d.clone().requires_grad_(True) for d in D]
        render_offset(G, cfg, latent, space, Dg, **kw).square().sum().backward()
        Dl = [d.clone().requires_grad_(True) for d in D]
        render_offset_loop(G, cfg, latent, space, Dl, **kw).square().sum().backward()
        assert all(torch.allclose(a.grad, b.grad, atol=1e-4, rtol=1e-3) for a, b in zip(Dg, Dl, strict=True))


@pytest.mark.parametrize("which", ["tiny_dcgan", "tiny_sg2"])
def test_layerwise_targets_are_the_tail(which, request):
    G = request.getfixturevalue(which)
    space = _space(G)
    every = [t[0] for t in conv_targets(G, "all")]
    for layer in feature_shapes(G, space):
        split = G.layer_split(layer)
        tail = tail_layers(G, split, space)
        if not tail:
            with pytest.raises(ConfigError, match="no convolution weights after layer"):
                conv_targets(G, split=split, space=space)
            continue
        names = [t[0] for t in conv_targets(G, split=split, space=space)]
        assert names == [n for n in every if n in tail] and names == every[len(every) - len(names):]  # a suffix
        if len(names) < len(every):
            with pytest.raises(ConfigError, match="before the pivot's split layer"):
                conv_targets(G, every[0], split=split, space=space)


def test_layerwise_fs_pivot_refines_renders_saves_and_edits(tiny_dcgan, tmp_path):
    from invertkit import TunedInversion
    from invertkit.editing.apply import edit_latents, edit_result, render_layer_edits
    from invertkit.editing.directions import Directions
    from invertkit.runs.writer import RunWriter

    G = tiny_dcgan
    layer, split = _first_split(G)
    fs = train_encoder(G, tmp_path / "fs", arch="fs", layer=layer, steps=6, batch=8, checkpoint_every=6, **FAST)
    opts = TrainOptions(arch="hyperstyle", bootstrap=str(fs), steps=24, batch=8, iterations=2, checkpoint_every=24, rank=2,
                        lr=3e-3, **FAST)
    trainer = Trainer(G, tmp_path / "hs", opts)
    before, _ = trainer.evaluate()  # a fresh network: exactly the fs pivot
    hs = trainer.run()
    net = load_encoder(hs)
    assert net.start_encoder.config.arch == "fs" and net.config.targets == conv_targets(G, split=split, space="z")
    assert net.meta["heldout_psnr"] > before
    x = _drawn(G, 3, 41)
    res = invert(G, x, "hyperstyle", hypernet=str(hs))
    piv = invert(G, x, "fs-encoder", encoder=str(fs))
    assert isinstance(res, TunedInversion) and res.space == f"f:{layer}" == piv.space and res.layer_state.layer == layer
    assert torch.allclose(res.pivot.reconstructions, piv.reconstructions, atol=1e-5)
    assert torch.allclose(res.layer_state.tensors[0], piv.layer_state.tensors[0], atol=1e-5)
    assert set(res.deltas[0]) == {t[0] for t in net.config.targets}
    assert res.history["psnr"].shape == (2, 3) and [m["psnr_pivot"] for m in res.metrics] == pytest.approx(
        [m["psnr"] for m in piv.metrics])
    assert not torch.allclose(res.reconstructions, piv.reconstructions, atol=1e-6)  # the offsets did something
    assert torch.allclose(res.render(G), res.reconstructions, atol=1e-5)  # each image's tuned tail from its state
    # any method with layerwise latents gives the same pivots
    other = invert(G, x, "hyperstyle", hypernet=str(hs), pivot="fs-encoder", pivot_options=f"encoder={fs}")
    assert other.pivot.method == "fs-encoder" and torch.allclose(other.reconstructions, res.reconstructions, atol=1e-5)
    # a run folder keeps the state and the deltas
    writer = RunWriter(tmp_path / "run", G)
    writer.add(res, x, ["a.png", "b.png", "c.png"])
    writer.finish()
    run = load_run(tmp_path / "run", G)
    assert isinstance(run.result, TunedInversion) and run.result.layer_state.layer == layer
    assert torch.allclose(run.render(G), res.reconstructions, atol=1e-5)
    # edits: strength 0 is the tuned image; the edited latent renders through the image's tuned tail
    v = torch.randn(1, *G.latent_shape("z"))
    d = Directions(v / v.norm(), torch.ones(1), torch.ones(1), "z", "test")
    frames = edit_result(G, res, d, 0, [0.0, 3.0])
    assert torch.allclose(frames[:, 0], res.reconstructions.clamp(-1, 1), atol=1e-5)
    edited, target = edit_latents(G, res.latents, res.latent_space, d, 0, [0.0, 3.0])
    base = render_layer_edits(G, res, edited, target)  # the base generator's tail
    assert not torch.allclose(base, frames, atol=1e-6)
    assert torch.allclose(base[:, 0], piv.reconstructions.clamp(-1, 1), atol=1e-5)


def test_layerwise_cli_rows_and_generate_delta(tiny_sg2, tmp_path):
    from invertkit.cli.main import main
    from invertkit.generators import load_generator
    from invertkit.generators.checkpoints import save_native
    from invertkit.io.images import save_image
    from invertkit.runs.dataset_reader import load_results

    layer, _ = _first_split(tiny_sg2)
    fs = train_encoder(tiny_sg2, tmp_path / "fs", arch="fs", layer=layer, steps=4, batch=4, checkpoint_every=4, **FAST)
    hs = train_encoder(tiny_sg2, tmp_path / "hs", arch="hyperstyle", bootstrap=str(fs), steps=6, batch=4, iterations=2,
                       checkpoint_every=6, lr=3e-3, **FAST)
    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    x = _drawn(tiny_sg2, 2, 13)
    for i, name in enumerate(("a.png", "b.png")):
        save_image(x[i], tmp_path / "imgs" / name)
    G = load_generator(str(ckpt))
    out = tmp_path / "run"
    assert main(["invert", str(tmp_path / "imgs"), "-g", str(ckpt), "-m", "hyperstyle", "--hypernet", str(hs), "--out", str(out)]) == 0
    res = load_run(out, G).result
    assert res.space == f"f:{layer}" and res.layer_state is not None and len(res.deltas) == 2
    gen = tmp_path / "gen"
    assert main(["generate", str(ckpt), "--delta", str(out / "latents" / "a_delta.safetensors"),
                 "--latent", str(out / "latents" / "a.npz"), "--out", str(gen)]) == 0
    assert (gen / "a.png").read_bytes() == (out / "images" / "a_recon.png").read_bytes()
    # a dataset run's rows carry the state and the delta, and read back into the same images
    rows_out = tmp_path / "rows"
    assert main(["invert", str(tmp_path / "imgs"), "-g", str(ckpt), "-m", "hyperstyle", "--hypernet", str(hs),
                 "--format", "parquet", "--out", str(rows_out)]) == 0
    table = {r["id"]: r for r in load_results(rows_out).to_pylist()}
    assert table["a.png"]["kind"] == "tuned" and table["a.png"]["space"] == f"f:{layer}" and table["a.png"]["state_extra"]
    back = load_results(rows_out, ids=["a.png", "b.png"], G=G)
    assert torch.allclose(back.render(G), res.render(G), atol=1e-5)


@pytest.mark.slow  # the shipped network on 50 LFW faces, and the fs pivot alone (about 10-30 s on 2 busy cores)
def test_shipped_hyperstyle_beats_27_db_and_its_fs_pivot_on_unseen_lfw_faces(shared_data):
    from invertkit.generators import load_generator
    from invertkit.io.samples import lfw_faces

    G = load_generator("dcgan-digiface64")
    faces = lfw_faces(list(range(50)), 64, 3)  # LFW 0-49: never trained on (by the fs encoder nor the hypernetwork)
    res = invert(G, faces, "hyperstyle")  # hypernet="auto": the shipped one, on its shipped fs encoder's pivots
    assert res.config["hypernet"].endswith("dcgan-digiface64/hyperstyle.safetensors")
    assert res.space == "f:10" and res.pivot.method == "encoder" and res.layer_state is not None
    got = sum(m["psnr"] for m in res.metrics) / 50
    pivot = sum(m["psnr_pivot"] for m in res.metrics) / 50
    fs = invert(G, faces, "fs-encoder")
    assert pivot == pytest.approx(sum(m["psnr"] for m in fs.metrics) / 50, abs=1e-3)  # the pivot is the shipped fs encoder's
    assert got > 27 and got >= pivot, (got, pivot)
    assert torch.allclose(res.select([0, 1]).render(G), res.reconstructions[:2], atol=1e-5)
