"""Entry point of the ``invertkit`` command.

Errors a user can cause are :class:`~invertkit.errors.InvertkitError`: printed as one line on stderr,
exit status 2, no traceback (``--debug`` shows it). A run stopped by SIGINT or SIGTERM prints one line
and exits with 128 + the signal number (130, 143), its folder left resumable.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from ..errors import InvertkitError
from . import (
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

COMMANDS = (zoo, info, convert, generate, invert, report, train_encoder, bench, demo, directions, edit, interpolate, regenerate)


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
        return int(args.func(args) or 0)
    except InvertkitError as exc:
        if args.debug:
            raise
        print(f"invertkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGINT / SIGTERM turned into Interrupted by a run
        signum = int(getattr(exc, "signum", signal.SIGINT))
        detail = getattr(exc, "detail", None) or f"by {signal.Signals(signum).name}"
        print(f"invertkit: interrupted {detail}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
