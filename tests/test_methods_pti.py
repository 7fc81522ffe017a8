"""``pti`` (pivotal tuning) and weight deltas (``generators.tuning``) on the tiny generators."""

from __future__ import annotations

import json

import pytest
import torch

from invertkit import invert
from invertkit.errors import CheckpointError, ConfigError
from invertkit.generators import load_generator
from invertkit.generators.base import Generator
from invertkit.generators.tuning import (
    apply_delta,
    read_delta,
    save_delta,
    tunable_copy,
    weight_delta,
)
from invertkit.methods import METHODS, MethodSpec
from invertkit.methods.pti import tuned_generator, typical_distance
from invertkit.optiontext import parse_key_values

from .conftest import off_range_images, one_thread

# fast settings: pixel losses only (the perceptual network is exercised by the early-stop test)
FAST = {"loss": "mse=1", "locality_loss": "mse=0.1", "target_perceptual": None}


@pytest.fixture(scope="module")
def sg2_result(tiny_sg2):
    """One pti run on the tiny StyleGAN2 (shared: several tests read it)."""
    with one_thread():  # conftest's per-test setting does not reach module fixtures
        images = off_range_images(tiny_sg2, 2, 3, "w")
        # rank=0: the full delta (tests/test_pti_lowrank.py covers the low-rank default)
        return images, invert(tiny_sg2, images, "pti", pivot="optimize", pivot_steps=30, steps=40, lr=3e-3, rank=0, **FAST)


def test_pti_beats_its_pivot_on_tiny_mlp(tiny_mlp):
    images = off_range_images(tiny_mlp, 2, 1, "z")
    r = invert(tiny_mlp, images, "pti", pivot="optimize", pivot_steps=40, steps=60, lr=3e-3, **FAST)
    assert r.space == "z" and r.latents.shape == (2, 8) and r.reconstructions.shape == (2, 1, 8, 8)
    for m in r.metrics:
        assert m["psnr"] > m["psnr_pivot"] + 3
    assert r.history["loss"].shape == (60, 2) and r.history["locality"].shape == (60, 2)
    assert r.config["pivot"] == "optimize" and r.config["locality_alpha"] == pytest.approx(typical_distance(tiny_mlp, "z"))
    assert r.timings.seconds >= r.timings.phases["pivot"] > 0 and r.tuning_steps == [60, 60]
    # the pivot's optimize (z-only generator: 8 starts x 40 // 20 steps, then 38 steps), then 3 renders per
    # tuning step: the tuned pivot, and the tuned and original generator on the locality samples
    assert r.timings.evaluations == [8 * 2 + 38 + 3 * 60] * 2
    pivot = r.pivot
    assert pivot.reconstructions.shape == r.reconstructions.shape and [m["psnr"] for m in pivot.metrics] == [m["psnr_pivot"] for m in r.metrics]


def test_pti_beats_its_pivot_on_tiny_sg2(sg2_result, tiny_sg2):
    _, r = sg2_result
    assert r.space == "w" and r.latents.shape == (2, 32)  # PTI's W pivot by default
    for m in r.metrics:
        assert m["psnr"] > m["psnr_pivot"] + 2 and "nscd" in m
    assert r.config["pivot_config"]["space"] == "w" and r.config["pivot_steps"] == 30


def test_only_tunable_weights_change(sg2_result, tiny_sg2, tiny_mlp):
    _, r = sg2_result
    before = {k: v.clone() for k, v in tiny_sg2.state_dict().items()}
    names = set(r.deltas[0])
    assert names and all(k.startswith("synthesis.") for k in names)  # the mapping is never tuned
    T = tuned_generator(tiny_sg2, r, 0)
    for k, v in T.state_dict().items():
        changed = not torch.equal(v, before[k])
        assert changed == (k in names), k
    assert all(torch.equal(v, before[k]) for k, v in tiny_sg2.state_dict().items())  # the base is untouched
    # a wrap-ped network: the whole module is tunable, batch-norm stays in eval mode
    copy, params = tunable_copy(tiny_mlp)
    assert len(params) == len(list(tiny_mlp.module.parameters())) and all(p.requires_grad for p in params)
    assert not any(p.requires_grad for p in tiny_mlp.module.parameters()) and not any(m.training for m in copy.module.modules())


