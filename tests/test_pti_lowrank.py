"""Compact PTI: ``pti`` with ``rank=r`` tunes and stores each weight matrix's change as two factors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from invertkit import invert
from invertkit.errors import CheckpointError, ConfigError
from invertkit.generators import load_generator, wrap
from invertkit.generators.architectures import DCGANGenerator
from invertkit.generators.tuning import (
    LORA_A,
    LORA_B,
    apply_delta,
    expand_delta,
    factorable,
    lowrank_copy,
    matrix_shape,
    read_delta,
    save_delta,
)
from invertkit.io.images import to_uint8

from .conftest import off_range_images, one_thread

FAST = {"loss": "mse=1", "locality_loss": "mse=0.1", "target_perceptual": None}




def _stored_numbers(G, rank: int) -> int:
    """How many numbers a rank-``rank`` delta of every tunable tensor holds (0: the full delta)."""
    total = 0
    for p in G.tunable_module().parameters():
        if factorable(p.shape, rank):
            m, n = matrix_shape(p.shape)
            total += rank * (m + n)
        else:
            total += p.numel()
    return total


@pytest.fixture(scope="module")
def sg2_runs(tiny_sg2):
    """pti on the tiny StyleGAN2 with the full delta and with rank 2 (same pivots)."""
    with one_thread():  # conftest's per-test setting does not reach module fixtures
        images = off_range_images(tiny_sg2, 2, 3, "w")
        common = {"pivot": "optimize", "pivot_steps": 20, "steps": 25, "lr": 3e-3, **FAST}
        return images, invert(tiny_sg2, images, "pti", rank=0, **common), invert(tiny_sg2, images, "pti", rank=2, **common)


def test_lowrank_delta_holds_factors_and_renders_the_reconstruction(sg2_runs, tiny_sg2):
    _, full, low = sg2_runs
    assert low.config["rank"] == 2 and full.config["rank"] == 0
    assert torch.equal(low.latents, full.latents)  # same pivots
    d = low.deltas[0]
    assert all(k.startswith("synthesis.") for k in d)  # the mapping stays frozen
    conv = "synthesis.b16.conv0.weight"
    assert d[conv + LORA_B].shape == (16, 2) and d[conv + LORA_A].shape == (2, 32 * 9) and conv not in d  # out x r, r x in*k*k
    assert "synthesis.b16.conv0.bias" in d and "synthesis.b16.torgb.weight" + LORA_A in d  # biases full, toRGB factored
    assert "synthesis.b4.const" + LORA_A in d  # [C, 4, 4] seen as C x 16
    for m in low.metrics:
        assert m["psnr"] > m["psnr_pivot"] + 1
    for i in range(2):
        T = low.generator(tiny_sg2, i)
        with torch.no_grad():
            assert torch.allclose(T.synthesize(low.latents[i : i + 1], "w"), low.reconstructions[i : i + 1], atol=1e-6)
    # multiplied out, the factors are an ordinary full delta drawing the same image
    dense = expand_delta(tiny_sg2, d)
    assert set(dense) == {k.removesuffix(LORA_A) for k in d if not k.endswith(LORA_B)}
    with torch.no_grad():
        assert torch.allclose(apply_delta(tiny_sg2, dense).synthesize(low.latents[:1], "w"), low.reconstructions[:1], atol=1e-5)


def test_lowrank_files_are_smaller_by_the_expected_factor(tmp_path, sg2_runs, tiny_sg2):
    _, full, low = sg2_runs
    a = save_delta(tmp_path / "full.safetensors", full.deltas[0], full.base.meta())
    b = save_delta(tmp_path / "low.safetensors", low.deltas[0], low.base.meta())
    numbers = sum(t.numel() for t in low.deltas[0].values())
    assert numbers <= _stored_numbers(tiny_sg2, 2)  # factors for every factorable tensor, the rest in full
    assert sum(t.numel() for t in full.deltas[0].values()) <= _stored_numbers(tiny_sg2, 0)
    header = 8 * 1024  # the safetensors header's JSON (names, shapes, our metadata) is a few KB
    assert 4 * numbers < b.stat().st_size < 4 * numbers + header
    assert b.stat().st_size < a.stat().st_size / 3  # rank 2 of 16-32 channel layers: about 4.6x smaller
    _, meta = read_delta(b)
    assert meta["layout"] == "lowrank" and meta["rank"] == 2 and meta["format_version"] == 2
    _, meta = read_delta(a)
    assert meta["layout"] == "full" and meta["rank"] == 0 and meta["format_version"] == 1  # older readers still read it


def test_dcgan_and_mlp_lowrank_round_trip(tmp_path):
    torch.manual_seed(0)
    G = wrap(DCGANGenerator(nz=8, ngf=4, nc=1), (8,), 64, 1, name="tiny-dcgan")
    images = off_range_images(G, 1, 11, "z")
    r = invert(G, images, "pti", pivot="optimize", pivot_steps=3, steps=6, lr=3e-3, rank=1, **FAST)
    d = r.deltas[0]
    # ConvTranspose2d stores in x out x k x k: the matrix is in x (out*k*k)
    assert d["main.3.weight" + LORA_B].shape == (32, 1) and d["main.3.weight" + LORA_A].shape == (1, 16 * 16)
    assert "main.4.weight" in d and "main.4.bias" in d  # batch-norm affine weights stay full
    assert not any("running_" in k for k in d)
    path = save_delta(tmp_path / "d.safetensors", d, r.base.meta())
    delta, meta = read_delta(path)
    T = apply_delta(G, delta, meta=meta, source=str(path))
    with torch.no_grad():
        assert torch.allclose(T.synthesize(r.latents, "z"), r.reconstructions, atol=1e-6)
    assert sum(t.numel() for t in d.values()) <= _stored_numbers(G, 1) < _stored_numbers(G, 0) / 5
    assert path.stat().st_size * 2 < _stored_numbers(G, 0) * 4  # its header is a good part of so small a file


def test_mlp_rank_above_the_matrices_stays_full(tiny_mlp):
    # 32 x 8 and 64 x 32 matrices: rank 8 factors would not be smaller than the first matrix
    T, groups, finish = lowrank_copy(tiny_mlp, 8, seed=0)
    d = finish()
    assert d == {}  # nothing tuned yet: every B is zero and no full tensor changed
    names = {k for k in (n for n, _ in tiny_mlp.module.named_parameters())}
    factored = {n for n in names if factorable(dict(tiny_mlp.module.named_parameters())[n].shape, 8)}
    assert factored and factored != {n for n in names if n.endswith("weight")}
    assert sum(len(g["params"]) for g in groups) == 2 * len(factored) + len(names - factored)
    assert not any(p.requires_grad for p in tiny_mlp.module.parameters())  # the base is untouched


def test_cli_lowrank_run_loads_renders_and_edits(tmp_path, tiny_sg2):
    from invertkit.cli.main import main
    from invertkit.editing.directions import Directions, identity, save_directions, unit_rows
    from invertkit.generators.checkpoints import save_native
    from invertkit.io.images import save_image
    from invertkit.runs import load_run

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    images = off_range_images(tiny_sg2, 1, 9, "w")
    save_image(images[0], tmp_path / "imgs" / "a.png")
    out = tmp_path / "run"
    assert main(["invert", str(tmp_path / "imgs"), "-g", str(ckpt), "--method", "pti", "--pivot", "optimize", "--pivot-steps", "5",
                 "--steps", "8", "--lr", "0.003", "--rank", "2", "--loss", "mse=1", "--no-locality", "--out", str(out)]) == 0
    delta_file = out / "latents" / "a_delta.safetensors"
    delta, meta = read_delta(delta_file)
    assert meta["layout"] == "lowrank" and any(k.endswith(LORA_A) for k in delta)
    assert json.loads((out / "run.json").read_text())["config"]["rank"] == 2
    G = load_generator(ckpt)
    r = load_run(out).result
    with torch.no_grad():
        assert np.array_equal(to_uint8(r.render(G)), to_uint8(r.reconstructions))  # the run's images are 8-bit
    gen = tmp_path / "gen"
    assert main(["generate", str(ckpt), "--delta", str(delta_file), "--latent", str(out / "latents" / "a.npz"), "--out", str(gen)]) == 0
    assert (gen / "a.png").read_bytes() == (out / "images" / "a_recon.png").read_bytes()
    # an edit of the pivot is drawn by the low-rank tuned generator
    dirs = save_directions(Directions(unit_rows(torch.randn(1, 32, generator=torch.Generator().manual_seed(0))), torch.ones(1),
                                      torch.zeros(1), "w", "test", ["up"], generator=identity(G)), tmp_path / "dirs.safetensors")
    edits = tmp_path / "edits"
    assert main(["edit", str(out), "-g", str(ckpt), "-d", str(dirs), "--steps", "3", "--scale", "1", "--out", str(edits)]) == 0
    [strip] = json.loads((edits / "edits.json").read_text())["strips"]
    assert strip["tuned"] is True
    tuned = load_generator(ckpt, delta=delta_file)
    pivot = r.latents[:1]
    with torch.no_grad():
        a, b = tuned.synthesize(pivot + 1.0, "w"), G.synthesize(pivot + 1.0, "w")
    assert not np.array_equal(to_uint8(a), to_uint8(b))  # the tuned weights matter away from the pivot too


def test_damaged_lowrank_files_are_refused_with_one_line(tmp_path, sg2_runs, tiny_sg2):
    _, _, low = sg2_runs
    good = low.deltas[0]
    conv = "synthesis.b16.conv0.weight"

    def refused(delta: dict, match: str) -> None:
        with pytest.raises(CheckpointError, match=match) as err:
            apply_delta(tiny_sg2, delta, source="d.safetensors")
        assert "\n" not in str(err.value)

    nan = {k: v.clone() for k, v in good.items()}
    nan[conv + LORA_A][0, 0] = float("nan")
    refused(nan, "NaN")
    huge = {k: v.clone() for k, v in good.items()}
    huge[conv + LORA_A].fill_(1e4)
    huge[conv + LORA_B].fill_(1e4)  # each factor in bounds, their product 2e8
    refused(huge, r"changes a weight by 2e\+08")
    wrong = {**good, conv + LORA_A: good[conv + LORA_A][:, :-1]}
    refused(wrong, r"factors of synthesis.b16.conv0.weight are \[16, 2\] @ \[2, 287\].*needs \[16, r\] @ \[r, 288\]")
    ranks = {**good, conv + LORA_B: torch.zeros(16, 3)}
    refused(ranks, "factors of synthesis.b16.conv0.weight")
    alone = {k: v for k, v in good.items() if k != conv + LORA_B}
    refused(alone, "comes without its")
    both = {**good, conv: torch.zeros(16, 32, 3, 3)}
    refused(both, "both in full and as factors")
    bias = {**good, "synthesis.b16.conv1.bias" + LORA_A: torch.zeros(1, 1), "synthesis.b16.conv1.bias" + LORA_B: torch.zeros(16, 1)}
    refused(bias, "fewer than 2 dimensions")
    # in a file: a huge factor is refused when read; factors under a full-layout header too
    path = tmp_path / "bad.safetensors"
    big = {k: v.clone() for k, v in good.items()}
    big[conv + LORA_B].fill_(1e7)
    from invertkit.generators.tuning import METADATA_KEY
    from invertkit.io.safetensors_file import write_safetensors

    header = {**low.base.meta(), "format": "invertkit-delta", "format_version": 2, "layout": "lowrank", "rank": 2}
    write_safetensors(path, big, {METADATA_KEY: json.dumps(header)}, "weight delta")
    with pytest.raises(CheckpointError, match="more than 1e\\+06.*corrupted") as err:
        read_delta(path)
    assert "\n" not in str(err.value)
    huge_product = {k: v.clone() for k, v in good.items()}
    huge_product[conv + LORA_A].fill_(1e4)
    huge_product[conv + LORA_B].fill_(1e4)
    write_safetensors(path, huge_product, {METADATA_KEY: json.dumps(header)}, "weight delta")
    with pytest.raises(CheckpointError, match=f"tensor {conv} of the weight delta changes a weight by 2e\\+08"):
        read_delta(path)
    with pytest.raises(ConfigError, match="changes a weight by more than"):
        save_delta(path, huge_product, low.base.meta())
    write_safetensors(path, dict(good), {METADATA_KEY: json.dumps({**header, "format_version": 1, "layout": "full"})}, "weight delta")
    with pytest.raises(CheckpointError, match="holds low-rank factors but its header says layout 'full'"):
        read_delta(path)


def test_rank_option_is_checked(tiny_sg2):
    images = off_range_images(tiny_sg2, 1, 1, "w")
    with pytest.raises(ConfigError, match="rank"):
        invert(tiny_sg2, images, "pti", rank=-1, pivot="optimize", pivot_steps=1, steps=1)
    with pytest.raises(ConfigError, match="rank"):
        invert(tiny_sg2, images, "pti", rank=100000, pivot="optimize", pivot_steps=1, steps=1)
    with pytest.raises(ConfigError, match="rank >= 1"):
        lowrank_copy(tiny_sg2, 0)


def test_diverged_lowrank_weights_are_flagged(sg2_runs):
    import dataclasses

    from invertkit.results.health import nonfinite_images

    _, _, low = sg2_runs
    assert nonfinite_images(low) == {}
    conv = "synthesis.b16.conv0.weight"
    bad = {k: v.clone() for k, v in low.deltas[1].items()}
    bad[conv + LORA_A].fill_(1e4)
    bad[conv + LORA_B].fill_(1e4)  # in bounds each, not multiplied out
    assert nonfinite_images(dataclasses.replace(low, deltas=[low.deltas[0], bad])) == {1: "non-finite tuned weights"}
