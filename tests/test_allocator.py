"""glibc keeps freed large blocks for reuse once told to: a second large tensor costs no new page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from invertkit.allocator import ENV_OPT_OUT, reuse_freed_memory

# allocate and fill a 64 MB tensor twice; print the minor page faults of the second fill
PROBE = """
import resource, sys, torch
if sys.argv[1] == "reuse":
    from invertkit.allocator import reuse_freed_memory
    assert reuse_freed_memory()
def fill():
    x = torch.empty(16 * 1024 * 1024)
    x.fill_(1.0)
    del x
fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_fill_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    plain = _second_fill_faults("plain")
    kept = _second_fill_faults("reuse")
    # 64 MB is 16384 pages of 4 KB: without the setting glibc maps (and the kernel zero-fills) them again
    assert plain > 8000, plain
    assert kept < 500, kept


def test_opt_out(monkeypatch):
    monkeypatch.setenv(ENV_OPT_OUT, "1")
    assert reuse_freed_memory() is False
