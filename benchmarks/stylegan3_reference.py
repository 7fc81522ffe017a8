"""Golden StyleGAN3 pickles and outputs made with NVIDIA's own code (github.com/NVlabs/stylegan3).

Run from anywhere with a checkout of the authors' repository (its ``training.networks_stylegan3`` is
imported unmodified; on CPU its custom ops run their pure-PyTorch reference paths ``_filtered_lrelu_ref``,
``_upfirdn2d_ref`` and ``_bias_act_ref``; scipy designs its filters)::

    python benchmarks/stylegan3_reference.py --stylegan3 PATH/TO/stylegan3 --out tests/golden
    python benchmarks/stylegan3_reference.py --stylegan3 PATH/TO/stylegan3 --check   # also compare invertkit live

For each configuration in ``CONFIGS`` it

1. builds ``training.networks_stylegan3.Generator`` the way ``train.py`` + ``training_loop.py`` do
   (``dnnlib.util.construct_class_by_name(class_name=..., **G_kwargs, **common_kwargs)``, with
   ``magnitude_ema_beta`` as train.py sets it and ``conv_kernel=1, use_radial_filters=True`` and doubled
   channels for config R), seeded with ``torch.manual_seed``;
2. overwrites its weights with seeded random values that make every part of the network matter
   (``perturb``: the input affine, which NVIDIA initialises to zero, gets random weights so each w rotates
   and translates the Fourier features; ``magnitude_ema`` in [0.5, 1.5]; ``w_avg`` the mean of 2000 mapped
   z); ``G`` is a second, differently perturbed copy (so a reader that picks G over G_ema is caught);
3. pickles ``dict(G=G, D=D, G_ema=G_ema, augment_pipe=None, training_set_kwargs=dict(...))`` with
   ``pickle.dump`` exactly as ``training_loop.py`` does (deep copies in eval mode, on CPU); NVIDIA's
   ``torch_utils.persistence`` embeds the module source, so the file is a real stylegan3 pickle;
4. runs the generator (batch 2, ``z`` from ``torch.Generator().manual_seed(100 + k)``) with
   truncation 1, with truncation (psi, cutoff), with the input transform set as ``gen_images.py``
   does (``G.synthesis.input.transform.copy_(inv(make_transform(translate, rotate)))``), and on a
   style-mixed w+ (rows ``MIX_ROWS`` from a second batch of z) through ``G.synthesis``;
5. writes ``stylegan3_<name>.pkl`` and ``stylegan3_nvidia_outputs.safetensors`` (z, c, ws, images; the
   JSON metadata records the commit, torch/numpy/scipy versions, configurations and run settings).

Measured with torch 2.13 (CPU), numpy 2.4, scipy 1.17, stylegan3 commit c233a919a6faee6e36a316ddd4eddababad1adf9:
invertkit's ``StyleGAN3Generator`` loaded from each pickle reproduces every output to within
``max|ours - ref| / max|ref|`` of about 1e-6 (the tests require 1e-4); ``--check`` prints the values and also
compares a default-geometry config T (14 layers, 64 px) and R built live.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

# name -> (kind, common_kwargs, G_kwargs beyond train.py's defaults, runs)
CONFIGS: dict[str, dict] = {
    # config T as train.py --cfg=stylegan3-t builds it, small: 32 px, 6 layers (rates 16 -> 32: an x4 up layer)
    "t32": dict(cfg="stylegan3-t", common=dict(c_dim=0, img_resolution=32, img_channels=3),
                G=dict(z_dim=32, w_dim=32, channel_base=256, channel_max=12, num_layers=6, mapping_layers=2),
                psi=(0.6, None), with_D=True),
    # config R: 1x1 convolutions, doubled channels, radial (jinc) down filters in non-critical layers
    "r16": dict(cfg="stylegan3-r", common=dict(c_dim=0, img_resolution=16, img_channels=3),
                G=dict(z_dim=32, w_dim=32, channel_base=256, channel_max=12, num_layers=4, mapping_layers=2),
                psi=(0.5, 4), with_D=False),
    # every other kwarg: conditional, greyscale, fp32 options (--fp32: conv_clamp None replaced by a biting
    # clamp), short filters, one critical layer, small margin, unscaled output
    "c16": dict(cfg="stylegan3-t", common=dict(c_dim=3, img_resolution=16, img_channels=1),
                G=dict(z_dim=16, w_dim=24, channel_base=128, channel_max=8, num_layers=4, mapping_layers=1,
                       num_critical=1, margin_size=3, filter_size=4, conv_clamp=0.5, output_scale=1.0,
                       num_fp16_res=0, first_cutoff=1.5, use_radial_filters=True, mapping_lr=0.05),
                psi=(0.7, 3), with_D=False),
}
TRANSLATE = (0.125, -0.0625)
ROTATE = 17.0
MIX_ROWS = (2, 5)  # rows [2, 5) of the mixed w+ come from the second batch of z
BATCH = 2


def import_stylegan3(root: Path) -> types.SimpleNamespace:
    """Import the authors' modules from ``root`` (unmodified). ``pkg_resources`` (imported by
    conv2d_gradfix for a version comparison) is gone from recent setuptools: a stub gives it
    ``packaging``'s ``parse_version``."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=packaging.version.parse)  # type: ignore[assignment]
    sys.path.insert(0, str(root))
    dnnlib = importlib.import_module("dnnlib")
    n3 = importlib.import_module("training.networks_stylegan3")
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return types.SimpleNamespace(dnnlib=dnnlib, n3=n3, commit=commit or "unknown")


