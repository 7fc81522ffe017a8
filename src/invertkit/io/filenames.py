"""File names as text that can be written anywhere (JSON, CSV, HTML, the terminal).

On POSIX a file name is bytes; Python decodes the bytes that are not UTF-8 to lone surrogates
(``b"caf\\xe9.png"`` -> ``"caf\\udce9.png"``), which no UTF-8 writer accepts. :func:`display_name`
spells such bytes as ``\\xe9`` instead: valid text, and lossless (the original bytes can be read off).
"""

from __future__ import annotations

import os


def display_name(name: str) -> str:
    """``name`` with undecodable file-name bytes written as ``\\xNN`` (other names unchanged)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        raw = os.fsencode(name)  # the bytes the surrogates stand for
    except UnicodeEncodeError:  # surrogates that are no escaped bytes (not from a file name)
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")
