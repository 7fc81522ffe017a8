"""Make the PGGAN golden files from the authors' code (facebookresearch/pytorch_GAN_zoo) and compare.

Usage (from the repository root; AUTHORS is a checkout of github.com/facebookresearch/pytorch_GAN_zoo,
e.g. commit b75dee4, kept outside this repository)::

    PYTHONPATH=src python benchmarks/pggan_reference.py AUTHORS [--out tests/golden]

What it does, all on CPU with one thread:

1. ``ProgressiveGAN(dimLatentVector=16, depthScale0=32, lossMode="WGANGP")`` grown twice
   (``addScale(32)``, ``addScale(16)``: 4 -> 8 -> 16 px); every weight and bias of ``netG`` and
   ``avgG`` is overwritten with seeded N(0, 1) / N(0, 0.2) values (different seeds, so the reader's
   choice of ``avgG`` is visible; zero biases would leave the bias path untested).
2. Runs the authors' forward for a seeded z batch: ``test(z, getAvG=True)``; the average generator with ``setNewAlpha(0.5)`` (a scale being faded in); with a final ``tanh``
   (what ``lossMode`` MSE/DCGAN sets); as a ``GNet(equalizedlR=False)`` and ``GNet(leakyReluLeak=0.1)``
   holding the same weights.
3. A tiny ``ProgressiveGAN(dimLatentVector=8, depthScale0=8, lossMode="DCGAN")`` grown once (8 px),
   seeded the same way, written with the authors' own ``save()`` to ``pggan_authors_tiny.pth``
   (a real ``models.utils.config.BaseConfig`` pickle, netG, netD, avgG), and its outputs.
4. Writes ``pggan_reference.safetensors``: the 16 px ``avgG`` weights (``avgG.<name>``), the z
   batches and every output (the 8 px file's too); the metadata records the variants as JSON.
   (``netG`` versus ``avgG`` is checked on the 8 px file, which holds both.)
5. If invertkit is importable, loads both through ``invertkit.load_generator`` / ``PGGANGenerator``
   and prints ``max|ours - ref| / max|ref|`` per variant.

``--live PX`` instead builds the authors' default widths (latent 512, depthScale0 512) grown to PX
px, saves it with their ``save()`` to a temporary folder, loads it with ``load_generator`` and prints
the error; it writes nothing.

Only two things are patched, neither in the network: ``torch.optim.Adam`` gets float betas (the
authors pass ``[0, 0.99]``, which torch >= 2.4 refuses), and nothing is moved to a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

SEED_NETG, SEED_AVGG, SEED_Z = 1, 2, 3
AUTHORS_DEPTHS = [512, 512, 512, 512, 256, 128, 64, 32, 16]  # their pgan_config.py depthScales (4 px ...)


def _patch_adam() -> None:
    base = torch.optim.Adam

    class FloatBetasAdam(base):  # type: ignore[misc, valid-type]
        def __init__(self, params, betas=(0.9, 0.999), **kw):  # noqa: ANN001
            super().__init__(params, betas=tuple(float(b) for b in betas), **kw)

    torch.optim.Adam = FloatBetasAdam  # type: ignore[misc]


def seeded_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """N(0, 1) weights and N(0, 0.2) biases, drawn in state-dict order from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in module.state_dict().items():
        std = 0.2 if name.endswith("bias") else 1.0
        out[name] = torch.randn(t.shape, generator=g) * std
    return out


def build(authors: Path, latent: int, depth0: int, others: list[int], loss: str):  # noqa: ANN201
    from models.progressive_gan import ProgressiveGAN  # the authors' code, from the checkout on sys.path

    torch.manual_seed(0)  # netD's initialisation (not compared, but written by save()) is then reproducible
    model = ProgressiveGAN(dimLatentVector=latent, depthScale0=depth0, useGPU=False, lossMode=loss)
    for d in others:
        model.addScale(d)
    model.getOriginalG().load_state_dict(seeded_state(model.getOriginalG(), SEED_NETG))
    model.getOriginalAvgG().load_state_dict(seeded_state(model.getOriginalAvgG(), SEED_AVGG))
    return model


