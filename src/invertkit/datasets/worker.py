"""One batch: decode its images (any thread or process), invert them (a worker holding the model),
and turn the result into rows of the dataset layout (``runs.table``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvertkitError
from ..generators.base import Generator
from ..io.filenames import display_name
from ..io.images import decode_image
from ..io.sources import Entry, entry_bytes
from ..runs.table import error_row, result_rows
from .job import JobSpec, id_key


@dataclass
class DecodedBatch:
    """A batch's inputs after decoding.

    Attributes:
        entries: the batch's inputs, in order.
        pixels: ``len(entries) x C x H x W`` uint8 (what the image files hold after the reading
            policy; exact, so batches travel between processes without loss); zeros for failures.
        errors: per entry, None or the one-line reason it could not be read.
    """

    entries: list[Entry]
    pixels: np.ndarray
    errors: list[str | None]


def decode_batch(entries: Sequence[Entry], size: int, channels: int, max_pixels: int) -> DecodedBatch:
    """Read and decode ``entries``; an unreadable, truncated, oversized or non-image input becomes an
    error naming it (never an exception: one bad file must not stop a run)."""
    pixels = np.zeros((len(entries), channels, size, size), dtype=np.uint8)
    errors: list[str | None] = []
    for k, e in enumerate(entries):
        try:
            if e.path is not None:  # a missing file, link loop, FIFO or device is refused unopened, by name
                x = decode_image(e.path, size, channels, name=e.source, max_pixels=max_pixels)
            else:
                x = decode_image(entry_bytes(e), size, channels, name=e.source, max_pixels=max_pixels)
            pixels[k] = ((x[0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
            errors.append(None)
        except InvertkitError as exc:
            errors.append(display_name(str(exc)))  # one line, whatever the file name holds
        except Exception as exc:  # noqa: BLE001  (a reader bug on one hostile file must not stop the run)
            errors.append(display_name(f"{e.source}: cannot read ({type(exc).__name__}: {str(exc)[:160]})"))
    return DecodedBatch(list(entries), pixels, errors)


class BatchInverter:
    """Holds a generator and a method; turns decoded batches into rows. One per worker."""

    def __init__(self, spec: JobSpec, G: Generator | None = None) -> None:
        """``G``: the generator already loaded by this process (prompt embeddings added); None: load it
        from ``spec`` (a worker process)."""
        from ..degradations import parse_degradation
        from ..diffusion.model import DiffusionModel
        from ..generators import load_generator

        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        if G is None:
            G = load_generator(spec.generator, device=spec.device, weights=spec.weights)
            if spec.prompt_embeds and isinstance(G, DiffusionModel):
                G.add_prompts(spec.prompt_embeds)
        self.G = G
        self.degradation = parse_degradation(spec.degrade, self.G.resolution, spec.mask)

    def __call__(self, batch: DecodedBatch) -> list[dict[str, Any]]:
        from ..methods import invert

        spec = self.spec
        rows: list[dict[str, Any]] = []
        good = [k for k, err in enumerate(batch.errors) if err is None]
        for k, err in enumerate(batch.errors):
            if err is not None:
                e = batch.entries[k]
                rows.append(error_row(e.id, e.source, err, method=spec.method, fingerprint=spec.fingerprint))
        if not good:
            return rows
        entries = [batch.entries[k] for k in good]
        images = torch.from_numpy(batch.pixels[good]).float().div(127.5).sub(1.0).to(self.G.device)
        ids = [id_key(e.id) for e in entries]
        reference, observation = None, images
        if spec.simulate and self.degradation is not None:
            reference = images
            observation = self.degradation.observe(images, ids=ids, seed=int(spec.options.get("seed", 0)))
        start = time.perf_counter()
        try:
            result = invert(self.G, observation, spec.method, degradation=self.degradation, image_ids=ids,
                            reference=reference, extra_metrics=spec.metrics, **spec.options)
        except (InvertkitError, RuntimeError, FloatingPointError) as exc:  # the whole batch failed: say so per image
            message = f"inversion failed ({type(exc).__name__}: {str(exc)[:200]})"
            return rows + [error_row(e.id, e.source, f"{e.source}: {message}", method=spec.method, fingerprint=spec.fingerprint)
                           for e in entries]
        wall = time.perf_counter() - start  # the call, scoring included: shared as the method's own seconds are
        own = result.timings.image_seconds()
        total = sum(own)
        seconds = [wall * s / total for s in own] if total > 0 and len(own) == len(entries) else [wall / len(entries)] * len(entries)
        rows += result_rows(result, self.G, [e.id for e in entries], [e.source for e in entries],
                            fingerprint=spec.fingerprint, seconds=seconds, with_png=spec.save_png)
        return rows
