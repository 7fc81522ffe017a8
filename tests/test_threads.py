"""CPU threads: --threads beats $INVERTKIT_THREADS beats the physical cores; bad values are one line."""

from __future__ import annotations

import pytest
import torch

from invertkit.cli.main import main
from invertkit.errors import ConfigError
from invertkit.threads import ENV, physical_cores, resolve_threads

# two sockets' worth of blocks: 2 physical cores with 2 hyper-threads each
CPUINFO = "\n".join(
    f"processor\t: {i}\nphysical id\t: 0\ncore id\t\t: {i // 2}\nsiblings\t: 4\n" for i in range(4)
)


def test_physical_cores_counts_cores_not_hyperthreads(monkeypatch):
    monkeypatch.setattr("invertkit.threads._usable_cpus", lambda: 4)
    assert physical_cores(CPUINFO) == 2
    monkeypatch.setattr("invertkit.threads._usable_cpus", lambda: 1)  # an affinity mask caps it
    assert physical_cores(CPUINFO) == 1
    monkeypatch.setattr("invertkit.threads._usable_cpus", lambda: 3)
    assert physical_cores("") == 3  # no core ids (not Linux): the usable CPUs
    assert physical_cores() >= 1


def test_flag_beats_environment_beats_cores():
    assert resolve_threads(3, environ={ENV: "2"}) == (3, "--threads")
    assert resolve_threads(None, environ={ENV: " 2 "}) == (2, f"${ENV}")
    n, source = resolve_threads(None, environ={})
    assert source == "physical cores" and n >= 1
    for bad in ("0", "-1", "two", "1.5", "99999"):
        with pytest.raises(ConfigError, match=r"\$INVERTKIT_THREADS must be a whole number"):
            resolve_threads(None, environ={ENV: bad})
    with pytest.raises(ConfigError, match="--threads must be"):
        resolve_threads(0, environ={})


def test_cli_sets_torch_threads_and_refuses_bad_counts(monkeypatch, capsys):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(ENV, "2")
        assert main(["zoo", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["zoo"]) == 0
        assert torch.get_num_threads() == 2
        capsys.readouterr()
        monkeypatch.setenv(ENV, "many")
        assert main(["zoo"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "INVERTKIT_THREADS" in err[0]
    finally:
        torch.set_num_threads(before)
