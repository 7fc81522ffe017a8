"""Writing a run directory while a run goes on: per-image files as soon as each batch finishes
(finished work is never lost), then the tables, run.json and report.html at the end.

Layout of ``OUT/``::

    images/<stem>_target.png  <stem>_recon.png  [<stem>_observed.png  <stem>_restored.png]
                              [<stem>_edit-<label>.png: diffusion results regenerated with another prompt]
    latents/<stem>.npz        key "w" [1, num_ws, w_dim] for W-type spaces (NVIDIA's projector
                              layout), else the space's own key ("z", "s", "noise" ...); also "space"
    latents/<stem>_state.safetensors   diffusion methods: the noise latent and the method's state
                              (per-step nulls, corrections ...) for ``invertkit regenerate``
    latents/<stem>_delta.safetensors   methods that tune the generator (pti): the image's tuned
                              weights minus the base's (``generators.tuning``); ``<stem>.npz`` is
                              its pivot; images/<stem>_pivot.png the pivot's image before tuning
    metrics.csv  metrics.json run.json  report.html
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .generators.base import Generator
from .io.images import save_image, slug
from .io.latents import save_latent_file, space_key
from .io.report import ReportItem, write_report
from .io.runinfo import write_run_json
from .methods.result import InversionResult
from .metrics import PROTOCOL

W_SPACES = ("w", "w+", "p", "pn")


def latent_arrays(G: Generator, latents: Tensor, space: str) -> dict[str, np.ndarray]:
    """Arrays to save for one image's latent ``[1, ...]``: ``w`` as ``[1, num_ws, w_dim]`` for W-type
    spaces (what NVIDIA's tools read), the space's own array otherwise (and always under its name)."""
    out = {space_key(space): latents.detach().float().cpu().numpy()}
    if space in W_SPACES and "w+" in G.spaces:
        with torch.no_grad():
            out["w"] = G.convert(latents, space, "w+").detach().float().cpu().numpy()
    elif space in ("z", "z-sphere"):
        out["z"] = latents.detach().float().cpu().numpy()
    return out


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

    def _stem(self, name: str) -> str:
        stem = Path(name).stem.replace(" ", "_") or "image"
        candidate, k = stem, 1
        while candidate in self.used_stems:  # two inputs a/x.png and b/x.png must not overwrite each other
            k += 1
            candidate = f"{stem}-{k}"
        self.used_stems.add(candidate)
        return candidate

    def add(self, result: InversionResult, targets: Tensor, names: Sequence[str], *, observed: Tensor | None = None) -> None:
        """Write the files of a finished batch right away."""
        self.config = result.config
        self.seconds += result.timings.get("seconds", 0.0)
        per_image_s = result.timings.get("seconds", 0.0) / max(len(names), 1)
        evals = result.timings.get("evaluations_per_image") or [result.timings.get("evaluations", 0.0)] * len(names)
        loss = result.history.get("loss")
        for i, name in enumerate(names):
            stem = self._stem(name)
            save_image(targets[i], self.out / "images" / f"{stem}_target.png")
            save_image(result.reconstructions[i], self.out / "images" / f"{stem}_recon.png")
            if observed is not None:
                save_image(observed[i], self.out / "images" / f"{stem}_observed.png")
            if "composite" in result.extras:  # inpainting: observed pixels kept, hole filled
                save_image(result.extras["composite"][i], self.out / "images" / f"{stem}_restored.png")
            arrays = latent_arrays(self.G, result.latents[i : i + 1], result.space)
            save_latent_file(self.out / "latents" / f"{stem}.npz", arrays, result.space)
            if "diffusion_state" in result.extras:  # what the method needs to regenerate (edit) the image later
                from .methods.diffusion.state_io import save_state

                save_state(self.out / "latents" / f"{stem}_state.safetensors", result, i, self.G.name)
            if "deltas" in result.extras:  # generator tuning (pti): the image's own weights, as a difference
                self._save_delta(result, i, stem, name)
            shown = {}
            for label, edited in result.extras.get("edits", {}).items():  # diffusion: regenerated with another prompt
                save_image(edited[i], self.out / "images" / f"{stem}_edit-{slug(label, 'edit')}.png")
                shown[label] = edited[i].detach().cpu()
            row = {"image": name, **result.metrics[i], "seconds": per_image_s, "evaluations": float(evals[i])}
            row.update({k: result.timings[k] for k in ("nfe_invert", "nfe_reconstruct") if k in result.timings})
            self.rows.append(row)
            self.items.append(ReportItem(name, targets[i].detach().cpu(), result.reconstructions[i].detach().cpu(), dict(result.metrics[i]), shown))
            if loss is not None and loss.numel():
                self.curves[name] = loss[:, i].tolist()

    def _save_delta(self, result: InversionResult, i: int, stem: str, name: str) -> None:
        from .generators.tuning import save_delta

        path = self.out / "latents" / f"{stem}_delta.safetensors"
        meta = {**result.extras.get("delta_meta", {"base": self.G.name}), "image": name, "pivot_file": f"{stem}.npz"}
        save_delta(path, result.extras["deltas"][i], meta)
        self.deltas[name] = path.relative_to(self.out).as_posix()
        pivot = result.extras.get("pivot", {}).get("reconstructions")
        if pivot is not None:
            save_image(pivot[i], self.out / "images" / f"{stem}_pivot.png")

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
            generator=self.G.describe(),
            config=self.config,
            timings={"seconds": self.seconds, "images": len(self.rows), "seconds_per_image": self.seconds / max(len(self.rows), 1)},
            metric_protocol={**PROTOCOL, "resolution": f"{self.G.resolution}x{self.G.resolution} (the generator's)"},
            images=[r["image"] for r in self.rows],
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
        if nfe:  # diffusion methods: model evaluations per batch, inversion and reconstruction
            back = [r["nfe_reconstruct"] for r in self.rows if "nfe_reconstruct" in r]
            summary["model evaluations (NFE)"] = f"{max(nfe):.0f} to invert, {max(back):.0f} to reconstruct (per batch)"
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
