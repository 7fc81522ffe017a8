"""Golden BigGAN outputs from the authors' code (huggingface/pytorch-pretrained-BigGAN), and a live check.

Usage (the checkout is the authors' repository, e.g. ``git archive`` of commit 1e18aed into /tmp)::

    PYTHONPATH=src python benchmarks/biggan_reference.py /tmp/ref-biggan \
        [--out tests/golden/biggan_reference.safetensors] [--folders /tmp/biggan-golden]
    PYTHONPATH=src python benchmarks/biggan_reference.py /tmp/ref-biggan --full 128   # live, full size

For each tiny config below it builds the package's ``BigGAN(config)``, checks that its state-dict
names and shapes equal invertkit's, loads invertkit's ``seeded_weights(config, seed)`` into it
strictly, saves it in the package's own layout (``config.json`` + ``torch.save(model.state_dict())``
as ``pytorch_model.bin``) and reloads that folder with the package's ``BigGAN.from_pretrained``.
In eval mode it then renders ``model(z, class_vector, truncation)`` with z from the package's
``truncated_noise_sample`` (scipy) for each run, loads the same folder with invertkit's
``load_generator`` and prints ``max|ours - ref| / max|ref|``. The golden file holds z, the class
vectors and the reference images per run; its metadata holds the configs, runs, the reference's
state-dict key list and a digest of the weights (so a change of torch's RNG is told apart from a
numerical difference). The reference's unused download helpers need ``boto3``/``botocore``: they
are stubbed here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import types
from pathlib import Path

import torch

# (name, config, seed); layers are (up_sample, in_mult, out_mult)
GOLDEN_CONFIGS: list[tuple[str, dict, int]] = [
    ("attn32", dict(output_dim=32, z_dim=16, class_embed_dim=16, channel_width=8, num_classes=10,
                    layers=[[True, 16, 8], [True, 8, 4], [True, 4, 2], [False, 2, 1]],
                    attention_layer_position=2, eps=1e-4, n_stats=51), 1),
    ("deep16", dict(output_dim=16, z_dim=24, class_embed_dim=24, channel_width=8, num_classes=10,
                    layers=[[False, 16, 16], [True, 16, 16], [False, 16, 8], [True, 8, 4], [False, 4, 2], [False, 2, 1]],
                    attention_layer_position=0, eps=1e-3, n_stats=5), 2),
]
# (config name, run name, truncation, classes: a list of class indices or of {index: weight} mixtures)
GOLDEN_RUNS: list[tuple[str, str, float, list]] = [
    ("attn32", "t040", 0.4, [3, 7]),
    ("attn32", "t0415", 0.415, [0, 9]),
    ("attn32", "t073_mix", 0.73, [{"2": 0.3, "5": 0.7}, 1]),
    ("attn32", "t100", 1.0, [4, 4]),
    ("deep16", "t040", 0.4, [1, 8]),
    ("deep16", "t062", 0.62, [{"0": 0.5, "6": 0.5}, 2]),
    ("deep16", "t100", 1.0, [5, 3]),
]


def class_vectors(classes: list, num_classes: int) -> torch.Tensor:
    out = torch.zeros(len(classes), num_classes)
    for i, c in enumerate(classes):
        for k, w in ({str(c): 1.0} if isinstance(c, int) else c).items():
            out[i, int(k)] = float(w)
    return out


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def stub_downloads() -> None:
    """The package's file_utils imports boto3/botocore for S3 downloads, never used for local folders."""
    boto3 = types.ModuleType("boto3")
    botocore = types.ModuleType("botocore")
    exc = types.ModuleType("botocore.exceptions")
    exc.ClientError = type("ClientError", (Exception,), {})
    botocore.exceptions = exc
    sys.modules.update({"boto3": boto3, "botocore": botocore, "botocore.exceptions": exc})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", help="checkout of huggingface/pytorch-pretrained-BigGAN")
    ap.add_argument("--out", default="tests/golden/biggan_reference.safetensors")
    ap.add_argument("--folders", default="/tmp/biggan-golden", help="where the package-layout folders are written")
    ap.add_argument("--full", type=int, choices=(128, 256, 512), default=None,
                    help="instead: a live check of the released BigGAN-deep-N architecture on seeded weights (no golden)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    stub_downloads()
    sys.path.insert(0, str(Path(args.reference).resolve()))
    from pytorch_pretrained_biggan import BigGAN, truncated_noise_sample
    from pytorch_pretrained_biggan import BigGANConfig as RefConfig
    from safetensors.torch import save_file

    from invertkit.generators.biggan import BigGANConfig, seeded_weights
    from invertkit.generators.loading import load_generator

    if args.full:
        full_size_check(args, BigGAN, RefConfig, truncated_noise_sample)
        return
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, object] = {"configs": {}, "runs": [], "keys": {}, "digests": {}}
    worst = 0.0
    for name, cfg_dict, seed in GOLDEN_CONFIGS:
        ref_model = BigGAN(RefConfig.from_dict(cfg_dict))
        ours = seeded_weights(BigGANConfig.from_dict(cfg_dict), seed)
        ref_shapes = {k: tuple(v.shape) for k, v in ref_model.state_dict().items()}
        assert ref_shapes == {k: tuple(v.shape) for k, v in ours.items()}, f"{name}: state-dict layouts differ"
        ref_model.load_state_dict(ours, strict=True)
        folder = Path(args.folders) / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(ref_model.config.to_json_string(), encoding="utf-8")
        torch.save(ref_model.state_dict(), folder / "pytorch_model.bin")
        ref_model = BigGAN.from_pretrained(str(folder)).eval()  # the package's own loader
        G = load_generator(str(folder))
        meta["configs"][name] = {"config": cfg_dict, "seed": seed}
        meta["keys"][name] = list(ref_shapes)
        meta["digests"][name] = weights_digest(ours)
        for cname, run, trunc, classes in GOLDEN_RUNS:
            if cname != name:
                continue
            n = len(classes)
            z = torch.from_numpy(truncated_noise_sample(batch_size=n, dim_z=cfg_dict["z_dim"], truncation=trunc,
                                                        seed=1000 + len(meta["runs"])))
            c = class_vectors(classes, cfg_dict["num_classes"])
            with torch.no_grad():
                ref = ref_model(z, c, trunc)
                zc = torch.cat([z, G.embed_classes(c)], dim=1)
                got = G.synthesize(zc, "zc", truncation=trunc)
            err = float((got - ref).abs().max() / ref.abs().max())
            worst = max(worst, err)
            print(f"{name}/{run}: truncation {trunc}, images {list(ref.shape)}, max rel err {err:.2e}")
            key = f"{name}.{run}"
            tensors.update({f"{key}.z": z.contiguous(), f"{key}.class": c.contiguous(), f"{key}.image": ref.contiguous()})
            meta["runs"].append({"config": name, "run": run, "truncation": trunc, "classes": classes})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"golden": json.dumps(meta)})
    print(f"worst max rel err {worst:.2e}; wrote {out} ({out.stat().st_size:,} bytes)")


