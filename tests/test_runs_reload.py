"""``load_run``: every method family's run folder reads back into the typed result the run produced,
and re-rendering it gives the run's own reconstructions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import invertkit
from invertkit import DiffusionInversion, LatentInversion, TunedInversion, load_run
from invertkit.errors import ConfigError, LatentSpaceError
from invertkit.io.images import to_uint8
from invertkit.runs import RunWriter


@pytest.fixture(scope="module")
def noisy_sg2():
    """A tiny StyleGAN2 whose noise maps matter (NVIDIA initialises noise strengths to 0)."""
    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32)
    G = StyleGAN2Generator(cfg, name="noisy-sg2", init_seed=3)
    with torch.no_grad():
        for name, p in G.net.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.4)
    return G


def _targets(G, n=2, seed=11):
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(n, G.spaces[0], seed=seed), G.spaces[0])
    return x.clamp(-1, 1) * 0.9


def _round_trip(G, images, out, method, **options):
    """Invert in two batches (a run of several batches), write the run, read it back."""
    writer = RunWriter(out, G)
    parts = []
    for s in range(0, images.shape[0], 1):
        r = invertkit.invert(G, images[s:s + 1], method, image_ids=[s], **options)
        writer.add(r, images[s:s + 1], [f"img {s}.png"])
        parts.append(r)
    writer.finish()
    return type(parts[0]).concat(parts), load_run(out, G)


def _check(run, original, G, atol=1e-5):
    loaded = run.result
    assert type(loaded) is type(original) and loaded.space == original.space and loaded.n == original.n
    assert run.names == ["img 0.png", "img 1.png"] and run.stems == ["img_0", "img_1"]
    assert torch.allclose(loaded.latents.float().cpu(), original.latents.float().cpu(), atol=1e-6)
    rendered = run.render(G)
    assert torch.allclose(rendered.cpu(), original.reconstructions.cpu(), atol=atol)
    # the images the run saved are the 8-bit form of what the saved state renders to
    assert np.array_equal(to_uint8(loaded.reconstructions), to_uint8(original.reconstructions.cpu()))
    assert [m["psnr"] for m in loaded.metrics] == pytest.approx([m["psnr"] for m in original.metrics])
    assert loaded.timings.evaluations == pytest.approx(original.timings.evaluations)
    return rendered


@pytest.mark.parametrize("space", ["z", "w", "w+", "s", "p", "pn"])
def test_latent_spaces_reload(noisy_sg2, tmp_path, space):
    G = noisy_sg2
    original, run = _round_trip(G, _targets(G), tmp_path / "run", "optimize", space=space, steps=4)
    assert isinstance(run.result, LatentInversion) and run.result.noise is None and run.result.layer_state is None
    _check(run, original, G)


def test_layerwise_with_noise_maps_reloads_and_renders_exactly(noisy_sg2, tmp_path):
    G = noisy_sg2
    original, run = _round_trip(G, _targets(G), tmp_path / "run", "optimize", space="f:8", noise=True, steps=6)
    loaded = run.result
    assert loaded.layer_state is not None and loaded.layer_state.layer == "8" and set(loaded.noise) == set(original.noise)
    _check(run, original, G)
    # the tail latent alone (what run format 1 kept) renders something else: the state is what matters
    with torch.no_grad():
        plain = G.synthesize(loaded.latents, "w+")
    assert not torch.allclose(plain, original.reconstructions, atol=1e-3)
    # the CLI renders the saved file as the run did
    from invertkit.cli.main import main
    from invertkit.generators.checkpoints import save_native

    ckpt = save_native(G, tmp_path / "noisy.safetensors")
    images = tmp_path / "in"
    from invertkit.io.images import save_image

    for i in range(2):
        save_image(_targets(G)[i], images / f"t{i}.png")
    assert main(["invert", str(images), "-g", str(ckpt), "--space", "f:8", "--noise", "--steps", "5", "--out", str(tmp_path / "cli")]) == 0
    assert main(["generate", str(ckpt), "--latent", str(tmp_path / "cli" / "latents" / "t0.npz"), "--out", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen" / "t0.png").read_bytes() == (tmp_path / "cli" / "images" / "t0_recon.png").read_bytes()


def test_noise_maps_reach_the_layers_after_the_split(noisy_sg2):
    """f:LAYER with noise=True optimises (and keeps) only the maps after the cut, and they shape the image."""
    G = noisy_sg2
    r = invertkit.invert(G, _targets(G), "optimize", space="f:8", noise=True, steps=3)
    after = G.layer_split("8").tail_noise
    assert set(r.noise) == set(after) and after and all(name.startswith("b16.") for name in after)
    shifted = LatentInversion(latents=r.latents, space=r.space, reconstructions=r.reconstructions,
                              noise={k: -v for k, v in r.noise.items()}, layer_state=r.layer_state)
    assert torch.allclose(r.render(G), r.reconstructions, atol=1e-6)
    assert not torch.allclose(shifted.render(G), r.reconstructions, atol=1e-3)  # other maps: another image


def test_layerwise_on_a_sequential_generator_reloads(tiny_mlp, tmp_path):
    original, run = _round_trip(tiny_mlp, _targets(tiny_mlp), tmp_path / "run", "optimize", space="f:2", steps=5, restarts=1)
    assert run.result.layer_state.layer == "2"
    _check(run, original, tiny_mlp)


@pytest.mark.parametrize("method,options", [
    ("plain", {"steps": 5}),
    ("cma", {"steps": 2}),
    ("basincma", {"steps": 1, "popsize": 4, "inner_steps": 2, "final_steps": 2}),
    ("optimize", {"space": "z-sphere", "steps": 5, "restarts": 2}),
    ("optimize", {"optimizer": "lbfgs", "steps": 3, "restarts": 1}),
])
def test_other_latent_methods_reload(tiny_mlp, tmp_path, method, options):
    original, run = _round_trip(tiny_mlp, _targets(tiny_mlp), tmp_path / "run", method, **options)
    _check(run, original, tiny_mlp)


def test_pti_reloads_with_its_deltas(tiny_mlp, tmp_path):
    original, run = _round_trip(tiny_mlp, _targets(tiny_mlp), tmp_path / "run", "pti", pivot="optimize", pivot_steps=5,
                                steps=5, lr=3e-3, loss="mse=1", locality=False, target_perceptual=None)
    loaded = run.result
    assert isinstance(loaded, TunedInversion) and len(loaded.deltas) == 2 and loaded.base.digest == tiny_mlp.fingerprint()
    for a, b in zip(loaded.deltas, original.deltas):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    _check(run, original, tiny_mlp)


def test_encoder_results_reload(tmp_path):
    G = invertkit.load_generator("dcgan-digiface64")
    images = _targets(G)
    original, run = _round_trip(G, images, tmp_path / "run", "encoder")
    assert isinstance(run.result, LatentInversion) and run.result.config["encoder_arch"] == "psp"
    _check(run, original, G)


DIFFUSION = [("ddim", "diffusion", {}), ("renoise", "diffusion", {"iterations": 2}), ("nulltext", "diffusion", {"inner_steps": 2}),
             ("negprompt", "diffusion", {}), ("direct", "diffusion", {}), ("edict", "diffusion", {}), ("bdia", "diffusion", {}),
             ("flow-euler", "flow", {}), ("flow-midpoint", "flow", {}), ("fireflow", "flow", {}), ("rf-inversion", "flow", {}),
             ("coupled-flow", "flow", {})]


@pytest.mark.parametrize("method,family,options", DIFFUSION)
def test_every_diffusion_method_reloads(tmp_path, method, family, options):
    G = invertkit.load_generator(f"analytic:{family}")
    guidance = {} if method in ("nulltext", "negprompt", "direct") else {"guidance": 2.0}
    original, run = _round_trip(G, _targets(G), tmp_path / "run", method, steps=6, prompt="up", dtype="float64", **guidance, **options)
    loaded = run.result
    assert isinstance(loaded, DiffusionInversion) and loaded.diffusion_method == method
    assert loaded.options == original.options  # every option, the method's own included, comes back
    rendered = _check(run, original, G, atol=1e-9)  # float64 states are saved in float64: exact re-render
    # an edit of the reloaded state is the edit of the in-memory one
    assert torch.allclose(loaded.render(G, prompt="down"), original.render(G, prompt="down"), atol=1e-9)
    assert rendered.dtype == torch.float32


def test_a_diffusers_model_run_reloads(tmp_path):
    pytest.importorskip("diffusers")
    from .diffusers_factories import write_folder

    G = invertkit.load_generator(f"diffusers:{write_folder(tmp_path / 'cond', 'cond')}")
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    original, run = _round_trip(G, images, tmp_path / "run", "nulltext", steps=4, prompt="cat", guidance=3.0, inner_steps=2)
    assert len(run.result.state.tensors["uncond"]) == 4
    _check(run, original, G, atol=1e-5)
    other = invertkit.load_generator(f"diffusers:{write_folder(tmp_path / 'other', 'cond', seed=1)}")
    with pytest.raises(ConfigError, match="pass that generator"):
        load_run(tmp_path / "run", other)


def test_interrupted_run_and_single_files_read_back(tiny_mlp, tmp_path):
    original, _ = _round_trip(tiny_mlp, _targets(tiny_mlp), tmp_path / "run", "optimize", steps=4, restarts=1)
    for name in ("run.json", "metrics.json", "metrics.csv"):
        (tmp_path / "run" / name).unlink()  # written last: an interrupted run has only images/ and latents/
    run = load_run(tmp_path / "run")
    assert run.names == ["img 0.png", "img 1.png"] and run.result.metrics == [{}, {}]
    assert torch.allclose(run.render(tiny_mlp), original.reconstructions, atol=1e-5)
    one = load_run(tmp_path / "run" / "latents" / "img_1.npz", tiny_mlp)
    assert one.result.n == 1 and torch.allclose(one.render(tiny_mlp), original.reconstructions[1:], atol=1e-5)


def test_another_generator_is_refused(tiny_mlp, tiny_sg2, tmp_path):
    _round_trip(tiny_mlp, _targets(tiny_mlp), tmp_path / "run", "optimize", steps=2, restarts=1)
    from invertkit.generators import wrap
    from invertkit.generators.architectures import mlp_generator

    torch.manual_seed(5)
    other = wrap(mlp_generator(z_dim=8, hidden=32, out_dim=64), (8,), 8, 1, name="tiny-mlp")
    with pytest.raises(ConfigError, match="has other weights: pass the generator the run used"):
        load_run(tmp_path / "run", other)


def _format1_run(folder, G, space, latent, config):
    """A run folder as invertkit 0.1.0 wrote it: npz with the space and its key only, run.json without a format."""
    from invertkit.io.images import save_image
    from invertkit.io.latents import space_key

    (folder / "latents").mkdir(parents=True)
    np.savez(folder / "latents" / "a.npz", **{space_key(space): latent.numpy()}, space=np.asarray(space))
    with torch.no_grad():
        save_image(G.synthesize(latent, "z")[0], folder / "images" / "a_recon.png")
    (folder / "run.json").write_text(json.dumps({"config": config, "images": ["a.png"], "generator": G.describe()}))


def test_format1_runs_stay_readable_or_say_why_not(tiny_mlp, tmp_path):
    z = tiny_mlp.sample_latent(1, "z", seed=3)
    _format1_run(tmp_path / "plain", tiny_mlp, "z", z, {"method": "optimize", "space": "z"})
    run = load_run(tmp_path / "plain", tiny_mlp)
    assert run.run_format == 1 and run.names == ["a.png"] and torch.equal(run.result.latents, z)
    with torch.no_grad():
        assert torch.allclose(run.render(tiny_mlp), tiny_mlp.synthesize(z, "z").clamp(-1, 1))
    _format1_run(tmp_path / "layer", tiny_mlp, "f:2", z, {"method": "optimize", "space": "f:2"})
    with pytest.raises(LatentSpaceError, match=r"run format 1.*layerwise \(f:LAYER\).*re-run the inversion"):
        load_run(tmp_path / "layer", tiny_mlp)
    _format1_run(tmp_path / "noise", tiny_mlp, "z", z, {"method": "optimize", "space": "z", "noise": True})
    with pytest.raises(LatentSpaceError, match=r"run format 1.*noise maps"):
        load_run(tmp_path / "noise", tiny_mlp)


def test_a_newer_run_format_is_refused(tiny_mlp, tmp_path):
    _round_trip(tiny_mlp, _targets(tiny_mlp), tmp_path / "run", "optimize", steps=2, restarts=1)
    doc = json.loads((tmp_path / "run" / "run.json").read_text())
    doc["run_format"], doc["invertkit"] = 99, "9.0"
    (tmp_path / "run" / "run.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"run format 99 was written by invertkit 9.0.*upgrade invertkit"):
        load_run(tmp_path / "run")


def test_run_json_records_the_loss_that_was_minimised(noisy_sg2, tmp_path):
    """noise=True appends the noise regulariser to the loss; run.json says so (it did not)."""
    G = noisy_sg2
    _, run = _round_trip(G, _targets(G), tmp_path / "run", "optimize", space="w", noise=True, steps=2, loss="mse=1")
    assert run.config["loss"] == "mse=1,noise=6.151"
    again = invertkit.invert(G, _targets(G)[:1], "optimize", space="w", noise=False, steps=2, loss=run.config["loss"])
    assert again.config["loss"] == "mse=1,noise=6.151"  # a loss that names the term is kept as given
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["loss"] == "mse=1,noise=6.151"
