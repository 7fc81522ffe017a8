"""``invertkit interpolate A.npz B.npz -g G``: a morph from one latent to another (PNG strip + GIF),
and with ``--mix`` StyleGAN style mixes of the two (rows of B put into A), shown between A and B."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .edit import add_picture_flags, picture_scale, slug
from .options import add_generator_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpolate",
        help="morph between two latent files (strip + GIF); --mix writes style mixes of the two",
        description="Interpolate between two latent files (slerp in z, lerp in w, w+, p, pn, s; latents in "
        "different spaces meet in the more downstream one). Writes OUT/<A>_to_<B>.png and .gif, with --mix "
        "OUT/<A>_x_<B>_mix.png (A, the mixes, B) and each mix's latent as .npz, and OUT/interpolate.json.",
    )
    p.add_argument("a", metavar="A", help="first latent file (.npz, e.g. a run's latents/<name>.npz)")
    p.add_argument("b", metavar="B", help="second latent file")
    add_generator_flags(p)
    p.add_argument("--steps", type=int, default=9, help="frames of the morph, both ends included (default 9)")
    p.add_argument("--space", default=None, help="space to interpolate in (default: the latents' own, or the more downstream of the two)")
    p.add_argument("--mix", action="append", default=None, metavar="SPEC",
                   help="style mix: W+ rows taken from B (coarse, middle, fine, 0-3, 4,5 ...; 'groups' = coarse, middle and fine); repeatable")
    p.add_argument("--out", "-o", required=True, help="output folder")
    add_picture_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..editing.interpolate import common_space, interpolate, mix_groups, style_mix
    from ..editing.sources import read_latent
    from ..generators import load_generator
    from ..io.strips import save_gif, save_strip
    from ..results import LatentInversion

    if args.steps < 2:
        raise ConfigError(f"--steps must be >= 2 (both ends are frames), got {args.steps}")
    if args.duration < 1:
        raise ConfigError(f"--duration must be >= 1 ms, got {args.duration}")
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    scale = picture_scale(args, G.resolution)
    items = []
    for path in (args.a, args.b):
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such latent file; pass two .npz files (e.g. a run's latents/<name>.npz)")
        items.append(read_latent(path, G))
    a, b = items
    space = args.space or common_space(G, a.space, b.space)
    space = "z" if space == "z-sphere" else space
    specs: list[str] = []
    for spec in args.mix or []:
        specs.extend(mix_groups(G) if spec.strip() == "groups" else [spec])
    for it in items:  # a tuned generator belongs to one image; a morph between two has no single one
        if it.tuned:
            print(f"note: {it.file} is a PTI pivot; rendered with the base generator (its weight delta fits only its own image)")

    frames_latents = interpolate(G, a.latent, b.latent, a.space, args.steps, space_b=b.space, into=space)
    mixes = [(spec, style_mix(G, a.latent, a.space, b.latent, b.space, spec)[0]) for spec in specs]  # checked before writing
    out = Path(args.out)
    stem = f"{slug(a.name)}_to_{slug(b.name)}"
    with torch.inference_mode():
        frames = torch.cat([G.synthesize(frames_latents[j:j + 16], space) for j in range(0, args.steps, 16)]).clamp(-1, 1).cpu()
    ts = torch.linspace(0, 1, args.steps).tolist()
    written = [save_strip(frames, out / f"{stem}.png", labels=[f"{t:.2f}" for t in ts], scale=scale)]
    if args.gif:
        written.append(save_gif(frames, out / f"{stem}.gif", duration_ms=args.duration, scale=scale))
    record: dict[str, Any] = {
        "a": {"file": str(a.file), "space": a.space}, "b": {"file": str(b.file), "space": b.space},
        "generator": G.describe(), "space": space, "interpolation": "slerp" if space == "z" else "lerp",
        "steps": args.steps, "morph": [p.name for p in written], "mixes": [],
    }
    if mixes:
        mix_stem = f"{slug(a.name)}_x_{slug(b.name)}_mix"
        with torch.inference_mode():
            ends = [G.synthesize(it.latent.to(G.device), it.base_space) for it in items]
            mixed = G.synthesize(torch.cat([m for _, m in mixes]), "w+")
        row = torch.cat([ends[0], mixed, ends[1]]).clamp(-1, 1).cpu()
        written.append(save_strip(row, out / f"{mix_stem}.png", labels=["A", *[s for s, _ in mixes], "B"], scale=scale))
        for spec, latent in mixes:  # each mix as a one-image result's latent file (reads back like a run's)
            mix = LatentInversion(latents=latent.detach().cpu(), space="w+", reconstructions=mixed[:1].cpu())
            f = out / mix.save_item(0, out, f"{mix_stem}_{slug(spec)}", G)[0]
            record["mixes"].append({"layers": spec, "latent": f.name})
            written.append(f)
        record["mix_strip"] = f"{mix_stem}.png"
    (out / "interpolate.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {', '.join(p.name for p in written)} and interpolate.json to {out}")
    return 0
