"""``invertkit train-encoder --generator G --arch psp --out DIR``: train (or resume) an encoder."""

from __future__ import annotations

import argparse
import dataclasses

from .options import add_generator_flags, add_options_flags, given_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..encoders.train import TrainOptions

    p = sub.add_parser(
        "train-encoder",
        help="train a pSp / e4e / ReStyle encoder for a generator (resumes an interrupted run in --out)",
        description="Train an encoder on images the generator draws (true latents known), optionally mixed "
        "with a folder of real images. Writes DIR/encoder.safetensors at every checkpoint, a training log, "
        "sample grids and the state to resume from: run the same command again to continue.",
    )
    add_generator_flags(p)
    p.add_argument("--out", "-o", required=True, help="run folder (created; an interrupted run there is resumed)")
    p.add_argument("--install", action="store_true",
                   help="copy the finished encoder into the invertkit cache so --encoder auto finds it for this generator")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_options_flags(p, {"train-encoder": TrainOptions})
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..encoders.shipped import encoder_candidates
    from ..encoders.train import TrainOptions, train_encoder
    from ..generators import load_generator

    options = TrainOptions(**given_options(args, "train-encoder", {"train-encoder": {f.name for f in dataclasses.fields(TrainOptions)}}))
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    torch.manual_seed(options.seed)
    path = train_encoder(G, args.out, options, progress=not args.no_progress, log=print)
    print(f"wrote {path} (training log {args.out}/log.jsonl, samples in {args.out}/samples)")
    if args.install:
        from ..encoders.files import copy_encoder

        dest = encoder_candidates(G.name, options.arch)[0]
        copy_encoder(path, dest)  # a bootstrapped ReStyle encoder takes its bootstrap along
        print(f"installed as {dest}: --encoder auto now finds it for {G.name}")
    return 0
