"""StyleGAN3 network pickles: found by ``load_generator``, read without executing anything, hostile ones refused.

Real pickles written by NVIDIA's code are ``tests/golden/stylegan3_*.pkl`` (see ``test_stylegan3_network.py``);
the variants here are built by ``stylegan3_factories.write_sg3_pkl``, whose structure
``test_factory_matches_real_structure`` pins against the real ones. Every refusal is one line from the CLI
(exit status 2) naming the file; no marker file appears.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import invertkit
from invertkit.cli.main import main
from invertkit.errors import CheckpointError
from invertkit.generators.checkpoints import claims_stylegan3_pkl, read_checkpoint, read_stylegan3_pkl
from invertkit.generators.checkpoints.families import claimed_by
from invertkit.generators.checkpoints.nvidia_pkl import PersistentRecord, safe_unpickle
from invertkit.generators.stylegan2 import StyleGAN2Generator
from invertkit.generators.stylegan3 import StyleGAN3Generator
from invertkit.untrusted import PARAMETERS_ENV

from .checkpoint_factories import (
    FakePersistent,
    fake_nvidia_modules,
    module_state,
    random_nvidia_state,
    referenced_globals,
    tiny_config,
    write_nvidia_pkl,
)
from .stylegan3_factories import record_at, sg3_init_kwargs, sg3_random_state, sg3_tiny_config, write_sg3_pkl

GOLDEN = Path(__file__).parent / "golden"


class Evil:
    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


def refuse(path: Path, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """``invertkit info PATH`` exits 2 with one line naming the file (and ``words``)."""
    capsys.readouterr()
    rc = main(["info", str(path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert path.name in lines[0] and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, dict[str, torch.Tensor]]:
    cfg = sg3_tiny_config()
    return cfg, sg3_random_state(cfg)


def _structure(rec: PersistentRecord, path: str = "") -> dict[str, tuple[str, tuple[str, ...]]]:
    """Module path -> (class, sorted state keys) of a record tree."""
    out = {path: (rec.class_name, tuple(sorted(rec.state)))}
    for name, sub in (rec.state.get("_modules") or {}).items():
        out.update(_structure(sub, f"{path}.{name}" if path else name))
    return out


# ------------------------------------------------------------------------------------------------
# finding and reading
# ------------------------------------------------------------------------------------------------


def test_factory_matches_real_structure(tmp_path: Path) -> None:
    """Factory pickles reference the globals real stylegan3 pickles do and have their record classes and keys."""
    real = GOLDEN / "stylegan3_r16.pkl"
    loaded = read_stylegan3_pkl(real)
    path = write_sg3_pkl(tmp_path / "fake.pkl", loaded.config, loaded.state_dict)
    assert referenced_globals(path) == referenced_globals(real)
    ours, theirs = safe_unpickle(path), safe_unpickle(real)
    assert list(ours)[:3] == list(theirs)[:3] == ["G", "D", "G_ema"]
    s_ours, s_real = _structure(ours["G_ema"]), _structure(theirs["G_ema"])
    assert {k: v[0] for k, v in s_ours.items()} == {k: v[0] for k, v in s_real.items()}
    for k in s_real:  # the factory writes a subset of the plain attributes, all the module machinery
        assert set(s_ours[k][1]) <= set(s_real[k][1]) and {n for n in s_real[k][1] if n.startswith("_")} <= set(s_ours[k][1]), k
    got = read_stylegan3_pkl(path)
    assert got.config == loaded.config and list(got.state_dict) == list(loaded.state_dict)
    assert all(torch.equal(got.state_dict[k], v) for k, v in loaded.state_dict.items())


def test_load_generator_picks_the_family(tmp_path: Path) -> None:
    real = GOLDEN / "stylegan3_t32.pkl"
    assert claims_stylegan3_pkl(real) and claimed_by(real) is not None
    G = invertkit.load_generator(real)
    assert isinstance(G, StyleGAN3Generator) and G.name == "stylegan3_t32.pkl" and G.resolution == 32
    # StyleGAN2 pickles (and other files) are not claimed and load as before
    cfg2 = tiny_config()
    sg2 = write_nvidia_pkl(tmp_path / "sg2.pkl", cfg2, random_nvidia_state(cfg2))
    assert not claims_stylegan3_pkl(sg2) and claimed_by(sg2) is None
    assert isinstance(invertkit.load_generator(sg2), StyleGAN2Generator)
    for other in (GOLDEN / "stylegan3_nvidia_outputs.safetensors", GOLDEN / "pie_bench_dino.pt", tmp_path, tmp_path / "none.pkl"):
        assert not claims_stylegan3_pkl(other)
    # the StyleGAN2 reader refuses a StyleGAN3 pickle and says what reads it
    with pytest.raises(CheckpointError, match=r"stylegan3_t32\.pkl: G_ema is a StyleGAN3 .*load_generator"):
        read_checkpoint(real)
    with pytest.raises(CheckpointError, match=r"sg2\.pkl: G_ema is not a StyleGAN3 generator"):
        read_stylegan3_pkl(sg2)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_is_claimed(tmp_path: Path, tiny: Any, protocol: int) -> None:
    cfg, sd = tiny
    path = write_sg3_pkl(tmp_path / f"p{protocol}.pkl", cfg, sd, protocol=protocol)
    assert claims_stylegan3_pkl(path)
    G = invertkit.load_generator(path)
    assert isinstance(G, StyleGAN3Generator)
    assert all(torch.equal(G.weights()[k], v) for k, v in sd.items())


def test_g_fallback_single_network_and_estimated_w_avg(tmp_path: Path, tiny: Any) -> None:
    cfg, sd = tiny
    other = sg3_random_state(cfg, seed=7)
    path = write_sg3_pkl(tmp_path / "g_only.pkl", cfg, sd, g_sd=other, include=("G", "D"))
    loaded = read_stylegan3_pkl(path)
    assert loaded.meta["network"] == "G" and "G_ema" in loaded.meta["note"]
    assert torch.equal(loaded.state_dict["synthesis.input.weight"], other["synthesis.input.weight"])

    from .stylegan3_factories import sg3_generator_record

    with fake_nvidia_modules() as fake:
        rec = sg3_generator_record(cfg, {k: v for k, v in sd.items() if k != "mapping.w_avg"}, easydict=fake.EasyDict)
        single = tmp_path / "single.pkl"
        single.write_bytes(pickle.dumps(rec, protocol=4))
    loaded = read_stylegan3_pkl(single)
    assert loaded.meta["pickle_content"] == "a single network" and loaded.meta["w_avg"].startswith("estimated")
    G = StyleGAN3Generator(cfg, loaded.state_dict)
    with torch.no_grad():
        w = G.net.mapping(torch.randn(20000, cfg.z_dim, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(loaded.state_dict["mapping.w_avg"], w.mean(0), atol=0.05)


def test_stored_input_transform_is_honoured(tmp_path: Path, tiny: Any) -> None:
    """A pickle saved after gen_images-style editing of the transform buffer draws with it, as NVIDIA's would."""
    cfg, sd = tiny
    m = torch.linalg.inv(invertkit.generators.stylegan3.make_transform((0.1, 0.2), 30.0)).float()
    path = write_sg3_pkl(tmp_path / "moved.pkl", cfg, dict(sd, **{"synthesis.input.transform": m}))
    G = invertkit.load_generator(path)
    base = StyleGAN3Generator(cfg, sd)
    z = base.sample_latent(2, seed=0)
    with torch.no_grad():
        assert torch.allclose(G.synthesize(z, "z"), base.with_transform((0.1, 0.2), 30.0).synthesize(z, "z"), atol=1e-6)
    assert "non-identity input transform" in read_stylegan3_pkl(path).meta["note_transform"]


