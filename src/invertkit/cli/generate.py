"""``invertkit generate G --seeds 0-7``: draw images from seeds (truncation, noise mode, class label),
or render a saved latent (``--latent``), optionally with a pti run's tuned weights (``--delta``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..diffusion.model import DiffusionModel
from ..errors import ConfigError
from ..generators.capabilities import StyleSpaces
from ..results import LatentInversion
from .options import add_generator_args, check_numbers, parse_seeds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="draw images from seeds, e.g. to check a converted checkpoint",
                       description="Draw images from a generator: one per seed, or from saved latents (--latent; a run "
                       "folder, its latents/ or a .npz), optionally through a PTI weight delta (--delta). Writes PNG files "
                       "and a grid to --out. Example: invertkit generate diffusion-faces32 --seeds 0-7 --prompt drawing")
    add_generator_args(p)
    p.add_argument("--seeds", default="0-7", help="seeds, e.g. 0-7,42 (default 0-7)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi for StyleGAN2 (default 1.0)")
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"], help="StyleGAN2 noise (default const)")
    p.add_argument("--class", dest="class_idx", type=int, default=None, help="class index for conditional StyleGAN2")
    p.add_argument("--latent", default=None, help="render this latent file (a run's latents/<name>.npz) instead of seeds")
    p.add_argument("--delta", default=None, help="weight delta file from a pti run (latents/<name>_delta.safetensors) to add to the generator")
    p.add_argument("--prompt", default=None, help="diffusion models: prompt embedding name (default the empty prompt)")
    p.add_argument("--guidance", type=float, default=1.0, help="diffusion models: classifier-free guidance scale (default 1)")
    p.add_argument("--steps", type=int, default=None, help="diffusion models: sampling steps (default the model's, 50)")
    p.add_argument("--out", default="runs/generate", help="output folder (default runs/generate)")
    p.add_argument("--no-progress", action="store_true", help="diffusion models: no per-step progress (bar on a terminal, plain lines otherwise)")
    p.set_defaults(func=run)


def render_latent_file(args: argparse.Namespace) -> torch.Tensor:
    """``--latent FILE``: the file read into its typed result and rendered as the run did (layer state,
    noise maps, a pti pivot's tuned weights, a diffusion state); ``1 x C x H x W``."""
    from ..generators import load_generator
    from ..runs import load_run

    G = load_generator(args.generator, device=args.device, weights=args.weights)
    result = load_run(args.latent, G).result
    if args.delta is not None:  # the weights are given explicitly: render the pivot with them
        if not isinstance(result, LatentInversion):
            raise ConfigError(f"--delta applies to GAN latents; {args.latent} holds a {result.kind} result")
        T = load_generator(args.generator, device=args.device, weights=args.weights, delta=args.delta)
        plain = LatentInversion(latents=result.latents, space=result.space, reconstructions=result.reconstructions,
                                noise=result.noise, layer_state=result.layer_state)
        return plain.render(T)
    return result.render(G)


def run(args: argparse.Namespace) -> int:
    from ..generators import load_generator
    from ..io.images import make_grid, save_image
    from ..progress import track
    from ..progress.terminal import terminal_reporter

    check_numbers(args, at_least={"steps": 1}, finite=("trunc", "guidance"))
    out = Path(args.out)
    if args.latent is not None:
        path = save_image(render_latent_file(args)[0], out / f"{Path(args.latent).stem}.png")
        print(f"wrote {path}")
        return 0
    G = load_generator(args.generator, device=args.device, weights=args.weights, delta=args.delta)
    diffusion = isinstance(G, DiffusionModel)
    styled = isinstance(G, StyleSpaces)  # StyleGAN-like: truncation, labels and noise modes apply
    if not diffusion and (args.prompt is not None or args.guidance != 1.0 or args.steps is not None):
        raise ConfigError(f"--prompt, --guidance and --steps are for diffusion models; {G.name} is a GAN")
    if not styled and (args.trunc != 1.0 or args.class_idx is not None):
        raise ConfigError(f"--trunc and --class need a StyleGAN generator; {G.name} has only {', '.join(G.spaces)}")
    images = []
    seeds = parse_seeds(args.seeds)
    # diffusion sampling takes many model evaluations per image: its steps are shown (GANs draw at once)
    reporter = terminal_reporter(not args.no_progress) if diffusion else None
    with torch.inference_mode():
        for k, seed in enumerate(seeds):
            if isinstance(G, StyleSpaces):
                label = {"c": args.class_idx} if args.class_idx is not None else {}
                w = G.convert(G.sample_latent(1, "z", seed=seed), "z", "w", truncation_psi=args.trunc, **label)
                img = G.synthesize(w, "w", noise_mode=args.noise_mode, generator=torch.Generator().manual_seed(seed))
            elif isinstance(G, DiffusionModel):  # deterministic sampling from the seed's noise
                phase = track(reporter, f"seed {seed} ({k + 1} of {len(seeds)}): sampling", args.steps or G.default_steps)
                img = G.sample(G.sample_latent(1, "noise", seed=seed), prompt=args.prompt, guidance=args.guidance, steps=args.steps,
                               on_step=phase.hook if reporter is not None else None)
                phase.end()
            else:
                space = G.spaces[0]
                img = G.synthesize(G.sample_latent(1, space, seed=seed), space)
            save_image(img[0], out / f"seed{seed:04d}.png")
            images.append(img)
    make_grid([torch.cat(images)]).save(out / "grid.png")
    print(f"wrote {len(images)} images and grid.png to {out}")
    return 0
