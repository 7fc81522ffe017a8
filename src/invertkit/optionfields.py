"""Declared method options: each field of a method's options dataclass carries its own help text and,
where it has them, its allowed values, so the API docs, ``invertkit invert -m METHOD --help`` and the
bench read one declaration (nothing is scraped from comments).

    @dataclass(frozen=True)
    class OptimizeOptions:
        steps: int = option(300, "optimiser steps per image")
        init: str = option("auto", "start: mean latent, random, or given", choices=("auto", "mean", "random", "given"))

``"auto"`` is the one spelling of "decide from the generator" for every option that has such a default;
the method resolves it and records the resolved value in the run's config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

AUTO = "auto"
Auto = Literal["auto"]  # in annotations: ``restarts: int | Auto = option("auto", ...)``


def is_auto(value: object) -> bool:
    """Whether an option still asks for its automatic value (``"auto"``; ``None`` from older callers)."""
    return value is None or value == AUTO


def option(default: Any, help: str, *, choices: Sequence[str] | None = None) -> Any:
    """A dataclass field with ``default``, its ``help`` text and optional allowed ``choices``."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices) if choices else None})


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


def declared_options(cls: type) -> list[OptionInfo]:
    """The options of an options dataclass in declaration order (a subclass's redeclaration wins)."""
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata or {}
        out.append(OptionInfo(f.name, f.default, str(meta.get("help", "")), meta.get("choices")))
    return out
