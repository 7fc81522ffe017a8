"""Options written as text, ``key=value;key=value`` (bench method specs, PTI's pivot options)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"`` -> None, anything else stays text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return None if low == "none" else text


def parse_key_values(text: str, *, where: str) -> dict[str, Any]:
    """``"restarts=4;lr=0.05"`` -> ``{"restarts": 4, "lr": 0.05}``; a value keeps any ``=`` after the
    first (``loss=mse=1,perceptual=1``). ``where`` names the text in the error message."""
    out: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where} {text!r}: expected key=value pairs separated by ';'")
        out[key.strip()] = parse_value(value.strip())
    return out
