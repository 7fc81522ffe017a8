"""Declared method options: each field of a method's options dataclass carries its own help text and,
where it has them, its allowed values, so the API docs, ``invertkit invert -m METHOD --help`` and the
bench read one declaration (nothing is scraped from comments).

    @dataclass(frozen=True)
    class OptimizeOptions:
        steps: int = option(300, "optimiser steps per image")
        init: str = option("auto", "start: mean latent, random, or given", choices=("auto", "mean", "random", "given"))

Numeric options declare their allowed range where they are declared (``min=``, ``max=``, exclusive
bounds; every float is finite unless ``finite=False``); :func:`check_options` enforces it, and an
options dataclass that derives from :class:`Options` runs it when it is built, so the API
(``invert(G, x, steps=0)``) and the CLI (``--steps 0``) refuse the same values with the same line.

``"auto"`` is the one spelling of "decide from the generator" for every option that has such a default;
the method resolves it and records the resolved value in the run's config.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

AUTO = "auto"
Auto = Literal["auto"]  # in annotations: ``restarts: int | Auto = option("auto", ...)``


def is_auto(value: object) -> bool:
    """Whether an option still asks for its automatic value (``"auto"``; ``None`` from older callers)."""
    return value is None or value == AUTO


def option(default: Any, help: str, *, choices: Sequence[str] | None = None, min: float | None = None,
           max: float | None = None, min_exclusive: bool = False, max_exclusive: bool = False,
           finite: bool = True) -> Any:
    """A dataclass field with ``default``, its ``help`` text, optional allowed ``choices`` and, for a
    number, its allowed range: ``min`` / ``max`` (inclusive unless ``min_exclusive`` / ``max_exclusive``)
    and ``finite`` (floats only: NaN and infinities are refused unless ``finite=False``)."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "min": min, "max": max,
            "min_exclusive": min_exclusive, "max_exclusive": max_exclusive, "finite": finite}
    return dataclasses.field(default=default, metadata=meta)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def allowed_range(meta: Any, kind: type) -> str:
    """The allowed values of a numeric option in words: ``"a finite number > 0"``, ``"an integer >= 1"``."""
    lo, hi = meta.get("min"), meta.get("max")
    noun = "an integer" if kind is int else "a finite number" if meta.get("finite", True) else "a number"
    if lo is not None and hi is not None:
        left = "(" if meta.get("min_exclusive") else "["
        right = ")" if meta.get("max_exclusive") else "]"
        return f"{noun} in {left}{_number(lo)}, {_number(hi)}{right}"
    if lo is not None:
        return f"{noun} {'>' if meta.get('min_exclusive') else '>='} {_number(lo)}"
    if hi is not None:
        return f"{noun} {'<' if meta.get('max_exclusive') else '<='} {_number(hi)}"
    return noun


def value_kind(annotation: object) -> type:
    """The value type of an option from its annotation (``int | Auto`` -> int; bool, int, float or str)."""
    if not isinstance(annotation, str):
        args = typing.get_args(annotation) or (annotation,)
        return next((kind for kind in (bool, int, float) if kind in args), str)
    a = annotation.replace(" ", "").replace("typing.", "")
    return next((kind for kind in (bool, int, float) if a.startswith(kind.__name__)), str)


def _allows_none(annotation: object) -> bool:
    return "None" in str(annotation).replace("NoneType", "None")


def option_problem(f: dataclasses.Field, value: Any, annotation: object = None) -> str | None:
    """Why ``value`` is not allowed for the declared option ``f`` (None: it is allowed); ``annotation``
    is the field's resolved type (default: ``f.type``)."""
    meta = f.metadata or {}
    if "help" not in meta:
        return None  # not declared with option(): nothing to check
    annotation = f.type if annotation is None else annotation
    kind = value_kind(annotation)
    if value is None:
        return None if _allows_none(annotation) or f.default is None else "must be given (it has no unset value)"
    if isinstance(value, str) and value == AUTO and (f.default == AUTO or "Auto" in str(annotation) or "'auto'" in str(annotation)):
        return None
    choices = meta.get("choices")
    if choices is not None:
        return None if value in choices else f"must be one of {', '.join(choices)}"
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if kind is str:
        return None if isinstance(value, str) else "must be text"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"must be {allowed_range(meta, kind)}"
    if kind is int and not isinstance(value, numbers.Integral):
        return f"must be {allowed_range(meta, kind)}"
    if kind is float and meta.get("finite", True) and not math.isfinite(value):
        return f"must be {allowed_range(meta, kind)}"
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
        return f"must be {allowed_range(meta, kind)}"
    if hi is not None and (value > hi or (meta.get("max_exclusive") and value == hi)):
        return f"must be {allowed_range(meta, kind)}"
    if isinstance(value, float) and math.isnan(value):  # finite=False still never means "any NaN compares fine"
        return f"must be {allowed_range(meta, kind)}" if lo is not None or hi is not None else None
    return None


def check_options(obj: Any) -> None:
    """Raise one :class:`~invertkit.errors.ConfigError` line for the first declared option of the
    options dataclass ``obj`` whose value is outside its declared type, choices or range; it names
    the option, its command-line flag, the value and what is allowed."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = option_problem(f, value, hints.get(f.name, f.type))
        if problem:
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"option {f.name} (CLI {flag}) = {value!r}: {problem}")


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: fall back to its text
        return {}


class Options:
    """Base of an options dataclass whose declared options are checked when it is built (also by
    ``dataclasses.replace``): a value outside its declaration is one ConfigError line."""

    def __post_init__(self) -> None:
        check_options(self)


_RENAMED: dict[type, dict[str, str]] = {}


def renamed(**old_to_new: str):  # noqa: ANN201
    """Class decorator declaring options an options dataclass renamed (``@renamed(batch="chunk")``):
    an old name passed by a caller is refused with a line naming the new one."""

    def declare(cls: type) -> type:
        _RENAMED[cls] = dict(old_to_new)
        return cls

    return declare


def renamed_options(cls: type) -> dict[str, str]:
    """``{old name: new name}`` declared for ``cls`` with :func:`renamed` (empty when none)."""
    return _RENAMED.get(cls, {})


@dataclass(frozen=True)
class OptionInfo:
    """One declared option: name, default, help text, allowed values (or None: any of its type)."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] | None
    allowed: str = ""  # numeric options: the declared range in words ("an integer >= 1"), else ""


def declared_options(cls: type) -> list[OptionInfo]:
    """The options of an options dataclass in declaration order (a subclass's redeclaration wins)."""
    out = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata or {}
        kind = value_kind(hints.get(f.name, f.type))
        ranged = kind in (int, float) and not meta.get("choices") and (
            meta.get("min") is not None or meta.get("max") is not None)
        out.append(OptionInfo(f.name, f.default, str(meta.get("help", "")), meta.get("choices"),
                              allowed_range(meta, kind) if ranged else ""))
    return out
