"""Train the small word-conditioned pixel diffusion model of MNIST digits (zoo: ``diffusion-mnist32``).

    python -m invertkit.diffusion.train_mnist --shared ../shared/data --out runs/diffusion/mnist32 [--steps N]

Data: MNIST **test** digits 5000-9999 (digits 0-4999 stay unseen: the edit benchmarks use them), padded
28 -> 32 with background -1, greyscale in [-1, 1], shifted by at most one pixel (a shift keeps
thickness and slant; no shear or rotation, which would change the slant word).

Prompts are sentences of words, at most three, in a fixed order: the digit's name (``zero`` ..
``nine``, from its label), a thickness word (``thin`` / ``medium`` / ``thick``: terciles of the
training digits' stroke thickness) and a slant word (``left`` / ``upright`` / ``right``: thresholds
``SLANT_THRESHOLDS``), both measured on the image itself with ``invertkit.morphometry.digit_shape``.
Each attribute word is dropped with probability 0.3 (so ``"three"`` or ``"three thick"`` are in
distribution) and the whole prompt with probability 0.15 (the null embedding of classifier-free
guidance). The text encoder is a learned word table ``[V, 32]`` (row 0: the padding / null word
``""``) trained jointly with the UNet: a prompt is the rows of its words followed by padding rows
up to ``max_tokens`` = 3. There are no positional embeddings: the UNet's cross-attention treats its
keys as a set, so a row means the same at any position (a Prompt-to-Prompt word swap keeps
positions one to one anyway).

Output: the diffusers folder of ``train.save_folder`` with ``tokens.json`` + ``token_embeds.safetensors``
(EMA weights), and ``checkpoint.pt`` (live + EMA weights, optimiser, random state) every
``--checkpoint-every`` steps; a run that finds a checkpoint in ``--out`` resumes from it (with another
``--steps``, the cosine learning-rate schedule follows the new total from there on; training.json
records it under ``schedule_changes``).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import Tensor

from invertkit.diffusion.schedules import alphas_cumprod
from invertkit.diffusion.train import SCHEDULER, ema_update, lr_at, save_folder, train_step, unet_config

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
THICKNESS = ["thin", "medium", "thick"]
SLANT = ["left", "upright", "right"]
VOCABULARY = ["", *DIGITS, *THICKNESS, *SLANT]
MAX_TOKENS = 3
# radians (positive: the top leans right). MNIST digits lean right on average (median slant of the
# training digits about 0.18 rad), so "upright" is the band from 3 degrees left to 11.5 degrees right
SLANT_THRESHOLDS = (-0.05, 0.2)
TRAIN_RANGE = (5000, 10_000)


def pad32(x: Tensor) -> Tensor:
    """28 x 28 digits -> 32 x 32, two pixels of background (-1) on each side."""
    return torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)


def digit_words(images: Tensor, labels: Tensor, thick_thresholds: tuple[float, float] | None = None,
                slant_thresholds: tuple[float, float] = SLANT_THRESHOLDS) -> tuple[Tensor, tuple[float, float]]:
    """Token ids ``[N, 3]`` (digit, thickness, slant; indices into ``VOCABULARY``) of digits ``[N, 1, H, W]``
    in [-1, 1] with their ``labels``, and the thickness thresholds used (the terciles of these images
    when not given). An image without ink gets ``medium`` / ``upright``."""
    from invertkit.morphometry import digit_shape

    shape = digit_shape(images)
    thick, slant = shape.thickness, shape.slant
    if thick_thresholds is None:
        finite = thick[torch.isfinite(thick)]
        q = torch.quantile(finite.double(), torch.tensor([1 / 3, 2 / 3], dtype=torch.float64)) if len(finite) else torch.zeros(2)
        thick_thresholds = (float(q[0]), float(q[1]))
    t_class = (thick > thick_thresholds[0]).long() + (thick > thick_thresholds[1]).long()
    s_class = (slant > slant_thresholds[0]).long() + (slant > slant_thresholds[1]).long()
    t_class = torch.where(torch.isfinite(thick), t_class, torch.ones_like(t_class))
    s_class = torch.where(torch.isfinite(slant), s_class, torch.ones_like(s_class))
    ids = torch.stack([1 + labels.long(), 1 + len(DIGITS) + t_class, 1 + len(DIGITS) + len(THICKNESS) + s_class], 1)
    return ids, thick_thresholds


def drop_words(ids: Tensor, gen: torch.Generator, p_word: float = 0.3, p_all: float = 0.15) -> Tensor:
    """Randomly drop attribute words (each with ``p_word``; the digit stays) and whole prompts (``p_all``),
    keeping the order of the words left and padding (id 0) at the end."""
    n, t = ids.shape
    keep = torch.rand(n, t, generator=gen) >= p_word
    keep[:, 0] = True
    keep &= (torch.rand(n, 1, generator=gen) >= p_all)
    # stable compaction: kept words first in their order, then padding
    order = torch.argsort((~keep).long() * t + torch.arange(t), dim=1)
    return torch.where(torch.gather(keep, 1, order), torch.gather(ids, 1, order), torch.zeros_like(ids))


def shift1(x: Tensor, gen: torch.Generator) -> Tensor:
    """Shift the whole batch by at most one pixel in each direction (background fill -1)."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2,), generator=gen).tolist()
    return padded[..., dy:dy + h, dx:dx + w]


def load_training_digits(shared: Path) -> tuple[Tensor, Tensor]:
    """MNIST test digits 5000-9999, ``[5000, 1, 32, 32]`` in [-1, 1], and their labels."""
    from invertkit.io.samples import mnist_test

    x, y = mnist_test(shared / "mnist", TRAIN_RANGE[1])
    return pad32(x[TRAIN_RANGE[0]:]), y[TRAIN_RANGE[0]:]


