"""Keep freed CPU memory for reuse: glibc's ``malloc`` settings for large tensors.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns it to the kernel on ``free``. A batched inversion step allocates and frees feature maps of that
size at every layer (a 256 px StyleGAN2 at batch 8: 8 x 64 x 256 x 256 float32 = 134 MB each), so each
step page-faults and zero-fills all of them anew. Measured on the 2-core project machine
(``benchmarks/stylegan2_batch_scaling.py --threads 2 --batches 1,4,8``, forward + backward from w+): the
kernel's share was 25 s of 90 s CPU time, and per-image time rose with the batch (0.33 / 0.35 / 0.37 s
at batch 1 / 4 / 8); with freed memory kept for reuse it fell with the batch (0.29 / 0.27 / 0.25 s) and
the kernel's share dropped to 1.4 s.

:func:`reuse_freed_memory` sets ``M_MMAP_MAX`` to 0 (large blocks come from the heap and go back to
it) and turns trimming off (``M_TRIM_THRESHOLD`` -1: the heap is never shrunk) through ``mallopt``.
Trimming once 1 GiB lay free at the top of the heap was tried first: a batch of 16 at 256 px frees
several GiB there after each backward pass, and every step faulted it back in: 0.625 against 0.555 s
per image-step at batch 16, kernel time 15.7 against 6.2 s (``python
benchmarks/stylegan2_batch_scaling.py --threads 1 --batches 4,16 --rounds 2``; batch 4 unchanged). It changes
speed and resident memory only, never a result: the process keeps its peak heap until it exits, and
freed blocks serve later allocations. Commands call it at start unless ``$INVERTKIT_SYSTEM_MALLOC`` is
set; Python users call it themselves. On a C library other than glibc it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV_OPT_OUT = "INVERTKIT_SYSTEM_MALLOC"
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
TRIM_NEVER = -1  # M_TRIM_THRESHOLD -1: glibc never shrinks the heap


def reuse_freed_memory() -> bool:
    """Tell glibc to keep freed large blocks for reuse (see the module docstring). Returns whether the
    settings were applied: False off Linux/glibc, or when ``$INVERTKIT_SYSTEM_MALLOC`` is set."""
    if os.environ.get(ENV_OPT_OUT) or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has it: musl's mallopt is a no-op stub  # noqa: B018
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))
