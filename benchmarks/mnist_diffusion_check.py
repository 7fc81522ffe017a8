"""Quality check of the word-conditioned MNIST diffusion model (zoo: diffusion-mnist32), in numbers.

    python benchmarks/mnist_diffusion_check.py [--model diffusion-mnist32] [--shared ../shared/data]
        [--samples 100] [--attr-samples 16] [--steps 50] [--guidance 4] [--threads 2]
        [--grid docs/diffusion-mnist32.png] [--out runs/mnist_diffusion_check.json]

1. **Digits**: ``--samples`` DDIM samples (``--steps``, classifier-free guidance ``--guidance`` against
   the null prompt ``""``) of each prompt ``zero`` .. ``nine``; LeNet-5 (``../shared/data``, the
   central 28 x 28 of each 32 x 32 sample, as MNIST digits are padded for this model) says which
   digit it sees: accuracy against the prompt's digit, per digit and overall.
2. **Attributes**: for each digit, ``--attr-samples`` noise latents sampled with ``"D thin"``,
   ``"D thick"``, ``"D left"``, ``"D right"`` (the same latents for all four): mean thickness (px)
   and slant (rad) of each (``invertkit.morphometry.digit_shape``), and the share of pairs in which
   thick > thin and right > left.
3. **Inversion**: held-out MNIST test digits (indices 0-4999 were never trained on; two of each digit
   from the first ones) inverted with the prompt of their own digit: DDIM inversion (guidance 1, the
   unguided ODE) + DDIM reconstruction PSNR, and Direct Inversion (guidance ``--guidance``), whose
   reconstruction is exact; then each Direct inversion re-sampled with the next digit's word
   (``regenerate``: no attention control): how often LeNet-5's class becomes the target digit, and how
   often it leaves the source digit.

Writes a grid (rows: digits; columns: 8 samples, then thin, thick, left, right of one latent) and JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ATTRS = ["thin", "thick", "left", "right"]


def crop28(x: torch.Tensor) -> torch.Tensor:
    return x[..., 2:30, 2:30]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="diffusion-mnist32", help="zoo name or diffusers:FOLDER")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--attr-samples", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--heldout-per-digit", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", default="docs/diffusion-mnist32.png")
    ap.add_argument("--out", default="runs/mnist_diffusion_check.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import invertkit
    from invertkit.editing.classifiers import load_classifier
    from invertkit.io.images import make_grid
    from invertkit.io.samples import mnist_test
    from invertkit.methods.diffusion import regenerate
    from invertkit.morphometry import digit_shape

    shared = Path(args.shared)
    G = invertkit.load_generator(args.model)
    lenet = load_classifier(f"lenet5:{shared / 'mnist_lenet5' / 'lenet5.pth'}")
    t0 = time.time()
    report: dict = {"model": args.model, "steps": args.steps, "guidance": args.guidance, "threads": args.threads}

    def sample(prompt: str, n: int, seed: int) -> torch.Tensor:
        return G.sample(G.sample_latent(n, seed=seed), steps=args.steps, prompt=prompt, guidance=args.guidance).clamp(-1, 1)

    def classes(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return lenet(crop28(x)).argmax(1)

    # 1. digits
    per_digit, grid_rows, correct, total = {}, [], 0, 0
    for d, word in enumerate(DIGITS):
        x = sample(word, args.samples, seed=1000 + d)
        hits = int((classes(x) == d).sum())
        per_digit[word] = hits / len(x)
        correct, total = correct + hits, total + len(x)
        grid_rows.append([x[:8]])
        print(f"{word}: LeNet-5 accuracy {hits / len(x):.2f} ({time.time() - t0:.0f} s)", flush=True)
    report["digit_accuracy"] = correct / total
    report["digit_accuracy_per_digit"] = per_digit

    # 2. attributes (the same noise latents for the four attribute prompts of a digit)
    attr: dict[str, dict[str, list[float]]] = {a: {"thickness": [], "slant": []} for a in ATTRS}
    pairs = {"thick>thin": [], "right>left": []}
    for d, word in enumerate(DIGITS):
        shapes = {}
        for a in ATTRS:
            x = sample(f"{word} {a}", args.attr_samples, seed=2000 + d)
            grid_rows[d].append(x[:1])
            s = digit_shape(x)
            shapes[a] = s
            attr[a]["thickness"] += s.thickness.tolist()
            attr[a]["slant"] += s.slant.tolist()
        pairs["thick>thin"] += (shapes["thick"].thickness > shapes["thin"].thickness).tolist()
        pairs["right>left"] += (shapes["right"].slant > shapes["left"].slant).tolist()
    report["attributes"] = {a: {k: float(torch.tensor(v).nanmean()) for k, v in m.items()} for a, m in attr.items()}
    report["attribute_pairs"] = {k: sum(v) / len(v) for k, v in pairs.items()}
    print(f"attributes: {json.dumps(report['attributes'])}; pairs {report['attribute_pairs']} ({time.time() - t0:.0f} s)", flush=True)

    # 3. held-out digits: inversion, reconstruction, word swap
    x_all, y_all = mnist_test(shared / "mnist", 5000)
    x_all = torch.nn.functional.pad(x_all, (2, 2, 2, 2), value=-1.0)
    ddim_psnr, direct_psnr, to_target, left_source, n_swap = [], [], 0, 0, 0
    for d, word in enumerate(DIGITS):
        idx = torch.nonzero(y_all == d).flatten()[:args.heldout_per_digit]
        x = x_all[idx]
        ddim = invertkit.invert(G, x, "ddim", steps=args.steps, prompt=word, guidance=1.0)
        ddim_psnr += [m["psnr"] for m in ddim.metrics]
        direct = invertkit.invert(G, x, "direct", steps=args.steps, prompt=word, guidance=args.guidance)
        direct_psnr += [m["psnr"] for m in direct.metrics]
        target = (d + 1) % 10
        swapped = regenerate(G, direct, prompt=DIGITS[target])
        c = classes(swapped)
        to_target += int((c == target).sum())
        left_source += int((c != d).sum())
        n_swap += len(c)
    report["heldout_images"] = len(ddim_psnr)
    report["ddim_inversion_psnr"] = sum(ddim_psnr) / len(ddim_psnr)
    report["direct_inversion_psnr"] = sum(direct_psnr) / len(direct_psnr)
    report["word_swap_to_target"] = to_target / n_swap
    report["word_swap_left_source"] = left_source / n_swap
    report["seconds"] = round(time.time() - t0)
    print(json.dumps(report, indent=2), flush=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.grid:
        rows = [torch.cat(r) for r in grid_rows]
        Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
        make_grid(rows, scale=2).save(args.grid)
        print(f"grid: {args.grid} (rows: {', '.join(DIGITS)}; columns: 8 samples, then {', '.join(ATTRS)} of one latent)")


if __name__ == "__main__":
    main()
