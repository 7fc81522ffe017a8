"""PGGAN checkpoints (pytorch_GAN_zoo PGAN layout): which files the family claims, the variants it
reads, and hostile or damaged files refused with one line naming the file (nothing executed)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from invertkit.cli.main import main
from invertkit.errors import CheckpointError
from invertkit.generators import load_generator
from invertkit.generators.checkpoints.families import claimed_by
from invertkit.generators.pggan import PGGANConfig, PGGANGenerator, claims_pggan, read_pggan
from invertkit.generators.stylegan2 import StyleGAN2Generator
from invertkit.untrusted import PARAMETERS_ENV

from .checkpoint_factories import random_nvidia_state, random_rosinality_g_ema, tiny_config, write_nvidia_pkl
from .pggan_factories import TINY, random_state, write_pggan

AUTHORS_FILE = Path(__file__).parent / "golden" / "pggan_authors_tiny.pth"


def one_line_error(path: Path, *words: str, **kw: Any) -> str:
    """read_pggan(path) raises one CheckpointError line naming the file (and ``words``), in bounded time."""
    t = time.process_time()
    with pytest.raises(CheckpointError) as info:
        read_pggan(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and path.name in msg and "Traceback" not in msg and "weights_only=False" not in msg, msg
    for w in words:
        assert w in msg, msg
    assert time.process_time() - t < 5
    return msg


# ------------------------------------------------------------------------------------------------
# claims: PGGAN files only
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(config="record"), dict(config="dict"), dict(config=None), dict(legacy=True)])
def test_claims_pggan_files(tmp_path: Path, kw: dict) -> None:
    p = write_pggan(tmp_path / "g.pth", **kw)
    assert claims_pggan(p)
    assert claimed_by(p) is not None and claimed_by(p).label.startswith("PGGAN")
    assert isinstance(load_generator(p), PGGANGenerator)


def test_claims_the_authors_file_and_a_bare_state_dict(tmp_path: Path) -> None:
    assert claims_pggan(AUTHORS_FILE)
    p = tmp_path / "bare.pt"
    torch.save(random_state(PGGANConfig(**TINY)), p)
    assert claims_pggan(p)
    G = load_generator(p)
    assert isinstance(G, PGGANGenerator) and G.meta["generator"] == "bare state dict"


def test_rosinality_and_nvidia_files_are_not_claimed(tmp_path: Path) -> None:
    ros = tmp_path / "ros.pt"
    torch.save({"g_ema": random_rosinality_g_ema(8, 16, 2, {4: 16, 8: 16}), "latent_avg": torch.zeros(16)}, ros)
    assert not claims_pggan(ros) and claimed_by(ros) is None
    assert isinstance(load_generator(ros), StyleGAN2Generator)
    cfg = tiny_config()
    pkl = write_nvidia_pkl(tmp_path / "nv.pkl", cfg, random_nvidia_state(cfg))
    assert not claims_pggan(pkl)
    assert isinstance(load_generator(pkl), StyleGAN2Generator)


def test_claims_never_raise(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "text.pth").write_bytes(b"formatLayer toRGBLayers")  # the names, but not a torch.save file
    for name in ("empty.pth", "zip.pth", "text.pth", "missing.pth"):
        assert not claims_pggan(tmp_path / name)
    assert not claims_pggan(tmp_path)


# ------------------------------------------------------------------------------------------------
# variants that are read
# ------------------------------------------------------------------------------------------------


def test_config_from_the_file_and_the_average_generator(tmp_path: Path) -> None:
    cfg = PGGANConfig(**{**TINY, "leaky_relu": 0.1, "alpha": 0.25})
    p = write_pggan(tmp_path / "g.pth", cfg, loss="MSE")
    loaded = read_pggan(p)
    assert loaded.config == PGGANConfig(**{**TINY, "leaky_relu": 0.1, "alpha": 0.25, "generation_activation": "tanh"})
    assert loaded.meta["generator"] == "avgG" and "notes" not in loaded.meta
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in random_state(cfg, 0).items())
    net = read_pggan(p, which="netG")
    assert all(torch.equal(net.state_dict[k], v) for k, v in random_state(cfg, 1).items())


def test_without_config_the_shapes_give_the_architecture(tmp_path: Path) -> None:
    loaded = read_pggan(write_pggan(tmp_path / "g.pth", config=None))
    assert loaded.config == PGGANConfig(**TINY)
    assert "inferred" in loaded.meta["config"] and "activation assumed none" in loaded.meta["notes"]


def test_legacy_stream_with_old_names_and_dataparallel_prefix(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg, 0)
    old = {"module." + k.replace(".module.", "."): v for k, v in sd.items()}  # pre-".module" names, DataParallel
    loaded = read_pggan(write_pggan(tmp_path / "old.pth", cfg, legacy=True, state=old))
    assert set(loaded.state_dict) == set(sd)
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in sd.items())


def test_parameters_stored_as_nn_parameter(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg)
    params = {k: torch.nn.Parameter(v) for k, v in sd.items()}  # old files serialised Parameters
    loaded = read_pggan(write_pggan(tmp_path / "p.pth", cfg, state=params, legacy=True))
    assert all(type(t) is torch.Tensor and torch.equal(t, sd[k]) for k, t in loaded.state_dict.items())


def test_half_precision_weights_are_read_as_float32(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    half = {k: v.half() for k, v in random_state(cfg).items()}
    loaded = read_pggan(write_pggan(tmp_path / "h.pth", cfg, state=half))
    assert all(t.dtype == torch.float32 for t in loaded.state_dict.values())


def test_netg_only_is_noted(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    p = tmp_path / "g.pth"
    torch.save({"config": {"latentVectorDim": 8}, "netG": random_state(cfg)}, p)
    loaded = read_pggan(p)
    assert loaded.meta["generator"] == "netG" and "netG" in loaded.meta["notes"]


# ------------------------------------------------------------------------------------------------
# hostile and damaged files: one line, nothing executed, nothing allocated from declarations
# ------------------------------------------------------------------------------------------------


class Touch:
    """Reduces to ``os.system("touch MARKER")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["config", "extra"])
