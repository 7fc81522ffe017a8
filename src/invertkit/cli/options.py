"""Small argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping

from ..errors import ConfigError
from ..optionfields import AUTO, declared_options


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7,10-11"`` -> ``[0, 1, 2, 3, 7, 10, 11]`` (NVIDIA's gen_images.py syntax)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected integers and ranges like 0-7,10") from None
    if not seeds:
        raise ConfigError("--seeds is empty; give e.g. 0-7")
    return seeds


def check_numbers(args: argparse.Namespace, *, at_least: Mapping[str, int] = {}, finite: tuple[str, ...] = ()) -> None:
    """Command flags that are no method option, checked before work: ``at_least`` maps a dest to its
    smallest allowed integer, ``finite`` lists float dests that must not be NaN or infinite (unset:
    None, skipped). One ConfigError line naming the flag, the value and what is allowed."""
    for dest, low in at_least.items():
        value = getattr(args, dest, None)
        if value is not None and value < low:
            raise ConfigError(f"--{dest.replace('_', '-')} {value}: must be an integer >= {low}")
    for dest in finite:
        value = getattr(args, dest, None)
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"--{dest.replace('_', '-')} {value}: must be a finite number")


def add_generator_args(p: argparse.ArgumentParser) -> None:
    """``GENERATOR`` positional plus ``--weights`` and ``--device``."""
    p.add_argument("generator", help="zoo name (see `invertkit zoo`) or checkpoint path (.pkl, .pt, .safetensors)")
    p.add_argument("--weights", default=None, help="weight file for zoo models that need one (mnist-mlp-gan)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")


def add_generator_flags(p: argparse.ArgumentParser) -> None:
    """``--generator/-g`` plus ``--weights`` and ``--device`` (commands whose positionals are inputs)."""
    p.add_argument("--generator", "-g", required=True, help="zoo name (invertkit zoo) or checkpoint path")
    p.add_argument("--weights", default=None, help="weight file for zoo models that need one (mnist-mlp-gan)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")


def _base_type(annotation: object) -> type:
    """The value type of an option field from its annotation (``"int | Auto"`` -> int)."""
    a = str(annotation).replace(" ", "")
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if a.startswith(name):
            return kind
    return str


def _parse(kind: type, auto: bool, choices: tuple[str, ...] | None):
    """An argparse ``type`` reading ``kind`` values, ``auto`` where the option has an automatic value."""

    def parse(text: str) -> object:
        if auto and text == AUTO:
            return AUTO
        if choices and text not in choices:
            raise argparse.ArgumentTypeError(f"choose one of {', '.join(choices)}")
        try:
            return kind(text)
        except ValueError:
            what = f"{kind.__name__}{' or auto' if auto else ''}"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _default_text(value: object) -> str:
    return "unset" if value is None else '""' if value == "" else str(value)


def add_options_flags(p: argparse.ArgumentParser, classes: dict[str, type], *, shown: str | None = None,
                      title: str | None = None, listed: bool = True) -> dict[str, set[str]]:
    """One ``--flag`` per declared option (``optionfields.option``) of the given options dataclasses.

    Every flag parses (default None: "not given", so each method keeps its own default); only the
    options of ``shown`` (default: all classes) are listed in the help, with that class's help text,
    allowed values and default, in a group titled ``title``; ``listed=False`` lists none (a help that
    points to each method's own). Returns method -> its option names.
    """
    owners = {method: {o.name for o in declared_options(cls)} for method, cls in classes.items()}
    visible = ({shown: classes[shown]} if shown is not None else classes) if listed else {}
    group = p.add_argument_group(title) if title and listed else p
    added: set[str] = set()
    for method, cls in [*visible.items(), *[(m, c) for m, c in classes.items() if m not in visible]]:
        hints = {f.name: f.type for f in dataclasses.fields(cls)}
        for o in declared_options(cls):
            if o.name in added:
                continue
            added.add(o.name)
            kind = _base_type(hints[o.name])
            # a flag accepts "auto" when any method's option of that name has it (given_options checks the chosen one)
            auto = any(getattr(next((x for x in declared_options(c) if x.name == o.name), None), "default", None) == AUTO
                       for c in classes.values())
            flag = "--" + o.name.replace("_", "-")
            if method in visible:
                allowed = f"; one of {', '.join(o.choices)}" if o.choices and len(o.choices) > 4 else ""
                limits = f"; {o.allowed}" if o.allowed else ""
                text = f"{o.help}{allowed}{limits} (default {_default_text(o.default)})".replace("%", "%%")
            else:
                text = argparse.SUPPRESS
            if kind is bool:
                group.add_argument(flag, dest=o.name, action=argparse.BooleanOptionalAction, default=None, help=text)
            else:
                metavar = "|".join(o.choices) if o.choices and len(o.choices) <= 4 else o.name.upper()
                group.add_argument(flag, dest=o.name, type=_parse(kind, auto, o.choices), default=None, help=text, metavar=metavar)
    return owners


def given_options(args: argparse.Namespace, method: str, owners: dict[str, set[str]],
                  classes: dict[str, type] | None = None) -> dict[str, object]:
    """The options the user set on the command line, checked against the chosen method: a flag of
    another method, or ``auto`` for an option without an automatic value, is one clear line."""
    all_fields = set().union(*owners.values())
    given = {name: getattr(args, name) for name in all_fields if getattr(args, name, None) is not None}
    wrong = sorted(k for k in given if k not in owners[method])
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise ConfigError(f"{flags} do(es) not apply to --method {method}; its options: {', '.join(sorted(owners[method]))} "
                          f"(invertkit invert -m {method} --help)")
    if classes is not None:
        defaults = {o.name: o.default for o in declared_options(classes[method])}
        for name, value in given.items():
            if value == AUTO and defaults.get(name) != AUTO:
                raise ConfigError(f"--{name.replace('_', '-')} auto: {method}'s {name} has no automatic value; give one")
    return given
