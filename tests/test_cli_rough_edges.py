"""What a new user meets first on the command line (issue 18): a device this torch lacks, a missing
input, and help texts that fit a screen. Each is one line and exit 2, with no folder left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from invertkit.cli.main import build_parser, main
from invertkit.methods import METHODS
from invertkit.optionfields import declared_options

SRC = Path(__file__).resolve().parents[1] / "src"


def _subcommands() -> dict:
    return next(a for a in build_parser()._actions if a.dest == "command").choices


# the smallest command line of each command that takes --device; OUT is where it would write
DEVICE_ARGV = {
    "invert": ["invert", "x.png", "-g", "dcgan-digiface64", "--out", "OUT"],
    "bench": ["bench", "-g", "dcgan-digiface64", "--images", "x.png", "--out", "OUT"],
    "demo": ["demo", "--out", "OUT"],
    "directions": ["directions", "sefa", "-g", "dcgan-digiface64", "--out", "OUT/d.safetensors"],
    "edit": ["edit", "x.npz", "-g", "dcgan-digiface64", "--direction", "d.safetensors", "--out", "OUT"],
    "generate": ["generate", "dcgan-digiface64", "--out", "OUT"],
    "interpolate": ["interpolate", "a.npz", "b.npz", "-g", "dcgan-digiface64", "--out", "OUT"],
    "regenerate": ["regenerate", "run", "-g", "diffusion-faces32", "--prompt", "drawing", "--out", "OUT"],
    "train-encoder": ["train-encoder", "-g", "dcgan-digiface64", "--out", "OUT"],
}


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_every_command_with_device_is_covered():
    with_device = {name for name, p in _subcommands().items() if any("--device" in a.option_strings for a in p._actions)}
    assert with_device == set(DEVICE_ARGV)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", sorted(DEVICE_ARGV))
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_device_this_torch_lacks_is_one_line_and_no_folder(command, device, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [str(out) + w[3:] if w.startswith("OUT") else w for w in DEVICE_ARGV[command]]
    err = _one_line_exit_2([*argv, "--device", device], capsys)
    assert f"--device {device}: this machine has no CUDA device" in err and "use --device cpu" in err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_from_the_shell_prints_no_traceback(tmp_path):
    # the installed entry point's behaviour, as a user runs it (a fresh interpreter: about 2 s)
    proc = subprocess.run([sys.executable, "-c", "import sys; from invertkit.cli.main import main; sys.exit(main())",
                           "invert", "x.png", "-g", "dcgan-digiface64", "--device", "cuda", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("inputs", [["nonexistent.png"], ["no/such/folder/"], ["nothing-*.png"], ["a.png", "b.txt"]])
@pytest.mark.parametrize("layout", ["files", "parquet"])
def test_missing_input_is_one_line_and_makes_no_run_folder(inputs, layout, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _one_line_exit_2(["invert", *inputs, "-g", "dcgan-digiface64", "--format", layout, "--out", "runs/x"], capsys)
    assert inputs[0] in err and "no such file, folder or glob match" in err
    assert not (tmp_path / "runs").exists()


def test_bench_with_a_missing_input_makes_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _one_line_exit_2(["bench", "-g", "dcgan-digiface64", "--images", "nonexistent/", "--out", "runs/b"], capsys)
    assert "nonexistent/" in err
    assert not (tmp_path / "runs").exists()


def test_one_missing_input_beside_a_good_one_is_skipped_by_name(tmp_path, capsys, monkeypatch):
    from invertkit.io.images import save_image

    monkeypatch.chdir(tmp_path)
    save_image(torch.zeros(3, 64, 64), tmp_path / "good.png")
    code = main(["invert", "good.png", "gone.png", "-g", "dcgan-digiface64", "-m", "plain", "--steps", "1", "--out", "runs/x"])
    out = capsys.readouterr().out
    assert code == 1 and "skipped gone.png" in out and "(1 inverted, 0 failed)" not in out
    assert (tmp_path / "runs/x/latents/good.npz").is_file()


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_invert_help_is_short_and_lists_each_method_on_one_line(capsys):
    text = _help(["invert"], capsys)
    assert len(text.splitlines()) <= 120  # it was about 250 with every option of the default method
    assert "invertkit invert -m METHOD --help" in text
    listed = text.split("methods (-m METHOD --help")[1].split("\n\n")[0].splitlines()[1:]
    assert sorted(line.split()[0] for line in listed) == sorted(METHODS.names())
    assert "--lr-rampup" not in text and "--pivot-steps" not in text  # per-method options live in -m NAME --help


@pytest.mark.parametrize("method", METHODS.names())
def test_method_help_shows_that_methods_options_and_they_parse(method, capsys):
    text = _help(["invert", "-m", method], capsys)
    names = [o.name for o in declared_options(METHODS.get(method).options)]
    for name in names:
        assert "--" + name.replace("_", "-") in text
    assert len(text.splitlines()) <= 95 + 4 * len(names)  # the common options, then its own
    # every option name of every method still parses without -m in front of --help (the flags exist)
    args = build_parser(["invert"]).parse_args(["invert", "x.png", "-g", "G", "-m", method])
    assert all(hasattr(args, n) for n in names)


def test_every_command_help_has_a_description(capsys):
    for name in _subcommands():
        text = _help([name], capsys)
        first = text.split("\n\n")[1] if "\n\n" in text else ""
        assert not first.startswith(("positional arguments", "options")), f"invertkit {name} --help has no description"


def test_bench_help_says_what_it_writes_and_shows_an_example(capsys):
    text = _help(["bench"], capsys)
    assert "bench.md" in text and "bench.html" in text and "examples:" in text and "invertkit bench -g" in text