# the released configs (the package's convert_tf_to_pytorch.py): 128 px has the default layers
FULL_LAYERS = {
    128: None,
    256: [[False, 16, 16], [True, 16, 16], [False, 16, 16], [True, 16, 8], [False, 8, 8], [True, 8, 8], [False, 8, 8],
          [True, 8, 4], [False, 4, 4], [True, 4, 2], [False, 2, 2], [True, 2, 1]],
    512: [[False, 16, 16], [True, 16, 16], [False, 16, 16], [True, 16, 8], [False, 8, 8], [True, 8, 8], [False, 8, 8],
          [True, 8, 4], [False, 4, 4], [True, 4, 2], [False, 2, 2], [True, 2, 1], [False, 1, 1], [True, 1, 1]],
}


def full_size_check(args: argparse.Namespace, BigGAN, RefConfig, truncated_noise_sample) -> None:  # noqa: ANN001, N803
    """The released architecture (z 128, width 128, 1000 classes, 51 levels) on seeded weights: the
    package and invertkit, both loading the same package-layout folder, for 2 images at 2 truncations."""
    import time

    from invertkit.generators.biggan import BigGANConfig, seeded_weights
    from invertkit.generators.loading import load_generator

    res = args.full
    cfg_dict = {"output_dim": res} if FULL_LAYERS[res] is None else {
        "output_dim": res, "layers": FULL_LAYERS[res], "attention_layer_position": 8}
    cfg = BigGANConfig.from_dict(cfg_dict)
    ref_model = BigGAN(RefConfig.from_dict(cfg.to_dict()))
    ref_model.load_state_dict(seeded_weights(cfg, 7), strict=True)
    folder = Path(args.folders) / f"full{res}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(ref_model.config.to_json_string(), encoding="utf-8")
    torch.save(ref_model.state_dict(), folder / "pytorch_model.bin")
    del ref_model
    ref_model = BigGAN.from_pretrained(str(folder)).eval()
    G = load_generator(str(folder))
    n_params = sum(p.numel() for p in ref_model.parameters())
    for trunc in (0.4, 0.73):
        z = torch.from_numpy(truncated_noise_sample(batch_size=2, dim_z=128, truncation=trunc, seed=5))
        c = class_vectors([207, 980], 1000)
        with torch.no_grad():
            t0 = time.perf_counter()
            ref = ref_model(z, c, trunc)
            t1 = time.perf_counter()
            got = G.synthesize(torch.cat([z, G.embed_classes(c)], dim=1), "zc", truncation=trunc)
            t2 = time.perf_counter()
        err = float((got - ref).abs().max() / ref.abs().max())
        print(f"BigGAN-deep-{res} layout ({n_params:,} parameters), truncation {trunc}: max rel err {err:.2e}; "
              f"2 images: reference {t1 - t0:.2f} s, invertkit {t2 - t1:.2f} s (CPU, {torch.get_num_threads()} thread)")


if __name__ == "__main__":
    main()
