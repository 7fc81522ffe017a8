"""Bounded-cost checks for untrusted files: what a file declares is checked against what it holds
before anything is built or allocated from it.

The limits (documented in the README, "Security and robustness"):

- **metadata walks** (pickled constructor arguments, training options, JSON configs) visit at most
  :data:`MAX_META_NODES` values and :data:`MAX_META_DEPTH` levels: a pickle may reference one object
  from many places, so a walk that follows references could otherwise take exponential time;
- **parameters**: a model whose declared architecture holds more than :func:`parameter_limit`
  elements (default :data:`DEFAULT_MAX_PARAMETERS`, overridden by ``$INVERTKIT_MAX_PARAMETERS``) is
  refused before it is built;
- **stored bytes**: every tensor must be backed by bytes the file holds: in safetensors files the
  header's shapes must match their byte ranges, which lie inside the file without overlap
  (:func:`safetensors_header`); rebuilt pickle tensors must not overlap themselves (zero strides) or
  each other beyond the storages they come from (:func:`check_stored_bytes`).

Messages quote file content only through :func:`one_line` / :func:`short_repr`: one line, bounded
length, control characters (terminal escapes, newlines) replaced.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import CheckpointError

MAX_META_NODES = 100_000
MAX_META_DEPTH = 64
DEFAULT_MAX_PARAMETERS = 4_000_000_000
PARAMETERS_ENV = "INVERTKIT_MAX_PARAMETERS"
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit

# bytes per element of the safetensors dtypes
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


# ------------------------------------------------------------------------------------------------
# quoting file content in messages
# ------------------------------------------------------------------------------------------------


def one_line(text: Any, limit: int = 200) -> str:
    """``text`` as one printable line of at most ``limit`` characters (control characters -> ``?``)."""
    s = str(text)
    s = "".join(c if c.isprintable() else ("?" if c not in "\n\r\t" else " ") for c in s[: limit * 4])
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3].rstrip() + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 4
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40


def short_repr(value: Any, limit: int = 80) -> str:
    """A bounded ``repr`` of a value read from a file (shared or deep structures cost O(1))."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ never reaches here, but be safe
        text = f"<{type(value).__name__}>"
    return one_line(text, limit)


# ------------------------------------------------------------------------------------------------
# metadata walks
# ------------------------------------------------------------------------------------------------


class MetaBudget:
    """Counts the values a metadata walk visits; raises CheckpointError past the limits."""

    def __init__(self, where: str, max_nodes: int = MAX_META_NODES, max_depth: int = MAX_META_DEPTH) -> None:
        self.where, self.max_nodes, self.max_depth, self.nodes = where, max_nodes, max_depth, 0

    def visit(self, depth: int) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise CheckpointError(
                f"{self.where}: its metadata has more than {self.max_nodes} values (invertkit's limit on metadata nodes); "
                "the file is not a model checkpoint or was crafted to exhaust the reader"
            )
        if depth > self.max_depth:
            raise CheckpointError(
                f"{self.where}: its metadata is nested deeper than {self.max_depth} levels (invertkit's limit on metadata "
                "depth); the file is not a model checkpoint or was crafted to exhaust the reader"
            )


# ------------------------------------------------------------------------------------------------
# parameter count
# ------------------------------------------------------------------------------------------------


def parameter_limit() -> int:
    """The most parameters (tensor elements) a model read from a file may declare: ``$INVERTKIT_MAX_PARAMETERS``
    or :data:`DEFAULT_MAX_PARAMETERS`."""
    raw = os.environ.get(PARAMETERS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PARAMETERS
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):
        raise CheckpointError(f"${PARAMETERS_ENV}={one_line(raw, 40)!r} is not a number of parameters") from None
    if value <= 0:
        raise CheckpointError(f"${PARAMETERS_ENV} must be positive, got {value}")
    return value


def check_parameter_count(count: int, where: Any, what: str = "the model") -> None:
    """Refuse a model that declares more than :func:`parameter_limit` parameters, before it is built."""
    limit = parameter_limit()
    if count > limit:
        raise CheckpointError(
            f"{where}: {what} declares {count:,} parameters, more than invertkit's limit of {limit:,}; "
            f"raise ${PARAMETERS_ENV} if the file is trusted and the model really is that large"
        )


def numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


# ------------------------------------------------------------------------------------------------
# safetensors headers
# ------------------------------------------------------------------------------------------------


def safetensors_header_length(head: bytes, size: int) -> int | None:
    """The JSON header length if ``head`` (the first >= 9 bytes of a ``size``-byte file) starts a
    safetensors file (8-byte little-endian length, then ``{`` within the file), else None."""
    if len(head) < 9 or size < 10:
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if 2 <= n <= min(size - 8, MAX_SAFETENSORS_HEADER) and head[8:9] == b"{":
        return n
    return None


