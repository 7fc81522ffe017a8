"""Writing a run directory while a run goes on, so that the folder is consistent at every instant:
``run.json`` first (the configuration), then per finished batch the images' files, the metric tables
and ``run.json`` again (which images are done), and ``report.html`` at the end (rebuildable from the
folder alone: :func:`invertkit.runs.report.build_report`, ``invertkit report OUT``).

Every file is written atomically (:mod:`invertkit.io.atomic`): a kill, a signal or a full disk never
leaves a partial file under its final name. ``run.json`` is rewritten last in each batch, so it is the
commit point: an image it lists has all its files; files of a batch it does not list yet are written
again when the run is continued.

Layout of ``OUT/`` (run format 2)::

    images/<stem>_target.png  <stem>_recon.png  [<stem>_observed.png  <stem>_restored.png]
                              [<stem>_edit-<label>.png: diffusion results regenerated with another prompt]
                              [<stem>_pivot.png: a pti result's pivot before tuning]
    latents/<stem>.npz        the image's latent and whatever re-renders it (``results.files``): key "w"
                              [1, num_ws, w_dim] for W-type spaces (NVIDIA's projector layout), the space's
                              own key, noise maps, a layerwise result's state, the loss curve
    latents/<stem>_state.safetensors   diffusion methods: the noise latent and the method's state
    latents/<stem>_delta.safetensors   pti: the image's tuned weights minus the base's
    metrics.csv  metrics.json run.json  report.html   [.lock while a writer holds the folder]
    history.csv               every image's loss curve as data (:mod:`invertkit.runs.history`), written with the report

A restoration run (``add(..., restoration=...)``) lists per image in run.json ``items`` the
``observed`` image file and, for inpainting, the ``delivered`` composite, and records ``restoration``
(the degradation and whether the targets are clean references); its composite is scored as
``psnr_composite`` / ``ssim_composite`` beside ``psnr`` / ``ssim``. Rows of images given a group
(``add(..., groups=...)``, the demo's ``real`` / ``control``) have a ``group`` column.

Every row of the tables has a ``status``: ``ok``, or ``failed`` for an image whose inversion diverged
(a NaN or inf latent, reconstruction or metric: :func:`invertkit.results.health.nonfinite_images`).
A failed row holds ``null`` metrics and the reason (``error``); the image gets no latent file, is
listed under ``failures`` in run.json and in the report, and makes ``invertkit invert`` exit 1. The
tables are strict JSON (no ``NaN``): a value that is not finite is written as ``null``.

``run.json`` names the result type (``kind``), the run format, every image's stem and, for runs of the
command line, the run's configuration (``identity``): running the same configuration into the folder
again continues the run (:attr:`RunWriter.done` images are skipped), another one is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator
from ..io.atomic import remove_temporaries, write_text_atomic
from ..io.filenames import display_name
from ..io.images import save_image, slug
from ..io.runinfo import environment, now_utc, strict_json_value, write_run_json
from ..metrics import PROTOCOL
from ..results import DiffusionInversion, InversionResult, LatentInversion, TunedInversion
from ..results.files import FORMAT_VERSION
from ..results.health import diverged_message, nonfinite_images
from ..version import __version__
from .config import config_difference, config_fingerprint

# columns of a metrics row that are timings, not metrics (the report and load_run tell them apart)
TIMING_COLUMNS = frozenset({"image", "seconds", "evaluations", "nfe_invert", "nfe_reconstruct"})
OK, FAILED = "ok", "failed"  # a row's status


@dataclass(frozen=True)
class Restoration:
    """What a restoration batch observed, for the run folder and its report.

    Attributes:
        observed: the observations as the model saw them, shown at the generator's size and channels
            (``N x C x R x R`` in [-1, 1], enlarged nearest: :func:`invertkit.degradations.show_observation`).
        degradation: the operator (``Degradation.describe()``, e.g. ``"downsample:4"``).
        clean_reference: the targets given to ``add`` are the clean images the observations were
            simulated from (``--simulate``), so scores against them are meaningful; False: the inputs
            were real observations and the targets are the observations themselves.
    """

    observed: Tensor
    degradation: str
    clean_reference: bool


def unique_stem(name: str, used: set[str]) -> str:
    """The file stem of image ``name`` in a run folder, made unique against ``used``; adds it to ``used``.

    The name less its suffix, with folder separators, spaces and backslashes as ``_`` (``a/x.png`` ->
    ``a_x``: names that keep a relative path stay readable, and a stem never leaves ``images/``); a stem
    already taken gets ``-2``, ``-3``, ... Undecodable file-name bytes and control characters become
    ``_xNN`` / ``_n`` (see :func:`~invertkit.io.filenames.display_name`)."""
    shown = display_name(name)
    suffix = Path(shown).suffix
    base = shown[: -len(suffix)] if suffix and len(suffix) < len(shown) else shown
    stem = re.sub(r"[/\\\s]", "_", base) or "image"
    candidate, k = stem, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}-{k}"
    used.add(candidate)
    return candidate


def read_json(path: Path, what: str) -> Any:
    """A JSON file of a run folder, or one line saying it is damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable {what} ({str(exc)[:120]}); the run folder is damaged") from None


