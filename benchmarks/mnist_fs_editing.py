"""Reconstruction and editability of MNIST inversions: the latent-only encoders (pSp, ReStyle) against
the feature-space (fs) encoder of mnist-mlp-gan.

    python benchmarks/mnist_fs_editing.py [--shared ../shared/data] [--out runs/mnist_fs_editing]
        [--digits 500] [--fs auto|FILE[,FILE...]]

The first ``--digits`` MNIST test digits (never trained on: the shipped fs encoder saw digits
5000-9999 only, see benchmarks/export_mnist.py) are inverted by each method. Reported per method: mean
PSNR (dB) and, for each digit class k, ``edit_flip`` of an InterFaceGAN direction for k in z (found
from 10,000 samples labelled by LeNet-5's decision, as in benchmarks/editing_bench.py part 1): the
share of the digits LeNet-5 does not call k at strength 0 that it calls k at some strength of -3..3
sigma (7 steps). The fs inversions are edited the way ``invertkit edit`` edits them
(``editing.apply.render_layer_edits``): the edited latent's features plus the inversion's residual.
``fs latent only`` edits the fs encoder's latent without its residual (what the residual costs).

The bar of the issue: the fs encoder's mean flip rate is at least 90% of pSp's. Prints JSON, then
markdown tables; writes ``OUT/mnist_fs_editing.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from invertkit.editing import EditProbe, load_directions, parse_strengths, result_editability, save_directions
from invertkit.editing.classifiers import load_classifier
from invertkit.editing.editability import edit_frames, frame_records, summarize
from invertkit.editing.interfacegan import interfacegan_from_classifier
from invertkit.generators import load_generator
from invertkit.io.samples import mnist_test
from invertkit.methods import invert

STRENGTHS = parse_strengths("-3:3", 7)


def directions(G, clf, out: Path) -> list:  # noqa: ANN001
    """One InterFaceGAN z direction per digit class, found once and cached in ``out``."""
    found = []
    for k in range(10):
        path = out / f"mnist-digit-{k}.safetensors"
        if path.is_file():
            found.append(load_directions(path, G))
        else:
            d = interfacegan_from_classifier(G, clf, target=k, n=10_000, name=f"digit {k}")
            save_directions(d, path)
            found.append(d)
    return found


def flips(G, res, dirs, clf, *, keep_residual: bool = True) -> list[float]:  # noqa: ANN001
    """``edit_flip`` for each digit class of an inversion result's edits."""
    out = []
    for k, d in enumerate(dirs):
        probe = EditProbe(d, 0, STRENGTHS, clf, k)
        if keep_residual:  # the result as `invertkit edit` renders it (fs: with its residual)
            e = result_editability(G, res, probe, perceptual_change=False)
        else:  # the latent alone
            e = summarize([frame_records(edit_frames(G, res.latents, res.latent_space, probe), probe, perceptual_change=False)])
        out.append(e["edit_flip"])
    return out


def evaluate(G, digits, dirs, clf, method: str, **kw) -> dict:  # noqa: ANN001
    t0 = time.perf_counter()
    res = invert(G, digits, method, **kw)
    seconds = time.perf_counter() - t0
    row = {"method": method, **({"encoder": kw["encoder"]} if "encoder" in kw else {}),
           "psnr": round(sum(m["psnr"] for m in res.metrics) / len(res.metrics), 2),
           "ms_per_image": round(1000 * res.timings.seconds / digits.shape[0], 3), "seconds": round(seconds, 2)}
    per_class = flips(G, res, dirs, clf)
    row["flip"] = [round(f, 3) for f in per_class]
    row["flip_mean"] = round(sum(per_class) / 10, 3)
    if res.layer_state is not None:
        alone = flips(G, res, dirs, clf, keep_residual=False)
        with torch.no_grad():
            plain = G.synthesize(res.latents, res.latent_space)
        from invertkit.metrics import psnr

        row["latent_only"] = {"psnr": round(float(psnr(plain, digits).mean()), 2),
                              "flip": [round(f, 3) for f in alone], "flip_mean": round(sum(alone) / 10, 3)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="runs/mnist_fs_editing")
    ap.add_argument("--digits", type=int, default=500)
    ap.add_argument("--fs", default="auto", help="fs encoder file(s), comma-separated, or auto: the shipped one")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.digits > 5000:
        ap.error("--digits: at most 5000 (test digits 5000-9999 train the shipped fs encoder)")
    torch.set_num_threads(args.threads)
    root, out = Path(args.shared), Path(args.out)
    G = load_generator("mnist-mlp-gan", weights=root / "mnist_mlp_gan" / "generator.ckpt")
    clf = load_classifier(f"lenet5:{root / 'mnist_lenet5' / 'lenet5.pth'}")
    digits, labels = mnist_test(root / "mnist", args.digits)
    dirs = directions(G, clf, out / "directions")
    rows = [evaluate(G, digits, dirs, clf, "encoder"), evaluate(G, digits, dirs, clf, "restyle")]
    for path in args.fs.split(","):
        rows.append(evaluate(G, digits, dirs, clf, "fs-encoder", encoder=path))
    for r in rows:
        print(json.dumps(r), flush=True)
    base = rows[0]["flip_mean"]
    report = {"digits": args.digits, "labels_seen": torch.bincount(labels, minlength=10).tolist(), "rows": rows,
              "fs_flip_over_psp": [round(r["flip_mean"] / base, 3) for r in rows[2:]]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "mnist_fs_editing.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print("| method | PSNR (dB) | mean flip | flip / pSp's | " + " | ".join(str(k) for k in range(10)) + " |")
    print("|" + "---|" * 14)
    def line(name: str, psnr: float, fl: list[float], mean: float) -> None:
        print(f"| {name} | {psnr} | {mean} | {mean / base:.2f} | " + " | ".join(f"{f:.2f}" for f in fl) + " |")
    for r in rows:
        name = r["method"] + (" (shipped)" if r.get("encoder") == "auto" else f" ({r['encoder']})" if "encoder" in r else "")
        line(name, r["psnr"], r["flip"], r["flip_mean"])
        if "latent_only" in r:
            lo = r["latent_only"]
            line(name + ", latent only", lo["psnr"], lo["flip"], lo["flip_mean"])


if __name__ == "__main__":
    main()
