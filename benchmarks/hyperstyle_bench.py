"""A hyperstyle network for dcgan-digiface64 against its pSp pivot and the shipped ReStyle encoder.

    invertkit train-encoder -g dcgan-digiface64 --arch hyperstyle \\
        --bootstrap src/invertkit/encoders/weights/dcgan-digiface64/psp.safetensors --out runs/hyperstyle \\
        --steps 450 --batch 8 --iterations 3 --lr 0.0005 --perceptual-weight 0 --augment --real-fraction 0.3 \\
        --images LFW_50_99_FOLDER,../shared/data/orl_faces/s[234]? --eval-images 32
    python benchmarks/hyperstyle_bench.py runs/hyperstyle/encoder.safetensors [--shared ../shared/data]

Mean PSNR on faces the generator draws from seeds 0-63, LFW faces 0-49 and photo 1 of ORL subjects
1-19 (none seen in training; see benchmarks/encoder_bench.py): the pSp pivot, hyperstyle after each
pass, ReStyle, and hyperstyle on ReStyle's latents (``pivot=restyle``). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from invertkit.generators import load_generator
from invertkit.io.samples import lfw_faces
from invertkit.methods import invert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_bench import orl_faces  # noqa: E402


def mean(res, key: str) -> float:
    return round(sum(m[key] for m in res.metrics) / len(res.metrics), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hypernet")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = load_generator("dcgan-digiface64")
    with torch.no_grad():
        drawn = G.synthesize(torch.cat([G.sample_latent(1, "z", seed=s) for s in range(64)]), "z").clamp(-1, 1)
    sets = (("drawn_seeds_0_63", drawn), ("lfw_0_49", lfw_faces(list(range(50)), 64, 3)),
            ("orl_1_19", orl_faces(Path(args.shared), range(1, 20), 64, 3)[0]))
    report = {}
    for name, x in sets:
        hs = invert(G, x, "hyperstyle", hypernet=args.hypernet)
        rs = invert(G, x, "restyle")
        on_rs = invert(G, x, "hyperstyle", hypernet=args.hypernet, pivot="restyle")
        report[name] = {"psp_pivot": mean(hs, "psnr_pivot"), "hyperstyle": mean(hs, "psnr"), "iterations": hs.config["iterations"],
                        "per_pass": [round(float(v), 2) for v in hs.history["psnr"].mean(1)],
                        "restyle": mean(rs, "psnr"), "hyperstyle_on_restyle": mean(on_rs, "psnr"),
                        "seconds_per_image": round(hs.timings.seconds / x.shape[0], 4)}
        print(name, report[name], flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
