"""Train the zoo's small StyleGAN2 (``stylegan2-faces32``) on a CPU: distillation plus adversarial training.

    python -m invertkit.generators.stylegan2.train --out runs/stylegan2/faces32 --steps 9000 --threads 1

No pretrained StyleGAN is reachable offline, so invertkit trains one. The teacher is the DigiFace
DCGAN of the zoo (``dcgan-digiface64``), whose samples are unlimited. Each step:

- **Distillation with paired latents** on half the batch: the StyleGAN2's z *is* the DCGAN's z
  (``z_dim = 100``), and ``G(z)`` regresses onto the DCGAN's face ``T(z)`` (area-downsampled to 32 px),
  L1 at 32 px and at 8 px (the coarse layout weighs as much as the detail). This is what makes a CPU
  budget of about two hours enough: the student gets a target for every sample from step one.
- **Adversarial training** (Karras et al. 2020's recipe): non-saturating logistic loss, lazy R1 on
  the real images (DCGAN faces), and **style mixing** on the other half of the batch (two latents
  mapped, the synthesis layers split at a random point). The mixed faces have no teacher image; the
  discriminator is what makes them faces, and what makes the coarse layers carry pose and the fine
  ones colour and texture. The adversarial term also sharpens what L1 alone would blur.
- An exponential moving average of G (half-life 10k images, as NVIDIA's code) is what is shipped;
  ``mapping.w_avg`` is tracked as NVIDIA's ``w_avg_beta = 0.995`` and re-estimated from 20k samples at
  the end.

Training is resumable: ``checkpoint.pt`` (written atomically every ``--checkpoint-every`` steps, read
back with ``weights_only=True``) carries G, D, the EMA, both optimisers and every random stream, so a
run stopped and resumed gives the same weights as one that was not stopped.

Output folder: ``checkpoint.pt``, ``training.json`` (recipe, per-step log), ``samples.png`` (an
8 x 8 grid of EMA samples at the latest checkpoint) and ``generator.safetensors`` (invertkit's native
StyleGAN2 format, float32); :func:`ship` writes the float16 copy the zoo carries.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ...errors import ConfigError
from .config import StyleGAN2Config
from .network import StyleGAN2Network

TEACHER = "dcgan-digiface64"


def faces32_config() -> StyleGAN2Config:
    """The shipped model's architecture: 32 x 32 RGB, z in R^100 (the DCGAN's), w in R^256, 4 mapping
    layers, 256-128-64-32 channels at 4-8-16-32 px (about 0.1 GMAC per image: what two CPU hours can
    train), skip outputs, noise inputs; 8 ws (W+ rows)."""
    return StyleGAN2Config(z_dim=100, w_dim=256, img_resolution=32, img_channels=3, mapping_layers=4,
                           channels={4: 256, 8: 128, 16: 64, 32: 32}, architecture="skip", use_noise=True)


class EqConv2d(nn.Module):
    """A convolution with StyleGAN's equalised learning rate: weights stored N(0, 1), scaled by
    ``1/sqrt(fan_in)`` at run time, so Adam's step (lr 0.0025) means the same for every layer."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain, self.padding = 1 / math.sqrt(cin * k * k), k // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)


class EqLinear(nn.Module):
    """A dense layer with the equalised learning rate of :class:`EqConv2d`."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gain = 1 / math.sqrt(cin)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.gain, self.bias)


class Discriminator(nn.Module):
    """A small residual discriminator (StyleGAN2's layout and equalised learning rate): from-RGB 1x1,
    three down-sampling residual blocks 32 -> 4, minibatch standard deviation, a 3x3 conv and two
    dense layers. ``N x 3 x 32 x 32`` in [-1, 1] -> logits ``[N]``."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256), img_channels: int = 3, mbstd_group: int = 4) -> None:
        super().__init__()
        self.mbstd_group = mbstd_group
        self.from_rgb = EqConv2d(img_channels, channels[0], 1)
        self.blocks = nn.ModuleList()
        for cin, cout in zip(channels[:-1], channels[1:]):
            self.blocks.append(nn.ModuleDict({
                "conv0": EqConv2d(cin, cin, 3),
                "conv1": EqConv2d(cin, cout, 3),
                "skip": EqConv2d(cin, cout, 1, bias=False),
            }))
        c = channels[-1]
        self.conv = EqConv2d(c + 1, c, 3)
        self.fc = EqLinear(c * 16, c)
        self.out = EqLinear(c, 1)

    def forward(self, x: Tensor) -> Tensor:
        # lrelu with StyleGAN's sqrt(2) gain keeps activations at unit scale through the equalised layers
        act = lambda t: F.leaky_relu(t, 0.2) * math.sqrt(2)  # noqa: E731
        x = act(self.from_rgb(x))
        for b in self.blocks:
            y = F.avg_pool2d(b["skip"](x), 2)
            x = act(b["conv0"](x))
            x = F.avg_pool2d(act(b["conv1"](x)), 2)
            x = (x + y) / math.sqrt(2)
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n) if n % min(self.mbstd_group, n) == 0 else 1
        std = x.view(g, -1, c, h, w).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))  # [N/g]
        x = torch.cat([x, std.view(-1, 1, 1, 1).repeat(g, 1, h, w)], 1)
        x = act(self.conv(x))
        return self.out(act(self.fc(x.flatten(1)))).squeeze(1)


