"""A hyperstyle network for dcgan-digiface64 against its own pivots and the shipped encoders.

The shipped network refines the shipped fs encoder's layerwise pivots (latent plus a residual of the
16x16 features; its training command is in the Makefile's ``encoders`` target):

    invertkit train-encoder -g dcgan-digiface64 --arch hyperstyle \\
        --bootstrap src/invertkit/encoders/weights/dcgan-digiface64/fs.safetensors --out runs/encoders/dcgan-hyperstyle \\
        --steps 1000 --batch 16 --iterations 2 --rank 8 --max-width 128 --lr 5e-4 --perceptual-weight 0 \\
        --images "../shared/data/orl_faces/s[234]?,runs/faces/train/lfw" --real-fraction 0.3
    python benchmarks/hyperstyle_bench.py [runs/encoders/dcgan-hyperstyle/encoder.safetensors] [--shared ../shared/data]

(A network on the pSp pivot: ``--bootstrap .../psp.safetensors``.) Without a file it benchmarks the
shipped one. Mean PSNR on faces the generator draws from seeds 0-63, LFW faces 0-49 and photo 1 of
ORL subjects 1-19 (none seen in training; see benchmarks/encoder_bench.py): the pivot, hyperstyle
after each pass, the shipped fs-encoder and ReStyle for reference, and (for a pSp-pivot network)
hyperstyle on ReStyle's latents (``pivot=restyle``). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from invertkit.encoders.files import load_encoder
from invertkit.encoders.shipped import find_encoder
from invertkit.generators import load_generator
from invertkit.io.samples import lfw_faces
from invertkit.methods import invert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_bench import orl_faces  # noqa: E402


def mean(res, key: str) -> float:
    return round(sum(m[key] for m in res.metrics) / len(res.metrics), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hypernet", nargs="?", default=None, help="hyperstyle network file (default: the shipped one)")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = load_generator("dcgan-digiface64")
    hypernet = args.hypernet or str(find_encoder(G, ("hyperstyle",)))
    pivot_arch = load_encoder(hypernet).start_encoder.config.arch
    with torch.no_grad():
        drawn = G.synthesize(torch.cat([G.sample_latent(1, "z", seed=s) for s in range(64)]), "z").clamp(-1, 1)
    sets = (("drawn_seeds_0_63", drawn), ("lfw_0_49", lfw_faces(list(range(50)), 64, 3)),
            ("orl_1_19", orl_faces(Path(args.shared), range(1, 20), 64, 3)[0]))
    report = {"hypernet": hypernet, "pivot": pivot_arch}
    for name, x in sets:
        hs = invert(G, x, "hyperstyle", hypernet=hypernet)
        row = {f"{pivot_arch}_pivot": mean(hs, "psnr_pivot"), "hyperstyle": mean(hs, "psnr"), "iterations": hs.config["iterations"],
               "per_pass": [round(float(v), 2) for v in hs.history["psnr"].mean(1)],
               "improved_images": sum(m["psnr"] > m["psnr_pivot"] for m in hs.metrics), "images": x.shape[0],
               "seconds_per_image": round(hs.timings.seconds / x.shape[0], 4)}
        row["fs_encoder"] = mean(invert(G, x, "fs-encoder"), "psnr")
        row["restyle"] = mean(invert(G, x, "restyle"), "psnr")
        if pivot_arch != "fs":
            row["hyperstyle_on_restyle"] = mean(invert(G, x, "hyperstyle", hypernet=hypernet, pivot="restyle"), "psnr")
        report[name] = row
        print(name, row, flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