def gnet_like(latent: int, depth0: int, others: list[int], **kw):  # noqa: ANN201
    from models.networks.progressive_conv_net import GNet

    g = GNet(latent, depth0, **kw)
    for d in others:
        g.addScale(d)
    return g.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("authors", type=Path, help="checkout of facebookresearch/pytorch_GAN_zoo")
    ap.add_argument("--out", type=Path, default=Path("tests/golden"))
    ap.add_argument("--live", type=int, default=0, metavar="PX",
                    help="instead: the authors' default widths (latent 512, depthScales 512 to 32 px, then halving) "
                         "grown to PX, saved by their save() to a temporary folder, compared live; nothing is written")
    ap.add_argument("--authors-commit", default="", help="record this commit (default: git rev-parse HEAD in AUTHORS)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.authors.resolve()))
    _patch_adam()
    if args.live:
        live(args.authors, args.live)
        return
    commit = args.authors_commit
    if not commit:
        try:
            commit = subprocess.run(["git", "-C", str(args.authors), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=False).stdout.strip() or "unknown"
        except OSError:
            commit = "unknown"

    tensors: dict[str, torch.Tensor] = {}
    variants: dict[str, dict] = {}
    with torch.no_grad():
        # ---- 16 px, WGANGP (no output activation) --------------------------------------------
        latent, d0, others = 16, 32, [32, 16]
        model = build(args.authors, latent, d0, others, "WGANGP")
        z = torch.randn(4, latent, generator=torch.Generator().manual_seed(SEED_Z)) * 1.7
        tensors["z"] = z
        for name, t in model.getOriginalAvgG().state_dict().items():
            tensors[f"avgG.{name}"] = t.clone()
        base = dict(latent_dim=latent, depths=[d0, *others], dim_output=3)
        tensors["out.avg"] = model.test(z, getAvG=True)
        variants["avg"] = dict(base, weights="avgG")
        avg = model.getOriginalAvgG()
        avg.setNewAlpha(0.5)
        tensors["out.alpha05"] = avg(z)
        variants["alpha05"] = dict(base, weights="avgG", alpha=0.5)
        avg.setNewAlpha(0.0)
        avg.generationActivation = torch.tanh  # what lossMode MSE / DCGAN passes to GNet
        tensors["out.tanh"] = avg(z)
        variants["tanh"] = dict(base, weights="avgG", generation_activation="tanh")
        avg.generationActivation = None
        for key, kw, ours in (("noeq", dict(equalizedlR=False), dict(equalized_lr=False)),
                              ("leak01", dict(leakyReluLeak=0.1), dict(leaky_relu=0.1))):
            g = gnet_like(latent, d0, others, **kw)
            g.load_state_dict(avg.state_dict())
            tensors[f"out.{key}"] = g(z)
            variants[key] = dict(base, weights="avgG", **ours)

        # ---- 8 px, DCGAN loss (final tanh), written by the authors' save() -----------------------
        tiny = build(args.authors, 8, 8, [8], "DCGAN")
        z8 = torch.randn(3, 8, generator=torch.Generator().manual_seed(SEED_Z + 1))
        tensors["tiny.z"] = z8
        tensors["tiny.out.avg"] = tiny.test(z8, getAvG=True)
        tensors["tiny.out.net"] = tiny.test(z8, getAvG=False)
        args.out.mkdir(parents=True, exist_ok=True)
        tiny_path = args.out / "pggan_authors_tiny.pth"
        tiny.save(str(tiny_path))

    tensors = {k: v.detach().contiguous().float() for k, v in tensors.items()}
    meta = {"authors_commit": commit, "torch": torch.__version__, "variants": json.dumps(variants, sort_keys=True),
            "seeds": json.dumps({"netG": SEED_NETG, "avgG": SEED_AVGG, "z": SEED_Z})}
    golden = args.out / "pggan_reference.safetensors"
    save_file(tensors, str(golden), metadata=meta)
    print(f"wrote {golden} ({golden.stat().st_size} bytes) and {tiny_path} ({tiny_path.stat().st_size} bytes)")
    compare(golden, tiny_path)


def live(authors: Path, px: int) -> None:
    """The authors' default-width ProgressiveGAN grown to ``px``, through their save() and our loader."""
    import tempfile

    from invertkit.generators import load_generator

    n = max(1, px.bit_length() - 2)  # scales for 4 .. px
    depths = AUTHORS_DEPTHS[:n]
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        model = build(authors, 512, depths[0], depths[1:], "WGANGP")
        z = torch.randn(2, 512, generator=torch.Generator().manual_seed(SEED_Z))
        ref = model.test(z, getAvG=True)
        path = Path(tmp) / f"pgan_{px}.pth"
        model.save(str(path))
        G = load_generator(path)
        rel = float((G.synthesize(z, "z") - ref).abs().max() / ref.abs().max())
    print(f"live {px} px (depths {depths}, latent 512, {path.name} from the authors' save()): "
          f"{type(G).__name__} from {G.meta['generator']}, max rel err {rel:.3g} (tolerance 1e-4)")


def compare(golden: Path, tiny_path: Path) -> None:
    """Our implementation against the stored reference outputs: max|ours - ref| / max|ref| per variant."""
    try:
        from invertkit.generators import load_generator
        from invertkit.generators.pggan import PGGANConfig, PGGANGenerator
    except ImportError:
        print("invertkit not importable (set PYTHONPATH=src): comparison skipped")
        return
    from safetensors import safe_open

    with safe_open(str(golden), "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        variants = json.loads(f.metadata()["variants"])
    worst = 0.0
    with torch.no_grad():
        for key, v in variants.items():
            prefix = v.pop("weights") + "."
            sd = {k[len(prefix):]: x for k, x in t.items() if k.startswith(prefix)}
            G = PGGANGenerator(PGGANConfig(**v), sd)
            rel = float((G.synthesize(t["z"], "z") - t[f"out.{key}"]).abs().max() / t[f"out.{key}"].abs().max())
            worst = max(worst, rel)
            print(f"16 px {key:8s} max rel err {rel:.3g}")
        for which in ("avg", "net"):
            from invertkit.generators.pggan import load_pggan

            G = load_pggan(tiny_path, which="avgG" if which == "avg" else "netG")
            ref = t[f"tiny.out.{which}"]
            rel = float((G.synthesize(t["tiny.z"], "z") - ref).abs().max() / ref.abs().max())
            worst = max(worst, rel)
            print(f"authors' save() 8 px {which}G: max rel err {rel:.3g}")
        G = load_generator(tiny_path)
        print(f"load_generator({tiny_path.name}) -> {type(G).__name__} {G.resolution} px, from {G.meta['generator']}")
    print(f"worst max rel err {worst:.3g} (tolerance 1e-4)")


if __name__ == "__main__":
    main()