@dataclass(frozen=True)
class Recipe:
    """Every setting of a training run (recorded in training.json; a resume must use the same)."""

    steps: int = 9000
    batch: int = 32
    lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    rec_weight: float = 10.0  # L1 distillation weight against the adversarial loss's 1
    adv_weight: float = 1.0
    r1_gamma: float = 0.05
    r1_every: int = 16
    mixing: float = 0.9  # probability that a mixed-half sample really mixes two latents
    ema_kimg: float = 10.0
    seed: int = 0


def teacher_faces(teacher: nn.Module, z: Tensor) -> Tensor:
    """The DCGAN's faces for ``z [N, 100]``, area-downsampled 64 -> 32 px: ``N x 3 x 32 x 32`` in [-1, 1]."""
    with torch.no_grad():
        return F.avg_pool2d(teacher(z.view(*z.shape, 1, 1)), 2).clamp(-1, 1)


def mixed_ws(G: StyleGAN2Network, z: Tensor, z2: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """``ws [N, num_ws, w_dim]`` from ``z``, with the rows from a random cut onward taken from ``z2``
    (probability ``p`` per batch, StyleGAN's style-mixing regularisation)."""
    ws = G.mapping(z).unsqueeze(1).repeat(1, G.num_ws, 1)
    if float(torch.rand([], generator=gen)) < p:
        cut = int(torch.randint(1, G.num_ws, [], generator=gen))
        ws2 = G.mapping(z2).unsqueeze(1).repeat(1, G.num_ws, 1)
        ws = torch.cat([ws[:, :cut], ws2[:, cut:]], 1)
    return ws


def ema_beta(recipe: Recipe) -> float:
    return 0.5 ** (recipe.batch / (recipe.ema_kimg * 1000))


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def sample_grid(G: StyleGAN2Network, path: Path, n: int = 8, seed: int = 123) -> None:
    """An ``n x n`` PNG grid of samples (fixed seeds, constant noise) from ``G``."""
    from PIL import Image

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        img = G(torch.randn(n * n, G.config.z_dim, generator=gen), noise_mode="const")
    r = img.shape[-1]
    grid = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).view(n, n, 3, r, r)
    grid = grid.permute(0, 3, 1, 4, 2).reshape(n * r, n * r, 3).numpy()
    Image.fromarray(grid).resize((n * r * 2, n * r * 2), Image.NEAREST).save(path)


