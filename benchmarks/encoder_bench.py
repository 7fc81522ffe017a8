"""Encoders against optimisation and PTI on dcgan-digiface64 (and the MNIST MLP GAN).

    python benchmarks/encoder_bench.py [--out runs/encoder_bench] [--shared ../shared/data] [--quick]

1. Encoder quality alone (PSNR, mean over images) on faces the generator draws from seeds it was not
   trained on (seeds 0..255; training draws from its own stream), on LFW faces 0-49 of the subset
   scikit-image ships and on photo 1 of ORL subjects 1-19 (the shipped encoders were fine-tuned with
   LFW 50-99 and ORL 20-40: see benchmarks/export_faces.py); the same for MNIST test digits. The
   feature-space encoder (``fs-encoder``, ``--fs-encoder``: a file, or auto for the shipped one) is
   scored on the DCGAN, and skipped when there is none; on MNIST the shipped one (a vector residual
   of the MLP's last hidden layer) when it is there.
2. The method comparison of the README: ``invertkit bench`` with encoder, restyle, (fs-encoder when
   one is shipped,) hybrid, pti and optimize:z on 17 real faces (astronaut, LFW 0-7, ORL subjects 1-8 photo 1), written to
   ``OUT/faces/`` (bench.md, bench.html ...). The face images are also saved to ``OUT/faces_images``
   so the same table can be made with the command line.

Prints JSON with the numbers of part 1 and the bench rows of part 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from invertkit.bench import run_bench
from invertkit.encoders.shipped import find_encoder
from invertkit.generators import load_generator
from invertkit.io.images import read_images, save_image
from invertkit.io.samples import astronaut_face, lfw_faces, mnist_test
from invertkit.methods import invert


def orl_faces(root: Path, subjects: range, size: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    paths = [root / "orl_faces" / f"s{s}" / "1.pgm" for s in subjects]
    return read_images(paths, size, channels).images, [f"orl-s{s}" for s in subjects]


def mnist_digits(root: Path, n: int) -> torch.Tensor:
    return mnist_test(root / "mnist", n)[0]


def mean_psnr(G, images: torch.Tensor, method: str, **kw) -> dict[str, float]:
    res = invert(G, images, method, **kw)
    vals = [m["psnr"] for m in res.metrics]
    return {"psnr": round(float(np.mean(vals)), 2), "seconds_per_image": round(res.timings.seconds / len(vals), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/encoder_bench")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="part 1 only")
    ap.add_argument("--fs-encoder", default="auto", help="fs encoder file for fs-encoder (auto: the installed or shipped one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root, out = Path(args.shared), Path(args.out)
    report: dict[str, object] = {}

    G = load_generator("dcgan-digiface64")
    with torch.no_grad():
        drawn = G.synthesize(torch.cat([G.sample_latent(1, "z", seed=s) for s in range(256)]), "z").clamp(-1, 1)
    lfw = lfw_faces(list(range(50)), 64, 3)
    orl, _ = orl_faces(root, range(1, 20), 64, 3)
    fs = args.fs_encoder != "auto" or find_encoder(G, ("fs",)) is not None
    for method in ("encoder", "restyle") + (("fs-encoder",) if fs else ()):
        kw = {"encoder": args.fs_encoder} if method == "fs-encoder" else {}
        report[f"dcgan/{method}"] = {name: mean_psnr(G, x, method, **kw) for name, x in
                                     (("drawn_unseen_seeds", drawn), ("lfw_0_49", lfw), ("orl_1_19", orl))}
    print(json.dumps(report), flush=True)

    M = load_generator("mnist-mlp-gan", weights=root / "mnist_mlp_gan" / "generator.ckpt")
    digits = mnist_digits(root, 256)
    with torch.no_grad():
        drawn_digits = M.synthesize(torch.cat([M.sample_latent(1, "z", seed=s) for s in range(256)]), "z").clamp(-1, 1)
    for method in ("encoder", "restyle") + (("fs-encoder",) if find_encoder(M, ("fs",)) is not None else ()):
        report[f"mnist/{method}"] = {name: mean_psnr(M, x, method) for name, x in
                                     (("drawn_unseen_seeds", drawn_digits), ("mnist_test_256", digits))}
    print(json.dumps(report), flush=True)
    if args.quick:
        return

    orl8, orl_names = orl_faces(root, range(1, 9), 64, 3)
    faces = torch.cat([astronaut_face(64, 3), lfw_faces(list(range(8)), 64, 3), orl8])
    names = ["astronaut"] + [f"lfw-{i}" for i in range(8)] + orl_names
    for img, name in zip(faces, names, strict=True):
        save_image(img, out / "faces_images" / f"{name}.png")
    shipped_fs = ["fs-encoder"] if find_encoder(G, ("fs",)) is not None else []
    rows = run_bench(G, faces, names, ["encoder", "restyle", *shipped_fs, "hybrid", "pti", "optimize:z"], out / "faces",
                     batch_size=17, extra_metrics=("perceptual",), progress=lambda s: print(f"bench: {s}", flush=True))
    report["faces_bench"] = rows
    print((out / "faces" / "bench.md").read_text())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
