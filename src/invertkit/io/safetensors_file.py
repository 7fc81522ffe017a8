"""Writing a ``.safetensors`` file atomically, readable by everyone (checkpoints, encoders, deltas)."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from ..errors import CheckpointError


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, Tensor], metadata: dict[str, str], what: str) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) with string ``metadata`` to ``path`` via a temporary
    file, so an interrupted write never leaves a half file under the real name.

    Raises:
        CheckpointError: the folder or file cannot be written (``what`` names the file's kind).
    """
    from safetensors.torch import save_file  # local: keeps `import invertkit` light

    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, p)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(p, 0o666 & ~umask)  # safetensors writes private files; these are meant to be shared
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{p}: cannot write the {what} ({exc.strerror or exc})") from None
    return p