def test_batch_norm_statistics_are_never_tuned():
    from invertkit.generators import wrap
    from invertkit.generators.architectures import DCGANGenerator

    torch.manual_seed(0)
    G = wrap(DCGANGenerator(nz=8, ngf=4, nc=1), (8,), 64, 1, name="tiny-dcgan")
    images = off_range_images(G, 1, 11, "z")
    r = invert(G, images, "pti", pivot="optimize", pivot_steps=3, steps=4, lr=3e-3, rank=0, **FAST)
    names = set(r.deltas[0])
    assert "main.0.weight" in names and "main.1.weight" in names  # convolutions and batch-norm affine weights
    low = set(invert(G, images, "pti", pivot="optimize", pivot_steps=3, steps=4, lr=3e-3, **FAST).deltas[0])  # the rank default
    assert "main.0.weight.lora_A" in low and "main.1.weight" in low and not any("running_" in k for k in low)
    assert not any("running_" in k or "num_batches" in k for k in names)  # eval mode: statistics untouched


def test_tuned_generator_renders_the_reconstruction_and_edits(sg2_result, tiny_sg2):
    _, r = sg2_result
    T = tuned_generator(tiny_sg2, r, 1)
    with torch.no_grad():
        assert torch.allclose(T.synthesize(r.latents[1:2], r.space), r.reconstructions[1:2], atol=1e-5)
        edited = T.synthesize(r.latents[1:2] + 0.5, r.space)
    assert edited.shape == (1, 3, 16, 16) and not torch.allclose(edited, r.reconstructions[1:2], atol=1e-3)
    with pytest.raises(ConfigError, match="out of range"):
        tuned_generator(tiny_sg2, r, 2)


@pytest.mark.slow  # two 40-step tunings compared (about 1.5 s)
def test_locality_regulariser_keeps_the_generator_closer_elsewhere(tiny_sg2):
    images = off_range_images(tiny_sg2, 1, 4, "w")
    common = {"pivot": "optimize", "pivot_steps": 20, "steps": 40, "lr": 5e-3, "loss": "mse=1", "target_perceptual": None}
    on = invert(tiny_sg2, images, "pti", **common)  # PTI's regulariser weights (L2 0.1 + perceptual 0.1)
    off = invert(tiny_sg2, images, "pti", locality=False, **common)
    assert "locality" not in off.history and off.config["locality_alpha"] is None
    w = tiny_sg2.sample_latent(64, "w", seed=99)
    with torch.no_grad():
        base = tiny_sg2.synthesize(w, "w")
        drift = [(tuned_generator(tiny_sg2, r, 0).synthesize(w, "w") - base).square().mean() for r in (on, off)]
    assert drift[0] < 0.7 * drift[1]
    assert on.metrics[0]["psnr"] > on.metrics[0]["psnr_pivot"]


def test_delta_file_round_trip_through_load_generator(tmp_path, tiny_sg2):
    from invertkit.generators.checkpoints import save_native

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    G = load_generator(ckpt)
    images = off_range_images(G, 1, 6, "w")
    r = invert(G, images, "pti", pivot="optimize", pivot_steps=10, steps=15, lr=3e-3, **FAST)
    path = save_delta(tmp_path / "d.safetensors", r.deltas[0], r.base.meta())
    delta, meta = read_delta(path)
    assert meta["format"] == "invertkit-delta" and meta["base"] == "tiny.safetensors" and set(delta) == set(r.deltas[0])
    T = load_generator(ckpt, delta=path)
    with torch.no_grad():
        assert (T.synthesize(r.latents, r.space) - r.reconstructions).abs().max() < 1e-5


def test_delta_for_another_generator_or_damaged_is_refused(tmp_path, sg2_result, tiny_sg2, tiny_mlp):
    from invertkit.generators.checkpoints import save_native
    from invertkit.generators.stylegan2 import StyleGAN2Generator

    _, r = sg2_result
    path = save_delta(tmp_path / "d.safetensors", r.deltas[0], r.base.meta())
    delta, meta = read_delta(path)
    other = StyleGAN2Generator(tiny_sg2.config, name="other", init_seed=1)  # same shapes, other weights
    with pytest.raises(CheckpointError, match="made for generator 'tiny-sg2'"):
        apply_delta(other, delta, meta=meta, source=str(path))
    with pytest.raises(CheckpointError, match="does not fit tiny-mlp"):
        apply_delta(tiny_mlp, delta)
    bad = {k: v.clone() for k, v in delta.items()}
    next(iter(bad.values())).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        apply_delta(tiny_sg2, bad)
    ckpt = save_native(other, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="made for generator"):
        load_generator(ckpt, delta=path)
    with pytest.raises(CheckpointError, match="without the header of an invertkit weight delta"):
        load_generator(ckpt, delta=ckpt)  # a checkpoint is not a delta
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable weight delta.*damaged"):
        read_delta(tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match="no such weight delta"):
        read_delta(tmp_path / "missing.safetensors")


