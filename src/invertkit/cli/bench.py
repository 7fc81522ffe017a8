"""``invertkit bench``: several methods on the same images; one table, one page."""

from __future__ import annotations

import argparse

import torch

from ..errors import ImageError
from .align import add_align_flags, align_file, check_align_flags
from .edit import allow_negative_values
from .options import add_generator_flags, check_numbers


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="compare inversion methods on the same images (table, plot, grids)",
        description="Run several inversion methods on the same images with the same metric protocol and compare them.\n"
        "Writes OUT/bench.md, bench.csv and bench.json (one row per method: PSNR, SSIM, perceptual and the\n"
        "extra metrics, seconds and generator evaluations per image; with --edit-* the editability columns),\n"
        "OUT/bench.html (the table, a quality-versus-time plot, one grid of reconstructions per method) and\n"
        "each method's full run folder, OUT/<method>/.",
        epilog="examples:\n"
        "  invertkit bench -g dcgan-digiface64 --images runs/faces/bench --methods encoder,hybrid,optimize:z --out runs/bench\n"
        "  invertkit bench -g stylegan2-faces32 --images photos/ --methods \"optimize:w,optimize:w+@steps=500\" --metrics nscd",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generator_flags(p)
    p.add_argument("--images", nargs="+", required=True, help="image files or folders")
    p.add_argument("--methods", default="auto", help="comma-separated specs name[:space][@key=value;...], e.g. optimize:w,optimize:w+,cma:z,plain,"
                   "optimize:z@restarts=8;loss=mse=1+perceptual=0.1 (default auto: every encoder-based method with a shipped or "
                   "installed model for the generator (encoder, restyle, fs-encoder, hyperstyle, hybrid, pti), then optimize)")
    p.add_argument("--steps", type=int, default=None, help="steps for every method that has them (generations for cma/basincma)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", default=None, help="loss for every method that takes one, e.g. mse=1,perceptual=1")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N images")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--metrics", default="perceptual", help="extra metrics (default perceptual; lpips when its weights are present; "
                   "nscd: LSAP's NSCD of the latents, StyleGAN2 generators)")
    p.add_argument("--edit-direction", default=None, metavar="FILE[:INDEX]",
                   help="also measure editability: move every method's latents along this direction (from `invertkit directions`)")
    p.add_argument("--edit-classifier", default=None, help="classifier judging the edit, e.g. lenet5 or lenet5:PATH (flip rate, slope)")
    p.add_argument("--edit-target", type=int, default=None, help="class the edit should move images to (with --edit-classifier)")
    p.add_argument("--edit-strength", default="-3:3", help="strength range A:B or values a,b,c (default -3:3)")
    p.add_argument("--edit-steps", type=int, default=7, help="strengths in the range (default 7)")
    p.add_argument("--edit-layers", default="default", help="W+ rows to edit (default: the direction file's)")
    p.add_argument("--edit-units", default="sigma", choices=["sigma", "raw"], help="strength unit (default sigma: one std of G's latents)")
    p.add_argument("--edit-residual", default="auto", choices=["auto", "aligned", "raw"],
                   help="fs-encoder: feature residual aligned to the edit (auto: when its encoder has an aligner) or re-added raw")
    p.add_argument("--prompt", default=None, help="diffusion models: prompt embedding name for every method (default the empty prompt)")
    p.add_argument("--guidance", type=float, default=None, help="diffusion models: classifier-free guidance scale for every method")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"], help="diffusion models: compute dtype for every method")
    p.add_argument("--prompt-embeds", default=None, help="diffusion models: a safetensors file of named prompt embeddings to add")
    p.add_argument("--edit-prompt", default="", help="diffusion models: also regenerate every inversion with these prompts "
                   "(comma-separated) and report edit_psnr / edit_change columns")
    p.add_argument("--edit-guidance", type=float, default=None, help="diffusion models: guidance of those edits (default each method's)")
    p.add_argument("--out", "-o", default="runs/bench")
    add_align_flags(p, paste_back=False)
    p.add_argument("--no-progress", action="store_true", help="no per-step progress (bar on a terminal, plain lines otherwise)")
    p.add_argument("--no-warmup", action="store_true", help="time each method from its first call (by default each method "
                   "first runs once, untimed, on the first batch with a step budget of one or two)")
    allow_negative_values(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_bench
    from ..generators import load_generator
    from ..io.filenames import display_name, distinct_names
    from ..io.images import read_image
    from ..metrics.requested import check_extra_metrics
    from ..progress.terminal import terminal_reporter
    from .invert import check_inputs_exist, expand_inputs, metric_names, prepare_diffusion_flags

    check_inputs_exist(args.images)  # before the generator loads
    check_numbers(args, at_least={"batch_size": 1, "max_images": 1, "steps": 1}, finite=("guidance", "edit_guidance"))
    check_align_flags(args)  # a missing extra is one line before the generator loads
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    extra = check_extra_metrics(G, metric_names(args.metrics))  # nscd without style spaces: refused before any work
    edit_prompts = prepare_diffusion_flags(G, args.prompt_embeds, args.edit_prompt)
    if args.methods.strip() == "auto":
        from ..bench import default_methods

        methods = default_methods(G)
        print(f"invertkit bench: methods {','.join(methods)} (--methods auto)", flush=True)
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    paths = expand_inputs(args.images)[: args.max_images]
    tensors, names, failed = [], [], 0
    distinct = distinct_names(paths)  # s1/1.pgm and s2/1.pgm are two rows, not one name twice
    for p, name in zip(paths, distinct):
        try:
            if args.align:
                tensors.append(align_file(p, G.resolution, G.channels, face=args.face, max_pixels=None).image)
            else:
                tensors.append(read_image(p, G.resolution, G.channels))
            names.append(display_name(name))
        except ImageError as exc:
            failed += 1
            print(f"invertkit: skipped {exc}")
    if not tensors:
        raise ImageError("no readable images for the bench")
    common = {"seed": args.seed}
    if args.steps is not None:
        common["steps"] = args.steps
    if args.loss:
        common["loss"] = args.loss
    common.update({k: v for k in ("prompt", "guidance", "dtype") if (v := getattr(args, k)) is not None})
    from ..metrics import LATENT_METRICS, available_metrics

    # image metrics whose weight files are absent here are left out; latent metrics need none
    extra = tuple(m for m in extra if m in LATENT_METRICS or m in available_metrics())
    rows = run_bench(
        G, torch.cat(tensors).to(G.device), names, methods, args.out,
        common=common, batch_size=args.batch_size, extra_metrics=extra, progress=lambda s: print(f"bench: {s}", flush=True),
        reporter=terminal_reporter(not args.no_progress), warmup=not args.no_warmup,
        edit=edit_probe(args, G), edit_prompts=edit_prompts, edit_guidance=args.edit_guidance,
    )
    print((open(f"{args.out}/bench.md").read()))
    diverged = [f"{r['method']} ({r['diverged']} image(s))" for r in rows if r.get("diverged")]
    if diverged:
        print(f"invertkit: diverged, not ranked: {', '.join(diverged)}")
    print(f"wrote {args.out}/bench.html, bench.md, bench.csv, bench.json ({len(rows)} methods, {len(names)} images)")
    return 1 if failed or diverged else 0


def edit_probe(args: argparse.Namespace, G):  # noqa: ANN001, ANN201 - Generator in, EditProbe or None out
    """The bench's edit probe from the ``--edit-*`` flags (None without ``--edit-direction``)."""
    from ..errors import ConfigError

    if args.edit_direction is None:
        if args.edit_classifier or args.edit_target is not None:
            raise ConfigError("--edit-classifier/--edit-target need --edit-direction FILE[:INDEX] (find one with `invertkit directions`)")
        return None
    from ..editing.classifiers import load_classifier
    from ..editing.directions import load_directions
    from ..editing.editability import EditProbe, parse_strengths
    from .edit import parse_direction_spec

    path, indices = parse_direction_spec(args.edit_direction)
    if indices is not None and len(indices) > 1:
        raise ConfigError(f"--edit-direction {args.edit_direction}: the bench measures one direction; give FILE:INDEX")
    index = indices[0] if indices else 0
    directions = load_directions(path, G)
    directions.select(index)  # range check with a clear message
    classifier = load_classifier(args.edit_classifier, device=G.device) if args.edit_classifier else None
    if classifier is not None and args.edit_target is None:
        raise ConfigError("--edit-classifier needs --edit-target K, the class the edit should reach")
    return EditProbe(directions, index, parse_strengths(args.edit_strength, args.edit_steps), classifier,
                     args.edit_target, args.edit_layers, args.edit_units, residual=args.edit_residual)