def test_pickle_calling_os_system_is_refused(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "owned"
    p = tmp_path / "evil.pth"
    if where == "config":
        torch.save({"config": Touch(marker), "avgG": random_state(PGGANConfig(**TINY))}, p)
    else:
        write_pggan(p, extra={"tmp": Touch(marker)})
    one_line_error(p, "refusing to load", "system")
    with pytest.raises(CheckpointError):
        load_generator(p)
    assert not marker.exists()


def test_truncated_file(tmp_path: Path) -> None:
    raw = write_pggan(tmp_path / "g.pth").read_bytes()
    for n in (len(raw) // 2, len(raw) - 30):
        p = tmp_path / f"cut{n}.pth"
        p.write_bytes(raw[:n])
        one_line_error(p, "truncated")
        with pytest.raises(CheckpointError) as info:
            load_generator(p)  # not claimed or claimed: either way one line
        assert "\n" not in str(info.value)
    legacy = write_pggan(tmp_path / "old.pth", legacy=True).read_bytes()
    (tmp_path / "oldcut.pth").write_bytes(legacy[: len(legacy) - 100])
    one_line_error(tmp_path / "oldcut.pth")


def test_wrong_shapes(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg)
    sd["scaleLayers.0.1.module.weight"] = torch.zeros(8, 8, 1, 1)
    one_line_error(write_pggan(tmp_path / "g.pth", cfg, state=sd), "wrong shape", "scaleLayers.0.1.module.weight")


def test_config_that_disagrees_with_the_shapes(tmp_path: Path) -> None:
    p = write_pggan(tmp_path / "g.pth", fields={"depthScale0": 512})
    one_line_error(p, "does not fit", "formatLayer.module.weight")


def test_nan_weights(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg)
    sd["toRGBLayers.2.module.bias"][1] = float("nan")
    one_line_error(write_pggan(tmp_path / "g.pth", cfg, state=sd), "NaN", "toRGBLayers.2.module.bias")


@pytest.mark.parametrize("fields, words", [
    ({"depthScale0": 10**12}, ("depths[0]", "between")),
    ({"depthScale0": 60000}, ("parameters", PARAMETERS_ENV)),  # within the width limit: 32e9 weights declared
    ({"latentVectorDim": -3}, ("latent_dim",)),
    ({"depthOtherScales": [8] * 1000}, ("depthOtherScales",)),
    ({"alpha": 7.0}, ("alpha",)),
    ({"leakyReluLeak": float("nan")}, ("leaky_relu",)),
    ({"equalizedlR": "yes"}, ("equalized_lr",)),
    ({"lossCriterion": "\x1b[31mEVIL"}, ("lossCriterion",)),
    ({"categoryVectorDim": 5}, ("conditional",)),
    ({"perChannelNormalization": False}, ("perChannelNormalization",)),
    ({"dimOutput": 10**9}, ("dim_output",)),
    ({"depthScale0": torch.ones(3)}, ("depths[0]", "integer")),
    ({"latentVectorDim": torch.tensor(8.0)}, ("latent_dim", "integer")),
    ({"categoryVectorDim": torch.ones(2)}, ("conditional",)),
    ({"attribKeysOrder": {"Male": 0}}, ("conditional",)),
])
def test_absurd_config_numbers(tmp_path: Path, fields: dict, words: tuple[str, ...]) -> None:
    msg = one_line_error(write_pggan(tmp_path / "g.pth", fields=fields), *words)
    assert "\x1b" not in msg


def test_wrong_key_names(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    p = tmp_path / "g.pth"
    torch.save({"config": {}, "generator": random_state(cfg)}, p)
    one_line_error(p, "no 'avgG' or 'netG'")
    renamed = {k.replace("toRGBLayers", "to_rgb"): v for k, v in random_state(cfg).items()}
    one_line_error(write_pggan(tmp_path / "r.pth", cfg, state=renamed), "toRGBLayers.0.module.weight")
    extra = {**random_state(cfg), "scaleLayers.0.2.module.weight": torch.zeros(1)}
    one_line_error(write_pggan(tmp_path / "e.pth", cfg, state=extra), "unexpected")
    one_line_error(write_pggan(tmp_path / "w.pth", cfg), "choose the generator", which="G_ema")


def test_non_tensors_and_wrong_containers(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    sd: dict[str, Any] = random_state(cfg)
    sd["groupScale0.0.module.bias"] = "zeros"
    one_line_error(write_pggan(tmp_path / "s.pth", cfg, state=sd), "groupScale0.0.module.bias")
    p = tmp_path / "list.pth"
    torch.save([1, 2, 3], p)
    one_line_error(p, "not a pytorch_GAN_zoo checkpoint")
    p = tmp_path / "cfg.pth"
    torch.save({"config": [1, 2], "avgG": random_state(cfg)}, p)
    one_line_error(p, "'config'")
    p = tmp_path / "int.pth"
    torch.save({"avgG": {k: torch.zeros(v.shape, dtype=torch.int32) for k, v in random_state(cfg).items()}}, p)
    one_line_error(p, "not floating-point")


def test_zero_stride_tensor_claiming_more_than_stored(tmp_path: Path) -> None:
    cfg = PGGANConfig(**TINY)
    sd = random_state(cfg)
    sd["formatLayer.module.weight"] = torch.zeros(1, 8).expand(128, 8)  # stored: 8 values, declared 1024
    one_line_error(write_pggan(tmp_path / "g.pth", cfg, state=sd), "strides")


def test_cli_info_refuses_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sd = random_state(PGGANConfig(**TINY))
    sd["formatLayer.module.bias"][0] = float("inf")
    p = write_pggan(tmp_path / "bad.pth", state=sd)
    capsys.readouterr()
    assert main(["info", str(p)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.pth" in lines[0] and "NaN or infinite" in lines[0]


# ------------------------------------------------------------------------------------------------
# the CLI on a tiny PGGAN checkpoint
# ------------------------------------------------------------------------------------------------


def test_cli_info_describes_a_pggan(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["info", str(AUTHORS_FILE)]) == 0
    out = capsys.readouterr().out
    assert "PGGANGenerator" in out and "8x8, 3 channel(s)" in out and "z [8]" in out and "2,958" in out


def test_cli_convert_says_pggan_files_are_used_directly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["convert", str(AUTHORS_FILE), str(tmp_path / "x.safetensors")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and AUTHORS_FILE.name in lines[0] and "use this file directly" in lines[0], lines
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.slow  # ~0.4 s of work, but the first Adam in a process imports torch._dynamo (~3 s)
def test_cli_invert_on_a_tiny_pggan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write_pggan(tmp_path / "tiny.pth")
    G = load_generator(p)
    with torch.no_grad():
        img = G.synthesize(G.sample_latent(1, seed=3), "z")[0]
    arr = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(tmp_path / "face.png")
    capsys.readouterr()
    out = tmp_path / "run"
    rc = main(["invert", str(tmp_path / "face.png"), "-g", str(p), "-m", "optimize", "--steps", "5", "--space", "f:3",
               "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "run.json").is_file() and any((out / "latents").iterdir())
