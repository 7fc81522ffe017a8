"""Train an encoder for a generator: ``train_encoder(G, out_dir, TrainOptions(...))``.

Training images are drawn by the generator itself (so the true latent is known and a latent loss is
available), optionally mixed with a folder of real images. Losses: pixel MSE and perceptual distance
between the image and ``G(E(image))``, MSE to the true latent, LSAP's NSCD (StyleGAN2), and for e4e
the offset regulariser and the latent discriminator. ReStyle runs ``iterations`` refinement steps per
batch, each with its own loss (the reconstruction fed back is detached, as in ReStyle). An fs encoder
is scored on both its latent's image (the losses above) and the image with its feature residual (pixel
and perceptual), plus ``residual_weight`` times the residual's mean square, which keeps the latent doing
most of the work so edits of it still show.

The output folder holds:

- ``encoder.safetensors``: the encoder (updated at every checkpoint, so it is usable mid-run);
- ``train_state.pt``: everything needed to resume (weights, optimiser, data stream, step); read with
  ``torch.load(weights_only=True)``, so nothing in it executes;
- ``log.jsonl``: one JSON line per logged step (losses, lr, seconds; held-out PSNR at checkpoints);
- ``samples/step_NNNNNN.png``: held-out images (top row) and their reconstructions (bottom row);
- ``options.json``: the options and the generator of the run.

Running again with the same folder resumes where the last checkpoint left off; an interrupted run
(Ctrl-C or SIGTERM) writes a checkpoint before it exits.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, require
from ..io.atomic import write_atomic
from ..io.images import make_grid, read_images
from ..metrics import psnr
from ..optionfields import Auto, Options, is_auto, option
from ..runs.interrupt import Interrupts
from ..store.tensorfiles import torch_load_safe
from ..untrusted import finite_number, one_line, short_repr
from .config import ARCHS, config_for
from .data import Batch, TrainingData, eval_batch
from .discriminator import LatentDiscriminator, discriminator_loss, generator_loss
from .files import build_network, save_encoder
from .hyper import conv_targets, offsets, pivot_start, refine, render_offset, zero_offsets
from .inference import encode, encode_features, feature_split, render_features, restyle_start, start_point
from .nets import Encoder


@dataclass(frozen=True)
class TrainOptions(Options):
    """Encoder training options (``invertkit train-encoder`` flags come from these fields)."""

    arch: str = option("psp", "psp, e4e, restyle, fs (latent plus a residual of G's features at --layer) or hyperstyle "
                       "(a hypernetwork offsetting generator weights; needs --bootstrap)",
                       choices=("psp", "e4e", "restyle", "fs", "hyperstyle"))
    steps: int = option(3000, "optimisation steps", min=1)
    batch: int = option(32, "images per step", min=2)
    lr: float = option(1e-3, "Adam learning rate; cosine decay to 1% of it over the run", min=0, min_exclusive=True)
    pixel_weight: float = option(1.0, "weight of the pixel MSE between image and reconstruction", min=0)
    perceptual_weight: float = option(0.8, "weight of the MobileNetV2 perceptual distance (pSp uses 0.8 LPIPS)", min=0)
    latent_weight: float = option(1.0, "weight of the MSE to the true latent (generated images only)", min=0)
    nscd_weight: float = option(0.0, "weight of LSAP's NSCD loss (StyleGAN2 only; LSAP's encoder uses 0.5)", min=0)
    offset_weight: float = option(2e-4, "e4e: weight of the squared norm of the per-row offsets", min=0)
    adversarial_weight: float = option(0.1, "e4e: weight of the latent discriminator loss (0 turns it off)", min=0)
    unlock_every: int | Auto = option("auto", "e4e: steps between switching on the next row's offset (auto: steps / (2 rows))", min=1)
    layer: str | Auto = option("auto", "fs: the split layer whose features it corrects (a module index of a sequential generator, "
                               "a block resolution of StyleGAN2; auto: the deepest at a quarter of the image size)")
    residual_weight: float = option(0.01, "fs: weight of the feature residual's mean square (keeps the latent doing the work)", min=0)
    iterations: int = option(3, "restyle, hyperstyle: refinement iterations per training batch", min=1)
    layers: str = option("auto", "hyperstyle: generator layers to offset: auto (the later half of the conv layers; on an fs bootstrap every conv layer after its cut), all, or comma-separated weight names")
    rank: int = option(4, "hyperstyle: rank of each layer's multiplicative weight offset", min=1, max=64)
    images: str | None = option(None, "real images mixed into training (pixel and perceptual losses): folders (recursive) or globs, comma-separated")
    real_fraction: float = option(0.25, "share of each batch drawn from --images", min=0, max=1, max_exclusive=True)
    real_jitter: float = option(0.0, "zoom the real images (--images) by up to this share and shift them by up to 3/4 of it (0: off)", min=0, max=0.5)
    real_latents: str | None = option(None, "pseudo-labels for --images: a file from invertkit.encoders.data.save_real_latents (their inversions, one per image in --images order, optionally of their mirrors too); a latent loss pulls real images toward them")
    real_latent_weight: float = option(0.3, "weight of the MSE to the --real-latents pseudo-labels", min=0)
    augment: bool = option(False, "blur/greyscale/brightness-jitter the encoder's inputs (targets stay clean): helps on real photos")
    width: int = option(32, "channels of the first backbone stage (doubling per stage)", min=1)
    max_width: int = option(256, "channel cap of the backbone", min=1)
    blocks: int = option(1, "residual blocks per backbone stage", min=1)
    init_from: str | None = option(None, "start from another encoder file's weights (e.g. a pSp encoder to warm-start ReStyle)")
    bootstrap: str | None = option(None, "restyle: refine the latents of this (pSp/e4e) encoder file instead of the mean latent (ReStyle's encoder bootstrapping); hyperstyle: the encoder whose pivots it refines (required): pSp/e4e latents, or an fs encoder's latent plus feature residual (the offsets then go to the layers after its cut)")
    seed: int = option(0, "seeds the weights' initialisation and the training stream")
    checkpoint_every: int = option(500, "steps between checkpoints (encoder file, resume state, sample grid)", min=1)
    log_every: int = option(50, "steps between log lines", min=1)
    eval_images: int = option(64, "held-out generated images scored at each checkpoint", min=1)


# options that may change between an interrupted run and its resumption
_RESUMABLE = {"steps", "checkpoint_every", "log_every", "eval_images"}


def _check_options(o: TrainOptions) -> None:
    if o.arch not in ARCHS:
        raise ConfigError(f"unknown encoder architecture {o.arch!r}; choose one of {', '.join(ARCHS)}")
    if o.steps < 1 or o.batch < 2 or o.iterations < 1 or o.checkpoint_every < 1 or o.log_every < 1:
        raise ConfigError("steps, iterations, checkpoint_every and log_every must be >= 1 and batch >= 2")
    if not is_auto(o.layer) and o.arch != "fs":
        raise ConfigError(f"--layer picks the features an fs encoder corrects; this run trains {o.arch}")
    if o.bootstrap and o.arch not in ("restyle", "hyperstyle"):
        raise ConfigError(f"--bootstrap starts a restyle or hyperstyle network from another encoder's latents; this run trains {o.arch}")
    if o.arch == "hyperstyle" and not o.bootstrap:
        raise ConfigError("a hyperstyle network refines the pivots of a pSp/e4e or fs encoder: pass --bootstrap ENCODER.safetensors "
                          "(e.g. the shipped one, invertkit/encoders/weights/GENERATOR/psp.safetensors)")
    if o.arch == "hyperstyle" and o.init_from:
        raise ConfigError("--init-from warm-starts psp/e4e/restyle encoders; a hyperstyle network starts from zero offsets")
    if not 0 <= o.real_fraction < 1:
        raise ConfigError(f"real_fraction must be in [0, 1), got {o.real_fraction}")
    if min(o.pixel_weight, o.perceptual_weight, o.latent_weight, o.nscd_weight, o.offset_weight, o.adversarial_weight) < 0:
        raise ConfigError("loss weights must be >= 0")


def warm_start(encoder: Encoder, path: str) -> None:
    """Copy the weights of the encoder in ``path`` into ``encoder`` (same backbone and heads).

    From a pSp encoder into a ReStyle one, the extra input channels (the current reconstruction)
    start at zero and ReStyle's start is the mean latent, so the first ReStyle pass reproduces the
    pSp encoder exactly and training only has to learn the refinement.
    """
    from .files import load_encoder

    src = load_encoder(path)
    a, b = src.config, encoder.config
    if (a.latent_shape, a.widths, a.blocks, a.resolution, a.channels) != (b.latent_shape, b.widths, b.blocks, b.resolution, b.channels):
        raise ConfigError(f"{path}: --init-from needs an encoder of the same size and latent layout "
                          f"(it has widths {a.widths}, latent {a.latent_shape}; this run: {b.widths}, {b.latent_shape})")
    mine = encoder.state_dict()
    with torch.no_grad():
        for name, value in src.state_dict().items():
            if name in ("latent_mean", "active"):
                continue
            target = mine[name]
            if target.shape == value.shape:
                target.copy_(value)
            elif name == "backbone.stem.0.weight" and target.shape[1] == 2 * value.shape[1]:
                target.zero_()
                target[:, : value.shape[1]] = value  # image channels as trained; reconstruction channels off
            else:
                raise ConfigError(f"{path}: cannot warm-start {name} {list(target.shape)} from {list(value.shape)}")


def real_image_paths(spec: str) -> list[Path]:
    """Image files named by ``spec``: comma-separated folders (searched recursively) or glob patterns
    of folders and files (e.g. ``orl_faces/s[234]?`` for ORL subjects 20-40)."""
    import glob

    from ..io.images import IMAGE_SUFFIXES

    roots: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            roots += [Path(p) for p in sorted(glob.glob(part))] if glob.has_magic(part) else [Path(part)]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif root.is_file():
            files.append(root)
    return files


def load_real_images(spec: str, G: Generator) -> Tensor:
    """Every image ``spec`` names (see :func:`real_image_paths`) at G's size and channels,
    ``M x C x R x R`` in [-1, 1]."""
    paths = real_image_paths(spec)
    batch = read_images(paths, G.resolution, G.channels) if paths else None
    if batch is None or batch.images.shape[0] == 0:
        raise ConfigError(f"{spec}: no readable images for --images (a folder, searched recursively, or a glob pattern)")
    return batch.images


class Trainer:
    """One training run; ``run()`` trains to ``options.steps`` and returns the encoder file."""

    def __init__(self, G: Generator, out_dir: str | os.PathLike[str], options: TrainOptions, *,
                 real_images: Tensor | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        _check_options(options)
        if options.nscd_weight > 0:
            require(G, StyleSpaces, "the NSCD loss (--nscd-weight)")
        self.G, self.o, self.out = G, options, Path(out_dir)
        self.progress, self.log = progress, log or (lambda s: None)
        self.hyper = options.arch == "hyperstyle"
        targets = conv_targets(G, options.layers, **self._pivot_split(options)) if self.hyper else ()
        self.config = config_for(G, options.arch, width=options.width, max_width=options.max_width, blocks=options.blocks,
                                 targets=targets, rank=options.rank if self.hyper else 1,
                                 layer=None if options.arch != "fs" or is_auto(options.layer) else str(options.layer))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            self.encoder = build_network(self.config).to(G.device)
        if options.arch not in ("restyle", "hyperstyle"):
            self.encoder.latent_mean.copy_(G.mean_latent(self.config.space)[0])
        if options.init_from:
            warm_start(self.encoder, options.init_from)
        if options.bootstrap:
            self._bootstrap(options.bootstrap, fresh=not options.init_from)
        self.e4e = options.arch == "e4e" and self.config.rows > 1
        self.split = feature_split(self.encoder, G) if options.arch == "fs" else None
        if self.e4e:
            self.encoder.active.zero_()
            self.encoder.active[0] = 1
        self.disc = None
        if options.arch == "e4e" and options.adversarial_weight > 0:
            self.disc = LatentDiscriminator(self.config.dim).to(G.device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=options.lr * 0.1, betas=(0.5, 0.99))
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=options.lr)
        if real_images is None and options.images:
            real_images = load_real_images(options.images, G)
        self.data = TrainingData(G, self.config.space, options.batch, options.seed + 1,
                                 real_images=real_images, real_fraction=options.real_fraction if real_images is not None else 0.0,
                                 augment=options.augment, real_jitter=options.real_jitter,
                                 real_latents=self._real_latents(options, real_images))
        self.eval = eval_batch(G, self.config.space, options.eval_images)
        self.perceptual = None
        if options.perceptual_weight > 0:
            from ..features.mobilenet import cached_mobilenet_v2
            from ..objectives.image_losses import perceptual_distance

            net = cached_mobilenet_v2(G.device)
            self.perceptual = lambda a, b: perceptual_distance(a, b, net)
        self.step = 0
        self.seconds = 0.0
        self.data_state = self.data.state()
        self._start: tuple[Tensor, Tensor] | None = None  # ReStyle's mean latent and image, batch-sized

    def _real_latents(self, options: TrainOptions, real_images: Tensor | None) -> tuple[Tensor, Tensor | None] | None:
        """--real-latents: the pseudo-label file's latents (and mirrored ones), checked against the real images."""
        if not options.real_latents:
            return None
        if real_images is None:
            raise ConfigError("--real-latents needs --images (the real images it labels)")
        from .data import load_real_latents

        plain, mirrored = load_real_latents(options.real_latents)
        want = (real_images.shape[0], *self.G.latent_shape(self.config.space))
        for t in (plain, mirrored):
            if t is not None and tuple(t.shape) != want:
                raise ConfigError(f"{options.real_latents}: latents {list(t.shape)} do not label the {want[0]} images of --images "
                                  f"({self.config.space} latents {list(want[1:])}, in --images order)")
        return plain.to(self.G.device), None if mirrored is None else mirrored.to(self.G.device)

    def _pivot_split(self, options: TrainOptions) -> dict[str, Any]:
        """hyperstyle on an fs bootstrap: the split its layerwise pivots are cut at (its layers are the tail's)."""
        from .files import read_encoder_file

        if not options.bootstrap or not Path(options.bootstrap).is_file():
            return {}
        config = read_encoder_file(options.bootstrap)[0]
        if config.arch != "fs" or config.layer is None:
            return {}
        from ..generators.capabilities import LayerSplitting

        return {"split": require(self.G, LayerSplitting, "a layerwise (fs) pivot").layer_split(config.layer), "space": config.space}

    def _bootstrap(self, path: str, *, fresh: bool) -> None:
        """ReStyle's encoder bootstrapping: the run folder keeps a copy of the bootstrap encoder (the
        encoder file names it), and a fresh refiner's last layers start near zero so the first pass
        keeps the bootstrap's good latents instead of scattering them."""
        import shutil

        from .files import attach_bootstrap, file_sha256

        src = Path(path)
        if not src.is_file():
            raise ConfigError(f"{path}: no such encoder file for --bootstrap")
        self.out.mkdir(parents=True, exist_ok=True)
        copy = self.out / "bootstrap.safetensors"
        if not copy.is_file() or file_sha256(copy) != file_sha256(src):
            shutil.copyfile(src, copy)
        attach_bootstrap(self.encoder, copy, self.G.device)
        self.config = self.encoder.config
        if fresh and not self.hyper:  # a hypernetwork's A heads start at zero already
            with torch.no_grad():
                for head in self.encoder.heads:
                    last = head if isinstance(head, torch.nn.Linear) else head.linear
                    last.weight.mul_(0.1)
                    last.bias.zero_()

    # ---- schedule ---------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up over 2% of the steps, then cosine decay to 1% of ``lr``."""
        total, warm = self.o.steps, max(1, self.o.steps // 50)
        if step < warm:
            return self.o.lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return self.o.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    def unlock(self, step: int) -> None:
        """e4e's progressive training: one more offset row switched on every ``unlock_every`` steps."""
        if not self.e4e:
            return
        every = max(1, self.o.steps // (2 * self.config.rows)) if is_auto(self.o.unlock_every) or not self.o.unlock_every else int(self.o.unlock_every)
        on = min(self.config.rows, 1 + step // every)
        self.encoder.active.zero_()
        self.encoder.active[:on] = 1

    # ---- losses -----------------------------------------------------------------------------------
    def losses(self, batch: Batch, latent: Tensor, recon: Tensor | None = None) -> tuple[Tensor, dict[str, float], Tensor]:
        """Weighted loss of ``latent`` for ``batch`` (scalar), its terms, and the reconstruction
        (``recon``: the latent's image when already rendered)."""
        o, G, space = self.o, self.G, self.config.space
        if recon is None:
            recon = G.synthesize(latent, space)
        terms: dict[str, Tensor] = {}
        if o.pixel_weight:
            terms["pixel"] = (recon - batch.images).square().mean()
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(recon, batch.images).mean()
        if o.latent_weight and batch.known.any():
            terms["latent"] = (latent - batch.latents)[batch.known].square().mean()
        if o.real_latent_weight and batch.paired is not None and batch.paired.any():
            terms["real_latent"] = (latent - batch.latents)[batch.paired].square().mean()
        if o.nscd_weight:
            from ..objectives.nscd import nscd_loss

            terms["nscd"] = nscd_loss(G, latent, space).mean()
        if self.e4e and o.offset_weight:
            terms["offset"] = self.encoder.offsets(latent).square().sum((1, 2)).mean()
        if self.disc is not None:
            terms["adversarial"] = generator_loss(self.disc, self._codes(latent))
        weights = {"pixel": o.pixel_weight, "perceptual": o.perceptual_weight, "latent": o.latent_weight,
                   "real_latent": o.real_latent_weight, "nscd": o.nscd_weight, "offset": o.offset_weight, "adversarial": o.adversarial_weight}
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()}, recon

    def fs_losses(self, batch: Batch) -> tuple[Tensor, dict[str, float], Tensor]:
        """fs: the latent's losses (see :meth:`losses`) plus pixel / perceptual losses of the image with
        the feature residual and the residual penalty; returns the loss, its terms, that image."""
        o, space = self.o, self.config.space
        assert self.split is not None
        latent, residual, plain, head = encode_features(self.encoder, self.G, batch.encoder_inputs, split=self.split)
        loss, logs, _ = self.losses(batch, latent, plain)
        recon, _ = render_features(self.G, self.split, latent, space, residual, head)
        terms = {"fs_pixel": (o.pixel_weight, (recon - batch.images).square().mean()),
                 "residual": (o.residual_weight, residual.square().mean())}
        if self.perceptual is not None:
            terms["fs_perceptual"] = (o.perceptual_weight, self.perceptual(recon, batch.images).mean())
        for k, (weight, value) in terms.items():
            loss = loss + weight * value
            logs[k] = float(value.detach())
        return loss, logs, recon

    def _codes(self, latent: Tensor) -> Tensor:
        """The codes the latent discriminator judges: the base w (row 0) or the flat latent."""
        return latent[:, 0] if latent.dim() == 3 else latent.flatten(1)

    def _real_codes(self, n: int) -> Tensor:
        with torch.no_grad():
            z = torch.randn((n, *self.G.latent_shape("z")), generator=self.data.rng).to(self.G.device)
            return self._codes(self.G.convert(z, "z", self.config.space))

    # ---- one step -------------------------------------------------------------------------------
    def hyper_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """HyperStyle's training step: from the bootstrap encoder's pivots, ``iterations`` passes, each
        adding offsets and scored by its own loss (earlier offsets and reconstructions detached)."""
        o, G, space = self.o, self.G, self.config.space
        latent, recon, split, state = pivot_start(self.encoder, G, batch.encoder_inputs)  # type: ignore[arg-type]
        D = zero_offsets(self.config, latent.shape[0], latent.device)
        logs: dict[str, float] = {}
        for _ in range(o.iterations):
            step = offsets(self.encoder(batch.encoder_inputs, recon.detach()))
            D = [d.detach() + s for d, s in zip(D, step, strict=True)]
            recon = render_offset(G, self.config, latent, space, D, split=split, state=state)
            terms: dict[str, Tensor] = {}
            if o.pixel_weight:
                terms["pixel"] = (recon - batch.images).square().mean()
            if self.perceptual is not None:
                terms["perceptual"] = self.perceptual(recon, batch.images).mean()
            loss = o.pixel_weight * terms.get("pixel", 0.0) + o.perceptual_weight * terms.get("perceptual", 0.0)
            if not isinstance(loss, Tensor):
                raise ConfigError("hyperstyle training needs --pixel-weight or --perceptual-weight > 0")
            (loss / o.iterations).backward()
            logs = {k: float(v.detach()) for k, v in terms.items()}
        return loss, logs

    def train_step(self, batch: Batch) -> dict[str, float]:
        self.encoder.train()
        self.opt.zero_grad(set_to_none=True)
        if self.hyper:
            loss, logs = self.hyper_step(batch)
        elif self.config.arch == "restyle":
            if self.encoder.start_encoder is not None:  # bootstrapped: each batch starts from its own latents
                latent, recon = start_point(self.encoder, self.G, batch.encoder_inputs)
            else:  # the mean latent: the same every step, rendered once per run
                if self._start is None:
                    self._start = restyle_start(self.G, self.config.space, self.config.latent_shape, self.o.batch)
                latent, recon = (t[: batch.images.shape[0]] for t in self._start)
            logs: dict[str, float] = {}
            for _ in range(self.o.iterations):
                latent = latent.detach() + self.encoder(batch.encoder_inputs, recon.detach())
                loss, logs, recon = self.losses(batch, latent)
                (loss / self.o.iterations).backward()
        elif self.split is not None:
            loss, logs, _ = self.fs_losses(batch)
            loss.backward()
        else:
            latent = self.encoder(batch.encoder_inputs)
            loss, logs, _ = self.losses(batch, latent)
            loss.backward()
        self.opt.step()
        if self.disc is not None:
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss = discriminator_loss(self.disc, self._real_codes(latent.shape[0]), self._codes(latent.detach()))
            d_loss.backward()
            self.disc_opt.step()
            logs["disc"] = float(d_loss.detach())
        logs["loss"] = float(loss.detach())
        return logs

    # ---- evaluation, checkpoints -------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> tuple[float, Tensor]:
        """Mean PSNR (dB) on the held-out images, and their reconstructions."""
        self.encoder.eval()
        if self.hyper:
            latent, recon, split, state = pivot_start(self.encoder, self.G, self.eval.images)  # type: ignore[arg-type]
            _, recon = refine(self.encoder, self.G, self.eval.images, latent, recon, self.o.iterations,  # type: ignore[arg-type]
                              split=split, state=state)
            return float(psnr(recon, self.eval.images).mean()), recon
        if self.split is not None:
            latent, residual, _, head = encode_features(self.encoder, self.G, self.eval.images, split=self.split)
            recon, _ = render_features(self.G, self.split, latent, self.config.space, residual, head)
            return float(psnr(recon, self.eval.images).mean()), recon
        latent = encode(self.encoder, self.G, self.eval.images, iterations=self.o.iterations)
        recon = self.G.synthesize(latent, self.config.space)
        return float(psnr(recon, self.eval.images).mean()), recon

    def meta(self, eval_psnr: float | None) -> dict[str, Any]:
        return {"trained_steps": self.step, "options": dataclasses.asdict(self.o), "generator": self.G.describe(),
                "heldout_psnr": None if eval_psnr is None else round(eval_psnr, 3), "heldout_seeds": f"{self.eval.images.shape[0]} images, seeds from 1000000",
                "train_seconds": round(self.seconds, 1)}

    def checkpoint(self) -> float:
        """Write the encoder file, the resume state and a sample grid; return the held-out PSNR."""
        value, recon = self.evaluate()
        save_encoder(self.encoder, self.out / "encoder.safetensors", meta=self.meta(value))
        state = {"step": torch.tensor(self.step), "seconds": torch.tensor(self.seconds),
                 "encoder": self.encoder.state_dict(), "opt": self.opt.state_dict(), "data": self.data_state}
        if self.disc is not None:
            state["disc"] = self.disc.state_dict()
            state["disc_opt"] = self.disc_opt.state_dict()
        write_atomic(self.out / "train_state.pt", lambda tmp: torch.save(state, tmp))
        k = min(8, recon.shape[0])
        grid = make_grid([self.eval.images[:k], recon[:k]], scale=max(1, 128 // self.G.resolution))
        write_atomic(self.out / "samples" / f"step_{self.step:06d}.png", lambda tmp: grid.save(tmp, format="PNG"))
        return value

    def resume(self) -> bool:
        """Load ``train_state.pt`` if the folder holds an interrupted run of the same options."""
        path = self.out / "train_state.pt"
        if not path.is_file():
            return False
        try:
            saved = json.loads((self.out / "options.json").read_text())["options"]
            if not isinstance(saved, dict):
                raise TypeError("options is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.out / 'options.json'}: unreadable or malformed ({one_line(exc, 120)}); "
                                  "remove the folder's train_state.pt to start over, or pass another --out") from exc
        if saved.get("unlock_every") == 0:  # invertkit 0.1 wrote 0 for what is now spelled "auto"
            saved["unlock_every"] = "auto"
        for k in ("layers", "rank"):  # absent from runs before hyperstyle: their defaults
            saved.setdefault(k, getattr(TrainOptions(), k))
        now = dataclasses.asdict(self.o)
        differ = sorted(k for k in now if k not in _RESUMABLE and saved.get(k) != now[k])
        if differ:
            raise ConfigError(f"{self.out} holds a run with other options ({', '.join(differ)}); "
                              "pass the same options to resume it, or another --out for a new run")
        state = torch_load_safe(path, path, map_location=self.G.device)
        field = "the file"
        try:  # a damaged or edited resume state is one line naming the field, never a traceback
            if not isinstance(state, dict):
                raise TypeError(f"holds a {type(state).__name__}, not a dict")
            step, seconds = (v.item() if isinstance(v, Tensor) and v.numel() == 1 else v
                             for v in (state["step"], state["seconds"]))
            if type(step) is not int or not 0 <= step < 1 << 40 or not finite_number(seconds) or seconds < 0:
                field = "step / seconds"
                raise ValueError(f"{short_repr(step)} / {short_repr(seconds)}")
            for field, target in (("encoder", self.encoder), ("opt", self.opt)) + (
                    (("disc", self.disc), ("disc_opt", self.disc_opt)) if self.disc is not None else ()):
                target.load_state_dict(state[field])
            field = "data"
            self.data.set_state(state["data"])
            self.data_state = state["data"]
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            raise CheckpointError(f"{path}: the training state is damaged or from another run (field {field}: "
                                  f"{one_line(exc, 120)}); remove it to start over, or pass another --out") from exc
        self.step, self.seconds = step, float(seconds)
        self.log(f"resuming {self.out} at step {self.step}")
        return True

    def _write_log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.resume():
            (self.out / "log.jsonl").unlink(missing_ok=True)
            (self.out / "options.json").write_text(json.dumps(
                {"options": dataclasses.asdict(self.o), "generator": self.G.describe(),
                 "config": self.config.to_dict()}, indent=2))
        from tqdm import tqdm

        bar = tqdm(total=self.o.steps, initial=self.step, disable=not self.progress, desc="train-encoder", unit="step")
        # SIGTERM (a batch scheduler, `kill`) stops training like Ctrl-C does: with a checkpoint to resume from
        with Interrupts() as stop:
            try:
                self._loop(bar, stop)
            except KeyboardInterrupt:
                bar.close()
                with stop.critical():  # a second signal must not cut the checkpoint
                    self.checkpoint()
                self.log(f"interrupted at step {self.step}; checkpoint written, run the same command to resume")
                raise
        bar.close()
        return self.out / "encoder.safetensors"

    def _loop(self, bar: Any, stop: Interrupts) -> None:
        """Train until ``options.steps``, logging and checkpointing on the way."""
        while self.step < self.o.steps:
            t0 = time.perf_counter()
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            self.unlock(self.step)
            with stop.critical():  # a step is whole or not taken: the checkpoint's weights, step and data stream agree
                logs = self.train_step(self.data.next())
                self.step += 1
                self.data_state = self.data.state()  # the stream after a completed step (what resume needs)
            self.seconds += time.perf_counter() - t0
            bar.update(1)
            if self.step % self.o.log_every == 0 or self.step == self.o.steps:
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                self._write_log({"step": self.step, "lr": self.lr_at(self.step - 1), "seconds": round(self.seconds, 2), **logs})
            if self.step % self.o.checkpoint_every == 0 or self.step == self.o.steps:
                with stop.critical():
                    value = self.checkpoint()
                self._write_log({"step": self.step, "heldout_psnr": round(value, 3)})
                bar.write(f"step {self.step}: held-out PSNR {value:.2f} dB")


def train_encoder(G: Generator, out_dir: str | os.PathLike[str], options: TrainOptions | None = None, *,
                  real_images: Tensor | None = None, progress: bool = False,
                  log: Callable[[str], None] | None = None, **kw: Any) -> Path:
    """Train (or resume) an encoder for ``G`` into ``out_dir``; returns the encoder file's path.

    Args:
        G: the generator (its weights stay frozen).
        out_dir: the run folder (see the module docstring for what it holds).
        options: a :class:`TrainOptions`; keyword arguments override its fields.
        real_images: ``M x C x R x R`` in [-1, 1], instead of ``options.images``.
        progress: show a progress bar.
    """
    options = dataclasses.replace(options or TrainOptions(), **kw)
    return Trainer(G, out_dir, options, real_images=real_images, progress=progress, log=log).run()
