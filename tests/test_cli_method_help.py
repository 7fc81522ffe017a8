"""Method options are declared once (``optionfields.option``): the CLI's per-method help, its flags and
the one spelling of "auto" all come from those declarations."""

from __future__ import annotations

import dataclasses

import pytest

from invertkit.cli.main import main
from invertkit.methods import METHODS
from invertkit.optionfields import AUTO, declared_options


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["invert", *argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_method_help_lists_that_methods_options_with_defaults(capsys):
    text = _help(capsys, "-m", "pti")
    section = text.split("options of --method pti:")[1].split("methods (-m METHOD")[0]
    flags = [line.split()[0].rstrip(",") for line in section.splitlines() if line.startswith("  --")]
    assert flags == ["--" + o.name.replace("_", "-") for o in declared_options(METHODS.get("pti").options)]
    assert "(default 350)" in section and "(default auto)" in section
    assert "--lr-rampup" not in text and "--popsize" not in text  # other methods' flags stay out of this help


def test_plain_help_lists_every_method_and_points_to_their_options(capsys):
    text = _help(capsys)
    assert "options of --method" not in text and "--lr-rampup" not in text  # each method's options: -m NAME --help
    assert "`invertkit invert -m METHOD --help` lists METHOD's options" in text
    section = text.split("methods (-m METHOD --help for each one's options; default optimize):")[1].split("\n\n")[0]
    listed = [line.split()[0] for line in section.splitlines() if line.strip()]
    assert sorted(listed) == sorted(METHODS.names())


def test_hybrid_offers_only_the_starts_it_accepts(capsys):
    section = _help(capsys, "--method=hybrid").split("options of --method hybrid:")[1]
    assert "--init auto|given" in section and "mean" not in section.split("--init")[1].split("--")[0]


@pytest.mark.parametrize("method", METHODS.names())
def test_every_option_is_declared_with_help_and_one_spelling_of_auto(method):
    cls = METHODS.get(method).options
    for o in declared_options(cls):
        assert o.help, f"{method}.{o.name} has no help text"
        if "auto" in o.help:  # an option whose help promises an automatic value has it as its default
            assert o.default == AUTO or o.name == "pivot", f"{method}.{o.name}: says auto, defaults to {o.default!r}"
        assert not o.help.lstrip().startswith("None"), f"{method}.{o.name}: 'None' as a second spelling of auto"
        if o.choices:
            assert o.default in o.choices
    assert {f.name for f in dataclasses.fields(cls)} == {o.name for o in declared_options(cls)}


def test_flags_check_values_and_auto_against_the_method(tmp_path, capsys):
    img = tmp_path / "x.png"
    import torch

    from invertkit.io.images import save_image

    save_image(torch.zeros(3, 8, 8), img)
    assert main(["invert", str(img), "-g", "dcgan-digiface64", "-m", "basincma", "--popsize", "auto", "--out", str(tmp_path / "o")]) == 2
    assert "--popsize auto: basincma's popsize has no automatic value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["invert", str(img), "-g", "dcgan-digiface64", "-m", "cma", "--popsize", "many"])
    assert "argument --popsize: expected int or auto, got 'many'" in capsys.readouterr().err
    assert main(["invert", str(img), "-g", "dcgan-digiface64", "-m", "encoder", "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps do(es) not apply to --method encoder; its options: chunk, encoder" in err


def test_renamed_encoder_option_says_so():
    import torch

    import invertkit

    G = invertkit.load_generator("dcgan-digiface64")
    with pytest.raises(invertkit.ConfigError, match="'batch' is now 'chunk'"):
        invertkit.invert(G, torch.zeros(1, 3, 64, 64), "encoder", batch=8)
