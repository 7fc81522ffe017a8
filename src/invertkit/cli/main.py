"""Entry point of the ``invertkit`` command.

Errors a user can cause are :class:`~invertkit.errors.InvertkitError`: printed as one line on stderr,
exit status 2, no traceback (``--debug`` shows it, with the chained cause). The printed line is
made safe for a terminal: newlines become spaces and other control characters (an escape sequence
inside a quoted file name or file content) are shown as ``\\xNN`` escapes. Before a command runs,
its ``--device`` is checked (``generators.devices``) and the place it writes (``--out``, convert's
``DST``) is probed (``io.atomic``), so a missing GPU or an unwritable folder is that one line. A run
stopped by SIGINT or SIGTERM prints one line and exits with 128 + the signal number (130, 143), its
folder left resumable.
"""

from __future__ import annotations

import argparse
import signal
import sys
import unicodedata
from collections.abc import Sequence

from ..errors import InvertkitError
from . import (
    align,
    bench,
    convert,
    demo,
    directions,
    edit,
    generate,
    info,
    interpolate,
    invert,
    regenerate,
    report,
    train_encoder,
    zoo,
)

COMMANDS = (zoo, info, convert, generate, invert, align, report, train_encoder, bench, demo, directions, edit, interpolate, regenerate)

# what each command writes: (argument attribute, its name in messages, "folder" or "file"); checked
# before the command runs (report's --out is a run folder it reads, so it is not here)
OUTPUTS: dict[str, tuple[str, str, str]] = {
    "invert": ("out", "--out", "folder"),
    "align": ("out", "--out", "folder"),
    "bench": ("out", "--out", "folder"),
    "demo": ("out", "--out", "folder"),
    "edit": ("out", "--out", "folder"),
    "generate": ("out", "--out", "folder"),
    "interpolate": ("out", "--out", "folder"),
    "regenerate": ("out", "--out", "folder"),
    "train-encoder": ("out", "--out", "folder"),
    "directions": ("out", "--out", "file"),
    "convert": ("dst", "DST", "file"),
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command-line parser; ``argv`` tells ``invert`` which method's options its help lists."""
    parser = argparse.ArgumentParser(prog="invertkit", description="Image inversion into pretrained generative models.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"invertkit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        if module is invert:
            invert.add_parser(sub, argv)
        else:
            module.add_parser(sub)
    for command in sub.choices.values():  # every command: torch's CPU threads (see invertkit.threads)
        command.add_argument("--threads", type=int, default=None, metavar="N",
                             help="CPU threads for torch (default: $INVERTKIT_THREADS, else the physical cores; "
                                  "torch's own default, every logical CPU, oversubscribes shared machines)")
    return parser


def _version() -> str:
    from ..version import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 partial failure, 2 bad input, 130 / 143
    interrupted by SIGINT / SIGTERM)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        from ..threads import apply_threads

        apply_threads(args.threads)
        check_arguments(args)
        return int(args.func(args) or 0)
    except InvertkitError as exc:
        if args.debug:
            raise
        print(f"invertkit: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGINT / SIGTERM turned into Interrupted by a run
        signum = int(getattr(exc, "signum", signal.SIGINT))
        detail = getattr(exc, "detail", None) or f"by {signal.Signals(signum).name}"
        print(f"invertkit: interrupted {terminal_safe(str(detail))}", file=sys.stderr)
        return 128 + signum


def check_arguments(args: argparse.Namespace) -> None:
    """The checks every command shares, before it starts: ``--device`` names a device this machine
    has, and the place the command writes can be written."""
    from ..generators.devices import check_device
    from ..io.atomic import check_writable_file, check_writable_folder

    if isinstance(getattr(args, "device", None), str):
        check_device(args.device)
    attr, flag, kind = OUTPUTS.get(args.command, (None, "", ""))
    if attr is not None and getattr(args, attr, None):
        (check_writable_folder if kind == "folder" else check_writable_file)(getattr(args, attr), flag=flag)


def terminal_safe(text: str) -> str:
    """``text`` as one printable line: line breaks and tabs become spaces, other control and format
    characters (ESC of a terminal escape sequence, bidirectional overrides) become ``\\xNN`` /
    ``\\uNNNN`` escapes, so a file name or file content quoted in a message cannot drive the terminal."""
    out = []
    for ch in text:
        if ch in "\r\n\t\v\f\u2028\u2029\x85":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def console_main() -> int:
    """The ``invertkit`` program (a process of its own): :func:`main`, with glibc told first to keep freed
    memory for reuse (:mod:`invertkit.allocator`: batched steps stop page-faulting their feature maps).
    ``main`` itself leaves the process's allocator alone, so calling it in-process changes nothing."""
    from ..allocator import reuse_freed_memory

    reuse_freed_memory()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
