"""One writer per run folder: ``OUT/.lock`` holds the writing process's host, pid and command.

A second run into the same folder is refused with one line naming the other process. A lock left by
a process that no longer exists (killed with SIGKILL, machine rebooted) is taken over, so a killed
run can always be resumed by running its command again."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from types import TracebackType

from ..errors import ConfigError

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(out):`` holds ``out/.lock`` for the duration (created atomically with O_EXCL)."""

    def __init__(self, folder: str | os.PathLike[str], command: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command if command is not None else " ".join(sys.argv)
        self.held = False

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "command": self.command}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if other is None or (other.get("host") == me["host"] and not _alive(int(other.get("pid", -1)))):
                    self.path.unlink(missing_ok=True)  # stale: its writer is gone
                    continue
                raise ConfigError(f"{self.folder} is being written by process {other.get('pid')} on {other.get('host')} "
                                  f"({str(other.get('command', '?'))[:120]}); wait for it to finish or use another --out "
                                  f"(if that process is gone, delete {self.path})") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise ConfigError(f"{self.path}: cannot take the run folder's lock; delete it if no run is writing there")

    def _read(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) and isinstance(doc.get("pid"), int) else None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
