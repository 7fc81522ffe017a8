"""``invertkit demo``: the main job on the embedded default (real faces into dcgan-digiface64)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="invert real face photographs into dcgan-digiface64 and write a report",
                       description="Invert five real face photographs (the astronaut, four LFW faces) and two faces the "
                       "generator drew itself into dcgan-digiface64 with optimize, and write the run folder (report.html, "
                       "latents, metrics) to --out: the job `make demo` runs.")
    p.add_argument("--out", default="runs/demo", help="run directory to write (default: runs/demo)")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default: 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no per-step progress (bar on a terminal, plain lines otherwise)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..progress.terminal import terminal_reporter
    from .options import check_numbers

    check_numbers(args, at_least={"steps": 1})
    reporter = terminal_reporter(not args.no_progress)
    if reporter is not None:
        reporter.set_context("demo: 7 faces into dcgan-digiface64")
    out = run_demo(args.out, steps=args.steps, seed=args.seed, device=args.device, progress=reporter)
    print(f"wrote {out}/report.html (open it in a browser), metrics.csv, metrics.json, history.csv, run.json, images/, latents/")
    return 0
