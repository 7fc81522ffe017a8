"""Editing on inverted real images: InterFaceGAN digit edits judged by LeNet-5, SeFa and GANSpace strips.

    python benchmarks/editing_bench.py [--out runs/editing_bench] [--shared ../shared/data] [--digits 500]

1. MNIST (``mnist-mlp-gan``): the first ``--digits`` MNIST test digits are inverted (shipped pSp
   encoder, then ``hybrid``); for every digit class an InterFaceGAN direction in z is found from
   10,000 samples labelled by LeNet-5's decision, and each inverted digit is edited at strengths
   -3..3 sigma (7 steps). Reported per class: ``edit_flip`` (share of the digits not already of that
   class that LeNet-5 calls that class at some strength), mean first strength, slope, pixel change.
   Then, for digits 3 and 8 on the encoder's inversions, the two labelling recipes compared.
2. Faces (``dcgan-digiface64``): SeFa and GANSpace directions; an LFW face (never trained on) is
   inverted with ``hybrid`` and edited along the top three directions of each, strengths -3..3.
   Strips are written to ``OUT/strips``; per strip, ``smoothness`` = largest step between neighbouring
   frames / mean step (1 = perfectly even) and the total RMS change; plus the RMS distance between the
   SeFa and GANSpace strips of the same rank (how different the two families of edits are).
3. The same SeFa/GANSpace numbers for a random-weight 64 px StyleGAN2 (no pretrained StyleGAN2 is
   reachable offline: the numbers show the machinery, not semantics).

Prints JSON (and a markdown table for part 1).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from invertkit.editing import edit_latents, render_edits, save_directions
from invertkit.editing.classifiers import load_classifier
from invertkit.editing.editability import EditProbe, editability, parse_strengths
from invertkit.editing.ganspace import ganspace
from invertkit.editing.interfacegan import interfacegan_from_classifier
from invertkit.editing.sefa import sefa
from invertkit.generators import load_generator
from invertkit.io.images import make_grid
from invertkit.io.samples import lfw_faces, mnist_test
from invertkit.io.strips import save_strip
from invertkit.methods import invert
from invertkit.metrics import quantize

STRENGTHS = parse_strengths("-3:3", 7)


def strip_numbers(frames: torch.Tensor) -> dict[str, float]:
    """``frames [S, C, H, W]``: evenness of the steps and total change (RMS on [0, 1])."""
    q = quantize(frames)
    steps = (q[1:] - q[:-1]).square().mean((1, 2, 3)).sqrt()
    return {"smoothness": round(float(steps.max() / steps.mean().clamp_min(1e-12)), 3),
            "total_rms": round(float((q[-1] - q[0]).square().mean().sqrt()), 4)}


def mnist_part(root: Path, out: Path, n_digits: int) -> dict[str, object]:
    G = load_generator("mnist-mlp-gan", weights=root / "mnist_mlp_gan" / "generator.ckpt")
    clf = load_classifier(f"lenet5:{root / 'mnist_lenet5' / 'lenet5.pth'}")
    digits, labels = mnist_test(root / "mnist", n_digits)
    t0 = time.perf_counter()
    res = invert(G, digits, "hybrid")
    inv = {"method": "hybrid", "psnr": round(sum(m["psnr"] for m in res.metrics) / n_digits, 2),
           "seconds": round(time.perf_counter() - t0, 1)}
    rows = []
    for k in range(10):
        t0 = time.perf_counter()
        d = interfacegan_from_classifier(G, clf, target=k, n=10_000, name=f"digit {k}")
        found = time.perf_counter() - t0
        save_directions(d, out / "directions" / f"mnist-digit-{k}.safetensors")
        e = editability(G, res.latents, res.space, EditProbe(d, 0, STRENGTHS, clf, k))
        rows.append({"digit": k, "svm_accuracy": round(float(d.values[0]), 3), "seconds_to_find": round(found, 1),
                     **{key: round(v, 3) for key, v in e.items()}})
        print(json.dumps(rows[-1]), flush=True)
    # labelling recipes compared on the encoder's inversions: the classifier's decision (default) or
    # the paper's top and bottom 10% by score
    enc = invert(G, digits, "encoder")
    recipes = {}
    for k in (3, 8):
        for how in ("decision", "score"):
            d = interfacegan_from_classifier(G, clf, target=k, n=10_000, label_by=how)
            e = editability(G, enc.latents, enc.space, EditProbe(d, 0, STRENGTHS, clf, k))
            recipes[f"digit {k}, labels by {how}"] = round(e["edit_flip"], 3)
    print(json.dumps(recipes), flush=True)
    return {"inversion": inv, "digits": n_digits, "labels_seen": torch.bincount(labels, minlength=10).tolist(),
            "classes": rows, "label_recipes_on_encoder_inversions": recipes}


def strips_part(G, image: torch.Tensor, out: Path, tag: str, count: int = 3) -> dict[str, object]:
    res = invert(G, image, "hybrid") if "w" not in G.spaces else invert(G, image, "optimize", space="w", steps=150)
    found = {"sefa": sefa(G, count=count), "ganspace": ganspace(G, components=count, samples=5000)}
    report: dict[str, object] = {"inversion_psnr": round(res.metrics[0]["psnr"], 2)}
    frames = {}
    for method, d in found.items():
        save_directions(d, out / "directions" / f"{tag}-{method}.safetensors")
        for i in range(count):
            edited, space = edit_latents(G, res.latents, res.space, d, i, STRENGTHS)
            f = render_edits(G, edited, space)[0].cpu()
            frames[(method, i)] = f
            save_strip(f, out / "strips" / f"{tag}-{method}-{i}.png", labels=[f"{s:g}" for s in STRENGTHS],
                       scale=max(1, 96 // G.resolution))
            report[f"{method} {i}"] = strip_numbers(f)
    # the README's figure: the photo, then one row per direction (SeFa rows first), strengths -3..3
    keys = [(m, i) for m in ("sefa", "ganspace") for i in range(count)]
    rows = [torch.cat([image.cpu(), frames[key]]) for key in keys]
    make_grid(rows, scale=1).save(out / "strips" / f"{tag}-figure.png")
    for i in range(count):
        a, b = quantize(frames[("sefa", i)]), quantize(frames[("ganspace", i)])
        report[f"sefa vs ganspace {i} (rms)"] = round(float((a - b).square().mean().sqrt()), 4)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/editing_bench")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--digits", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-mnist", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root, out = Path(args.shared), Path(args.out)
    report: dict[str, object] = {}
    if not args.skip_mnist:
        report["mnist"] = mnist_part(root, out, args.digits)
        rows = report["mnist"]["classes"]
        cols = ["digit", "edit_flip", "edit_reach", "edit_strength", "edit_slope", "edit_change", "svm_accuracy"]
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    D = load_generator("dcgan-digiface64")
    report["dcgan"] = strips_part(D, lfw_faces([3], 64, 3), out, "dcgan-lfw3")
    print(json.dumps(report["dcgan"]), flush=True)
    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    S = StyleGAN2Generator(StyleGAN2Config(img_resolution=64, z_dim=128, w_dim=128, channel_base=2048, channel_max=128),
                           name="random-sg2-64", init_seed=0)
    face = lfw_faces([3], 64, 3)
    report["stylegan2_random"] = strips_part(S, face, out, "sg2-random")
    print(json.dumps(report, indent=1))
    (out / "editing_bench.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
