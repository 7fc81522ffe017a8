"""Dataset runs at scale (``invertkit invert DATASET --format parquet``), on MNIST test digits
exported as PNG files, through the command line as a user runs it:

1. throughput (images/s) of the local engine against the Ray engine with 1 and 2 workers, for
   ``-m encoder`` and ``-m optimize --steps 50`` (by default on the same 2,000 images), every engine
   with the same torch thread count; each configuration is run ``--repeats`` times, interleaved
   (local, ray-1, ray-2, local, ...) so that a shared machine's drift hits all alike, and the median
   is reported; plus the Ray engine's overhead at equal work, ``local / ray-1 - 1``;
2. memory flat in dataset size: peak RSS of a local ``encoder`` run over 1,000 and 10,000 inputs;
3. resume cost: a run holding 9,000 done rows continued with a list of 10,000 inputs (time before
   its first new batch, and the whole session) against a fresh run of the same 1,000 new inputs.

Each measurement is its own process (so peak RSS is per run) with a fresh OUT. Images/s is read from
OUT/run.json's last session (``written / seconds``: the session's clock starts before planning, so
it includes listing the inputs and, for Ray, starting the local cluster and its actors); "steady"
images/s (the session's ``steady_images_per_second``) counts only the rows after the first ones came
back (start-up excluded); "before 1st batch" is the session's ``planning_seconds`` (lock, reading the
shards' ids, listing the inputs); wall seconds are the whole process (Python and torch imports,
loading the generator, Ray start-up and shut-down).

    python benchmarks/dataset_scale.py [--quick] [--images 2000] [--optimize-images 2000] [--steps 50]
        [--threads 1] [--repeats 2] [--memory-sizes 1000,10000] [--resume 9000,1000] [--work DIR]
        [--out runs/bench/dataset_scale.json]

Prints a Markdown table and writes the numbers as JSON to --out.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GENERATOR = "mnist-mlp-gan"

# Runs the CLI in the child process itself, so that ru_maxrss(RUSAGE_SELF) is this one run's peak.
# argv: PROBE_JSON invert ...
LAUNCHER = r"""
import json, resource, sys, time
start = time.perf_counter()
probe_path, argv = sys.argv[1], sys.argv[2:]
import torch
from invertkit.cli.main import main
rc = main(argv)
json.dump({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
           "torch_threads": torch.get_num_threads(), "process_seconds": time.perf_counter() - start}, open(probe_path, "w"))
