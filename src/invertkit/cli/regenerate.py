"""``invertkit regenerate RUN -g G --prompt P[,P...]``: regenerate the images of a diffusion inversion run
with other prompts or guidance (the edit of diffusion latents), from the run's saved states."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .edit import parse_ids
from .options import add_generator_flags, check_numbers


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regenerate",
        help="diffusion runs: regenerate inverted images with other prompts / guidance (edits)",
        description="Read latents/<name>_state.safetensors of an `invertkit invert` run with a diffusion method "
        "(or the files themselves) and sample them again with each --prompt; writes OUT/<name>_<prompt>.png.",
    )
    p.add_argument("states", nargs="+", help="run folders, latents/ folders or *_state.safetensors files")
    add_generator_flags(p)
    p.add_argument("--prompt", required=True, help="prompt names, comma-separated (null = the empty prompt)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the inversion's)")
    p.add_argument("--negative", default=None, help="negative prompt name (default: the inversion's)")
    p.add_argument("--prompt-embeds", default=None, help="a safetensors file of named prompt embeddings to add")
    p.add_argument("--ids", default=None, help="dataset runs (--format parquet): the rows to regenerate, comma-separated ids")
    p.add_argument("--out", "-o", default="runs/regenerate", help="output folder (default runs/regenerate)")
    p.set_defaults(func=run)


def diffusion_runs(items: list[str], G, ids: list[str] | None = None) -> list[tuple[str, object]]:  # noqa: ANN001
    """``(stem, one-image DiffusionInversion)`` for every image the arguments name: run folders, their
    latents/ folders, latent files or ``*_state.safetensors`` files (read with ``load_run``)."""
    from ..results import DiffusionInversion
    from ..runs import load_run

    out = []
    for item in items:
        path = Path(item)
        if path.name.endswith("_state.safetensors"):  # the state's latent file sits beside it
            path = path.with_name(path.name.removesuffix("_state.safetensors") + ".npz")
        run = load_run(path, G, ids=ids)
        if not isinstance(run.result, DiffusionInversion):
            raise ConfigError(f"{item}: a {run.result.kind} result; regenerate takes diffusion inversions "
                              "(invert with a diffusion method writes latents/<name>_state.safetensors)")
        out += [(stem, run.result.select([i])) for i, stem in enumerate(run.stems)]
    return out


def run(args: argparse.Namespace) -> int:
    from ..generators import load_generator
    from ..io.images import save_image
    from .invert import prepare_diffusion_flags

    check_numbers(args, finite=("guidance",))
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    prompts = prepare_diffusion_flags(G, args.prompt_embeds, args.prompt)
    if not prompts:
        raise ConfigError("--prompt needs at least one prompt name")
    items = diffusion_runs(args.states, G, parse_ids(args.ids))
    out = Path(args.out)
    for stem, result in items:
        for prompt in prompts:  # each image is written as soon as it exists
            image = result.render(G, prompt=prompt, guidance=args.guidance, negative=args.negative)
            save_image(image[0], out / f"{stem}_{prompt or 'null'}.png")
    print(f"wrote {len(items) * len(prompts)} image(s) to {out}")
    return 0