def g_kwargs(ref: types.SimpleNamespace, spec: dict) -> dict:
    """``c.G_kwargs`` as train.py builds them for ``spec`` (batch 32), plus the small-size overrides."""
    E = ref.dnnlib.EasyDict
    o = dict(spec["G"])
    kw = E(class_name="training.networks_stylegan3.Generator", z_dim=o.pop("z_dim"), w_dim=o.pop("w_dim"),
           mapping_kwargs=E(num_layers=o.pop("mapping_layers")))
    if "mapping_lr" in o:
        kw.mapping_kwargs.lr_multiplier = o.pop("mapping_lr")
    kw.channel_base, kw.channel_max = o.pop("channel_base"), o.pop("channel_max")
    kw.magnitude_ema_beta = 0.5 ** (32 / (20 * 1e3))
    if spec["cfg"] == "stylegan3-r":
        kw.conv_kernel = 1
        kw.channel_base *= 2
        kw.channel_max *= 2
        kw.use_radial_filters = True
    kw.update(o)
    return kw


@torch.no_grad()
def perturb(G: torch.nn.Module, seed: int) -> None:
    """Seeded random weights (see the module docstring); filters, frequencies, phases and the transform stay."""
    keep = ("up_filter", "down_filter", "freqs", "phases", "transform", "w_avg")
    lr = G.mapping.fc0.weight_gain * np.sqrt(G.mapping.fc0.in_features)
    for i, (key, t) in enumerate(sorted(G.state_dict().items())):
        if key.endswith(keep):
            continue
        g = torch.Generator().manual_seed(seed * 1000 + i)
        r = torch.randn(t.shape, generator=g)
        if key.startswith("mapping."):
            r = r / lr if key.endswith("weight") else 0.1 * r / lr
        elif key.endswith("magnitude_ema"):
            r = 0.5 + torch.rand(t.shape, generator=g)
        elif key == "synthesis.input.affine.bias":
            r = torch.tensor([1.0, 0.0, 0.0, 0.0]) + 0.2 * r
        elif key.endswith("affine.bias"):
            r = 1.0 + 0.2 * r
        elif key.endswith("bias"):
            r = 0.1 * r
        t.copy_(r)
    z = torch.randn([2000, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = one_hot(torch.arange(2000) % max(G.c_dim, 1), G.c_dim)
    G.mapping.w_avg.copy_(G.mapping(z, c)[:, 0].mean(0))


def one_hot(idx: torch.Tensor, c_dim: int) -> torch.Tensor | None:
    return torch.nn.functional.one_hot(idx, c_dim).float() if c_dim > 0 else None


def make_transform(translate: tuple[float, float], angle: float) -> np.ndarray:
    """gen_images.py's ``make_transform``, verbatim."""
    m = np.eye(3)
    s = np.sin(angle / 360.0 * np.pi * 2)
    c = np.cos(angle / 360.0 * np.pi * 2)
    m[0][0] = c
    m[0][1] = s
    m[0][2] = translate[0]
    m[1][0] = -s
    m[1][1] = c
    m[1][2] = translate[1]
    return m


def build(ref: types.SimpleNamespace, name: str, k: int) -> tuple[dict, dict]:
    spec = CONFIGS[name]
    torch.manual_seed(k)
    kw = g_kwargs(ref, spec)
    G = ref.dnnlib.util.construct_class_by_name(**kw, **spec["common"]).train().requires_grad_(False)
    perturb(G, seed=k)
    G_ema = copy.deepcopy(G).eval()
    perturb(G, seed=k + 50)  # the training network differs from the moving average
    D = None
    if spec["with_D"]:
        D = ref.dnnlib.util.construct_class_by_name(
            class_name="training.networks_stylegan2.Discriminator", channel_base=32, channel_max=4,
            block_kwargs=ref.dnnlib.EasyDict(freeze_layers=0), mapping_kwargs=ref.dnnlib.EasyDict(),
            epilogue_kwargs=ref.dnnlib.EasyDict(mbstd_group_size=4), **spec["common"]).train().requires_grad_(False)
    training_set_kwargs = ref.dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset", path=f"~/datasets/{name}.zip",
                                              use_labels=spec["common"]["c_dim"] > 0, max_size=1000, xflip=False,
                                              resolution=spec["common"]["img_resolution"], random_seed=0)
    snapshot = dict(G=G, D=D, G_ema=G_ema, augment_pipe=None, training_set_kwargs=dict(training_set_kwargs))
    for key, value in snapshot.items():  # training_loop.py, single GPU
        if isinstance(value, torch.nn.Module):
            snapshot[key] = copy.deepcopy(value).eval().requires_grad_(False).cpu()
    return snapshot, dict(kw)


@torch.no_grad()
def run(G: torch.nn.Module, name: str, k: int) -> dict[str, torch.Tensor]:
    spec = CONFIGS[name]
    g = torch.Generator().manual_seed(100 + k)
    z = torch.randn([BATCH, G.z_dim], generator=g)
    z2 = torch.randn([BATCH, G.z_dim], generator=g)
    c = one_hot(torch.arange(BATCH) % max(G.c_dim, 1), G.c_dim)
    out = {"z": z, "z2": z2}
    if c is not None:
        out["c"] = c
    out["ws"] = G.mapping(z, c)
    out["img"] = G(z, c)
    psi, cutoff = spec["psi"]
    out["img_psi"] = G(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
    wmix = out["ws"].clone()
    wmix[:, MIX_ROWS[0]:MIX_ROWS[1]] = G.mapping(z2, c)[:, MIX_ROWS[0]:MIX_ROWS[1]]
    out["wmix"] = wmix
    out["img_wmix"] = G.synthesis(wmix)
    m = np.linalg.inv(make_transform(TRANSLATE, ROTATE))
    identity = G.synthesis.input.transform.clone()
    G.synthesis.input.transform.copy_(torch.from_numpy(m))  # gen_images.py
    out["transform"] = G.synthesis.input.transform.clone()
    out["img_transform"] = G(z, c)
    G.synthesis.input.transform.copy_(identity)
    return {f"{name}.{key}": v.detach().float().contiguous() for key, v in out.items()}


def check_live(ref: types.SimpleNamespace, outputs: dict[str, torch.Tensor], pkl_paths: dict[str, Path]) -> None:
    """Compare invertkit against the golden outputs and against two default-geometry networks built live."""
    from invertkit.generators.loading import load_generator
    from invertkit.generators.stylegan3 import StyleGAN3Generator
    from invertkit.generators.stylegan3 import make_transform as ik_transform

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max())

    for name, path in pkl_paths.items():
        G = load_generator(path)
        pre = f"{name}."
        c = outputs.get(pre + "c")
        psi, cutoff = CONFIGS[name]["psi"]
        with torch.no_grad():
            res = {
                "ws": rel(G.convert(outputs[pre + "z"], "z", "w+", c=c), outputs[pre + "ws"]),
                "img": rel(G.synthesize(outputs[pre + "z"], "z", c=c), outputs[pre + "img"]),
                "img_psi": rel(G.synthesize(outputs[pre + "z"], "z", c=c, truncation_psi=psi, truncation_cutoff=cutoff),
                               outputs[pre + "img_psi"]),
                "img_wmix": rel(G.synthesize(outputs[pre + "wmix"], "w+"), outputs[pre + "img_wmix"]),
                "img_transform": rel(G.with_transform(translate=TRANSLATE, rotate_deg=ROTATE).synthesize(outputs[pre + "z"], "z", c=c),
                                     outputs[pre + "img_transform"]),
            }
        print(json.dumps({"golden": name, "max_rel_diff": res}))
    for name, cfg in (("t64-default", "stylegan3-t"), ("r64-default", "stylegan3-r")):
        torch.manual_seed(0)
        E = ref.dnnlib.EasyDict
        kw = E(class_name="training.networks_stylegan3.Generator", z_dim=64, w_dim=64, mapping_kwargs=E(num_layers=2),
               channel_base=1024, channel_max=32, magnitude_ema_beta=0.999)
        if cfg == "stylegan3-r":
            kw.update(conv_kernel=1, channel_base=2048, channel_max=64, use_radial_filters=True)
        Gn = ref.dnnlib.util.construct_class_by_name(**kw, c_dim=0, img_resolution=64, img_channels=3).eval()
        perturb(Gn, seed=7)
        path = Path(f"/tmp/invertkit-sg3-{name}.pkl")
        with open(path, "wb") as f:
            pickle.dump(dict(G=None, D=None, G_ema=Gn, augment_pipe=None, training_set_kwargs={}), f)
        G = load_generator(path)
        assert isinstance(G, StyleGAN3Generator)
        z = torch.randn([2, 64], generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            a = Gn(z, None)
            b = G.synthesize(z, "z")
            Gn.synthesis.input.transform.copy_(torch.from_numpy(np.linalg.inv(make_transform((0.3, 0.1), -40.0))))
            at = Gn(z, None)
            bt = G.with_transform(translate=(0.3, 0.1), rotate_deg=-40.0).synthesize(z, "z")
        assert torch.allclose(ik_transform((0.3, 0.1), -40.0).double(), torch.from_numpy(make_transform((0.3, 0.1), -40.0)), atol=1e-6)
        print(json.dumps({"live": name, "layers": len(G.config.layer_specs()), "max_rel_diff": {"img": rel(b, a), "img_transform": rel(bt, at)}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stylegan3", required=True, type=Path, help="a checkout of github.com/NVlabs/stylegan3")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "golden")
    ap.add_argument("--check", action="store_true", help="also compare invertkit's StyleGAN3Generator (live)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ref = import_stylegan3(args.stylegan3.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, torch.Tensor] = {}
    meta: dict = {"stylegan3_commit": ref.commit, "torch": torch.__version__, "numpy": np.__version__,
                  "scipy": importlib.import_module("scipy").__version__, "translate": list(TRANSLATE), "rotate": ROTATE,
                  "mix_rows": list(MIX_ROWS), "configs": {}}
    paths = {}
    for k, name in enumerate(CONFIGS):
        snapshot, kw = build(ref, name, k)
        path = args.out / f"stylegan3_{name}.pkl"
        with open(path, "wb") as f:
            pickle.dump(snapshot, f)
        paths[name] = path
        outputs.update(run(snapshot["G_ema"], name, k))
        meta["configs"][name] = {"G_kwargs": json.loads(json.dumps(kw, default=str)), "common_kwargs": CONFIGS[name]["common"],
                                 "psi": list(CONFIGS[name]["psi"]), "pkl_bytes": path.stat().st_size}
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    from safetensors.torch import save_file

    golden = args.out / "stylegan3_nvidia_outputs.safetensors"
    save_file(outputs, str(golden), metadata={"json": json.dumps(meta)})
    print(f"wrote {golden} ({golden.stat().st_size} bytes)")
    if args.check:
        check_live(ref, outputs, paths)


if __name__ == "__main__":
    main()
