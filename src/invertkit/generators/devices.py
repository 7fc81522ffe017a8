"""The one place a device name (``--device``, ``load_generator(device=...)``) is read and checked:
an unknown name or a device this machine lacks is one :class:`~invertkit.errors.ConfigError` line
saying what to use instead, before any weights move."""

from __future__ import annotations

import torch

from ..errors import ConfigError

KNOWN = ("cpu", "cuda", "mps")


def check_device(device: str | torch.device, *, flag: str = "--device") -> torch.device:
    """``device`` as a ``torch.device`` once it is known to exist here (cpu; cuda / cuda:N with CUDA
    and enough GPUs; mps where Metal is available); ``flag`` names it in the message."""
    text = str(device)
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{flag} {text!r}: not a device name; use cpu, cuda, cuda:N or mps") from None
    if dev.type not in KNOWN:
        raise ConfigError(f"{flag} {text}: invertkit runs on cpu, cuda or mps; use one of them")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {text}: this machine has no CUDA device (torch.cuda.is_available() is False); "
                              f"use {flag} cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            have = ", ".join(f"cuda:{i}" for i in range(count))
            raise ConfigError(f"{flag} {text}: this machine has {count} CUDA device(s) ({have}); use one of them or {flag} cpu")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"{flag} {text}: this machine has no MPS device (torch.backends.mps.is_available() is False); "
                              f"use {flag} cpu")
    if dev.type == "cpu" and dev.index not in (None, 0):
        raise ConfigError(f"{flag} {text}: there is one cpu device; use {flag} cpu")
    return dev
