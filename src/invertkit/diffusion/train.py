"""Train a small prompt-conditioned pixel-space diffusion model and save it as a diffusers folder.

    python -m invertkit.diffusion.train --shared ../shared/data --out runs/diffusion/faces32 [--steps 5000]
    python -m invertkit.diffusion.train --shared ../shared/data --init runs/diffusion/faces32 \
        --out runs/diffusion/faces32-ft --steps 2500 --stop-at 2000 --lr 2e-4 --warmup 50 --drawing-frac 0.75

``--init FOLDER`` fine-tunes a trained folder (e.g. the shipped one): its UNet weights (float16 in a
shipped folder, read as float32) and prompt table start both the model and its EMA (a folder holds only
the EMA weights); the rest of the recipe is the same.

The offline zoo has no pretrained diffusion model, so invertkit ships one trained by this script:
greyscale 32 x 32 faces, two "prompts" (``photo``: real photographs, ``drawing``: faces drawn by the
DigiFace DCGAN) plus the empty prompt ``""`` (the null embedding of classifier-free guidance,
dropped in for 15% of the training examples, Ho & Salimans 2022). Prompts are learned embeddings
``[4, 32]`` (token sequence x width), so the model is used exactly like a Stable-Diffusion UNet with
precomputed prompt embeddings; no tokenizer or text encoder exists.

Real photographs used for training: ORL subjects 20-40 and LFW faces 50-99 (as for the shipped
encoders); ORL 1-19, LFW 0-49 and the astronaut stay unseen for the examples and benchmarks.

Output folder (diffusers layout): ``model_index.json``, ``unet/config.json`` +
``unet/diffusion_pytorch_model.safetensors``, ``scheduler/scheduler_config.json``,
``prompt_embeds.safetensors`` (one ``[4, 32]`` tensor per prompt) and ``training.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
from torch import Tensor

from invertkit.diffusion.parameterisation import diffuse
from invertkit.diffusion.schedules import alphas_cumprod

SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def unet_config(size: int, channels: int, width: int = 32, tokens_dim: int = 32) -> dict:
    """A small UNet2DConditionModel config (1.4 M parameters at width 32); cross-attention only at 8 x 8,
    which halves the cost of a training step on a CPU against attention at 16 x 16 too."""
    return {
        "sample_size": size,
        "in_channels": channels,
        "out_channels": channels,
        "block_out_channels": [width, 2 * width, 2 * width],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "cross_attention_dim": tokens_dim,
        "attention_head_dim": 4,
        "norm_num_groups": 8,
    }


def photo_faces(shared: Path, size: int) -> Tensor:
    """ORL subjects 20-40 (all 10 photos) and LFW faces 50-99: ``[260, 1, size, size]`` in [-1, 1]."""
    from invertkit.io.images import read_image
    from invertkit.io.samples import lfw_faces

    orl = [read_image(shared / "orl_faces" / f"s{s}" / f"{k}.pgm", size, 1) for s in range(20, 41) for k in range(1, 11)]
    return torch.cat(orl + [lfw_faces(list(range(50, 100)), size, 1)])


def drawn_faces(n: int, size: int, seed: int) -> Tensor:
    """``n`` DigiFace DCGAN faces, greyscale ``[n, 1, size, size]`` in [-1, 1]."""
    from invertkit.generators import load_generator

    G = load_generator("dcgan-digiface64")
    out = []
    with torch.no_grad():
        for start in range(0, n, 500):
            z = G.sample_latent(min(500, n - start), "z", seed=seed + start)
            rgb = G.synthesize(z, "z")
            grey = (0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
            out.append(torch.nn.functional.interpolate(grey, size=(size, size), mode="area"))
    return torch.cat(out).clamp(-1, 1)


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random horizontal flip and a shift of up to 2 pixels (reflect padding)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


def save_folder(out: Path, unet: torch.nn.Module, embeds: dict[str, Tensor], info: dict,
                words: tuple[list[str], int, Tensor] | None = None) -> None:
    """Write the diffusers-layout folder (weights as safetensors, configs as JSON).

    ``embeds``: named prompt embeddings (``prompt_embeds.safetensors``, skipped when empty); ``words``:
    an optional word table ``(vocabulary, max_tokens, embeddings [V, width])`` written as ``tokens.json``
    and ``token_embeds.safetensors`` (see ``diffusers_io.read_word_table``)."""
    from safetensors.torch import save_file

    (out / "unet").mkdir(parents=True, exist_ok=True)
    (out / "scheduler").mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER, indent=2) + "\n")
    index = {"_class_name": "DiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "scheduler": ["diffusers", "DDIMScheduler"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if embeds:
        save_file({k: v.detach().contiguous().clone() for k, v in embeds.items()}, str(out / "prompt_embeds.safetensors"))
    if words is not None:
        vocabulary, max_tokens, table = words
        (out / "tokens.json").write_text(json.dumps({"vocabulary": list(vocabulary), "max_tokens": int(max_tokens)}, indent=2) + "\n")
        save_file({"token_embeds": table.detach().float().contiguous().clone()}, str(out / "token_embeds.safetensors"))
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")


# files of a trained folder besides the network weights; those marked optional may be absent
_SHIPPED = {"model_index.json": False, "training.json": False, "unet/config.json": False,
            "scheduler/scheduler_config.json": False, "prompt_embeds.safetensors": True,
            "tokens.json": True, "token_embeds.safetensors": True}


def ship_model(src: str | Path, dst: str | Path, dtype: str = "float16") -> Path:
    """Copy a trained folder into ``dst`` with the network weights stored as ``dtype`` (float16: half the
    size; invertkit reads them back as float32), keeping configs, prompt embeddings, the word table and
    training.json."""
    import shutil

    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    (dst / "unet").mkdir(parents=True, exist_ok=True)
    (dst / "scheduler").mkdir(parents=True, exist_ok=True)
    for name, optional in _SHIPPED.items():
        if optional and not (src / name).is_file():
            (dst / name).unlink(missing_ok=True)
            continue
        shutil.copyfile(src / name, dst / name)
    cast = {"float16": torch.float16, "float32": torch.float32}[dtype]
    weights = load_file(str(src / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v.to(cast).contiguous() for k, v in weights.items()}, str(dst / "unet" / "diffusion_pytorch_model.safetensors"))
    return dst


def load_folder(folder: str | Path, prompts: list[str]) -> tuple[torch.nn.Module, Tensor, dict]:
    """The UNet (float32), the ``[len(prompts), 4, 32]`` prompt table and training.json of a trained folder."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    folder = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), torch_dtype=torch.float32).float()
    embeds = load_file(str(folder / "prompt_embeds.safetensors"))
    table = torch.stack([embeds[p].float() for p in prompts])
    path = folder / "training.json"
    return unet, table, (json.loads(path.read_text()) if path.exists() else {})


