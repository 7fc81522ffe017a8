"""File names as text that can be written anywhere (JSON, CSV, HTML, the terminal).

On POSIX a file name is bytes; Python decodes the bytes that are not UTF-8 to lone surrogates
(``b"caf\\xe9.png"`` -> ``"caf\\udce9.png"``), which no UTF-8 writer accepts. :func:`display_name`
spells such bytes as ``\\xe9`` instead: valid text, and lossless (the original bytes can be read off).

A file name may also hold control characters: a newline would split a one-line message or a log
line in two, an escape sequence would drive the terminal that prints it, a bidirectional override
(U+202E) would show the name reversed. :func:`display_name` writes them escaped as well (``\\n``,
``\\t``, ``\\r``, ``\\x1b``, ``\\u202e``), so every name it returns prints as one honest line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

# C0 and C1 control characters, DEL, and the Unicode bidirectional formatting characters
_BIDI = {0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_controls(text: str) -> str:
    if text.isprintable() and not any(ord(c) in _BIDI for c in text):
        return text  # the usual case, checked at C speed
    out = []
    for c in text:
        o = ord(c)
        if c in _NAMED:
            out.append(_NAMED[c])
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif o in _BIDI or o in (0x2028, 0x2029):  # the line and paragraph separators end a line too
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)


def display_name(name: str) -> str:
    """``name`` with undecodable file-name bytes written as ``\\xNN`` and control characters escaped
    (``\\n``, ``\\xNN``, ``\\uNNNN``); other names unchanged."""
    try:
        name.encode("utf-8")
        return _escape_controls(name)
    except UnicodeEncodeError:
        pass
    try:
        raw = os.fsencode(name)  # the bytes the surrogates stand for
    except UnicodeEncodeError:  # surrogates that are no escaped bytes (not from a file name)
        return _escape_controls(name.encode("utf-8", "backslashreplace").decode("utf-8"))
    return _escape_controls(raw.decode("utf-8", "backslashreplace"))


def distinct_names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Names for input files that tell them apart: the base name (``x.png``), or, for files that share
    their base name with another input, the shortest end of their absolute paths that differs
    (``a/x.png`` and ``b/x.png``; ``set1/img/x.png`` and ``set2/img/x.png``). The same file given twice
    keeps one name. Names are the paths' text (apply :func:`display_name` before writing them)."""
    absolute = [os.path.abspath(os.fspath(p)) for p in paths]
    parts = [tuple(q for q in a.replace(os.sep, "/").split("/") if q) or ("",) for a in absolute]
    groups: dict[str, list[int]] = {}
    for i, ps in enumerate(parts):
        groups.setdefault(ps[-1], []).append(i)
    names = [ps[-1] for ps in parts]
    for idx in groups.values():
        files = {absolute[i]: parts[i] for i in idx}
        if len(files) < 2:
            continue
        longest = max(len(ps) for ps in files.values())
        k = 2
        while k < longest and len({ps[-k:] for ps in files.values()}) < len(files):
            k += 1
        for i in idx:
            names[i] = "/".join(parts[i][-k:])
    return names
