"""``invertkit invert DATASET ... --format parquet``: the dataset layout of ``invert`` (any number of
images, streamed, resumable, on the local or the Ray engine). The flags are added to ``invert``'s
parser; ``invert`` hands over to :func:`run` when the dataset layout is chosen."""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Above this many inputs, --format auto writes the dataset layout (per-image files and one HTML row
# per image stop being useful well before a million images).
DATASET_THRESHOLD = 1000


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("datasets (folders of any size, globs, lists of paths, Parquet)")
    g.add_argument("--format", default="auto", choices=["auto", "files", "parquet"],
                   help=f"files: per-image files and report rows; parquet: the dataset layout, OUT/results/part-*.parquet "
                   f"(auto: parquet above {DATASET_THRESHOLD} inputs, for Parquet or list inputs, the ray engine, or a folder that already holds one)")
    g.add_argument("--engine", default="local", choices=["local", "ray"], help="local (one process, default) or ray (Ray Data actor pool)")
    g.add_argument("--workers", type=int, default=1, help="ray: actors, one model each (default 1)")
    g.add_argument("--cpus-per-worker", type=int, default=1, help="ray: CPUs (and torch threads) per actor (default 1)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs per actor (1: one actor per GPU; default 0)")
    g.add_argument("--address", default=None, help="ray: join this cluster (e.g. auto, or HOST:6379) instead of starting a local one")
    g.add_argument("--retry-failed", action="store_true", help="re-run the inputs whose rows are errors")
    g.add_argument("--save-images", nargs="?", const="files", default=None, choices=["files", "parquet"],
                   help="also keep reconstructions: files (OUT/images/<id>.png) or parquet (a reconstruction column)")
    g.add_argument("--image-column", default=None, help="Parquet inputs: the column of image bytes (default: image, img, bytes ...)")
    g.add_argument("--path-column", default=None, help="Parquet inputs: the column of image paths (default: path, file, filename ...)")
    g.add_argument("--id-column", default=None, help="Parquet inputs: the column of ids (default: id, else the path, else FILE:ROW)")
    g.add_argument("--shard-size", type=int, default=1000, help="rows per Parquet shard (default 1000; a shard is also written every minute)")
    g.add_argument("--max-pixels", type=int, default=None,
                   help="inputs declaring more pixels (width x height) are refused, never decoded (both layouts; default 89478485)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (both layouts)")


def wants_dataset_layout(args: argparse.Namespace) -> bool:
    """Whether this ``invert`` command writes the dataset layout."""
    from ..io.sources import LIST_SUFFIXES, dataset_entries, is_parquet
    from ..runs.dataset_reader import is_dataset_run

    if args.format != "auto":
        if args.format == "files" and args.engine == "ray":
            raise ConfigError("--engine ray writes the dataset layout; drop --format files")
        if args.format == "files" and is_dataset_run(args.out):
            raise ConfigError(f"{args.out} holds a dataset run (results/part-*.parquet); drop --format files to continue it, "
                              "or use another --out")
        return args.format == "parquet"
    if args.engine == "ray" or is_dataset_run(args.out) or args.retry_failed:
        return True
    for item in args.images:
        p = Path(item)
        if is_parquet(p) or (p.is_file() and p.suffix.lower() in LIST_SUFFIXES):
            return True
    try:
        return sum(1 for _ in islice(dataset_entries(args.images), DATASET_THRESHOLD + 1)) > DATASET_THRESHOLD
    except ConfigError:
        return False


def pixel_limit(args: argparse.Namespace) -> int:
    """``--max-pixels`` (both layouts): inputs declaring more pixels are refused before decoding."""
    from ..io.images import MAX_PIXELS

    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if max_pixels < 1:
        raise ConfigError(f"--max-pixels must be >= 1, got {max_pixels}")
    return max_pixels  # io.images lets Pillow's own bomb check admit it, one decode at a time


def run(args: argparse.Namespace, G: Any, options: dict[str, Any], degradation: Any) -> int:
    """Run (or continue) a dataset run; exit status 0, or 1 when the run has error rows."""
    from ..datasets import DatasetRunner, JobSpec
    from ..datasets.engines import RayOptions
    from ..io.sources import ParquetColumns
    from ..progress.terminal import terminal_reporter
    from ..runs.config import config_fingerprint
    from .run_identity import run_identity

    if args.edit_prompt:
        raise ConfigError("--edit-prompt is not available for dataset runs; regenerate chosen rows with "
                          "`invertkit regenerate OUT --ids ...`")
    for flag, value, low in (("--workers", args.workers, 1), ("--cpus-per-worker", args.cpus_per_worker, 1),
                             ("--shard-size", args.shard_size, 1), ("--batch-size", args.batch_size, 1)):
        if value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    if args.gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    max_pixels = pixel_limit(args)
    degraded = degradation is not None and not args.simulate
    # the small layout's identity, plus where reconstructions go (a parquet column or files: the rows differ)
    config = {**run_identity(args, G, options), "save_images": args.save_images}
    fingerprint = config_fingerprint(config)
    spec = JobSpec(
        generator=args.generator, weights=args.weights, device=args.device, method=args.method, options=dict(options),
        degrade=args.degrade, mask=args.mask, simulate=bool(args.simulate),
        metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()), prompt_embeds=args.prompt_embeds,
        size=degradation.observed_size(G.resolution) if degraded else G.resolution,
        channels=degradation.observed_channels(G.channels) if degraded else G.channels,
        fingerprint=fingerprint, max_pixels=max_pixels, save_png=args.save_images is not None)
    runner = DatasetRunner(
        out=Path(args.out), inputs=list(args.images), spec=spec, config=config,
        generator={**G.describe(), "fingerprint": G.fingerprint(), "weights": args.weights, "argument": args.generator},
        engine=args.engine, ray=RayOptions(args.workers, args.cpus_per_worker, args.gpus_per_worker, args.address),
        columns=ParquetColumns(args.image_column, args.path_column, args.id_column), batch_size=args.batch_size,
        shard_size=args.shard_size, retry_failed=args.retry_failed, save_images=args.save_images,
        progress=terminal_reporter(not args.no_progress), G=G)
    from ..datasets.report import write_dataset_report

    try:
        summary = runner.run()
    except KeyboardInterrupt:
        try:
            write_dataset_report(runner.out, G)  # the folder is whole: its report shows what is done
        except Exception as exc:  # noqa: BLE001  (the interruption is what the user must hear about)
            print(f"invertkit: report.html not rebuilt ({type(exc).__name__}: {exc}); run `invertkit report {runner.out}`",
                  file=sys.stderr)
        raise
    finally:
        if args.engine == "ray":
            from ..datasets.engines import shutdown_ray

            shutdown_ray()
    report = write_dataset_report(summary.out, G)
    skipped = f", {summary.skipped} already done" if summary.skipped else ""
    rate = f"{summary.images_per_second:.2f} img/s"
    if summary.steady_images_per_second and summary.startup_seconds is not None:
        rate += f": {summary.steady_images_per_second:.2f} img/s after {summary.startup_seconds:.1f} s start-up"
    print(f"wrote {summary.out}/results/ ({summary.done} rows this session{skipped}; {summary.failed} failed; {rate}), "
          f"run.json, {report.name}", file=sys.stdout)
    if summary.failed_total:
        print(f"invertkit: {summary.failed_total} input(s) failed (status 'error' rows); "
              "fix or remove them and add --retry-failed to run them again", file=sys.stderr)
    return 1 if summary.failed_total else 0
