"""How many CPU threads torch uses: ``--threads N``, else ``$INVERTKIT_THREADS``, else the physical cores.

torch's own default is one thread per *logical* CPU of the whole machine. On a shared or
hyper-threaded machine that oversubscribes the cores: measured on the 2-core project machine beside
another job, the demo took 105.7 s with torch's default and 19.5 s with one thread, same PSNR. So
invertkit sets the count itself, once, when a command starts (:func:`apply_threads`); Python users
call it (or ``torch.set_num_threads``) themselves. Dataset runs on Ray give each worker process its
``--cpus-per-worker`` threads instead (one by default), so several workers never oversubscribe.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import ConfigError

ENV = "INVERTKIT_THREADS"
MAX_THREADS = 4096


def _usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores(cpuinfo: str | None = None) -> int:
    """Physical cores, from ``/proc/cpuinfo``'s distinct (physical id, core id) pairs on Linux (``cpuinfo``:
    that file's text, for tests), capped by the CPUs this process may use; elsewhere the usable CPUs."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    pairs, phys, core = set(), None, None
    for line in cpuinfo.splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():  # end of one processor's block
            if core is not None:
                pairs.add((phys, core))
            phys, core = None, None
    usable = _usable_cpus()
    return max(1, min(len(pairs), usable)) if pairs else usable


def parse_threads(value: object, source: str) -> int:
    """``value`` as a thread count in [1, 4096]; else a ConfigError naming ``source`` and the fix."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        raise ConfigError(f"{source} must be a whole number of threads from 1 to {MAX_THREADS}, got {str(value)[:40]!r}")
    return n


def resolve_threads(flag: int | None = None, *, environ: dict[str, str] | None = None) -> tuple[int, str]:
    """``(threads, where the number came from)``: ``flag`` (``--threads``), else ``$INVERTKIT_THREADS``,
    else :func:`physical_cores`."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return parse_threads(flag, "--threads"), "--threads"
    if env.get(ENV, "").strip():
        return parse_threads(env[ENV], f"${ENV}"), f"${ENV}"
    return physical_cores(), "physical cores"


def apply_threads(flag: int | None = None) -> int:
    """Resolve the thread count (see :func:`resolve_threads`) and set torch's intra-op threads to it."""
    n, _ = resolve_threads(flag)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