@torch.no_grad()
def estimate_w_avg(G: StyleGAN2Network, n: int = 20000, seed: int = 7) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.cat([G.mapping(torch.randn(1000, G.config.z_dim, generator=gen)) for _ in range(n // 1000)])
    G.mapping.w_avg.copy_(w.mean(0))


def save_generator(G: StyleGAN2Network, path: Path, recipe: Recipe, step: int) -> Path:
    """``G``'s weights as an invertkit native StyleGAN2 file (float32)."""
    from ..checkpoints.native import save_native
    from .generator import StyleGAN2Generator

    gen = StyleGAN2Generator(G.config, {k: v.detach() for k, v in G.state_dict().items()}, name="stylegan2-faces32")
    return save_native(gen, path, meta={"trained_by": "invertkit.generators.stylegan2.train", "teacher": TEACHER,
                                        "steps": step, "recipe": asdict(recipe)})


def ship(src: str | Path, dst: str | Path) -> Path:
    """A float16 copy of a native StyleGAN2 file (same metadata); loading reads it back as float32."""
    from safetensors import safe_open

    from ...io.safetensors_file import write_safetensors

    with safe_open(str(src), framework="pt", device="cpu") as f:
        tensors = {k: f.get_tensor(k).to(torch.float16).contiguous() for k in f.keys()}
        meta = f.metadata()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    return write_safetensors(Path(dst), tensors, meta, "checkpoint")


def train(out: Path, recipe: Recipe, *, checkpoint_every: int = 250, log_every: int = 50, stop_at: int | None = None,
          config: StyleGAN2Config | None = None, d_channels: tuple[int, ...] = (32, 64, 128, 256)) -> None:
    """Train (or resume) a run in ``out``; see the module docstring. ``config`` (default
    :func:`faces32_config`; 32 px RGB, ``z_dim`` 100 as the teacher's) and ``d_channels`` exist so tests
    can train a tiny network; ``stop_at`` ends early (resumably) without changing the recipe."""
    from ..zoo import ZOO

    out.mkdir(parents=True, exist_ok=True)
    teacher = ZOO.get(TEACHER).load().module  # frozen, eval mode
    cfg = config or faces32_config()
    if (cfg.z_dim, cfg.img_resolution, cfg.img_channels) != (100, 32, 3):
        raise ValueError("the student draws the teacher's 32 px RGB faces from the teacher's z: z_dim 100, 32 px, 3 channels")
    torch.manual_seed(recipe.seed)
    G = StyleGAN2Network(cfg)
    D = Discriminator(d_channels)
    G_ema = StyleGAN2Network(cfg).requires_grad_(False)
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=recipe.lr, betas=recipe.betas)
    # lazy R1: the optimiser's momentum is rescaled as in NVIDIA's code
    c = recipe.r1_every / (recipe.r1_every + 1)
    opt_d = torch.optim.Adam(D.parameters(), lr=recipe.lr * c, betas=(recipe.betas[0] ** c, recipe.betas[1] ** c))
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    log: list[dict] = []
    start = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["recipe"] != json.loads(json.dumps(asdict(recipe))):
            raise ConfigError(f"{ckpt}: written with another recipe {state['recipe']}; use the same options or a new --out")
        for module, key in ((G, "G"), (D, "D"), (G_ema, "G_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            module.load_state_dict(state[key])
        gen.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        start, log = state["step"], state["log"]
        print(f"resumed at step {start}", flush=True)
    beta = ema_beta(recipe)
    half = recipe.batch // 2
    end = min(recipe.steps, stop_at or recipe.steps)
    t0, window = time.perf_counter(), []
    for step in range(start, end):
        z = torch.randn(recipe.batch, cfg.z_dim, generator=gen)
        z2 = torch.randn(half, cfg.z_dim, generator=gen)
        real = teacher_faces(teacher, z)  # the first half are the paired targets, all of it D's real images

        # one generator pass serves both updates: the paired half regresses onto the teacher, the
        # mixed half has no target; D first learns on the detached faces, then judges them for G
        img = G(z[:half], noise_mode="random", generator=gen)
        mix = G.synthesis(mixed_ws(G, z[half:], z2, recipe.mixing, gen), noise_mode="random", generator=gen)
        fake = torch.cat([img, mix])

        # -- discriminator: logistic loss, lazy R1 on the teacher's faces
        loss_d = F.softplus(D(fake.detach())).mean() + F.softplus(-D(real)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        r1 = torch.zeros([])
        if step % recipe.r1_every == 0:
            x = real[:half].detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            r1 = grad.square().sum((1, 2, 3)).mean()
            (r1 * (recipe.r1_gamma / 2) * recipe.r1_every).backward()
        opt_d.step()

        # -- generator
        target = real[:half]
        rec = (img - target).abs().mean() + (F.avg_pool2d(img, 4) - F.avg_pool2d(target, 4)).abs().mean()
        D.requires_grad_(False)
        adv = F.softplus(-D(fake)).mean()
        D.requires_grad_(True)
        loss_g = recipe.rec_weight * rec + recipe.adv_weight * adv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            G.mapping.w_avg.lerp_(G.mapping(z).mean(0), 1 - 0.995)
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.lerp_(p, 1 - beta)
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        # kept as tensors: one host read per log line, not four per step
        window.append(torch.stack([rec.detach(), adv.detach(), loss_d.detach(), r1.detach()]))
        if (step + 1) % log_every == 0:
            dt = (time.perf_counter() - t0) / len(window)
            m = torch.stack(window).mean(0).tolist()
            entry = {"step": step + 1, "l1": round(m[0], 4), "g_adv": round(m[1], 4), "d": round(m[2], 4),
                     "r1": round(m[3] * recipe.r1_every / log_every, 4), "s_per_step": round(dt, 3)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
            t0, window = time.perf_counter(), []
        if (step + 1) % checkpoint_every == 0 or step + 1 == end:
            _atomic_save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                          "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": gen.get_state(),
                          "torch_rng": torch.get_rng_state(), "step": step + 1, "log": log,
                          "recipe": json.loads(json.dumps(asdict(recipe)))}, ckpt)
            sample_grid(G_ema, out / "samples.png")
    estimate_w_avg(G_ema)
    save_generator(G_ema, out / "generator.safetensors", recipe, end)
    (out / "training.json").write_text(json.dumps({"recipe": asdict(recipe), "teacher": TEACHER, "steps_done": end,
                                                    "threads": torch.get_num_threads(), "log": log}, indent=1))
    print(f"wrote {out / 'generator.safetensors'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=Recipe.steps)
    ap.add_argument("--stop-at", type=int, default=None, help="stop (resumably) before --steps; the schedule is --steps'")
    ap.add_argument("--batch", type=int, default=Recipe.batch)
    ap.add_argument("--rec-weight", type=float, default=Recipe.rec_weight)
    ap.add_argument("--r1-gamma", type=float, default=Recipe.r1_gamma)
    ap.add_argument("--seed", type=int, default=Recipe.seed)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=50)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    recipe = Recipe(steps=a.steps, batch=a.batch, rec_weight=a.rec_weight, r1_gamma=a.r1_gamma, seed=a.seed)
    train(a.out, recipe, checkpoint_every=a.checkpoint_every, log_every=a.log_every, stop_at=a.stop_at)


if __name__ == "__main__":
    main()