def _bad(p: Path, what: str, problem: str) -> CheckpointError:
    kind = "valid safetensors file" if what == "safetensors file" else f"readable {what}"
    return CheckpointError(f"{p}: not a {kind} ({problem}); the file is damaged, truncated or forged")


def safetensors_header(path: str | os.PathLike[str], what: str = "safetensors file") -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """``(name -> (dtype, shape), metadata)`` of a safetensors file, read from its header only.

    Checks that the header is one JSON object within the file, every tensor has a known dtype, a
    shape of non-negative integers and a byte range ``[begin, end)`` of exactly ``numel * itemsize``
    bytes inside the data section, and that the ranges do not overlap: the file holds every byte
    its tensors declare. Costs one read of the header.

    Raises:
        CheckpointError: one line naming the file and the first lie found.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _bad(p, what, f"{size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, MAX_SAFETENSORS_HEADER):
                raise _bad(p, what, f"the header length {n} goes beyond the file's {size} bytes")
            raw = f.read(n)
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot be read ({one_line(exc.strerror or exc)})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(p, what, "the header is not JSON") from None
    if not isinstance(header, dict):
        raise _bad(p, what, "the header is not a JSON object")
    data_size = size - 8 - n
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _bad(p, what, "__metadata__ is not a map of strings")
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    ranges: list[tuple[int, int, str]] = []
    for name, info in header.items():
        q = short_repr(name, 60)
        if not isinstance(info, dict):
            raise _bad(p, what, f"entry {q} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            raise _bad(p, what, f"tensor {q} has unknown dtype {short_repr(dtype, 30)}")
        if not isinstance(shape, list) or len(shape) > 16 or not all(type(s) is int and s >= 0 for s in shape):
            raise _bad(p, what, f"tensor {q} has a malformed shape {short_repr(shape, 60)}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise _bad(p, what, f"tensor {q} has malformed data_offsets {short_repr(offsets, 60)}")
        begin, end = offsets
        if end > data_size:
            raise _bad(p, what, f"tensor {q} ends at byte {end} of a data section of {data_size} bytes")
        declared = numel(shape) * SAFETENSORS_DTYPES[dtype]
        if declared != end - begin:
            raise _bad(p, what, f"tensor {q} declares shape {shape} ({declared} bytes) but holds {end - begin} bytes")
        out[name] = (dtype, tuple(shape))
        if end > begin:
            ranges.append((begin, end, q))
    ranges.sort()
    for (b0, e0, q0), (b1, _, q1) in zip(ranges, ranges[1:]):
        if b1 < e0:
            raise _bad(p, what, f"tensors {q0} and {q1} overlap (bytes {b1}..{e0})")
    return out, metadata


def shape_problems(expected: Mapping[str, tuple[int, ...]], stored: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Missing, unexpected and mis-shaped entries of ``stored`` against ``expected`` (short phrases)."""
    def few(items: list[str], k: int = 3) -> str:
        return ", ".join(items[:k]) + (f" (+{len(items) - k} more)" if len(items) > k else "")

    missing = [k for k in expected if k not in stored]
    extra = [short_repr(k, 60) for k in stored if k not in expected]
    bad = [f"{k} {list(stored[k])} (expected {list(v)})" for k, v in expected.items()
           if k in stored and tuple(stored[k]) != tuple(v)]
    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if extra:
        parts.append(f"unexpected {few(extra)}")
    if bad:
        parts.append(f"wrong shape {few(bad)}")
    return parts


# ------------------------------------------------------------------------------------------------
# tensors rebuilt from pickles
# ------------------------------------------------------------------------------------------------


def _dense(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    # non-overlapping: sorted by stride, each dimension must step over everything the smaller ones span
    span = 1
    for st, sz in sorted((st, sz) for sz, st in zip(size, stride) if sz > 1):
        if st < span:
            return False
        span = st * sz
    return True


def check_stored_bytes(tensors: Mapping[str, Any], where: Any) -> None:
    """Refuse tensors that view more elements than their storages hold: a zero or overlapping
    stride, or several tensors sharing bytes so that together they exceed the stored bytes.

    Call it on tensors rebuilt from a pickle before copying them (a copy allocates the view's size).
    """
    storages: dict[int, int] = {}
    total = 0
    for name, t in tensors.items():
        size, stride = tuple(t.shape), tuple(t.stride())
        if t.numel() > 0 and not _dense(size, stride):
            raise CheckpointError(
                f"{where}: tensor {short_repr(name, 60)} {list(size)} has overlapping strides {list(stride)} (it claims more "
                "values than the file stores); refusing a forged checkpoint"
            )
        st = t.untyped_storage()
        storages[st.data_ptr() if st.nbytes() else id(st)] = st.nbytes()
        total += t.numel() * t.element_size()
    held = sum(storages.values())
    if total > held:
        raise CheckpointError(
            f"{where}: its tensors claim {total:,} bytes but the file stores {held:,} (storages shared between "
            "tensors); refusing a forged checkpoint"
        )


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
