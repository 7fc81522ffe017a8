"""The primitives of consistent run folders: atomic writes, the folder lock, deferred signals,
configuration fingerprints, and the identity of an invert command."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from invertkit.errors import ConfigError, InvertkitError
from invertkit.io.atomic import TMP_MARK, StorageError, remove_temporaries, storage_errors, write_atomic, write_text_atomic
from invertkit.io.filenames import display_name
from invertkit.runs.config import config_difference, config_fingerprint
from invertkit.runs.interrupt import Interrupted, Interrupts
from invertkit.runs.lock import RunLock


# ---- atomic writes ---------------------------------------------------------------------------------
def test_write_atomic_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_text_atomic(path, "old")
    assert path.read_text() == "old"

    def half_then_fail(tmp):
        tmp.write_text("ne")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(path, half_then_fail)
    assert path.read_text() == "old" and os.listdir(path.parent) == ["a.json"]


def test_a_full_disk_is_one_storage_error_line(tmp_path):
    def full(tmp):
        tmp.write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError) as info:
        write_atomic(tmp_path / "m.csv", full)
    message = str(info.value)
    assert isinstance(info.value, InvertkitError) and "\n" not in message
    assert "m.csv" in message and "No space left" in message and info.value.__cause__ is None
    assert not list(tmp_path.iterdir())
    with pytest.raises(PermissionError), storage_errors(tmp_path / "x"):  # other errors stay what they are
        raise PermissionError(errno.EACCES, "denied")


def test_remove_temporaries_only_removes_temporaries(tmp_path):
    (tmp_path / f"{TMP_MARK}123-a.png").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    assert remove_temporaries(tmp_path) == 1 and os.listdir(tmp_path) == ["a.png"]
    assert remove_temporaries(tmp_path / "absent") == 0


def test_display_name_is_valid_text_and_lossless():
    odd = os.fsdecode(b"caf\xe9.png")
    shown = display_name(odd)
    assert shown == "caf\\xe9.png" and shown.encode("utf-8")
    assert display_name("café.png") == "café.png"


# ---- the lock --------------------------------------------------------------------------------------
def test_lock_refuses_a_second_writer_names_it_and_releases(tmp_path):
    with RunLock(tmp_path / "run", command="invertkit invert a"):
        doc = json.loads((tmp_path / "run" / ".lock").read_text())
        assert doc["pid"] == os.getpid() and doc["command"] == "invertkit invert a"
        with pytest.raises(ConfigError, match=rf"being written by process {os.getpid()} .*invertkit invert a"):
            RunLock(tmp_path / "run").acquire()
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_stale_or_unreadable_lock_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid, "command": "x"}))
    with RunLock(tmp_path) as lock:
        assert lock.held and json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    (tmp_path / ".lock").write_text("{half")
    with RunLock(tmp_path) as lock:
        assert lock.held


def test_a_lock_of_another_host_is_respected(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"host": "elsewhere", "pid": 1, "command": "x"}))
    with pytest.raises(ConfigError, match="process 1 on elsewhere"):
        RunLock(tmp_path).acquire()


# ---- signals ---------------------------------------------------------------------------------------
def test_a_signal_outside_a_critical_section_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info, Interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundaries
            pass
        pytest.fail("not interrupted")
    assert info.value.signum == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_a_signal_inside_a_critical_section_waits_for_its_end():
    finished = []
    with pytest.raises(Interrupted) as info, Interrupts() as stop:
        with stop.critical():
            os.kill(os.getpid(), signal.SIGINT)
            with stop.critical():  # nested sections: raised when the outermost ends
                pass
            finished.append("whole file")
        pytest.fail("not interrupted")
    assert finished == ["whole file"] and info.value.signum == signal.SIGINT


def test_a_deferred_signal_is_raised_once():
    with Interrupts() as stop:
        with pytest.raises(Interrupted), stop.critical():
            os.kill(os.getpid(), signal.SIGTERM)
        with stop.critical():  # the cleanup after an interruption (a checkpoint) is not cut by the same signal
            pass


# ---- configuration identity ------------------------------------------------------------------------
def test_config_fingerprint_and_difference():
    a = {"method": "optimize", "options": {"steps": 100, "lr": 0.1}, "mask": None}
    b = {"mask": None, "options": {"lr": 0.1, "steps": 100}, "method": "optimize"}
    assert config_fingerprint(a) == config_fingerprint(b) and len(config_fingerprint(a)) == 16
    assert config_difference(a, b) is None
    c = {**a, "options": {"steps": 50, "lr": 0.1}}
    assert config_difference(a, c) == "options.steps: 100 in the folder, 50 now"
    many = {"method": "optimize", "options": {"x": 1}, "mask": "m", "extra": 1}
    assert config_difference(a, many).endswith("(and 2 more)")
    # another method (or generator) is the one difference named: its options would only add noise
    assert config_difference(a, {**many, "method": "pti"}) == "method: optimize in the folder, pti now"


def test_run_identity_holds_what_changes_results_and_nothing_else(tiny_sg2, tmp_path):
    from invertkit.cli.run_identity import run_identity

    def args(**kw):
        base = dict(method="optimize", degrade=None, mask=None, simulate=False, metrics="", prompt_embeds=None,
                    edit_prompt="", edit_guidance=None, batch_size=8, device="cpu")
        return argparse.Namespace(**{**base, **kw})

    ident = run_identity(args(), tiny_sg2, {"steps": 5})
    assert ident["options"]["steps"] == 5 and "lr" in ident["options"]  # the method's defaults resolved
    assert ident["generator"] == {"name": "tiny-sg2", "fingerprint": tiny_sg2.fingerprint()}
    assert "batch_size" not in json.dumps(ident) and "device" not in ident
    assert run_identity(args(batch_size=1), tiny_sg2, {"steps": 5}) == ident
    mask = tmp_path / "m.png"
    mask.write_bytes(b"one mask")
    first = run_identity(args(mask=str(mask)), tiny_sg2, {"steps": 5})
    mask.write_bytes(b"another mask, same path")
    assert "mask" in config_difference(first, run_identity(args(mask=str(mask)), tiny_sg2, {"steps": 5}))
    assert config_difference(ident, run_identity(args(metrics="lpips"), tiny_sg2, {"steps": 5})).startswith("metrics")
