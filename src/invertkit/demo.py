"""The demo job: invert real face photographs (and two of the generator's own faces as a control)
into the offline ``dcgan-digiface64`` generator and write a report."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .generators import load_generator
from .io.samples import demo_faces
from .methods import invert
from .progress import Reporter
from .runs import write_run

DEMO_GENERATOR = "dcgan-digiface64"
REAL, CONTROL = "real", "control"  # the ``group`` column of the demo's tables: real photographs, the generator's own faces


def run_demo(out_dir: str | os.PathLike[str] = "runs/demo", *, steps: int = 300, seed: int = 0, device: str = "cpu",
             progress: Reporter | None = None) -> Path:
    """Run the demo and return the run directory (``report.html`` inside); ``progress``: shown every
    optimisation step (``invertkit.progress``).

    Targets: the astronaut portrait and four LFW faces (real photographs shipped in scikit-image),
    plus two faces the generator itself draws from seeds 1000 and 1001 (a control: these have an
    exact solution, so they show what the optimiser reaches when the image is in the model's range).
    """
    G = load_generator(DEMO_GENERATOR, device=device)
    real, names = demo_faces(G.resolution, G.channels)
    with torch.inference_mode():
        control = G.synthesize(torch.cat([G.sample_latent(1, seed=s) for s in (1000, 1001)]), "z")
    targets = torch.cat([real.to(G.device), control])
    groups = [REAL] * len(names) + [CONTROL] * 2  # their means are reported apart: controls are easy by construction
    names = names + ["control-seed1000", "control-seed1001"]
    result = invert(G, targets, method="optimize", steps=steps, seed=seed, progress=progress)
    return write_run(
        out_dir,
        G,
        result,
        targets,
        names,
        title="invertkit demo: real faces into dcgan-digiface64",
        groups=groups,
        notes=[
            "Real faces: scikit-image's astronaut portrait (public domain) and four LFW faces (25x25 greyscale, so blurry by nature).",
            "Controls: two images the generator drew itself; a good inversion reproduces them almost exactly. "
            "Their scores say how well the optimiser works, not how well real photos invert: read the real photographs' mean "
            "(the 'Means by group' table; the group column of metrics.csv).",
            "Method: optimize with its defaults for a z-only generator: 8 seeded random starts per image (the best after 5% of the steps continues), Adam at a constant learning rate, MSE loss. Compare methods with `invertkit bench`.",
        ],
    )
