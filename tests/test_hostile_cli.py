"""Hostile and damaged input on the command line: every bad option value, device and output place
is one line on stderr and exit status 2 (never a traceback and exit 1), and the API refuses the
same option values with a ConfigError."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import torch

import invertkit
from invertkit.cli.main import main, terminal_safe
from invertkit.encoders.train import TrainOptions
from invertkit.errors import ConfigError, InvertkitError
from invertkit.generators import load_generator
from invertkit.io import atomic
from invertkit.io.atomic import StorageError
from invertkit.io.images import save_image
from invertkit.methods import METHODS, make_options


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_sg2) -> dict[str, Path]:
    """A tiny native checkpoint, one image it drew, a latent file, a plain file and a folder."""
    from invertkit.generators.checkpoints import save_native

    root = tmp_path_factory.mktemp("hostile")
    ckpt = save_native(tiny_sg2, root / "tiny.safetensors")
    with torch.no_grad():
        x = tiny_sg2.synthesize(tiny_sg2.sample_latent(1, "w", seed=1), "w").clamp(-1, 1)
    image = save_image(x[0], root / "a.png")
    latent = root / "a.npz"
    import numpy as np

    np.savez(latent, w=tiny_sg2.sample_latent(1, "w", seed=2).numpy())
    plain = root / "plain.txt"
    plain.write_text("not a folder")
    return {"ckpt": ckpt, "image": image, "latent": latent, "file": plain, "root": root}


def _fails_with_one_line(argv: list[str], capsys, *needles: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, f"exit {code}; stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "\x1b" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return lines[0]


def _invert(files, tmp_path, *flags: str) -> list[str]:
    return ["invert", str(files["image"]), "-g", str(files["ckpt"]), "--out", str(tmp_path / "run"),
            "--no-progress", *flags]


# (CLI flags, words the line must name, method, the same options for the API)
OPTION_CASES = [
    (["--lr", "nan"], ["--lr", "nan", "finite number > 0"], "optimize", {"lr": math.nan}),
    (["--lr", "-1"], ["--lr", "-1", "> 0"], "optimize", {"lr": -1.0}),
    (["--lr", "inf"], ["--lr", "inf"], "optimize", {"lr": math.inf}),
    (["--lr", "0"], ["--lr", "= 0"], "optimize", {"lr": 0.0}),
    (["--steps", "0"], ["--steps", "0", "integer >= 1"], "optimize", {"steps": 0}),
    (["--steps", "-5"], ["--steps", "-5"], "optimize", {"steps": -5}),
    (["--check-every", "0"], ["--check-every", "0", ">= 1"], "optimize", {"check_every": 0}),
    (["--log-every", "0"], ["--log-every", "0", ">= 1"], "optimize", {"log_every": 0}),
    (["--restarts", "0"], ["--restarts", "0"], "optimize", {"restarts": 0}),
    (["--lr-rampup", "2"], ["--lr-rampup", "[0, 1]"], "optimize", {"lr_rampup": 2.0}),
    (["--target-psnr", "nan"], ["--target-psnr", "nan"], "optimize", {"target_psnr": math.nan}),
    (["-m", "cma", "--popsize", "-3"], ["--popsize", "-3", "integer >= 2"], "cma", {"popsize": -3}),
    (["-m", "cma", "--popsize", "1"], ["--popsize", "1"], "cma", {"popsize": 1}),
    (["-m", "cma", "--sigma", "nan"], ["--sigma", "nan", "> 0"], "cma", {"sigma": math.nan}),
    (["-m", "cma", "--sigma", "0"], ["--sigma", "0"], "cma", {"sigma": 0.0}),
    (["-m", "cma", "--chunk", "0"], ["--chunk", "0"], "cma", {"chunk": 0}),
    (["-m", "basincma", "--inner-lr", "-0.1"], ["--inner-lr", "-0.1"], "basincma", {"inner_lr": -0.1}),
    (["-m", "plain", "--lr", "nan"], ["--lr", "nan"], "plain", {"lr": math.nan}),
    (["-m", "pti", "--lr", "-1"], ["--lr", "-1"], "pti", {"lr": -1.0}),
    (["-m", "pti", "--check-every", "0"], ["--check-every", "0"], "pti", {"check_every": 0}),
    (["-m", "hybrid", "--domain", "-1"], ["--domain", "-1", ">= 0"], "hybrid", {"domain": -1.0}),
    (["-m", "ddim", "--guidance", "nan"], ["--guidance", "nan", "finite"], "ddim", {"guidance": math.nan}),
    (["-m", "edict", "--p", "0"], ["--p", "(0, 1]"], "edict", {"p": 0.0}),
    (["-m", "rf-inversion", "--eta", "1.5"], ["--eta", "1.5"], "rf-inversion", {"eta": 1.5}),
    (["-m", "nulltext", "--lr", "nan"], ["--lr", "nan"], "nulltext", {"lr": math.nan}),
]


@pytest.mark.parametrize(("flags", "needles", "method", "api"), OPTION_CASES, ids=[" ".join(c[0]) for c in OPTION_CASES])
def test_bad_method_option_is_one_line(files, tmp_path, capsys, flags, needles, method, api):
    line = _fails_with_one_line(_invert(files, tmp_path, *flags), capsys, *needles)
    assert f"method {method!r}" in line
    assert not (tmp_path / "run").exists()  # refused before any work (nothing written)
    with pytest.raises(ConfigError, match=f"option {next(iter(api))} "):
        make_options(method, **api)


def test_api_invert_refuses_the_same_values(tiny_sg2):
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ConfigError, match=r"option steps \(CLI --steps\) = 0: must be an integer >= 1"):
        invertkit.invert(tiny_sg2, x, steps=0)
    with pytest.raises(ConfigError, match="lr.*nan"):
        invertkit.invert(tiny_sg2, x, lr=float("nan"))
    with pytest.raises(ConfigError, match="popsize"):
        invertkit.invert(tiny_sg2, x, "cma", popsize=-3)
    with pytest.raises(ConfigError, match="must be an integer"):
        invertkit.invert(tiny_sg2, x, steps=2.5)


def test_every_method_default_is_allowed_and_every_float_refuses_nan():
    for name in METHODS.names():
        cls = METHODS.get(name).options
        make_options(name)  # the declared defaults satisfy their own constraints
        for f in cls.__dataclass_fields__.values():
            if isinstance(f.default, float):  # every float option, none declares finite=False
                with pytest.raises(ConfigError, match=f.name):
                    make_options(name, **{f.name: math.nan})


TRAIN_CASES = [
    (["--log-every", "0"], ["--log-every", "0", ">= 1"], {"log_every": 0}),
    (["--lr", "nan"], ["--lr", "nan"], {"lr": math.nan}),
    (["--lr", "-1"], ["--lr", "-1"], {"lr": -1.0}),
    (["--steps", "0"], ["--steps", "0"], {"steps": 0}),
    (["--batch", "1"], ["--batch", "integer >= 2"], {"batch": 1}),
    (["--checkpoint-every", "0"], ["--checkpoint-every", "0"], {"checkpoint_every": 0}),
    (["--real-fraction", "1"], ["--real-fraction", "[0, 1)"], {"real_fraction": 1.0}),
    (["--pixel-weight", "-1"], ["--pixel-weight", ">= 0"], {"pixel_weight": -1.0}),
    (["--nscd-weight", "inf"], ["--nscd-weight", "inf"], {"nscd_weight": math.inf}),
]


@pytest.mark.parametrize(("flags", "needles", "api"), TRAIN_CASES, ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_bad_train_encoder_option_is_one_line(files, tmp_path, capsys, flags, needles, api):
    _fails_with_one_line(["train-encoder", "-g", str(files["ckpt"]), "--out", str(tmp_path / "enc"), "--no-progress", *flags],
                         capsys, *needles)
    with pytest.raises(ConfigError, match=next(iter(api))):
        TrainOptions(**api)


def test_bench_method_spec_is_checked_before_work(files, tmp_path, capsys):
    _fails_with_one_line(["bench", "-g", str(files["ckpt"]), "--images", str(files["image"]), "--methods", "optimize,cma@popsize=-3",
                          "--out", str(tmp_path / "b")], capsys, "cma@popsize=-3", "popsize", "-3")


# --device ------------------------------------------------------------------------------------------

def _device_argv(files, tmp_path, device):
    return _invert(files, tmp_path, "--device", device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(files, tmp_path, capsys):
    line = _fails_with_one_line(_device_argv(files, tmp_path, "cuda"), capsys)
    assert line == ("invertkit: error: --device cuda: this machine has no CUDA device "
                    "(torch.cuda.is_available() is False); use --device cpu")


def test_device_cuda_index_past_the_gpus(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _fails_with_one_line(_device_argv(files, tmp_path, "cuda:3"), capsys, "--device cuda:3", "1 CUDA device", "cuda:0", "--device cpu")


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "", "cpu:7", "meta"])
def test_device_unknown(files, tmp_path, capsys, device):
    _fails_with_one_line(_device_argv(files, tmp_path, device), capsys, "--device", "cpu")


@pytest.mark.skipif(bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(), reason="has MPS")
def test_device_mps_without_mps(files, tmp_path, capsys):
    _fails_with_one_line(_device_argv(files, tmp_path, "mps"), capsys, "--device mps", "no MPS device")


@pytest.mark.parametrize("command", ["generate", "train-encoder", "demo"])
def test_device_checked_for_every_command(files, tmp_path, capsys, command):
    argv = {"generate": ["generate", str(files["ckpt"]), "--seeds", "0", "--out", str(tmp_path / "g")],
            "train-encoder": ["train-encoder", "-g", str(files["ckpt"]), "--out", str(tmp_path / "t")],
            "demo": ["demo", "--out", str(tmp_path / "d")]}[command]
    _fails_with_one_line([*argv, "--device", "bogus"], capsys, "--device 'bogus'")


def test_api_load_generator_refuses_the_device(files):
    with pytest.raises(ConfigError, match="device 'bogus'"):
        load_generator(files["ckpt"], device="bogus")


# --out and DST -----------------------------------------------------------------------------------

def _out_cases(files) -> dict[str, tuple[Path, str]]:
    return {
        "a file": (files["file"], "is a file"),
        "under a file": (files["file"] / "run", "is a file"),
        "in /proc": (Path("/proc/invertkit-test/run"), "/proc is a kernel file system"),
        "in /sys": (Path("/sys/invertkit-test"), "/sys is a kernel file system"),
    }


@pytest.mark.parametrize("case", ["a file", "under a file", "in /proc", "in /sys"])
def test_out_that_cannot_be_a_folder(files, capsys, case):
    out, why = _out_cases(files)[case]
    _fails_with_one_line(["invert", str(files["image"]), "-g", str(files["ckpt"]), "--out", str(out), "--steps", "1"],
                         capsys, f"--out {out}", why)


@pytest.mark.parametrize(("err", "why", "kind"), [
    (errno.EROFS, "read-only", ConfigError),
    (errno.ENOSPC, "No space left on device", StorageError),
    (errno.EDQUOT, "free space", StorageError),
    (errno.EACCES, "no permission", ConfigError),
])
def test_out_on_a_read_only_full_or_forbidden_file_system(files, tmp_path, capsys, monkeypatch, err, why, kind):
    def refuse(folder):
        raise OSError(err, __import__("os").strerror(err), str(folder))

    monkeypatch.setattr(atomic, "_write_probe", refuse)
    out = tmp_path / "new" / "run"
    _fails_with_one_line(_invert(files, tmp_path, "--out", str(out)), capsys, f"--out {out}", why)
    assert not (tmp_path / "new").exists()
    with pytest.raises(kind) as info:  # --debug: the error itself, its OSError chained
        main(["--debug", *_invert(files, tmp_path, "--out", str(out))])
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == err


def _command_argv(files, tmp_path, command: str, out: str) -> list[str]:
    ck = str(files["ckpt"])
    return {
        "edit": ["edit", str(files["latent"]), "-g", ck, "-d", str(files["latent"]), "--out", out],
        "interpolate": ["interpolate", str(files["latent"]), str(files["latent"]), "-g", ck, "--out", out],
        "generate": ["generate", ck, "--seeds", "0", "--out", out],
        "bench": ["bench", "-g", ck, "--images", str(files["image"]), "--methods", "plain", "--out", out],
        "train-encoder": ["train-encoder", "-g", ck, "--out", out],
        "directions": ["directions", "sefa", "-g", ck, "--out", out],
        "regenerate": ["regenerate", str(files["latent"]), "-g", ck, "--prompt", "null", "--out", out],
        "demo": ["demo", "--out", out],
        "invert": ["invert", str(files["image"]), "-g", ck, "--out", out],
    }[command]


@pytest.mark.parametrize("command", ["edit", "interpolate", "generate", "bench", "train-encoder", "directions",
                                     "regenerate", "demo", "invert"])
@pytest.mark.parametrize("case", ["a file", "under a file", "in /proc"])
def test_every_command_checks_its_out(files, tmp_path, capsys, command, case):
    out, why = _out_cases(files)[case]
    if command == "directions" and case == "a file":
        out, why = files["root"], "is a folder"  # directions writes a file: a folder is the wrong kind
    _fails_with_one_line(_command_argv(files, tmp_path, command, str(out)), capsys, f"--out {out}", why)


@pytest.mark.parametrize(("dst", "why"), [
    ("/proc/invertkit-test.safetensors", "/proc is a kernel file system"),
    ("FILE/x.safetensors", "is a file"),
    ("ROOT", "is a folder"),
])
def test_convert_to_an_unwritable_place(files, capsys, dst, why):
    dst = dst.replace("FILE", str(files["file"])).replace("ROOT", str(files["root"]))
    _fails_with_one_line(["convert", str(files["ckpt"]), dst, "--force"], capsys, dst, why)


def test_convert_to_a_read_only_file_system(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(atomic, "_write_probe", lambda folder: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system")))
    dst = tmp_path / "x.safetensors"
    _fails_with_one_line(["convert", str(files["ckpt"]), str(dst)], capsys, f"DST {dst}", "read-only")


def test_writable_out_passes_and_creates_nothing(tmp_path):
    out = tmp_path / "a" / "b"
    assert atomic.check_writable_folder(out) == out
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
    atomic.check_writable_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


# messages ------------------------------------------------------------------------------------------

def test_terminal_escapes_and_newlines_in_a_quoted_name_are_neutralised(tmp_path, capsys):
    evil = tmp_path / "\x1b[31mred\x1b]0;title\x07\nsecond line\u202e.pkl"
    line = _fails_with_one_line(["info", str(evil)], capsys, "\\x1b[31mred", "second line", "\\u202e")
    assert "\x07" not in line and "\u202e" not in line


def test_terminal_safe():
    assert terminal_safe("a\nb\r\tc\x1b[2Jd\x00") == "a b  c\\x1b[2Jd\\x00"
    assert terminal_safe("plain – ünïcode ✓") == "plain – ünïcode ✓"


def test_debug_reraises_with_the_cause(files, tmp_path):
    with pytest.raises(InvertkitError, match="lr"):
        main(["--debug", *_invert(files, tmp_path, "--lr", "nan")])


@pytest.mark.parametrize(("command", "flags", "needles"), [
    ("bench", ["--batch-size", "0"], ["--batch-size 0", ">= 1"]),
    ("bench", ["--guidance", "nan"], ["--guidance nan", "finite"]),
    ("generate", ["--trunc", "nan"], ["--trunc nan", "finite"]),
    ("generate", ["--steps", "0"], ["--steps 0", ">= 1"]),
    ("invert", ["--edit-guidance", "inf"], ["--edit-guidance inf", "finite"]),
    ("invert", ["--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("demo", ["--steps", "0"], ["--steps 0", ">= 1"]),
])
def test_command_flags_that_are_no_method_option(files, tmp_path, capsys, command, flags, needles):
    _fails_with_one_line([*_command_argv(files, tmp_path, command, str(tmp_path / "o")), *flags], capsys, *needles)
