"""Writing a run directory while a run goes on: per-image files as soon as each batch finishes
(finished work is never lost), then the tables, run.json and report.html at the end.

Layout of ``OUT/`` (run format 2)::

    images/<stem>_target.png  <stem>_recon.png  [<stem>_observed.png  <stem>_restored.png]
                              [<stem>_edit-<label>.png: diffusion results regenerated with another prompt]
                              [<stem>_pivot.png: a pti result's pivot before tuning]
    latents/<stem>.npz        the image's latent and whatever re-renders it (``results.files``): key "w"
                              [1, num_ws, w_dim] for W-type spaces (NVIDIA's projector layout), the space's
                              own key, noise maps, a layerwise result's state, the loss curve
    latents/<stem>_state.safetensors   diffusion methods: the noise latent and the method's state
    latents/<stem>_delta.safetensors   pti: the image's tuned weights minus the base's
    metrics.csv  metrics.json run.json  report.html

``run.json`` names the result type (``kind``), the run format and every image's stem, so
``invertkit.load_run`` reads the folder back into the typed result the run produced.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..generators.base import Generator
from ..io.images import save_image, slug
from ..io.report import ReportItem, write_report
from ..io.runinfo import write_run_json
from ..metrics import PROTOCOL
from ..results import DiffusionInversion, InversionResult, LatentInversion, TunedInversion
from ..results.files import FORMAT_VERSION
from ..version import __version__


def unique_stem(name: str, used: set[str]) -> str:
    """The file stem of image ``name`` in a run folder (spaces as ``_``), made unique against ``used``
    (two inputs ``a/x.png`` and ``b/x.png`` must not overwrite each other: ``x``, ``x-2``); adds it to ``used``."""
    stem = Path(name).stem.replace(" ", "_") or "image"
    candidate, k = stem, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}-{k}"
    used.add(candidate)
    return candidate


class RunWriter:
    """Accumulates per-image results of one run into ``out_dir``."""

    def __init__(self, out_dir: str | os.PathLike[str], G: Generator, *, title: str = "invertkit inversion") -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.G = G
        self.title = title
        self.rows: list[dict[str, Any]] = []
        self.items: list[ReportItem] = []
        self.curves: dict[str, list[float]] = {}
        self.failures: dict[str, str] = {}
        self.config: dict[str, Any] = {}
        self.seconds = 0.0
        self.used_stems: set[str] = set()
        self.deltas: dict[str, str] = {}  # image name -> its weight delta file, relative to out_dir
        self.entries: list[dict[str, Any]] = []  # per image: name, stem, files (run.json "items")
        self.kind: str | None = None

    def add(self, result: InversionResult, targets: Tensor, names: Sequence[str], *, observed: Tensor | None = None) -> None:
        """Write the files of a finished batch right away: images, each image's latent file and what
        re-renders it (``result.save_item``), and the image's row of the tables."""
        if self.kind is not None and result.kind != self.kind:
            raise ValueError(f"a run holds one kind of result: got {result.kind} after {self.kind}")
        self.kind = result.kind
        self.config = result.config
        self.seconds += result.timings.seconds
        per_image_s = result.timings.seconds_per_image()
        loss = result.history.get("loss")
        for i, name in enumerate(names):
            stem = unique_stem(name, self.used_stems)
            save_image(targets[i], self.out / "images" / f"{stem}_target.png")
            save_image(result.reconstructions[i], self.out / "images" / f"{stem}_recon.png")
            if observed is not None:
                save_image(observed[i], self.out / "images" / f"{stem}_observed.png")
            if isinstance(result, LatentInversion) and result.composite is not None:  # inpainting: observed pixels kept, hole filled
                save_image(result.composite[i], self.out / "images" / f"{stem}_restored.png")
            files = result.save_item(i, self.out / "latents", stem, self.G, image=name)
            self.entries.append({"image": name, "stem": stem, "files": [f"latents/{f}" for f in files]})
            shown = {}
            if isinstance(result, TunedInversion):  # generator tuning (pti): the image's own weights, as a difference
                self.deltas[name] = f"latents/{stem}_delta.safetensors"
                if result.pivot is not None and result.pivot.reconstructions is not None:
                    save_image(result.pivot.reconstructions[i], self.out / "images" / f"{stem}_pivot.png")
            row: dict[str, Any] = {"image": name, **result.metrics[i], "seconds": per_image_s,
                                   "evaluations": float(result.timings.evaluations[i])}
            if isinstance(result, DiffusionInversion):  # regenerated with other prompts; NFE of both directions
                for label, edited in result.edits.items():
                    save_image(edited[i], self.out / "images" / f"{stem}_edit-{slug(label, 'edit')}.png")
                    shown[label] = edited[i].detach().cpu()
                row["nfe_invert"] = float(result.timings.evaluations[i])
                row["nfe_reconstruct"] = float(result.nfe_reconstruct[i])
            self.rows.append(row)
            self.items.append(ReportItem(name, targets[i].detach().cpu(), result.reconstructions[i].detach().cpu(), dict(result.metrics[i]), shown))
            if loss is not None and loss.numel():
                self.curves[name] = loss[:, i].tolist()

    def fail(self, name: str, message: str) -> None:
        self.failures[name] = message

    def finish(self, *, notes: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Path:
        """Write metrics.csv/json, run.json and report.html; returns the run directory."""
        out = self.out
        (out / "metrics.json").write_text(json.dumps(self.rows, indent=2) + "\n", encoding="utf-8")
        fields: list[str] = []
        for r in self.rows:
            fields += [k for k in r if k not in fields]
        with open(out / "metrics.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields or ["image"])
            writer.writeheader()
            writer.writerows(self.rows)
        write_run_json(
            out / "run.json",
            run_format=FORMAT_VERSION,
            invertkit=__version__,
            kind=self.kind,
            generator={**self.G.describe(), "fingerprint": self.G.fingerprint()},
            config=self.config,
            timings={"seconds": self.seconds, "images": len(self.rows), "seconds_per_image": self.seconds / max(len(self.rows), 1)},
            metric_protocol={**PROTOCOL, "resolution": f"{self.G.resolution}x{self.G.resolution} (the generator's)"},
            images=[r["image"] for r in self.rows],
            items=self.entries,
            failures=self.failures,
            **({"deltas": self.deltas} if self.deltas else {}),
            **(extra or {}),
        )
        summary = {
            "generator": f"{self.G.name} ({self.G.resolution}x{self.G.resolution}, {self.G.channels} channel{'s' if self.G.channels > 1 else ''})",
            "method": f"{self.config.get('method', '?')} in space {self.config.get('space', '?')}",
            "options": ", ".join(f"{k}={v}" for k, v in self.config.items() if k not in ("method", "space")),
            "images": f"{len(self.rows)} inverted" + (f", {len(self.failures)} failed" if self.failures else ""),
        }
        for key, label in (("psnr", "mean PSNR"), ("ssim", "mean SSIM"), ("psnr_observed", "mean PSNR of the observation fit"), ("nscd", "mean NSCD")):
            vals = [r[key] for r in self.rows if key in r]
            if vals:
                unit = " dB" if key.startswith("psnr") else ""
                summary[label] = f"{sum(vals) / len(vals):.3f}{unit}"
        nfe = [r["nfe_invert"] for r in self.rows if "nfe_invert" in r]
        if nfe:  # diffusion methods: model evaluations per image, inversion and reconstruction
            back = [r["nfe_reconstruct"] for r in self.rows if "nfe_reconstruct" in r]
            spread = f" (images {min(nfe):.0f} to {max(nfe):.0f})" if min(nfe) != max(nfe) else ""
            summary["model evaluations (NFE)"] = (f"{sum(nfe) / len(nfe):.0f} to invert{spread}, "
                                                  f"{sum(back) / len(back):.0f} to reconstruct, per image (mean)")
        if self.deltas:
            summary["tuned weights"] = f"{len(self.deltas)} delta file(s): latents/<name>_delta.safetensors (load_generator(G, delta=...))"
        summary["metric protocol"] = f"uint8-quantised images on [0, 1] at {self.G.resolution} px; PSNR = 10 log10(1/MSE)"
        summary["time"] = f"{self.seconds:.1f} s ({self.seconds / max(len(self.rows), 1):.2f} s per image)"
        write_report(
            out / "report.html",
            title=self.title,
            subtitle="files beside this report: images/, latents/, metrics.csv, metrics.json, run.json",
            items=self.items,
            summary=summary,
            curves=self.curves,
            failures=self.failures,
            notes=notes,
        )
        return out


def write_run(
    out_dir: str | os.PathLike[str],
    G: Generator,
    result: InversionResult,
    targets: Tensor,
    names: Sequence[str],
    *,
    title: str = "invertkit inversion",
    notes: Sequence[str] = (),
) -> Path:
    """One-batch convenience: ``RunWriter`` with a single ``add``."""
    writer = RunWriter(out_dir, G, title=title)
    writer.add(result, targets, names)
    return writer.finish(notes=notes)
