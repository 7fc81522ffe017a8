"""Run the README's command examples, as a new user would, with small step counts.

    python benchmarks/readme_examples.py [--readme README.md] [--quick] [--keep DIR] [--list]

Every fenced block of README.md without a language (or ``bash`` / ``sh`` / ``console`` / ``shell``) is
read; its lines that start with ``invertkit`` or ``python benchmarks/export_`` (a leading ``$ `` is
dropped, ``\\`` continues a line, ``# ...`` is a comment) are the examples. Lines of program output,
``make`` targets (``make test-all`` is CI itself; the others retrain the shipped models for hours) and
other ``python benchmarks/...`` runs (the measurements behind the README's tables, minutes each) are
not run. A block the README marks with ``<!-- readme-examples: skip (REASON) -->`` on the line before
its fence is listed as "not run: REASON", so every skip is visible in the README itself.

The examples run in order (later ones read earlier ones' outputs) in one fresh folder ``WORK/project``
beside ``WORK/shared/data`` (a link to ``../shared/data``, so the README's ``../shared/data/...``
paths hold), with ``$INVERTKIT_HOME`` empty (a fresh machine), each ``invertkit`` command in this process
through ``invertkit.cli.main.main`` with ``--threads 1``, and costs cut (:func:`cheapen`): method steps 5,
encoder training 2 steps, InterFaceGAN 2000 samples. The placeholders the README uses for the user's own
files are made first from what ships (:data:`PLACEHOLDERS`). ``--quick`` runs the blocks that are not
marked ``<!-- readme-examples: full -->`` (the CI subset; ``make readme-examples`` runs all).

Prints one line per example (ok / FAIL / not run, seconds) and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ("", "bash", "sh", "console", "shell")
MARKER = re.compile(r"<!--\s*readme-examples:\s*(skip|full)\s*(?:\((.*)\))?\s*-->")
SMALL_STEPS = 5
SHARED_DATA = ROOT.parent / "shared" / "data"  # the README's ../shared/data


@dataclass
class Example:
    """One command of the README: where it is, its words as written, and why it is not run (if so)."""

    line: int
    words: list[str]
    skip: str = ""
    full_only: bool = False

    @property
    def text(self) -> str:
        return shlex.join(self.words)


@dataclass
class Outcome:
    example: Example
    status: str  # "ok", "FAIL", "not run"
    seconds: float = 0.0
    detail: str = ""
    run_words: list[str] = field(default_factory=list)


def extract(readme: str) -> list[Example]:
    """The command examples of a README's text, in order (see the module docstring for the rules)."""
    examples: list[Example] = []
    lines = readme.splitlines()
    k = 0
    while k < len(lines):
        fence = lines[k].strip()
        if not fence.startswith("```"):
            k += 1
            continue
        language = fence[3:].strip().lower()
        before = next((lines[j] for j in range(k - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(before)
        end = next((j for j in range(k + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
        if language in SHELL_LANGUAGES:
            skip = (marker.group(2) or "marked skip") if marker and marker.group(1) == "skip" else ""
            full_only = bool(marker and marker.group(1) == "full")
            examples += _block_commands(lines[k + 1 : end], k + 2, skip, full_only)
        k = end + 1
    return examples


def _block_commands(block: list[str], first_line: int, skip: str, full_only: bool) -> list[Example]:
    out: list[Example] = []
    k = 0
    while k < len(block):
        start = k
        text = block[k].strip()
        while text.endswith("\\") and k + 1 < len(block):  # a continued line
            k += 1
            text = text[:-1] + " " + block[k].strip()
        k += 1
        if text.startswith("$ "):
            text = text[2:].strip()
        try:
            words = shlex.split(text, comments=True)
        except ValueError:
            continue
        if words and (words[0] == "invertkit" or (words[0] == "python" and len(words) > 1
                                                   and words[1].startswith("benchmarks/export_"))):
            out.append(Example(first_line + start, words, skip, full_only))
    return out


# --- what a user's own files stand for ------------------------------------------------------------

def _faces(work: Path) -> None:
    _python(["benchmarks/export_faces.py", "--out", "runs/faces"], work)


def _copy_face(name: str) -> Callable[[Path], None]:
    def make(work: Path) -> None:
        from invertkit.io.images import read_image, save_image

        save_image(read_image(work / "runs/faces/bench/lfw-3.png", 64, 3)[0], work / name)
    return make


def _photos(work: Path) -> None:
    (work / "photos").mkdir(exist_ok=True)
    for name in ("lfw-4.png", "lfw-5.png", "orl-s4.png"):
        shutil.copyfile(work / "runs/faces/bench" / name, work / "photos" / name)


def _mask(work: Path) -> None:
    import torch

    from invertkit.io.images import save_image

    mask = torch.ones(1, 64, 64)
    mask[:, 34:54, 16:48] = -1.0  # mouth and chin unknown (black), as in the README's restoration table
    save_image(mask, work / "mask.png")


def _digits(work: Path) -> None:
    _python(["benchmarks/export_mnist.py", "--test", "32", "--no-train", "--out", "runs/mnist"], work)
    (work / "frames.txt").write_text("\n".join(f"runs/mnist/test/{p.name}" for p in sorted((work / "runs/mnist/test").iterdir())[:4]) + "\n")


def _link(target: str) -> Callable[[Path], None]:
    def make(work: Path) -> None:
        name = work / Path(target).name
        if not name.exists():
            name.symlink_to(Path("..") / target)
    return make


# placeholder -> what stands in for it, made in this order before the first example (the README says
# in its "Command line" section what each stands for)
PLACEHOLDERS: dict[str, Callable[[Path], None]] = {
    "runs/faces": _faces,
    "face.png": _copy_face("face.png"),
    "face.jpg": _copy_face("face.jpg"),
    "photos/": _photos,
    "mask.png": _mask,
    "runs/mnist/test, frames.txt": _digits,
    "generator.ckpt": _link("shared/data/mnist_mlp_gan/generator.ckpt"),
    "lenet5.pth": _link("shared/data/mnist_lenet5/lenet5.pth"),
}


def _python(words: list[str], work: Path) -> None:
    """``python benchmarks/SCRIPT.py ARGS`` in this process (torch is imported once), run from ``work``;
    a script that exits non-zero raises ``RuntimeError`` with its last output line."""
    script = ROOT / words[0]
    saved = sys.argv
    sys.argv = [str(script), *words[1:]]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError((out.getvalue().strip().splitlines() or [f"exit {exc.code}"])[-1]) from None
    finally:
        sys.argv = saved


# --- making an example cheap -------------------------------------------------------------------------

def _set(words: list[str], flag: str, value: str, *, add: bool) -> list[str]:
    """``flag VALUE`` (or ``flag=VALUE``) replaced by ``value``; appended when absent and ``add``."""
    out = list(words)
    for k, w in enumerate(out):
        if w == flag and k + 1 < len(out):
            out[k + 1] = value
            return out
        if w.startswith(flag + "="):
            out[k] = f"{flag}={value}"
            return out
    return [*out, flag, value] if add else out


def _flag(words: list[str], *flags: str) -> str | None:
    for k, w in enumerate(words):
        for f in flags:
            if w == f and k + 1 < len(words):
                return words[k + 1]
            if w.startswith(f + "=") and f.startswith("--"):
                return w.split("=", 1)[1]
    return None


def _method_options(method: str) -> set[str]:
    from invertkit.methods import METHODS
    from invertkit.optionfields import declared_options

    if method not in METHODS.names():
        return set()
    return {o.name for o in declared_options(METHODS.get(method).options)}


def cheapen(words: list[str]) -> list[str]:
    """An ``invertkit ...`` command with its cost cut (steps, samples) and ``--threads 1``; the rest as written."""
    command = words[1] if len(words) > 1 else ""
    w = list(words)
    if command == "invert":
        names = _method_options(_flag(w, "--method", "-m") or "optimize")
        small = {"steps": SMALL_STEPS, "pivot_steps": SMALL_STEPS, "inner_steps": 2, "restarts": 1}
        for name, value in small.items():
            if name in names:
                w = _set(w, "--" + name.replace("_", "-"), str(value), add=True)
    elif command == "bench":
        w = _set(w, "--steps", str(SMALL_STEPS), add=True)
        methods = _flag(w, "--methods")
        if methods:
            methods = re.sub(r"\b(steps|inner_steps|popsize)=\d+", lambda m: f"{m.group(1)}={2 if m.group(1) != 'steps' else SMALL_STEPS}", methods)
            w = _set(w, "--methods", methods, add=False)
        w = _set(w, "--max-images", "1", add=True)
    elif command == "train-encoder":
        w = _set(_set(w, "--steps", "2", add=True), "--batch", "4", add=True)
    elif command == "directions" and len(w) > 2 and w[2] == "interfacegan":
        w = _set(w, "--samples", "2000", add=True)
    elif command == "generate" and (_flag(w, "--prompt") is not None or "diffusion" in " ".join(w[2:3])):
        w = _set(w, "--steps", str(SMALL_STEPS), add=True)
    elif command == "demo":
        w = _set(w, "--steps", str(SMALL_STEPS), add=True)
    return [*w, "--threads", "1"]


# --- running --------------------------------------------------------------------------------------

def run_example(example: Example, work: Path) -> Outcome:
    words = example.words
    if words[0] == "python":
        started = time.perf_counter()
        try:
            _python(words[1:], work)
        except Exception as exc:  # noqa: BLE001 - the script's failure is this example's
            return Outcome(example, "FAIL", time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:300], words)
        return Outcome(example, "ok", time.perf_counter() - started, "", words)
    from invertkit.cli.main import main

    argv = cheapen(words)[1:]
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse: a flag the README names that the command does not have
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:  # noqa: BLE001 - a traceback is itself a failure worth one line here
        code, err = 99, io.StringIO(f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    detail = (err.getvalue().strip().splitlines() or [""])[-1][:300]
    return Outcome(example, "ok" if code == 0 else f"FAIL (exit {code})", seconds, detail, ["invertkit", *argv])


def run_all(examples: list[Example], work: Path, *, quick: bool, log: Callable[[str], None] = print) -> list[Outcome]:
    """Make the placeholders in ``work`` and run the examples there, in order."""
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    shared = work / "shared"
    shared.mkdir(exist_ok=True)
    data = SHARED_DATA.resolve()
    if not (shared / "data").exists():
        (shared / "data").symlink_to(data)
    old_home, old = os.environ.get("INVERTKIT_HOME"), Path.cwd()
    os.environ["INVERTKIT_HOME"] = str(work / "home")  # a fresh machine: nothing cached
    os.chdir(project)
    try:
        started = time.perf_counter()
        for name, make in PLACEHOLDERS.items():
            make(project)
        log(f"placeholders ({', '.join(PLACEHOLDERS)}): {time.perf_counter() - started:.1f} s")
        outcomes = []
        for ex in examples:
            if ex.skip:
                outcome = Outcome(ex, "not run", detail=ex.skip)
            elif quick and ex.full_only:
                outcome = Outcome(ex, "not run", detail="full set only (make readme-examples)")
            else:
                outcome = run_example(ex, project)
            outcomes.append(outcome)
            log(f"README:{ex.line:<5} {outcome.status:<14} {outcome.seconds:6.1f} s  {ex.text}"
                + (f"\n        -> {outcome.detail}" if outcome.detail and outcome.status != "ok" else ""))
        return outcomes
    finally:
        os.chdir(old)
        if old_home is None:
            os.environ.pop("INVERTKIT_HOME", None)
        else:
            os.environ["INVERTKIT_HOME"] = old_home


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--quick", action="store_true", help="leave out the blocks marked 'readme-examples: full' (the CI subset)")
    ap.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temporary folder)")
    ap.add_argument("--list", action="store_true", help="only list the examples and what would be skipped")
    args = ap.parse_args(argv)
    examples = extract(Path(args.readme).read_text(encoding="utf-8"))
    if args.list:
        for ex in examples:
            state = f"not run: {ex.skip}" if ex.skip else "full set only" if ex.full_only else "runs"
            print(f"README:{ex.line:<5} {state:<40} {ex.text}")
        return 0
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    if args.keep:
        outcomes = run_all(examples, Path(args.keep).resolve(), quick=args.quick)
    else:
        with tempfile.TemporaryDirectory(prefix="readme-examples-") as tmp:
            outcomes = run_all(examples, Path(tmp), quick=args.quick)
    failed = [o for o in outcomes if o.status.startswith("FAIL")]
    ran = [o for o in outcomes if o.status != "not run"]
    print(f"{len(ran) - len(failed)} of {len(ran)} examples ran ok, {len(outcomes) - len(ran)} not run, "
          f"{time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
