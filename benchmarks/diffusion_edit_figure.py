"""The README figure of attention-controlled editing on diffusion-faces32: real photos (never trained
on) edited photo -> drawing.

    python benchmarks/diffusion_edit_figure.py [--out docs/diffusion-faces32-edits.png] [--threads 2]

Columns: the astronaut, LFW faces 0, 1, 2, 7 and ORL subject 1 at 32 x 32. Rows: the photo; Direct
Inversion's reconstruction (prompt ``photo``, guidance 1.5, 25 steps); the edit toward ``drawing`` with
no attention control (the state sampled with the new prompt); P2P (cross-attention replaced on the
first 80% of steps, self-attention on the first 40%); P2P keeping more (60% / 60%); plug-and-play
(decoder features and self-attention injected). Prints each edit row's PSNR against the photo and the
mean brightness of the rows (the drawing prompt draws darker faces).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from invertkit import invert
from invertkit.editing.prompt_edit import PromptEditOptions, prompt_edit
from invertkit.generators import load_generator
from invertkit.io.images import read_image, tensor_to_pil
from invertkit.io.samples import astronaut_face, lfw_faces
from invertkit.metrics import psnr

ROWS = [
    ("none", PromptEditOptions(controller="none"), "edit, no control"),
    ("p2p", PromptEditOptions(controller="p2p"), "P2P 0.8 / 0.4"),
    ("p2p-keep", PromptEditOptions(controller="p2p", cross_steps=0.6, self_steps=0.6), "P2P 0.6 / 0.6"),
    ("pnp", PromptEditOptions(controller="pnp"), "plug-and-play"),
]


def faces(shared: Path) -> torch.Tensor:
    """The astronaut, LFW 0, 1, 2, 7 and ORL s1/1: ``[6, 1, 32, 32]`` in [-1, 1]."""
    x = [astronaut_face(32, 1), lfw_faces([0, 1, 2, 7], 32, 1)]
    orl = shared / "orl_faces" / "s1" / "1.pgm"
    if orl.is_file():
        x.append(read_image(orl, 32, 1))
    return torch.cat(x)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/diffusion-faces32-edits.png")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--guidance", type=float, default=1.5)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    G = load_generator("diffusion-faces32")
    x = faces(Path(args.shared))
    res = invert(G, x, "direct", prompt="photo", steps=25, guidance=args.guidance)
    rows = [("photo", x), ("reconstruction", res.reconstructions)]
    for _, opts, label in ROWS:
        edited = prompt_edit(G, res, "drawing", opts).edited
        rows.append((label, edited))
        print(f"{label}: PSNR to the photo {float(psnr(edited, x).mean()):.2f} dB, mean {float(edited.mean()):+.3f}")
    print(f"photos: mean {float(x.mean()):+.3f}; reconstruction PSNR {float(psnr(res.reconstructions, x).mean()):.2f} dB")
    cell, pad, left = 96, 4, 120
    img = Image.new("RGB", (left + len(x) * (cell + pad), len(rows) * (cell + pad)), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=14)
    for r, (label, images) in enumerate(rows):
        y = r * (cell + pad)
        draw.text((4, y + cell // 2 - 6), label, fill="black", font=font)
        for c in range(images.shape[0]):
            img.paste(tensor_to_pil(images[c]).convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (left + c * (cell + pad), y))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
