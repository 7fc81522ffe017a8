"""Pseudo-labels for training an encoder on real images (``train-encoder --real-latents FILE``): invert
every image that an ``--images`` spec loads, and its mirror image, once with a slow method, and save the
latents in the spec's order.

    python benchmarks/real_latents.py -g dcgan-digiface64 --images SPEC --out FILE [--method hybrid]

Repeated images (a spec may list a folder several times to weight it) are inverted once. The mean PSNR
of the inversions is printed.
"""

from __future__ import annotations

import argparse
import time

import torch

from invertkit.encoders.data import save_real_latents
from invertkit.encoders.train import load_real_images
from invertkit.generators import load_generator
from invertkit.methods import invert


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-g", "--generator", default="dcgan-digiface64")
    ap.add_argument("--images", required=True, help="the --images spec of the training run")
    ap.add_argument("--out", required=True, help="the safetensors file to write")
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    G = load_generator(args.generator)
    images = load_real_images(args.images, G)
    unique, index = torch.unique(images.flatten(1), dim=0, return_inverse=True)
    unique = unique.view(-1, *images.shape[1:])
    start = time.perf_counter()
    found = []
    for mirror in (False, True):
        x = unique.flip(-1) if mirror else unique
        parts, scores = [], []
        for i in range(0, x.shape[0], args.batch):
            r = invert(G, x[i:i + args.batch], args.method, image_ids=list(range(i, min(i + args.batch, x.shape[0]))))
            parts.append(r.latents.detach().cpu())
            scores += [m["psnr"] for m in r.metrics]
        found.append(torch.cat(parts)[index])
        print(f"{'mirrored' if mirror else 'plain'}: {x.shape[0]} images, mean PSNR {sum(scores) / len(scores):.2f} dB "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    save_real_latents(args.out, found[0], found[1])
    print(f"wrote {args.out}: {images.shape[0]} images ({unique.shape[0]} distinct), {r.space} latents")


if __name__ == "__main__":
    main()