def test_weight_delta_and_apply_on_wrapped_network(tiny_mlp):
    T, params = tunable_copy(tiny_mlp)
    with torch.no_grad():
        params[0].add_(0.1)
    d = weight_delta(tiny_mlp, T)
    assert list(d) == ["0.weight"] and torch.allclose(d["0.weight"], torch.full_like(d["0.weight"], 0.1))
    z = tiny_mlp.sample_latent(3, seed=0)
    with torch.no_grad():
        assert torch.allclose(apply_delta(tiny_mlp, d).synthesize(z), T.synthesize(z), atol=1e-6)


def test_early_stop_on_the_perceptual_target(tiny_mlp):
    images = off_range_images(tiny_mlp, 2, 2, "z")
    common = {"pivot": "optimize", "pivot_steps": 20, "steps": 40, "lr": 3e-3, "locality": False, "check_every": 5}
    full = invert(tiny_mlp, images, "pti", target_perceptual=None, extra_metrics=("perceptual",), **common)
    assert full.tuning_steps == [40, 40]
    # a target between the pivot's and the fully tuned perceptual distance: reached part-way
    target = max((m["perceptual_pivot"] + m["perceptual"]) / 2 for m in full.metrics)
    early = invert(tiny_mlp, images, "pti", target_perceptual=target, **common)
    taken = early.tuning_steps
    assert all(0 < s < 40 for s in taken), taken
    loss = early.history["loss"]
    assert loss.shape == (40, 2) and all(torch.all(loss[s:, i] == loss[s - 1, i]) for i, s in enumerate(taken))  # padded
    assert all(e < f for e, f in zip(early.timings.evaluations, full.timings.evaluations))
    now = invert(tiny_mlp, images, "pti", target_perceptual=100.0, **common)  # the pivot already meets it
    assert now.tuning_steps == [0, 0] and now.deltas == [{}, {}]


def test_results_do_not_depend_on_batching(tiny_mlp):
    images = off_range_images(tiny_mlp, 2, 5, "z")
    opts = {"pivot": "optimize", "pivot_steps": 10, "steps": 10, "lr": 3e-3, **FAST}
    both = invert(tiny_mlp, images, "pti", **opts)
    second = invert(tiny_mlp, images[1:], "pti", image_ids=[1], **opts)
    assert torch.allclose(both.reconstructions[1:], second.reconstructions, atol=1e-6)


def test_auto_pivot_falls_back_to_optimize_only_without_an_encoder(tiny_mlp, monkeypatch, tmp_path):
    images = off_range_images(tiny_mlp, 1, 7, "z")
    opts = {"pivot_steps": 5, "steps": 3, **FAST}
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))
    r = invert(tiny_mlp, images, "pti", **opts)  # no encoder for tiny-mlp anywhere: optimize, and the reason is recorded
    assert r.config["pivot"] == "optimize" and "no encoder for tiny-mlp" in r.config["pivot_auto"]
    # a damaged encoder where auto looks is reported, not silently replaced by optimize
    damaged = tmp_path / "home" / "encoders" / "tiny-mlp" / "psp.safetensors"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not an encoder")
    with pytest.raises(CheckpointError, match="psp.safetensors"):
        invert(tiny_mlp, images, "pti", **opts)
    # with a usable encoder, auto takes hybrid
    def fake_hybrid(G, images, opts, ctx):
        return METHODS.get("optimize").run(G, images, opts, ctx)

    from invertkit.methods.optimize import OptimizeOptions

    monkeypatch.setitem(METHODS._items, "hybrid", MethodSpec(run=fake_hybrid, options=OptimizeOptions))
    r = invert(tiny_mlp, images, "pti", **opts)
    assert r.config["pivot"] == "hybrid" and "pivot_auto" not in r.config


