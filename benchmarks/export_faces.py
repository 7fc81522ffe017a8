"""Write the real faces used to train and to test the shipped dcgan-digiface64 encoders as PNG files.

    python benchmarks/export_faces.py [--shared ../shared/data] [--out runs/faces]

- ``OUT/train/lfw``: LFW faces 50-99 of the subset scikit-image ships (25 x 25 greyscale).
  Training also reads ORL subjects 20-40 straight from ``../shared/data/orl_faces``.
- ``OUT/test/lfw``: LFW faces 0-49, and ``OUT/test/orl``: photo 1 of ORL subjects 1-19: never seen
  in training. The README's method bench uses the astronaut, LFW 0-7 and ORL 1-8 (``OUT/bench``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from invertkit.io.images import read_image, save_image
from invertkit.io.samples import astronaut_face, lfw_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="runs/faces")
    args = ap.parse_args()
    out, orl = Path(args.out), Path(args.shared) / "orl_faces"
    faces = data.lfw_subset()[:100]  # (100, 25, 25) in [0, 1]
    for i, face in enumerate(faces):
        split = "train" if i >= 50 else "test"
        path = out / split / "lfw" / f"lfw-{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(np.round(face * 255).astype(np.uint8)).save(path)
    for s in range(1, 20):
        save_image(read_image(orl / f"s{s}" / "1.pgm", 64, 1)[0], out / "test" / "orl" / f"orl-s{s:02d}.png")
    bench = [("astronaut", astronaut_face(64, 3)[0])] + [(f"lfw-{i}", lfw_faces([i], 64, 3)[0]) for i in range(8)]
    bench += [(f"orl-s{s}", read_image(orl / f"s{s}" / "1.pgm", 64, 3)[0]) for s in range(1, 9)]
    for name, img in bench:
        save_image(img, out / "bench" / f"{name}.png")
    print(f"wrote {out}/train/lfw (50), {out}/test/lfw (50), {out}/test/orl (19), {out}/bench (17)")


if __name__ == "__main__":
    main()
