"""The residual aligner of fs encoders (editing.aligner): identity at no edit, files, training, and its
use by editing (edit_result, ``invertkit edit --residual``) and by the bench's edit columns (fs-encoder
and tuned results)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import invertkit
from invertkit.bench import run_bench
from invertkit.cli.main import main
from invertkit.editing.aligner import (
    AlignerConfig,
    AlignerTrainOptions,
    ResidualAligner,
    aligner_path,
    find_aligner,
    load_aligner,
    random_edits,
    recorded_encoder,
    save_aligner,
    ship_aligner,
    train_aligner,
)
from invertkit.editing.apply import edit_result, result_aligner
from invertkit.editing.directions import Directions, save_directions
from invertkit.editing.editability import EditProbe
from invertkit.encoders import train_encoder
from invertkit.encoders.files import file_sha256
from invertkit.errors import CheckpointError, ConfigError
from invertkit.runs.writer import RunWriter

from .conftest import tiny_conv_generator

FAST = dict(width=8, max_width=16, perceptual_weight=0.0, eval_images=8, log_every=5)


@pytest.fixture(scope="module")
def tiny_conv():
    """:func:`tests.conftest.tiny_conv_generator` named 'tiny-conv-align'."""
    return tiny_conv_generator("tiny-conv-align")


@pytest.fixture(scope="module")
def setup(tiny_conv, tmp_path_factory):
    """An fs encoder (briefly trained, layer 3: 8 x 8 x 8 features), a run folder of its inversions and
    an aligner trained for it (a few steps), placed beside a copy of the encoder."""
    G = tiny_conv
    root = tmp_path_factory.mktemp("align")
    enc = train_encoder(G, root / "enc", arch="fs", layer="3", steps=8, batch=8, checkpoint_every=8, **FAST)
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(2, "z", seed=9), "z").clamp(-1, 1)
    res = invertkit.invert(G, x, "fs-encoder", encoder=str(enc))
    writer = RunWriter(root / "run", G)
    writer.add(res, x, ["a.png", "b.png"])
    writer.finish()
    trained = train_aligner(G, enc, root / "aligner", AlignerTrainOptions(steps=6, batch=4, pool=16, width=8, directions=3),
                            log=lambda *_: None)
    return G, root, enc, res, x, trained


def _nontrivial(config: AlignerConfig) -> ResidualAligner:
    torch.manual_seed(1)
    net = ResidualAligner(config)
    with torch.no_grad():
        for p in net.out.parameters():
            p.normal_(0, 0.3)
    return net.eval()


def test_no_edit_returns_the_residual_exactly_and_an_edit_moves_it():
    net = _nontrivial(AlignerConfig("g", "3", (8, 8, 8), width=8))
    r, f = torch.randn(3, 8, 8, 8), torch.randn(3, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(r, f, f), r)
        moved = net(r, f + torch.randn_like(f), f)
    assert moved.shape == r.shape and (moved - r).abs().mean() > 1e-3
    with pytest.raises(ConfigError, match="N x 8 x 8 x 8"):
        net(r[:, :4], f[:, :4], f[:, :4])


def test_random_edits_have_the_asked_strengths():
    bank = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    d = random_edits(bank, 200, 3.0, torch.Generator().manual_seed(0))
    norms = d.norm(dim=1)
    assert d.shape == (200, 8) and norms.max() <= 6.01 and (norms >= 0.249).float().mean() > 0.7  # pairs may cancel
    assert 1.0 < norms.median() < 2.5


def test_file_round_trip_and_refusals(tmp_path):
    net = _nontrivial(AlignerConfig("g", "3", (8, 8, 8), width=8, encoder_sha256="ab"))
    net.r_scale.fill_(0.5)
    p = save_aligner(net, tmp_path / "a.safetensors", meta={"note": 1})
    back = load_aligner(p)
    r, f, g = torch.randn(3, 2, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(back(r, g, f), net(r, g, f), atol=1e-6)
    assert back.config == net.config and back.meta == {"note": 1} and float(back.r_scale) == 0.5
    half = ship_aligner(p, tmp_path / "h.safetensors")
    assert load_aligner(half).meta["stored_as"] == "float16" and half.stat().st_size < p.stat().st_size
    # a config that does not fit the tensors (other feature shape) is refused before reading them
    wide = _nontrivial(AlignerConfig("g", "3", (16, 8, 8), width=8))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(p))
    header = json.loads(__import__("safetensors").safe_open(str(p), "pt").metadata()["invertkit_aligner"])
    header["config"] = wide.config.to_dict()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"invertkit_aligner": json.dumps(header)})
    with pytest.raises(CheckpointError, match="do not fit its config"):
        load_aligner(tmp_path / "bad.safetensors")
    tensors["out.bias"][0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata={"invertkit_aligner": json.dumps({**header, "config": net.config.to_dict()})})
    with pytest.raises(CheckpointError, match="NaN"):
        load_aligner(tmp_path / "nan.safetensors")
    save_file(tensors, str(tmp_path / "other.safetensors"), metadata={"x": "1"})
    with pytest.raises(CheckpointError, match="without the header"):
        load_aligner(tmp_path / "other.safetensors")
    header["config"]["feature_shape"] = [8, "8", 8]
    save_file(tensors, str(tmp_path / "str.safetensors"), metadata={"invertkit_aligner": json.dumps(header)})
    with pytest.raises(CheckpointError, match="invalid aligner config"):
        load_aligner(tmp_path / "str.safetensors")
    with pytest.raises(CheckpointError, match="no such aligner"):
        load_aligner(tmp_path / "missing.safetensors")
    assert aligner_path(tmp_path / "fs.safetensors").name == "fs.aligner.safetensors"


def test_training_writes_an_aligner_for_that_encoder(setup):
    G, root, enc, res, x, trained = setup
    net = load_aligner(trained)
    assert net.config.layer == "3" and net.config.feature_shape == tuple(res.layer_state.tensors[0].shape[1:])
    assert net.config.encoder_sha256 == file_sha256(enc) and net.meta["options"]["steps"] == 6
    logs = [json.loads(line) for line in (root / "aligner" / "log.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 5 and all(k in logs[0] for k in ("pixel", "raw_pixel", "feature"))


def test_edits_use_the_aligner_beside_the_encoder(setup, tmp_path):
    G, root, enc, res, x, trained = setup
    d = Directions(torch.nn.functional.normalize(torch.randn(1, 8), dim=1), torch.ones(1), torch.ones(1), "z", "test")
    # no aligner beside the encoder yet: auto re-adds the raw residual, aligned is refused
    assert result_aligner(G, res, "auto") is None
    with pytest.raises(ConfigError, match="no residual aligner"):
        edit_result(G, res, d, 0, [0.0, 2.0], residual="aligned")
    raw = edit_result(G, res, d, 0, [0.0, 2.0], residual="raw")
    # beside it: auto uses it (a non-trivial one, so the edit differs); strength 0 is still the reconstruction
    cfg = load_aligner(trained).config
    save_aligner(_nontrivial(cfg), aligner_path(enc))
    try:
        assert result_aligner(G, res, "auto") is not None
        aligned = edit_result(G, res, d, 0, [0.0, 2.0])
        assert torch.allclose(aligned[:, 0], res.reconstructions.clamp(-1, 1), atol=1e-5)
        assert torch.allclose(raw[:, 0], aligned[:, 0], atol=1e-6)
        assert (aligned[:, 1] - raw[:, 1]).abs().mean() > 1e-4
        assert torch.equal(edit_result(G, res, d, 0, [0.0, 2.0], residual="raw"), raw)
        with pytest.raises(ConfigError, match="choose"):
            result_aligner(G, res, "sideways")

    finally:
        aligner_path(enc).unlink()

    # an aligner trained for other encoder weights: auto warns and falls back to raw, aligned refuses
    other = _nontrivial(AlignerConfig(cfg.generator, cfg.layer, cfg.feature_shape, cfg.width, "0" * 64))
    save_aligner(other, aligner_path(enc))
    try:
        with pytest.warns(UserWarning, match="sha256 differs"):
            assert find_aligner(G, res, "auto") is None
        with pytest.raises(ConfigError, match="sha256 differs"):
            find_aligner(G, res, "aligned")
    finally:
        aligner_path(enc).unlink()
    # another layer's aligner is refused the same way
    save_aligner(_nontrivial(AlignerConfig(cfg.generator, "1", (16, 4, 4), 8, file_sha256(enc))), aligner_path(enc))
    try:
        with pytest.raises(ConfigError, match="aligns features of layer 1"):
            find_aligner(G, res, "aligned")
    finally:
        aligner_path(enc).unlink()


def test_a_pivot_encoder_recorded_by_hyperstyle_leads_to_its_aligner(setup):
    """hyperstyle on an fs pivot records the pivot's encoder file under ``pivot_config``: its aligner is
    found there, not only among the installed or shipped encoders."""
    import dataclasses

    G, root, enc, res, x, trained = setup
    tuned_like = dataclasses.replace(res, config={"pivot": "encoder", "pivot_config": {"encoder": str(enc), "layer": "3"}})
    assert recorded_encoder(tuned_like) == enc and recorded_encoder(dataclasses.replace(res, config={})) is None
    save_aligner(_nontrivial(load_aligner(trained).config), aligner_path(enc))
    try:
        assert find_aligner(G, tuned_like, "aligned") is not None
    finally:
        aligner_path(enc).unlink()


def test_bench_edit_columns_for_fs_encoder_and_tuned_results(setup, tmp_path):
    G, root, enc, res, x, trained = setup
    shutil.copy(trained, aligner_path(enc))
    try:
        d = Directions(torch.nn.functional.normalize(torch.randn(1, 8), dim=1), torch.ones(1), torch.ones(1), "z", "test")
        rows = {}
        for mode in ("auto", "raw"):
            probe = EditProbe(d, 0, (-2.0, 0.0, 2.0), residual=mode)
            for r in run_bench(G, x, ["a", "b"], [f"fs-encoder@encoder={enc}",
                                                  "pti:z@pivot=optimize;pivot_steps=3;steps=3;loss=mse=1;locality=false"],
                               tmp_path / f"bench-{mode}", edit=probe, common={"seed": 0}):
                rows[(mode, r["method"].split("@")[0])] = r
        for key, row in rows.items():
            assert "edit" not in row, (key, row.get("edit"))  # no "n/a: ..." entry
            assert row["edit_change"] > 0 and row["edit_perceptual"] >= 0
        # pti does not depend on the residual mode; fs-encoder's aligned edit differs from the raw one
        assert rows[("auto", "pti:z")]["edit_change"] == pytest.approx(rows[("raw", "pti:z")]["edit_change"])
        assert rows[("auto", "fs-encoder")]["edit_change"] != rows[("raw", "fs-encoder")]["edit_change"]
        assert (tmp_path / "bench-auto" / "bench.html").is_file()
    finally:
        aligner_path(enc).unlink()


def test_cli_edit_residual_option(tiny_sg2, tmp_path):
    """`invertkit edit` of an fs-encoder run folder: the aligner beside the run's encoder is used by
    default (edits.json names it), --residual raw re-adds the residual, aligned without one exits 2."""
    from invertkit.generators.checkpoints import save_native

    ckpt = save_native(tiny_sg2, tmp_path / "tiny.safetensors")
    G = invertkit.load_generator(ckpt)
    enc = train_encoder(G, tmp_path / "enc", arch="fs", layer="8", steps=4, batch=4, checkpoint_every=4, **FAST)
    trained = train_aligner(G, enc, tmp_path / "al", AlignerTrainOptions(steps=2, batch=2, pool=4, width=4, directions=2),
                            log=lambda *_: None)
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(2, "w", seed=5), "w").clamp(-1, 1)
    from invertkit.io.images import save_image

    for i in range(2):
        save_image(x[i], tmp_path / "imgs" / f"{i}.png")
    assert main(["invert", str(tmp_path / "imgs"), "-g", str(ckpt), "--method", "fs-encoder", "--encoder", str(enc),
                 "--out", str(tmp_path / "run")]) == 0
    d = Directions(torch.nn.functional.normalize(torch.randn(1, 32), dim=1), torch.ones(1), torch.ones(1), "w", "test")
    save_directions(d, tmp_path / "d.safetensors")

    def edit(mode):
        out = tmp_path / f"edits-{mode}"
        code = main(["edit", str(tmp_path / "run"), "-g", str(ckpt), "--direction", str(tmp_path / "d.safetensors"),
                     "--strength", "0,2", "--residual", mode, "--out", str(out), "--no-gif"])
        return code, out

    assert edit("aligned")[0] == 2
    shutil.copy(trained, aligner_path(enc))
    for mode, used in (("auto", str(aligner_path(enc))), ("aligned", str(aligner_path(enc))), ("raw", "raw")):
        code, out = edit(mode)
        record = json.loads((out / "edits.json").read_text())
        assert code == 0 and record["residual"] == mode
        assert [it["residual"] for it in record["latents"]] == [used, used]
        assert len(list(out.glob("*.png"))) == 2


def test_the_shipped_aligner_belongs_to_the_shipped_fs_encoder():
    from invertkit.encoders.shipped import SHIPPED_DIR, shipped_encoders

    fs = SHIPPED_DIR / "dcgan-digiface64" / "fs.safetensors"
    net = load_aligner(aligner_path(fs))
    assert net.config.encoder_sha256 == file_sha256(fs) and net.meta["stored_as"] == "float16"
    assert (net.config.layer, net.config.feature_shape) == ("10", (128, 16, 16))
    assert aligner_path(fs).stat().st_size < 1.5e6
    assert "fs.aligner" not in shipped_encoders()["dcgan-digiface64"]  # an aligner is no encoder of its own