def lr_at(step: int, steps: int, base: float, warmup: int = 200) -> float:
    """Learning rate of ``step`` (1-based): linear warm-up over ``warmup`` steps, then cosine decay to 10%."""
    return base * min(1.0, step / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))


def train_step(unet: torch.nn.Module, opt: torch.optim.Optimizer, x0: Tensor, cond: Tensor, ab: Tensor,
               gen: torch.Generator, lr: float) -> Tensor:
    """One epsilon-prediction step (Ho et al. 2020) on clean images ``x0`` with conditioning ``cond``
    ``[N, tokens, width]``; returns the loss (a tensor: no host sync here)."""
    for group in opt.param_groups:
        group["lr"] = lr
    t = torch.randint(0, len(ab), (x0.shape[0],), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    pred = unet(diffuse(x0, eps, ab[t]), t, encoder_hidden_states=cond).sample
    loss = torch.nn.functional.mse_loss(pred, eps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    opt.step()
    return loss.detach()


@torch.no_grad()
def ema_update(pairs: list[tuple[Tensor, Tensor]], step: int, cap: float = 0.999) -> None:
    """Exponential moving average of each ``(ema, live)`` pair with the warm-up decay ``(1+step)/(10+step)``."""
    decay = min(cap, (1 + step) / (10 + step))
    for e, p in pairs:
        e.lerp_(p.detach(), 1 - decay)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the shipped faces32 diffusion model (see module docstring).")
    ap.add_argument("--out", default="runs/diffusion/faces32")
    ap.add_argument("--shared", required=True, help="the real-data folder (e.g. ../shared/data): ORL and the LFW subset come from there")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--drawn", type=int, default=20000, help="number of DCGAN faces in the drawing pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--save-every", type=int, default=1000, help="write the folder every this many steps (and at the end)")
    ap.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    ap.add_argument("--drawing-frac", type=float, default=0.5, help="share of drawings in each batch (the rest: photos)")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this many steps of the --steps-long schedule (the learning rate still follows --steps)")
    ap.add_argument("--init", default=None, help="fine-tune: start from this trained folder's UNet, prompt table (and EMA = those weights)")
    args = ap.parse_args(argv)
    from diffusers import UNet2DConditionModel

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    photos = photo_faces(Path(args.shared), args.size)
    drawings = drawn_faces(args.drawn, args.size, seed=10_000)
    prompts = ["", "photo", "drawing"]
    prior_steps, init_info = 0, None
    if args.init:
        unet, start_table, init_info = load_folder(args.init, prompts)
        prior_steps = int(init_info.get("steps", 0))
        table = torch.nn.Parameter(start_table.clone())
    else:
        unet = UNet2DConditionModel(**unet_config(args.size, 1, args.width))
        table = torch.nn.Parameter(torch.randn(len(prompts), 4, 32, generator=gen) * 0.5)
    unet.train()
    ema = copy.deepcopy(unet).requires_grad_(False)
    ema_table = table.detach().clone()
    opt = torch.optim.AdamW(list(unet.parameters()) + [table], lr=args.lr, weight_decay=0.0)
    ab = alphas_cumprod(SCHEDULER).float()
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"unet: {n_params / 1e6:.2f} M parameters; photos {len(photos)}, drawings {len(drawings)}", flush=True)
    t0, running = time.time(), 0.0
    half = args.batch - round(args.batch * args.drawing_frac)  # photos per batch
    last = min(args.steps, args.stop_at or args.steps)
    pairs = list(zip(ema.parameters(), unet.parameters())) + [(ema_table, table)]
    for step in range(1, last + 1):
        lr = lr_at(step, args.steps, args.lr, max(1, args.warmup))  # linear warm-up, then cosine decay to 10%
        x0 = torch.cat([photos[torch.randint(len(photos), (half,), generator=gen)],
                        drawings[torch.randint(len(drawings), (args.batch - half,), generator=gen)]])
        x0 = augment(x0, gen)
        label = torch.cat([torch.ones(half, dtype=torch.long), torch.full((args.batch - half,), 2)])
        label = torch.where(torch.rand(args.batch, generator=gen) < 0.15, torch.zeros_like(label), label)
        running += train_step(unet, opt, x0, table[label], ab, gen, lr).item()
        ema_update(pairs, step)
        if step % args.log_every == 0:
            print(f"step {step} loss {running / args.log_every:.4f} lr {lr:.2e} {(time.time() - t0) / step:.3f} s/step", flush=True)
            running = 0.0
        if step % args.save_every == 0 or step == last:
            info = {"steps": prior_steps + step, "batch": args.batch, "lr": args.lr, "seed": args.seed, "seconds": round(time.time() - t0),
                    "parameters": n_params, "photos": "ORL s20-s40 (all 10), LFW 50-99", "drawings": args.drawn,
                    "prompts": prompts, "cfg_dropout": 0.15, "ema": 0.999}
            if args.init:
                info.update({"init": str(args.init), "init_training": init_info, "finetune_steps": step, "schedule_steps": args.steps,
                             "warmup": args.warmup, "drawing_frac": args.drawing_frac, "torch_threads": torch.get_num_threads()})
            save_folder(Path(args.out), ema, {p: ema_table[i] for i, p in enumerate(prompts)}, info)


if __name__ == "__main__":
    main()
