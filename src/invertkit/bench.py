"""The comparison bench: several methods on the same generator, images and metric protocol.

``run_bench`` runs each method spec (``name[:space][@key=value,...]``) over the same images in the
same batches, keeps every method's run directory, and writes one table (``bench.json``,
``bench.csv``, ``bench.md``) and ``bench.html`` (table, quality-versus-time plot, grids).

With an :class:`~invertkit.editing.editability.EditProbe` the bench also edits every method's latents
along one direction and adds the editability columns (``edit_flip``, ``edit_slope``, ``edit_change``
...; see ``editing.editability``) and one edit strip per method, so methods can be compared on how
well their codes edit, not only on how well they reconstruct.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from .errors import ConfigError, InvertkitError
from .generators.base import Generator
from .io.bench_report import write_bench_html
from .io.runinfo import strict_json_value, write_run_json
from .methods import METHODS, invert, make_options
from .metrics import HIGHER_IS_BETTER
from .optiontext import parse_key_values
from .progress import Reporter, prefixed
from .results import DiffusionInversion, InversionResult, LatentInversion
from .results.health import nonfinite_images
from .runs import RunWriter, load_run


@dataclass(frozen=True)
class MethodRun:
    """One bench entry: the spec as typed, the method, and its options."""

    spec: str
    method: str
    options: dict[str, Any]


def parse_method_spec(spec: str) -> MethodRun:
    """``"optimize:w+@steps=100;loss=mse=1+perceptual=1"`` -> method ``optimize``, space ``w+``, options.

    Options after ``@`` are ``key=value`` pairs separated by ``;``; inside a ``loss`` value the terms
    are joined by ``+`` (commas separate the methods of a bench).
    """
    head, _, tail = spec.partition("@")
    name, _, space = head.partition(":")
    if name not in METHODS:
        raise ConfigError(f"bench method {spec!r}: unknown method {name!r}; known: {', '.join(METHODS.names())}")
    options: dict[str, Any] = {}
    if space:
        options["space"] = space
    for key, value in parse_key_values(tail, where=f"bench method {spec!r}").items():
        options[key] = value.replace("+", ",") if key == "loss" and isinstance(value, str) else value
    try:  # a bad value is refused here, before any method of the bench runs
        make_options(name, **options)
    except ConfigError as exc:
        raise ConfigError(f"bench method {spec!r}: {exc}") from exc
    return MethodRun(spec, name, options)


# the options that set a method's amount of work, and their warm-up values (an option a method lacks is skipped)
_WARMUP_BUDGET = {"steps": 2, "pivot_steps": 2, "final_steps": 1, "inner_steps": 1, "restart_steps": 1}


def warmup_options(method: str) -> dict[str, int]:
    """The step budget of a method's untimed warm-up run: each of its work options (``steps``,
    ``pivot_steps``, ...) at one or two, so the run passes through all of the method's code paths
    (models loaded, kernels set up) at a small cost."""
    fields = set(METHODS.get(method).options.__dataclass_fields__)
    return {k: v for k, v in _WARMUP_BUDGET.items() if k in fields}


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))


def default_methods(G: Generator) -> list[str]:
    """The methods ``invertkit bench`` compares when none are named: for a GAN, every encoder-based
    method whose model is shipped or installed for ``G`` (pSp ``encoder``, ``restyle``, ``fs-encoder``,
    ``hyperstyle``; with an encoder also ``hybrid`` and ``pti``), then ``optimize``; for a diffusion
    model ``ddim`` and ``edict`` (approximate and exact inversion)."""
    from .diffusion.model import DiffusionModel
    from .encoders.shipped import find_encoder

    if isinstance(G, DiffusionModel):
        return ["ddim", "edict"]
    found = {arch: find_encoder(G, (arch,)) is not None for arch in ("psp", "e4e", "restyle", "fs", "hyperstyle")}
    methods = []
    if found["psp"] or found["e4e"]:
        methods.append("encoder")
    methods += [m for m, arch in (("restyle", "restyle"), ("fs-encoder", "fs"), ("hyperstyle", "hyperstyle")) if found[arch]]
    if found["psp"] or found["e4e"]:
        methods += ["hybrid", "pti"]
    return methods + ["optimize"]


def run_bench(
    G: Generator,
    images: Tensor,
    names: Sequence[str],
    methods: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    common: dict[str, Any] | None = None,
    batch_size: int = 8,
    extra_metrics: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
    reporter: Reporter | None = None,
    warmup: bool = True,
    edit: Any = None,
    edit_prompts: Sequence[str] = (),
    edit_guidance: float | None = None,
) -> list[dict[str, Any]]:
    """Run every method spec on ``images`` (``N x C x H x W`` in [-1, 1]) and write the bench files.

    ``common`` options (e.g. ``steps``, ``seed``) apply to every method that has them; a spec's own
    ``@key=value`` options win. ``edit``: an ``EditProbe`` measuring editability of every method's
    latents. ``edit_prompts`` (diffusion models): regenerate every inversion with these prompts (at
    ``edit_guidance``) and add the ``edit_psnr_*`` / ``edit_change_*`` columns. Diffusion methods also
    get ``nfe_invert`` / ``nfe_reconstruct`` and the round-trip error columns. Returns the table rows
    (also written to ``bench.json``).

    ``progress(spec)`` is called as each method starts; ``reporter`` (``invertkit.progress``) is shown
    every step of every method, its labels prefixed with ``method i/n SPEC, images a-b of N``.
    ``warmup``: before each method is timed it runs once, untimed, on the first batch with a step budget
    of one or two (:func:`warmup_options`), so one-off costs (first-call allocations and kernel set-up,
    lazily loaded feature networks and encoders) are charged to no method.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = [parse_method_spec(m) for m in methods]
    rows: list[dict[str, Any]] = []
    recons: dict[str, Tensor] = {}
    strips: dict[str, Tensor] = {}
    for index, run in enumerate(runs):
        if progress:
            progress(run.spec)
        fields = set(METHODS.get(run.method).options.__dataclass_fields__)
        opts = {k: v for k, v in (common or {}).items() if k in fields}
        opts.update(run.options)
        label = f"method {index + 1}/{len(runs)} {run.spec}"
        if warmup:
            first = images[:batch_size]  # the shapes the timed batches have
            invert(G, first, run.method, image_ids=list(range(first.shape[0])), extra_metrics=extra_metrics,
                   progress=prefixed(reporter, f"{label}, warm-up (untimed)"), **{**opts, **warmup_options(run.method)})
        folder = out / _slug(run.spec)
        writer = RunWriter(folder, G, title=f"bench: {run.spec} on {G.name}")
        kept: list[int] = []  # positions of the images whose inversion stayed finite
        for s in range(0, images.shape[0], batch_size):
            batch = images[s : s + batch_size]
            shown = prefixed(reporter, f"{label}, images {s + 1}-{s + batch.shape[0]} of {images.shape[0]}")
            res = invert(G, batch, run.method, image_ids=list(range(s, s + batch.shape[0])), extra_metrics=extra_metrics,
                         progress=shown, **opts)
            if edit_prompts:
                from .methods.diffusion import add_edits

                add_edits(G, res, list(edit_prompts), guidance=edit_guidance)
            diverged = nonfinite_images(res)  # the writer records these as failed images, without a score
            kept += [s + i for i in range(res.n) if i not in diverged]
            writer.add(res, batch, names[s : s + batch.shape[0]])
        writer.finish()
        n_diverged = images.shape[0] - len(kept)
        row: dict[str, Any] = {"method": run.spec,
                               "status": "ok" if not n_diverged else f"diverged ({n_diverged} of {images.shape[0]} images)",
                               "diverged": n_diverged}
        # a grid keeps the targets' order: a diverged image shows as mid-grey
        grid = images.detach().cpu().float().new_zeros(images.shape)
        if not kept:  # every image diverged: no score, no latents to read back
            recons[run.spec] = grid
            row["seconds_per_image"] = writer.seconds / images.shape[0]
            row["images"] = images.shape[0]
            rows.append(_ordered(row))
            continue
        # the table is read back from the run folder: it reports exactly what the run kept
        result = load_run(folder, G).result
        grid[kept] = result.reconstructions.detach().cpu().float()
        recons[run.spec] = grid
        metrics = result.metrics if not n_diverged else []  # a method that diverged is not scored on the rest
        for key in sorted({k for m in metrics for k in m}, key=lambda k: (k not in ("psnr", "ssim"), k)):
            mean, std = _mean_std([m[key] for m in metrics if key in m])
            row[f"{key}_mean"] = mean
            if key == "psnr":
                row["psnr_std"] = std
            if key == "roundtrip_error":  # exact methods are judged by their worst image
                row["roundtrip_error_max"] = max(m[key] for m in metrics if key in m)
        row["seconds_per_image"] = writer.seconds / images.shape[0]
        row["evaluations_per_image"] = result.timings.mean_evaluations()
        row["bytes_per_image"] = _stored_bytes(folder / "latents") / len(kept)
        if isinstance(result, DiffusionInversion):  # model evaluations per image of both directions
            row["nfe_invert"] = result.timings.mean_evaluations()
            row["nfe_reconstruct"] = sum(result.nfe_reconstruct) / max(len(result.nfe_reconstruct), 1)
        row["images"] = images.shape[0]
        if edit is not None:
            tally = _EditTally(G, edit)
            for s in range(0, result.n, batch_size):  # a pti result's tuned copies: a batch at a time
                tally.add(result.select(range(s, min(s + batch_size, result.n))))
            row.update(tally.summary())
            if tally.strip is not None:
                strips[run.spec] = tally.strip
        rows.append(_ordered(row))
    # a method with diverged images is never ranked by a score: it follows every method that finished
    rows.sort(key=lambda r: r["diverged"] > 0)
    rows = strict_json_value(rows)  # a value that is not finite is null (n/a), never NaN
    _write_tables(out, rows)
    columns = ["method"]
    for r in rows:  # union over rows: a method whose codes cannot take the edit has other columns
        columns += [c for c in r if c not in columns]
    write_bench_html(
        out / "bench.html",
        title=f"invertkit bench: {len(runs)} methods, {images.shape[0]} images, {G.name}",
        rows=rows,
        columns=columns,
        targets=images.detach().cpu(),
        recons=recons,
        strips=strips,
        strip_title=_EditTally(G, edit).title if edit is not None else "",
        notes=[
            f"Metric protocol: uint8-quantised images on [0, 1] at {G.resolution} px; PSNR = 10 log10(1/MSE).",
            "Higher is better for: " + ", ".join(k for k, up in sorted(HIGHER_IS_BETTER.items()) if up) + "; lower for the others.",
            "seconds_per_image: wall time of the batched run divided by the number of images; each method first ran once, "
            "untimed, on the first batch with a step budget of one or two (warm-up: one-off set-up costs are charged to no method).",
            "bytes_per_image: what a run stores per image to re-render it (latents/: the code, noise maps, layer state, "
            "weight deltas), the storage cost of a method beside its model's.",
            "evaluations_per_image: generator forward passes per image (all starts and line-search trials included); "
            "diffusion methods: model evaluations (NFE) of the inversion, and nfe_reconstruct those of sampling back.",
            "roundtrip_error (diffusion): max |x0 - x0'| in the model's latent space after inversion and re-sampling.",
            "status / diverged: images whose inversion diverged (NaN or inf) are failed images of the method's run "
            "folder; such a method has no quality score and is listed after the methods that finished.",
            *(_EDIT_NOTES if edit is not None else []),
        ],
    )
    write_run_json(out / "run.json", generator=G.describe(), methods=[r.spec for r in runs], common_options=common or {}, images=list(names))
    return rows