sys.exit(rc)
"""

# Rough costs on the 2-core development machine (threads=1), only for the time estimate printed first.
EST = {"python": 2.5, "ray_start": 16.0, "encoder_ips": 500.0, "encoder_ray_ips": 140.0, "optimize50_ips": 10.0}


# ---- inputs --------------------------------------------------------------------------------------
def export_digits(idx_gz: Path, folder: Path, count: int) -> list[str]:
    """The first ``count`` MNIST test digits as ``folder/NNNNN.png`` (files already there are kept,
    so a --work folder is exported once); beyond the 10,000 digits the set repeats under new names.
    Returns the file names in order."""
    import numpy as np
    from PIL import Image

    names = [f"{i:05d}.png" for i in range(count)]
    missing = [i for i, n in enumerate(names) if not (folder / n).is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        raw = gzip.open(idx_gz).read()
        digits = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)  # IDX: 16-byte header
        for i in missing:
            Image.fromarray(digits[i % len(digits)]).save(folder / names[i])
    return names


def write_list(work: Path, names: list[str], label: str) -> str:
    """A text-file list input (one path a line, relative to the list's folder): it picks any subset
    of the exported digits without copying them, and its ids are the lines as written."""
    path = work / f"list-{label}.txt"
    path.write_text("".join(f"png/{n}\n" for n in names), encoding="utf-8")
    return str(path)


# ---- one run -------------------------------------------------------------------------------------
def invert_run(inputs: str, out: Path, *, method: list[str], engine: str, workers: int, threads: int,
               weights: str, batch_size: int, fresh: bool = True) -> dict[str, Any]:
    """Run ``invertkit invert INPUTS ... --format parquet --out OUT`` in a new process and return its
    numbers. ``fresh``: delete OUT first (else the run continues what OUT holds)."""
    if fresh and out.exists():
        shutil.rmtree(out)
    probe = out.parent / f"{out.name}.probe.json"
    probe.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", LAUNCHER, str(probe), "invert", inputs, "-g", GENERATOR, "--weights", weights,
           *method, "--batch-size", str(batch_size), "--format", "parquet", "--out", str(out), "--no-progress"]
    if engine.startswith("ray"):
        cmd += ["--engine", "ray", "--workers", str(workers), "--cpus-per-worker", str(threads)]
    # The local engine leaves torch's thread count alone, so it is set for the whole process here;
    # Ray actors set theirs from --cpus-per-worker (the same number).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not probe.is_file():
        raise RuntimeError(f"{' '.join(cmd[3:])} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    numbers = json.loads(probe.read_text())
    session = json.loads((out / "run.json").read_text())["sessions"][-1]
    return {"engine": engine, "workers": workers if engine.startswith("ray") else 0, "threads": threads,
            "torch_threads_driver": numbers["torch_threads"], "written": session["written"],
            "skipped": session["skipped"], "session_seconds": session["seconds"],
            "images_per_second": session["written"] / session["seconds"] if session["seconds"] else None,
            "steady_images_per_second": session["steady_images_per_second"], "wall_seconds": round(wall, 3),
            "first_batch_seconds": session["planning_seconds"], "first_rows_seconds": session["startup_seconds"],
            "peak_rss_mb": round(numbers["maxrss_kb"] / 1024, 1)}


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


# ---- the three measurements ----------------------------------------------------------------------
ENGINES = (("local", 1), ("ray-1", 1), ("ray-2", 2))


def throughput(work: Path, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: every engine on the same inputs, interleaved, ``args.repeats`` rounds per method."""
    plans = {"encoder": (["-m", "encoder"], args.images),
             "optimize": (["-m", "optimize", "--steps", str(args.steps)], args.optimize_images)}
    report: dict[str, Any] = {}
    for label, (method, count) in plans.items():
        inputs = write_list(work, names[:count], f"{label}-{count}")
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e, _ in ENGINES}
        for r in range(args.repeats):
            for engine, workers in ENGINES:
                res = invert_run(inputs, work / "runs" / f"{label}-{engine}", method=method, engine=engine, workers=workers,
                                 threads=args.threads, weights=args.weights, batch_size=args.batch_size)
                runs[engine].append(res)
                print(f"  {label} {engine} round {r + 1}: {res['images_per_second']:.1f} img/s "
                      f"(steady {res['steady_images_per_second'] or 0:.1f}), wall {res['wall_seconds']:.1f} s", flush=True)
        medians = {e: {k: median_of(rs, k) for k in ("images_per_second", "steady_images_per_second", "wall_seconds", "session_seconds")}
                   for e, rs in runs.items()}
        overhead = {}
        for key in ("images_per_second", "steady_images_per_second"):
            local, ray1 = medians["local"][key], medians["ray-1"][key]
            overhead[key] = local / ray1 - 1 if local and ray1 else None
        report[label] = {"method": " ".join(method), "images": count, "runs": runs, "median": medians,
                         "ray_overhead": overhead}
    return report


