"""Small argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import ConfigError


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


def field_help(cls: type) -> dict[str, str]:
    """Help text of each dataclass field, taken from its trailing ``# comment`` in the source (the
    options dataclasses document their fields that way, so the docs live in one place)."""
    import inspect
    import re

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # base classes first, so a subclass's comment wins
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for m in re.finditer(r"^\s+(\w+): [^=\n]+= [^#\n]+#\s*(.+)$", src, flags=re.M):
            out[m.group(1)] = m.group(2).strip()
    return out


def _arg_type(annotation: str):
    a = annotation.replace(" ", "")
    if a.startswith("bool"):
        return "bool"
    if a.startswith("int"):
        return int
    if a.startswith("float"):
        return float
    return str


def add_options_flags(p: argparse.ArgumentParser, classes: dict[str, type], skip: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Add one ``--flag`` per field of the given options dataclasses (union over methods), default
    None meaning "not given" so each method keeps its own default. The help lists each method's
    default. Returns method -> its field names."""
    import dataclasses

    owners: dict[str, set[str]] = {}
    info: dict[str, dict] = {}
    for method, cls in classes.items():
        helps = field_help(cls)
        owners[method] = set()
        for f in dataclasses.fields(cls):
            owners[method].add(f.name)
            if f.name in skip:
                continue
            entry = info.setdefault(f.name, {"type": _arg_type(str(f.type)), "helps": {}, "defaults": {}})
            if helps.get(f.name):
                entry["helps"].setdefault(helps[f.name], []).append(method)
            entry["defaults"][method] = f.default
    for name, entry in info.items():
        defaults = entry["defaults"]
        if len(set(map(repr, defaults.values()))) == 1:
            dtext = f"default {next(iter(defaults.values()))}"
        else:
            dtext = "defaults: " + ", ".join(f"{m} {d}" for m, d in defaults.items())
        if len(defaults) < len(classes):
            dtext += "; only " + ", ".join(defaults)
        flag = "--" + name.replace("_", "-")
        texts = entry["helps"]  # one text, or each method's own meaning of the same flag
        about = next(iter(texts)) if len(texts) == 1 else "; ".join(f"{', '.join(ms)}: {t}" for t, ms in texts.items())
        text = f"{about} ({dtext})".strip().replace("%", "%%")  # argparse formats help with %
        if entry["type"] == "bool":
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            p.add_argument(flag, dest=name, type=entry["type"], default=None, help=text)
    return owners


def given_options(args: argparse.Namespace, method: str, owners: dict[str, set[str]]) -> dict[str, object]:
    """The options the user set on the command line, checked against the chosen method."""
    all_fields = set().union(*owners.values())
    given = {name: getattr(args, name) for name in all_fields if getattr(args, name, None) is not None}
    wrong = sorted(k for k in given if k not in owners[method])
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise ConfigError(f"{flags} do(es) not apply to --method {method}; its options: {', '.join(sorted(owners[method]))}")
    return given