def test_cli_info_and_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = GOLDEN / "stylegan3_c16.pkl"
    assert main(["info", str(real)]) == 0
    out = capsys.readouterr().out
    assert "StyleGAN3 (config custom, 4 layers)" in out and "StyleSpaces" in out
    assert main(["generate", str(real), "--seeds", "0-1", "--class", "2", "--trunc", "0.7", "--out", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen" / "seed0001.png").is_file()


# ------------------------------------------------------------------------------------------------
# nothing in the file runs
# ------------------------------------------------------------------------------------------------


def test_module_src_is_never_executed(tmp_path: Path, tiny: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A stylegan3 pickle whose module_src writes a marker: loaded as data, the code never runs; the same
    bytes under NVIDIA's own persistence hook (exec of module_src) do write the marker."""
    cfg, sd = tiny
    marker = tmp_path / "pwned.txt"
    src = (f"open({str(marker)!r}, 'w').write('module_src ran')\n"
           '"""Generator architecture from the paper "Alias-Free Generative Adversarial Networks"."""\n')
    path = write_sg3_pkl(tmp_path / "armed.pkl", cfg, sd, module_src=src)
    G = invertkit.load_generator(path)
    assert isinstance(G, StyleGAN3Generator) and not marker.exists()
    assert main(["info", str(path)]) == 0 and not marker.exists()
    capsys.readouterr()
    # armed and malformed (no constructor arguments): refused in one line, still nothing runs
    bad = write_sg3_pkl(tmp_path / "armed_bad.pkl", cfg, sd, module_src=src,
                        mutate=lambda data, fake: data["G_ema"].meta["state"].pop("_init_kwargs"))
    refuse(bad, capsys, "_init_kwargs")
    assert not marker.exists()

    def naive_reconstruct(meta: Any) -> Any:
        exec(meta["module_src"], {})  # what NVIDIA's torch_utils.persistence does
        return meta

    with fake_nvidia_modules(reconstruct=naive_reconstruct), open(path, "rb") as f:
        pickle.load(f)  # test-only proof that the file is armed
    assert marker.exists()


def _payload(marker: Path) -> Evil:
    return Evil(subprocess.Popen, ([sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"],))


@pytest.mark.parametrize("where", ["init_kwargs", "input_state", "layer_buffer", "transform"])
def test_dangerous_global_inside_a_stylegan3_record(tmp_path: Path, tiny: Any, capsys: pytest.CaptureFixture[str], where: str) -> None:
    cfg, sd = tiny
    marker = tmp_path / "pwned.txt"
    layer = cfg.layer_specs()[1].name

    def mutate(data: dict[str, Any], fake: Any) -> None:
        evil = _payload(marker)
        if where == "init_kwargs":
            data["G_ema"].meta["state"]["_init_kwargs"]["mapping_kwargs"]["payload"] = evil
        elif where == "input_state":
            record_at(data, "G_ema", "synthesis.input").meta["state"]["sampling_rate"] = evil
        elif where == "layer_buffer":
            record_at(data, "G_ema", f"synthesis.{layer}").meta["state"]["_buffers"]["up_filter"] = evil
        else:
            record_at(data, "G_ema", "synthesis.input").meta["state"]["_buffers"]["transform"] = evil

    path = write_sg3_pkl(tmp_path / "evil.pkl", cfg, sd, mutate=mutate)
    assert claims_stylegan3_pkl(path)
    refuse(path, capsys, "pickle references subprocess.Popen", "not allowed")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# damaged or forged structure: one line each
# ------------------------------------------------------------------------------------------------


def _set_layer_buffer(name: str, value: Any) -> Any:
    def mutate(data: dict[str, Any], fake: Any) -> None:
        layer = data["G_ema"].meta["state"]["_modules"]["synthesis"].meta["state"]["layer_names"][0]
        record_at(data, "G_ema", f"synthesis.{layer}").meta["state"]["_buffers"][name] = value
    return mutate


def _init_kwargs(**changes: Any) -> Any:
    def mutate(data: dict[str, Any], fake: Any) -> None:
        data["G_ema"].meta["state"]["_init_kwargs"].update(changes)
    return mutate


def _swap_class(path: str, cls: str) -> Any:
    def mutate(data: dict[str, Any], fake: Any) -> None:
        record_at(data, "G_ema", path).meta["class_name"] = cls
    return mutate


def _extra_module(data: dict[str, Any], fake: Any) -> None:
    syn = record_at(data, "G_ema", "synthesis")
    syn.meta["state"]["_modules"]["b4"] = FakePersistent("SynthesisBlock", module_state({}, {}, {}))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


CASES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "unsupported_option": (_init_kwargs(activation="relu"), ("unsupported StyleGAN3 synthesis options", "activation")),
    "unsupported_mapping_option": (_init_kwargs(mapping_kwargs={"num_layers": 2, "embed_features": 8}),
                                   ("unsupported StyleGAN3 mapping network options",)),
    "wrong_type": (_init_kwargs(num_layers="4"), ("num_layers must be an integer",)),
    "bad_geometry": (_init_kwargs(num_critical=4), ("num_critical",)),
    "resolution_not_power_of_two": (_init_kwargs(img_resolution=24), ("power of two",)),
    "weights_disagree_with_kwargs": (_init_kwargs(channel_max=4), ("weights do not fit the StyleGAN3 configuration",)),
    "missing_filter": (_set_layer_buffer("up_filter", None), ("missing", "up_filter")),
    "filter_wrong_shape": (_set_layer_buffer("down_filter", torch.ones(12, 12)), ("wrong shape", "down_filter")),
    "zero_magnitude": (_set_layer_buffer("magnitude_ema", torch.tensor(0.0)), ("magnitude_ema is 0", "positive")),
    "nan_weight": (_set_layer_buffer("magnitude_ema", torch.tensor(float("nan"))), ("NaN",)),
    "integer_tensor": (_set_layer_buffer("magnitude_ema", torch.tensor(1)), ("dtype torch.int64",)),
    "class_swapped": (_swap_class("synthesis.input", "Conv2dLayer"), ("synthesis.input is a Conv2dLayer", "SynthesisInput")),
    "unexpected_module": (_extra_module, ("unexpected submodule", "synthesis.b4")),
    "too_large": (_init_kwargs(channel_base=1 << 30, channel_max=65536), ("parameters, more than invertkit's limit",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_stylegan3_pickles_are_refused(tmp_path: Path, tiny: Any, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    cfg, sd = tiny
    mutate, words = CASES[case]
    if case == "too_large":
        monkeypatch.setenv(PARAMETERS_ENV, "1000000")
    path = write_sg3_pkl(tmp_path / f"{case}.pkl", cfg, sd, mutate=mutate)
    refuse(path, capsys, *words)


def test_truncated_and_generatorless_pickles(tmp_path: Path, tiny: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, sd = tiny
    cut = write_sg3_pkl(tmp_path / "cut.pkl", cfg, sd)
    _truncate(cut)
    assert claims_stylegan3_pkl(cut)  # the scan sees the class name; the reader then fails in one line
    refuse(cut, capsys, "not a complete pickle")
    d_only = write_sg3_pkl(tmp_path / "d_only.pkl", cfg, sd, include=("D",),
                           mutate=lambda data, fake: data.__setitem__("D", FakePersistent("SynthesisInput", module_state({}, {}, {}))))
    refuse(d_only, capsys, "no generator network", "StyleGAN3")
    # a StyleGAN2 pickle carrying the marker string (a forged claim) is read by the StyleGAN3 reader and refused
    cfg2 = tiny_config()
    forged = write_nvidia_pkl(tmp_path / "forged.pkl", cfg2, random_nvidia_state(cfg2),
                              extra={"note": FakePersistent("SynthesisInput", module_state({}, {}, {}))})
    assert claims_stylegan3_pkl(forged)
    refuse(forged, capsys, "not a StyleGAN3 generator")


def test_numpy_attributes_read_as_data(tmp_path: Path, tiny: Any) -> None:
    """numpy arrays (layer sizes) and float64 scalars (sampling rates) in the records rebuild as inert data;
    the geometry itself always comes from the constructor arguments, never from these attributes."""
    cfg, sd = tiny
    path = write_sg3_pkl(tmp_path / "np.pkl", cfg, sd)
    inp = record_at(safe_unpickle(path), "G_ema", "synthesis.input").state
    assert isinstance(inp["size"], np.ndarray) and inp["size"].tolist() == [cfg.input_spec().size] * 2
    assert isinstance(inp["sampling_rate"], np.float64)

    def lie(data: dict[str, Any], fake: Any) -> None:  # attributes that disagree with the arguments are ignored
        record_at(data, "G_ema", "synthesis.input").meta["state"]["size"] = np.asarray([9999, 9999])

    G = invertkit.load_generator(write_sg3_pkl(tmp_path / "lie.pkl", cfg, sd, mutate=lie))
    assert G.net.synthesis.input.size == cfg.input_spec().size
    assert sg3_init_kwargs(cfg)["img_resolution"] == cfg.img_resolution