def memory(work: Path, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: peak RSS of local ``encoder`` runs over growing numbers of inputs."""
    rows = []
    for n in args.memory_sizes:
        inputs = write_list(work, names[:n], f"memory-{n}")
        res = invert_run(inputs, work / "runs" / f"memory-{n}", method=["-m", "encoder"], engine="local", workers=1,
                         threads=args.threads, weights=args.weights, batch_size=args.batch_size)
        rows.append({"inputs": n, **res})
        print(f"  memory {n} inputs: peak RSS {res['peak_rss_mb']:.1f} MB", flush=True)
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    return {"runs": rows, "largest_over_smallest": ratio, "within_10_percent": abs(ratio - 1) <= 0.10}


def resume(work: Path, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Part 3: continue a run of ``done`` rows with a list that adds ``new`` inputs, against a fresh
    run of those ``new`` inputs alone. The inputs are not part of a run's configuration (only what
    decides its rows is), so the same OUT continues with the longer list."""
    done, new = args.resume
    out = work / "runs" / "resume"
    method = ["-m", "encoder"]
    common = {"method": method, "engine": "local", "workers": 1, "threads": args.threads, "weights": args.weights,
              "batch_size": args.batch_size}
    first = invert_run(write_list(work, names[:done], f"resume-{done}"), out, **common)
    print(f"  resume: {done} done in {first['session_seconds']:.1f} s", flush=True)
    again = invert_run(write_list(work, names[:done + new], f"resume-{done + new}"), out, fresh=False, **common)
    fresh = invert_run(write_list(work, names[done:done + new], f"resume-new-{new}"), work / "runs" / "resume-fresh", **common)
    if again["skipped"] != done or again["written"] != new:
        raise RuntimeError(f"the continued run skipped {again['skipped']} (expected {done}) and wrote "
                           f"{again['written']} (expected {new})")
    print(f"  resume: +{new} in {again['session_seconds']:.2f} s (fresh {fresh['session_seconds']:.2f} s)", flush=True)
    return {"done": done, "new": new, "first_session": first, "continued": again, "fresh": fresh,
            "extra_planning_seconds": again["first_batch_seconds"] - fresh["first_batch_seconds"],
            "extra_session_seconds": again["session_seconds"] - fresh["session_seconds"]}


# ---- report --------------------------------------------------------------------------------------
def estimate_seconds(args: argparse.Namespace) -> float:
    """A rough duration of the whole benchmark on the 2-core development machine."""
    opt_ips = EST["optimize50_ips"] * 50 / max(args.steps, 1)
    one_round = 0.0
    for count, ips, ray_ips in ((args.images, EST["encoder_ips"], EST["encoder_ray_ips"]), (args.optimize_images, opt_ips, 0.9 * opt_ips)):
        one_round += EST["python"] + count / ips  # local
        one_round += 2 * (EST["python"] + EST["ray_start"]) + count / ray_ips + count / (1.6 * ray_ips)  # ray-1, ray-2
    total = args.repeats * one_round
    total += sum(EST["python"] + n / EST["encoder_ips"] for n in args.memory_sizes)
    done, new = args.resume
    total += 3 * EST["python"] + (done + 2 * new) / EST["encoder_ips"]
    total += max(args.images, args.optimize_images, *args.memory_sizes, done + new) / 1500  # exporting PNGs
    return total


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    a = report["settings"]
    lines = [f"Dataset runs, MNIST test digits as PNG, `-g {GENERATOR}`, {a['threads']} torch thread(s) per engine "
             f"(Ray: --cpus-per-worker {a['threads']} per actor), --batch-size {a['batch_size']}, "
             f"median of {a['repeats']} interleaved round(s), {report['machine']['cpus']} CPU cores; `optimize` on "
             f"{a['optimize_images']} images. \"steady\": rows after "
             "the first batch came back, start-up excluded.", "",
             "| method | images | engine | img/s (run.json) | img/s (steady) | session s | wall s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for part in report["throughput"].values():
        for engine, m in part["median"].items():
            lines.append(f"| `{part['method']}` | {part['images']} | {engine} | {fmt(m['images_per_second'])} | "
                         f"{fmt(m['steady_images_per_second'])} | {fmt(m['session_seconds'], 2)} | {fmt(m['wall_seconds'], 2)} |")
    lines += ["", "Ray overhead at equal work, `local img/s / ray-1 img/s - 1` (target <= 15%):", ""]
    for part in report["throughput"].values():
        o = part["ray_overhead"]
        lines.append(f"- `{part['method']}` on {part['images']} images: {fmt(100 * o['images_per_second'] if o['images_per_second'] is not None else None)}% "
                     f"(run.json, Ray start-up included), {fmt(100 * o['steady_images_per_second'] if o['steady_images_per_second'] is not None else None)}% (steady)")
    mem = report["memory"]
    lines += ["", "| memory: local `encoder`, inputs | peak RSS MB | img/s |", "|---:|---:|---:|"]
    lines += [f"| {r['inputs']} | {fmt(r['peak_rss_mb'])} | {fmt(r['images_per_second'])} |" for r in mem["runs"]]
    lines += ["", f"Peak RSS, largest / smallest: {mem['largest_over_smallest']:.3f} "
              f"({'within' if mem['within_10_percent'] else 'NOT within'} 10%)."]
    res = report["resume"]
    c, f = res["continued"], res["fresh"]
    lines += ["", "| resume: local `encoder` | inputs listed | skipped | written | before 1st batch s | session s | wall s |",
              "|---|---:|---:|---:|---:|---:|---:|",
              f"| continue a run of {res['done']} | {res['done'] + res['new']} | {c['skipped']} | {c['written']} | "
              f"{fmt(c['first_batch_seconds'], 3)} | {fmt(c['session_seconds'], 2)} | {fmt(c['wall_seconds'], 2)} |",
              f"| fresh run of the {res['new']} new | {res['new']} | {f['skipped']} | {f['written']} | "
              f"{fmt(f['first_batch_seconds'], 3)} | {fmt(f['session_seconds'], 2)} | {fmt(f['wall_seconds'], 2)} |",
              "", f"Skipping {res['done']} done ids costs {res['extra_planning_seconds']:.3f} s before the first new batch, "
              f"{res['extra_session_seconds']:.2f} s over the session."]
    return "\n".join(lines)


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # None: the full default, or the --quick one (flags given explicitly win over --quick)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke test of this script")
    ap.add_argument("--images", type=int, default=None, help="inputs of the encoder throughput runs (default 2000)")
    ap.add_argument("--optimize-images", type=int, default=None, help="inputs of the optimize throughput runs (default 2000)")
    ap.add_argument("--steps", type=int, default=None, help="optimize steps (default 50)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds per configuration (default 2)")
    ap.add_argument("--memory-sizes", type=sizes, default=None, help="input counts of the memory runs (default 1000,10000)")
    ap.add_argument("--resume", type=sizes, default=None, help="DONE,NEW inputs of the resume runs (default 9000,1000)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the local engine and of each Ray actor (default 1)")
    ap.add_argument("--batch-size", type=int, default=8, help="--batch-size of every run (default 8, the CLI's)")
    ap.add_argument("--work", default=None, help="folder for the exported digits and the runs (default: a temporary one, deleted)")
    ap.add_argument("--out", default="runs/bench/dataset_scale.json")
    ap.add_argument("--mnist", default="../shared/data/mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--weights", default="../shared/data/mnist_mlp_gan/generator.ckpt")
    args = ap.parse_args()
    full = {"images": 2000, "optimize_images": 2000, "steps": 50, "repeats": 2, "memory_sizes": [1000, 10000], "resume": [9000, 1000]}
    quick = {"images": 100, "optimize_images": 20, "steps": 5, "repeats": 1, "memory_sizes": [100, 400], "resume": [300, 100]}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if len(args.resume) != 2 or len(args.memory_sizes) < 2:
        ap.error("--resume takes DONE,NEW and --memory-sizes at least two counts")
    args.weights = str(Path(args.weights).resolve())  # the runs' working folder is the repository

    print(f"expected duration: about {estimate_seconds(args) / 60:.0f} min on 2 quiet CPU cores (longer on a busy machine)",
          flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dataset_scale-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        count = max(args.images, args.optimize_images, *args.memory_sizes, sum(args.resume))
        names = export_digits(Path(args.mnist), work / "png", count)  # not timed
        import ray
        import torch

        report: dict[str, Any] = {
            "settings": {k: getattr(args, k) for k in ("images", "optimize_images", "steps", "repeats", "memory_sizes",
                                                       "resume", "threads", "batch_size")},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                        "ray": ray.__version__, "load_average_at_start": os.getloadavg()}}
        print("throughput", flush=True)
        report["throughput"] = throughput(work, names, args)
        print("memory", flush=True)
        report["memory"] = memory(work, names, args)
        print("resume", flush=True)
        report["resume"] = resume(work, names, args)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print()
    print(markdown(report))
    print(f"\n({report['seconds'] / 60:.1f} min; numbers in {out})")


if __name__ == "__main__":
    main()
