"""``invertkit report OUT``: rebuild a run folder's report.html from the folder alone (after an
interruption, or to refresh it), reading run.json, metrics.json, images/ and latents/."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild report.html of a run folder from its files (run.json, metrics.json, images/)",
        description="Rebuild OUT/report.html from what the run folder holds: works for a finished run and for one "
        "that was interrupted (it shows the images finished so far).",
    )
    p.add_argument("out", help="the run folder (the --out of `invertkit invert`)")
    p.add_argument("--generator", "-g", default=None,
                   help="dataset runs: the run's generator, to show the best and worst reconstructions (default: none shown "
                   "unless saved with --save-images)")
    p.add_argument("--weights", default=None, help="weight file for zoo models that need one (mnist-mlp-gan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..runs.lock import RunLock
    from ..runs.report import build_report

    if not Path(args.out).is_dir():
        raise ConfigError(f"{args.out}: no such folder; expected a run folder written by `invertkit invert`")
    from ..runs.dataset_reader import is_dataset_run

    with RunLock(args.out):  # a run still writing the folder owns its report
        if is_dataset_run(args.out):
            from ..datasets.report import write_dataset_report
            from ..generators import load_generator

            G = load_generator(args.generator, weights=args.weights) if args.generator else None
            path = write_dataset_report(args.out, G)
        else:
            path = build_report(args.out)
    print(f"wrote {path}")
    return 0