_EDIT_NOTES = [
    "edit_flip: share of images not decided as the target class at strength 0 that reach it at some strength; "
    "edit_reach: share decided as the target at some strength; edit_strength: mean smallest |strength| reaching it.",
    "edit_slope: change of the target's log-probability per unit strength; edit_change: RMS pixel change on [0, 1] "
    "per unit strength; edit_perceptual: perceptual distance per unit strength; edit_efficiency = edit_slope / edit_change.",
    "Tuned methods (pti, hyperstyle) edit their pivot and render it with each image's tuned generator; fs-encoder edits its "
    "latent and re-adds its feature residual, moved with the edit by its encoder's residual aligner when there is one "
    "(--edit-residual).",
]


class _EditTally:
    """Editability records of one method across batches (nothing when the bench has no edit probe)."""

    def __init__(self, G: Generator, probe: Any) -> None:
        self.G, self.probe = G, probe
        self.records: list[dict[str, Tensor]] = []
        self.error: str | None = None
        self.strip: Tensor | None = None  # the first image's edit frames [S, C, H, W]
        self.title = ""
        if probe is not None:
            d = probe.directions
            self.title = (f"{d.names[probe.index % len(d)]} ({d.method}, {d.space}), strengths "
                          f"{', '.join(f'{v:g}' for v in probe.strengths)}")

    def add(self, res: InversionResult) -> None:
        if self.probe is None or self.error is not None:
            return
        from .editing.editability import edit_records, result_edit_frames

        try:
            if not isinstance(res, LatentInversion):
                raise ConfigError(f"{res.space} {res.kind} results have no latent code to edit")
            # tuned results (pti, hyperstyle): the pivot is edited, each image's generator renders it;
            # layerwise ones (fs-encoder): the latent is edited and the feature residual re-added
            frames = result_edit_frames(self.G, res, self.probe, residual=self.probe.residual)
            self.records.append(edit_records(self.G, None, res.space, self.probe, frames=frames))
            if self.strip is None:
                self.strip = frames[0].cpu()
        except InvertkitError as exc:  # one method's codes cannot take this edit: say why in its row
            self.error = str(exc)

    def summary(self) -> dict[str, Any]:
        if self.probe is None:
            return {}
        if self.error is not None or not self.records:
            return {"edit": f"n/a: {self.error or 'no latents'}"}
        from .editing.editability import summarize

        return summarize(self.records)


# the columns a reader compares first (the rest follow in their own order)
_FIRST = ("method", "status", "psnr_mean", "psnr_std", "ssim_mean", "roundtrip_error_max", "nfe_invert", "nfe_reconstruct",
          "seconds_per_image", "evaluations_per_image")


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in _FIRST if k in row}, **{k: v for k, v in row.items() if k not in _FIRST}}


def _stored_bytes(latents: Path) -> int:
    """Bytes of a run folder's per-image files (``latents/``: codes, noise maps, layer state, weight deltas)."""
    return sum(f.stat().st_size for f in latents.iterdir() if f.is_file()) if latents.is_dir() else 0


def _slug(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.replace("+", "plus"))


def _write_tables(out: Path, rows: list[dict[str, Any]]) -> None:
    (out / "bench.json").write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(out / "bench.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    def fmt(v: Any) -> str:  # tiny values (exact round trips) in scientific notation, not 0.000
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.1e}" if 0 < abs(v) < 1e-3 else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / "bench.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
