"""Whole photographs inverted with a centre crop vs with FFHQ-style face alignment (`--align`).

    python benchmarks/align_psnr.py [--generator dcgan-digiface64] [--steps 200] [--shared ../shared/data] [--out runs/align]

Photos: scikit-image's astronaut (512 x 512, the whole portrait) and photo 1 of ORL subjects 1-8
(92 x 112 greyscale head-and-shoulders frames), written to OUT/photos. Runs ``invertkit invert`` twice on
them (same method, steps, seed), once plain (centre crop) and once with ``--align --paste-back``, and
prints each image's PSNR (each against its own target: the centre crop or the aligned crop, at the
generator's resolution). Needs the [align] extra.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

from PIL import Image
from skimage import data

from invertkit.cli.main import main as invertkit


def _psnr(run: Path) -> dict[str, float]:
    with open(run / "metrics.csv", newline="") as f:
        return {r["image"]: float(r["psnr"]) for r in csv.DictReader(f) if r.get("status", "ok") == "ok"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", "-g", default="dcgan-digiface64")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="runs/align")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    for s in range(1, 9):
        shutil.copy(Path(args.shared) / "orl_faces" / f"s{s}" / "1.pgm", photos / f"orl-s{s}.pgm")
    files = sorted(str(p) for p in photos.iterdir())
    common = ["-g", args.generator, "--steps", str(args.steps), "--batch-size", "9", "--threads", str(args.threads), "--no-progress"]
    for name, extra in (("crop", []), ("aligned", ["--align", "--paste-back"])):
        run = out / f"{args.generator}-{name}"
        if run.exists():
            shutil.rmtree(run)
        code = invertkit(["invert", *files, *common, *extra, "--out", str(run)])
        if code:
            raise SystemExit(code)
    crop, aligned = _psnr(out / f"{args.generator}-crop"), _psnr(out / f"{args.generator}-aligned")
    print(f"\n{'image':<16} {'centre crop':>12} {'--align':>8}   (PSNR dB, {args.generator}, {args.steps} steps)")
    for k in crop:
        print(f"{k:<16} {crop[k]:>12.2f} {aligned.get(k, float('nan')):>8.2f}")
    mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
    print(f"{'mean':<16} {mean(crop):>12.2f} {mean(aligned):>8.2f}")


if __name__ == "__main__":
    main()