def train(images: Tensor, labels: Tensor, out: Path, *, steps: int, batch: int = 32, lr: float = 6e-4, width: int = 32,
          seed: int = 0, log_every: int = 100, checkpoint_every: int = 250, resume: bool = True,
          data_note: str = "MNIST test digits 5000-9999") -> Path:
    """Train on ``images [N, 1, 32, 32]`` in [-1, 1] with digit ``labels``; write the folder ``out``."""
    from diffusers import UNet2DConditionModel

    out.mkdir(parents=True, exist_ok=True)
    ids, thick_thresholds = digit_words(images, labels)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config(images.shape[-1], 1, width, tokens_dim=32))
    ema = copy.deepcopy(unet).requires_grad_(False)
    table = torch.nn.Parameter(torch.randn(len(VOCABULARY), 32, generator=gen) * 0.5)
    ema_table = table.detach().clone()
    opt = torch.optim.AdamW(list(unet.parameters()) + [table], lr=lr, weight_decay=0.0)
    ab = alphas_cumprod(SCHEDULER).float()
    n_params = sum(p.numel() for p in unet.parameters())
    start, seconds_before = 0, 0.0
    changes: list[list[int]] = []  # [step, old total, new total] of each resume with another --steps
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["batch"] != batch or state["width"] != width:
            raise SystemExit(f"{ckpt}: made for batch={state['batch']} width={state['width']}; "
                             "pass the same options or another --out")
        if int(state["step"]) > steps:
            raise SystemExit(f"{ckpt}: already at step {state['step']}, beyond --steps {steps}")
        changes = [list(c) for c in state.get("schedule_changes", [])]
        if state["steps"] != steps:  # a new total: the cosine schedule follows it from this step on
            changes.append([int(state["step"]), int(state["steps"]), steps])
            print(f"{ckpt}: planned {state['steps']} steps, now {steps}; the learning-rate schedule follows the new "
                  f"total from step {state['step']}", flush=True)
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        with torch.no_grad():
            table.copy_(state["table"])
            ema_table.copy_(state["ema_table"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        start, seconds_before = int(state["step"]), float(state["seconds"])
        print(f"resuming from {ckpt} at step {start}", flush=True)
    counts = torch.bincount(ids[:, 1] - 11, minlength=3).tolist(), torch.bincount(ids[:, 2] - 14, minlength=3).tolist()
    print(f"unet: {n_params / 1e6:.2f} M parameters; {len(images)} digits; thickness thresholds "
          f"{thick_thresholds[0]:.3f} {thick_thresholds[1]:.3f} px (counts {counts[0]}), slant thresholds "
          f"{SLANT_THRESHOLDS} rad (counts {counts[1]})", flush=True)
    pairs = list(zip(ema.parameters(), unet.parameters())) + [(ema_table, table)]

    def info(step: int, seconds: float) -> dict:
        return {"steps": step, "planned_steps": steps, "batch": batch, "lr": lr, "width": width, "seed": seed,
                "seconds": round(seconds), "parameters": n_params, "data": data_note, "vocabulary": VOCABULARY,
                "max_tokens": MAX_TOKENS, "thickness_thresholds_px": list(thick_thresholds),
                "slant_thresholds_rad": list(SLANT_THRESHOLDS), "word_dropout": 0.3, "cfg_dropout": 0.15,
                "augmentation": "shift by at most 1 px", "ema": 0.999, "threads": torch.get_num_threads(),
                "schedule_changes": changes}

    t0, running = time.time(), torch.zeros(())
    for step in range(start + 1, steps + 1):
        pick = torch.randint(len(images), (batch,), generator=gen)
        x0 = shift1(images[pick], gen)
        words = drop_words(ids[pick], gen)
        running += train_step(unet, opt, x0, table[words], ab, gen, lr_at(step, steps, lr))
        ema_update(pairs, step)
        done = step - start
        if step % log_every == 0 or done == 20:
            k = log_every if step % log_every == 0 else done
            print(f"step {step} loss {float(running) / k:.4f} {(time.time() - t0) / done:.3f} s/step", flush=True)
            running = torch.zeros(())
        if step % checkpoint_every == 0 or step == steps:
            seconds = seconds_before + time.time() - t0
            save_folder(out, ema, {}, info(step, seconds), words=(VOCABULARY, MAX_TOKENS, ema_table))
            tmp = out / "checkpoint.pt.tmp"
            torch.save({"step": step, "steps": steps, "batch": batch, "width": width, "seconds": seconds, "schedule_changes": changes,
                        "unet": unet.state_dict(), "ema": ema.state_dict(), "table": table.detach(),
                        "ema_table": ema_table, "opt": opt.state_dict(), "gen": gen.get_state()}, tmp)
            tmp.replace(ckpt)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the shipped mnist32 diffusion model (see module docstring).")
    ap.add_argument("--out", default="runs/diffusion/mnist32")
    ap.add_argument("--shared", required=True, help="the real-data folder (e.g. ../shared/data): MNIST comes from there")
    ap.add_argument("--steps", type=int, default=4900)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the shipped model: 1)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds a checkpoint")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, labels = load_training_digits(Path(args.shared))
    train(images, labels, Path(args.out), steps=args.steps, batch=args.batch, lr=args.lr, width=args.width, seed=args.seed,
          log_every=args.log_every, checkpoint_every=args.checkpoint_every, resume=not args.no_resume)


if __name__ == "__main__":
    main()
