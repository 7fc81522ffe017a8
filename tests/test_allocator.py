"""glibc keeps freed large blocks for reuse once told to: further large tensors cost no new page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from invertkit.allocator import ENV_OPT_OUT, reuse_freed_memory

# allocate and fill a tensor of argv[2] float32s eight times; print the minor page faults of the last
# two fills. Not the second alone: a small block glibc hands out right after a freed tensor can keep
# it from serving the next aligned request of the same size, so an early fill may take fresh pages
# once (seen at the second or third); then two blocks take turns and nothing faults any more.
PROBE = """
import resource, sys, torch
if sys.argv[1] == "reuse":
    from invertkit.allocator import reuse_freed_memory
    assert reuse_freed_memory()
def fill():
    x = torch.empty(int(sys.argv[2]))
    x.fill_(1.0)
    del x
for _ in range(6):
    fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill()
fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

# malloc, touch and free a block of argv[1] bytes twice straight through libc (nothing allocated in
# between, so the freed block is the top of the heap); print the second round's minor page faults
PROBE_TOP = """
import ctypes, resource, sys
from invertkit.allocator import reuse_freed_memory
assert reuse_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
n = int(sys.argv[1])
def fill():
    p = libc.malloc(n)
    libc.memset(p, 1, n)
    libc.free(p)
fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _steady_fill_faults(mode: str, floats: int = 16 * 1024 * 1024) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, str(floats)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    plain = _steady_fill_faults("plain")
    kept = _steady_fill_faults("reuse")
    # 64 MB is 16384 pages of 4 KB: without the setting glibc maps (and the kernel zero-fills) them
    # again at each of the two fills
    assert plain > 16000, plain
    assert kept < 500, kept
    # the heap is never shrunk: 1.25 GiB freed at its top (a batch of 16 at 256 px frees more after
    # each backward pass) is still there for the next step; a 1 GiB trim threshold gave it back
    out = subprocess.run([sys.executable, "-c", PROBE_TOP, str(1280 * 2**20)], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 500, out.stdout


def test_opt_out(monkeypatch):
    monkeypatch.setenv(ENV_OPT_OUT, "1")
    assert reuse_freed_memory() is False
