"""Write the real MNIST digits the shipped mnist-mlp-gan fs encoder trains on as PNG files.

    python benchmarks/export_mnist.py [--shared ../shared/data] [--out runs/mnist] [--test N] [--no-train]

Only the MNIST *test* set is at hand offline (``../shared/data/mnist``), so it is split: digits
5000-9999 go to ``OUT/train`` (``--images`` of ``invertkit train-encoder``); digits 0-4999 stay unseen,
and every MNIST benchmark and test reads its digits from the start of the set (``mnist_test(root, n)``
with n <= 5000). ``--test N`` also writes the first N of those unseen digits to ``OUT/test`` (the
README's examples invert them), as ``mnist-INDEX-LABEL.png``, 28 x 28 greyscale; ``--no-train`` leaves
out the 5000 training digits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from invertkit.io.images import save_image
from invertkit.io.samples import mnist_test

FIRST_TRAINING_DIGIT = 5000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="runs/mnist")
    ap.add_argument("--test", type=int, default=0, metavar="N",
                    help=f"also write the first N unseen test digits to OUT/test (N <= {FIRST_TRAINING_DIGIT})")
    ap.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                    help="write the training digits to OUT/train (default yes)")
    args = ap.parse_args()
    if not 0 <= args.test <= FIRST_TRAINING_DIGIT:
        ap.error(f"--test {args.test}: must be between 0 and {FIRST_TRAINING_DIGIT} (later digits are training digits)")
    digits, labels = mnist_test(Path(args.shared) / "mnist")
    if args.test:
        test = Path(args.out) / "test"
        test.mkdir(parents=True, exist_ok=True)
        for i in range(args.test):
            save_image(digits[i], test / f"mnist-{i:05d}-{int(labels[i])}.png")
        print(f"wrote {test} ({args.test} unseen digits, test digits 0-{args.test - 1})")
    if not args.train:
        return
    out = Path(args.out) / "train"
    out.mkdir(parents=True, exist_ok=True)
    for i in range(FIRST_TRAINING_DIGIT, digits.shape[0]):
        save_image(digits[i], out / f"mnist-{i:05d}-{int(labels[i])}.png")
    print(f"wrote {out} ({digits.shape[0] - FIRST_TRAINING_DIGIT} digits, test digits {FIRST_TRAINING_DIGIT}-{digits.shape[0] - 1})")


if __name__ == "__main__":
    main()
