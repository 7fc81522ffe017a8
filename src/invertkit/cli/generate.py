"""``invertkit generate G --seeds 0-7``: draw images from seeds (truncation, noise mode, class label),
or render a saved latent (``--latent``), optionally with a pti run's tuned weights (``--delta``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import ConfigError
from .options import add_generator_args, parse_seeds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="draw images from seeds, e.g. to check a converted checkpoint")
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..generators import load_generator
    from ..io.images import make_grid, save_image

    G = load_generator(args.generator, device=args.device, weights=args.weights, delta=args.delta)
    out = Path(args.out)
    styled = "w" in G.spaces  # StyleGAN-like: truncation and noise apply
    if "noise" not in G.spaces and (args.prompt is not None or args.guidance != 1.0 or args.steps is not None):
        raise ConfigError(f"--prompt, --guidance and --steps are for diffusion models; {G.name} is a GAN")
    if not styled and (args.trunc != 1.0 or args.class_idx is not None):
        raise ConfigError(f"--trunc and --class need a StyleGAN generator; {G.name} has only {', '.join(G.spaces)}")
    images = []
    if args.latent is not None:
        from ..io.latents import load_latent_file
        from ..methods.variables import base_space

        latent, space = load_latent_file(args.latent)
        with torch.inference_mode():
            img = G.synthesize(latent.to(G.device), base_space(G, space))
        path = save_image(img[0], out / f"{Path(args.latent).stem}.png")
        print(f"wrote {path}")
        return 0
    with torch.inference_mode():
        for seed in parse_seeds(args.seeds):
            z = G.sample_latent(1, "z", seed=seed) if "z" in G.spaces else None
            if styled:
                label = {"c": args.class_idx} if args.class_idx is not None else {}
                w = G.convert(z, "z", "w", truncation_psi=args.trunc, **label)
                img = G.synthesize(w, "w", noise_mode=args.noise_mode, generator=torch.Generator().manual_seed(seed))
            elif "noise" in G.spaces:  # diffusion / flow: deterministic sampling from the seed's noise
                img = G.synthesize(G.sample_latent(1, "noise", seed=seed), "noise", prompt=args.prompt,
                                   guidance=args.guidance, steps=args.steps)
            else:
                img = G.synthesize(z, "z")
            save_image(img[0], out / f"seed{seed:04d}.png")
            images.append(img)
    make_grid([torch.cat(images)]).save(out / "grid.png")
    print(f"wrote {len(images)} images and grid.png to {out}")
    return 0