class RunWriter:
    """Writes the per-image results of one run into ``out_dir`` as they finish.

    Args:
        out_dir: the run folder (created).
        G: the run's generator.
        title: the report's title.
        identity: the run's configuration (:func:`invertkit.cli.run_identity.run_identity`). Given, a
            folder that already holds a run of the same identity is continued (its images are
            :attr:`done`; they keep their files, rows and stems) and one of another identity is refused
            with a :class:`ConfigError` naming what differs. None (the API, the bench): a fresh run.

    Hold a :class:`~invertkit.runs.lock.RunLock` on the folder while writing (the command line does).
    """

    def __init__(self, out_dir: str | os.PathLike[str], G: Generator, *, title: str = "invertkit inversion",
                 identity: Mapping[str, Any] | None = None) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.G = G
        self.title = title
        self.identity = dict(identity) if identity is not None else None
        self.rows: list[dict[str, Any]] = []  # the images done (one per entry, same order)
        self.failed_rows: list[dict[str, Any]] = []  # images whose inversion diverged (no entry, no files)
        self.entries: list[dict[str, Any]] = []  # per image: name, stem, files, input, id (run.json "items")
        self.failures: dict[str, str] = {}
        self.config: dict[str, Any] = {}
        self.seconds = 0.0
        self.used_stems: set[str] = set()
        self.deltas: dict[str, str] = {}  # image name -> its weight delta file, relative to out_dir
        self.kind: str | None = None
        self.status = "running"
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}
        self.restoration: dict[str, Any] | None = None  # run.json "restoration": the degradation, whether targets are clean
        self.created = now_utc()
        self._environment = environment()  # once: run.json is rewritten after every batch
        self.resumed = 0  # images done by earlier commands
        for folder in (self.out, self.out / "images", self.out / "latents"):
            remove_temporaries(folder)  # left by a writer that was killed mid-file
        if self.identity is not None:
            self._continue()
        self.write_index()

    # ---- continuing a run --------------------------------------------------------------------------
    def _continue(self) -> None:
        """Take over what an earlier command with the same identity wrote (nothing if the folder is new)."""
        run_json = self.out / "run.json"
        if not run_json.is_file():
            if any((self.out / sub).is_dir() and any((self.out / sub).iterdir()) for sub in ("images", "latents")):
                raise ConfigError(f"{self.out} holds images/ or latents/ of a run without run.json (an older invertkit?); "
                                  "use another --out, or delete the folder to start over")
            return
        doc = read_json(run_json, "run.json")
        recorded = doc.get("identity") if isinstance(doc, dict) else None
        if not isinstance(recorded, dict):
            raise ConfigError(f"{self.out} holds a run without a recorded configuration (written by an older invertkit "
                              "or the API); use another --out, or delete the folder to start over")
        assert self.identity is not None
        differ = config_difference(recorded, self.identity)
        if differ is not None:
            raise ConfigError(f"{self.out} holds a run of another configuration ({differ}); "
                              "use another --out, or the same options to continue it")
        entries = [e for e in doc.get("items") or [] if isinstance(e, dict) and "stem" in e]
        rows: list[Any] = []
        if entries:
            rows = read_json(self.out / "metrics.json", "metrics.json") if (self.out / "metrics.json").is_file() else []
            if not isinstance(rows, list) or len(rows) < len(entries):
                raise ConfigError(f"{self.out / 'metrics.json'}: fewer rows than run.json lists images; the run folder is "
                                  "damaged: use another --out")
        # run.json is written after metrics.json: rows beyond its items belong to a batch that did not finish
        self.entries, self.rows = entries, [dict(r) for r in rows[: len(entries)]]
        self.used_stems = {str(e["stem"]) for e in entries}
        self.kind = doc.get("kind")
        self.config = dict(doc.get("config") or {})
        self.deltas = dict(doc.get("deltas") or {})
        self.restoration = doc.get("restoration") if isinstance(doc.get("restoration"), dict) else None
        self.seconds = float((doc.get("timings") or {}).get("seconds", 0.0))
        self.created = str(doc.get("created") or self.created)
        self.resumed = len(entries)

    @property
    def done(self) -> set[str]:
        """The inputs (``add``'s ``inputs``, else the names) whose results the folder holds."""
        return {str(e.get("input", e["image"])) for e in self.entries}

    # ---- writing -----------------------------------------------------------------------------------
    def add(self, result: InversionResult, targets: Tensor, names: Sequence[str], *, restoration: Restoration | None = None,
            inputs: Sequence[str] | None = None, ids: Sequence[int] | None = None, groups: Sequence[str] | None = None) -> None:
        """Write the files of a finished batch: images, each image's latent file and what re-renders it
        (``result.save_item``), its row of the tables, then run.json (which makes the batch count as done).

        Args:
            names: the images' names (file names), shown in tables and the report.
            restoration: a restoration batch's observations (``images/<stem>_observed.png``); the
                delivered composite of an inpainting result is written as ``images/<stem>_restored.png``.
            inputs: what identifies each input when a run is continued (default ``names``).
            ids: each image's position in the run's full input list (its seeds derive from it).
            groups: each image's group (e.g. ``"real"`` / ``"control"``): a ``group`` column of the
                tables, and the report shows each group's means apart.
        """
        if self.kind is not None and result.kind != self.kind:
            raise ValueError(f"a run holds one kind of result: got {result.kind} after {self.kind}")
        per_image_s = result.timings.image_seconds()  # each image's share of the call (results.Timings)
        entries, rows, deltas, failed = [], [], {}, []
        diverged = nonfinite_images(result)
        used = set(self.used_stems)  # taken only when the whole batch is on disk
        for i, raw in enumerate(names):
            name = display_name(raw)
            if i in diverged:  # no score and no latent file: a failed image, with its reason
                message = diverged_message(name, diverged[i])
                failed.append({"image": name, "status": FAILED, **({"group": str(groups[i])} if groups is not None else {}),
                               "error": message,
                               **{k: None for k in (result.metrics[i] if i < len(result.metrics) else {})},
                               "seconds": per_image_s[i],
                               "evaluations": float(result.timings.evaluations[i]) if i < len(result.timings.evaluations) else None})
                self.failures[display_name(str(inputs[i])) if inputs is not None else name] = message
                continue
            stem = unique_stem(name, used)
            save_image(targets[i], self.out / "images" / f"{stem}_target.png")
            save_image(result.reconstructions[i], self.out / "images" / f"{stem}_recon.png")
            files = result.save_item(i, self.out / "latents", stem, self.G, image=name)
            entry: dict[str, Any] = {"image": name, "stem": stem, "files": [f"latents/{f}" for f in files],
                                     "input": display_name(str(inputs[i])) if inputs is not None else name}
            if restoration is not None:
                entry["observed"] = f"images/{stem}_observed.png"
                save_image(restoration.observed[i], self.out / entry["observed"])
            if isinstance(result, LatentInversion) and result.composite is not None:  # inpainting: observed pixels kept, hole filled
                entry["delivered"] = f"images/{stem}_restored.png"
                save_image(result.composite[i], self.out / entry["delivered"])
            if ids is not None:
                entry["id"] = int(ids[i])
            if isinstance(result, TunedInversion):  # generator tuning (pti): the image's own weights, as a difference
                deltas[name] = f"latents/{stem}_delta.safetensors"
                if result.pivot is not None and result.pivot.reconstructions is not None:
                    save_image(result.pivot.reconstructions[i], self.out / "images" / f"{stem}_pivot.png")
            row: dict[str, Any] = {"image": name, "status": OK, **({"group": str(groups[i])} if groups is not None else {}),
                                   **result.metrics[i], "seconds": per_image_s[i],
                                   "evaluations": float(result.timings.evaluations[i])}
            if isinstance(result, DiffusionInversion):  # regenerated with other prompts; NFE of both directions
                edits = {}
                for label, edited in result.edits.items():
                    edits[label] = f"images/{stem}_edit-{slug(label, 'edit')}.png"
                    save_image(edited[i], self.out / edits[label])
                if edits:
                    entry["edits"] = edits
                row["nfe_invert"] = float(result.timings.evaluations[i])
                row["nfe_reconstruct"] = float(result.nfe_reconstruct[i])
            entries.append(entry)
            rows.append(row)
        if restoration is not None:
            self.restoration = {"degradation": restoration.degradation, "clean_reference": restoration.clean_reference}
        self.kind, self.config = result.kind, result.config
        self.seconds += result.timings.seconds
        self.used_stems = used
        self.entries += entries
        self.rows += rows
        self.failed_rows += failed
        self.deltas.update(deltas)
        self.write_tables()
        self.write_index()

    def fail(self, name: str, message: str) -> None:
        """Record an input that could not be inverted (written with the next run.json)."""
        self.failures[display_name(name)] = display_name(message)

    def write_tables(self) -> None:
        """metrics.json and metrics.csv of every image done so far (each rewritten whole, atomically):
        the images done (in run.json's order), then the failed ones; strict JSON (``null``, never ``NaN``)."""
        table = strict_json_value(self.rows + self.failed_rows)
        write_text_atomic(self.out / "metrics.json", json.dumps(table, indent=2, allow_nan=False) + "\n")
        fields: list[str] = []
        for r in table:
            fields += [k for k in r if k not in fields]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields or ["image"])
        writer.writeheader()
        writer.writerows(table)
        write_text_atomic(self.out / "metrics.csv", text.getvalue())

    def write_index(self) -> Path:
        """run.json as it stands: the configuration, the images done (the commit point of a batch), the status."""
        n = len(self.rows)
        return write_run_json(
            self.out / "run.json",
            created=self.created,
            environment=self._environment,
            updated=now_utc(),
            run_format=FORMAT_VERSION,
            invertkit=__version__,
            status=self.status,
            title=self.title,
            kind=self.kind,
            generator={**self.G.describe(), "fingerprint": self.G.fingerprint()},
            **({"identity": self.identity, "identity_fingerprint": config_fingerprint(self.identity)} if self.identity is not None else {}),
            config=self.config,
            timings={"seconds": self.seconds, "images": n, "seconds_per_image": self.seconds / max(n, 1)},
            metric_protocol={**PROTOCOL, "resolution": f"{self.G.resolution}x{self.G.resolution} (the generator's)"},
            images=[r["image"] for r in self.rows],
            items=self.entries,
            failures=self.failures,
            **({"deltas": self.deltas} if self.deltas else {}),
            **({"restoration": self.restoration} if self.restoration else {}),
            **({"notes": self.notes} if self.notes else {}),
            **self.extra,
        )

    def interrupted(self) -> None:
        """Mark run.json as interrupted (best effort: the batches already listed stay as they are)."""
        self.status = "interrupted"
        try:
            self.write_index()
        except OSError:  # a full disk now must not hide the interruption
            pass

    def finish(self, *, notes: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Path:
        """Mark the run complete in run.json and build report.html from the folder; returns the folder."""
        from .report import build_report  # the report reads the folder back, as `invertkit report` does

        self.status = "complete"
        self.notes = list(notes)
        self.extra = dict(extra or {})
        self.write_index()
        build_report(self.out)
        return self.out


def write_run(
    out_dir: str | os.PathLike[str],
    G: Generator,
    result: InversionResult,
    targets: Tensor,
    names: Sequence[str],
    *,
    title: str = "invertkit inversion",
    notes: Sequence[str] = (),
    groups: Sequence[str] | None = None,
) -> Path:
    """One-batch convenience: ``RunWriter`` with a single ``add`` (``groups``: see :meth:`RunWriter.add`)."""
    writer = RunWriter(out_dir, G, title=title)
    writer.add(result, targets, names, groups=groups)
    return writer.finish(notes=notes)