def test_bad_options_and_untunable_generators(tiny_mlp):
    images = off_range_images(tiny_mlp, 1, 8, "z")
    with pytest.raises(ConfigError, match="image terms only"):
        invert(tiny_mlp, images, "pti", loss="mse=1,prior=0.1")
    with pytest.raises(ConfigError, match="its own pivot"):
        invert(tiny_mlp, images, "pti", pivot="pti")
    with pytest.raises(ConfigError, match="key=value"):
        invert(tiny_mlp, images, "pti", pivot_options="restarts")
    assert parse_key_values("restarts=4;lr=0.05;loss=mse=1,l1=2;noise=false", where="x") == {
        "restarts": 4, "lr": 0.05, "loss": "mse=1,l1=2", "noise": False}

    class Frozen(Generator):  # a generator that declares no Tunable capability
        resolution, channels, spaces, name = 8, 1, ("z",), "frozen"
        latent_shape = staticmethod(tiny_mlp.latent_shape)
        sample_latent = staticmethod(tiny_mlp.sample_latent)
        convert = staticmethod(tiny_mlp.convert)
        synthesize = staticmethod(tiny_mlp.synthesize)
        mean_latent = staticmethod(tiny_mlp.mean_latent)
        weights = staticmethod(tiny_mlp.weights)
        device = tiny_mlp.device

        def to(self, device):
            return self

    with pytest.raises(ConfigError, match=r"pti \(pivotal tuning\) needs tunable weights; frozen \(Frozen\) has none; generators that have it: "):
        invert(Frozen(), images, "pti")


def test_cli_invert_pti_writes_delta_files(tmp_path, tiny_sg2, capsys):
    from invertkit.cli.main import main
    from invertkit.generators.checkpoints import save_native
    from invertkit.io.images import save_image

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    images = off_range_images(tiny_sg2, 2, 9, "w")
    for i, name in enumerate(("a.png", "b.png")):
        save_image(images[i], tmp_path / "imgs" / name)
    out = tmp_path / "run"
    code = main(["invert", str(tmp_path / "imgs"), "-g", str(ckpt), "--method", "pti", "--pivot", "optimize", "--pivot-steps", "10",
                 "--steps", "10", "--lr", "0.003", "--loss", "mse=1", "--no-locality", "--out", str(out)])
    assert code == 0
    run = json.loads((out / "run.json").read_text())
    assert run["deltas"] == {"a.png": "latents/a_delta.safetensors", "b.png": "latents/b_delta.safetensors"}
    assert run["config"]["method"] == "pti" and run["config"]["pivot"] == "optimize" and run["config"]["locality"] is False
    rows = json.loads((out / "metrics.json").read_text())
    assert all({"psnr", "psnr_pivot"} <= set(r) for r in rows)
    assert (out / "images" / "a_pivot.png").is_file() and (out / "latents" / "a.npz").is_file()
    delta, meta = read_delta(out / "latents" / "a_delta.safetensors")
    assert meta["image"] == "a.png" and meta["pivot_file"] == "a.npz" and delta
    # the pivot rendered by the tuned generator from the files alone is the reconstruction
    gen = tmp_path / "gen"
    assert main(["generate", str(ckpt), "--delta", str(out / "latents" / "a_delta.safetensors"),
                 "--latent", str(out / "latents" / "a.npz"), "--out", str(gen)]) == 0
    assert (gen / "a.png").read_bytes() == (out / "images" / "a_recon.png").read_bytes()
    # a wrong pairing is one clear line
    other = save_native(type(tiny_sg2)(tiny_sg2.config, name="other", init_seed=3), tmp_path / "other.safetensors")
    capsys.readouterr()
    assert main(["generate", str(other), "--delta", str(out / "latents" / "a_delta.safetensors"), "--out", str(gen)]) == 2
    assert "made for generator 'tiny.safetensors'" in capsys.readouterr().err


def test_bench_accepts_pti(tmp_path, tiny_sg2):
    from invertkit.bench import parse_method_spec, run_bench

    assert parse_method_spec("pti:w@steps=5").options == {"space": "w", "steps": 5}
    images = off_range_images(tiny_sg2, 2, 10, "w")
    rows = run_bench(tiny_sg2, images, ["a", "b"], ["pti@pivot=optimize;pivot_steps=5;steps=5;loss=mse=1;locality=false"],
                     tmp_path / "bench", common={"seed": 0})
    assert rows[0]["method"].startswith("pti") and {"psnr_mean", "psnr_pivot_mean"} <= set(rows[0])
    assert len(list((tmp_path / "bench").rglob("*_delta.safetensors"))) == 2
