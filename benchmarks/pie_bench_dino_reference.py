"""Make tests/golden/pie_bench_dino.pt: facebookresearch/dino's own ViT on seeded random weights.

The reference code is not part of invertkit. Check facebookresearch/dino out anywhere (or export its
``vision_transformer.py`` from a clone) and run, from outside the project::

    git -C /path/to/dino show HEAD:vision_transformer.py > /tmp/dino_ref/vision_transformer.py
    PYTHONPATH=src python benchmarks/pie_bench_dino_reference.py /tmp/dino_ref

``vision_transformer.py`` imports ``trunc_normal_`` from the repo's ``utils.py``, which pulls in
torch.distributed and PIL helpers; only the initialiser is needed (the weights are overwritten), so a
stand-in ``utils`` module with ``nn.init.trunc_normal_`` is installed first. torchvision is not needed.

What is recorded, for a tiny ViT (dim 32, depth 2, heads 2, patch 8, 8 x 8 position grid, i.e. built for 64 px) with the
weights of ``tests/test_metrics_pie_bench.py::tiny_state(seed)``: the last block's keys taken from a
forward hook on ``blocks[-1].attn.qkv`` and split as PnP Inversion's ``VitExtractor.get_keys_from_qkv``
does (``reshape(T, 3, heads, d).permute(1, 2, 0, 3)[1]``), the first 16 rows of the keys'
cosine self-similarity (Splice's ``attn_cosine_sim``), and the class token of ``model(x)``; for a
64 x 64 input (no position interpolation) and a 64 x 96 one (bicubic interpolation to 8 x 12).
"""

from __future__ import annotations

import sys
import types
from functools import partial
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SEED = 0


def tiny_state(seed: int) -> dict[str, torch.Tensor]:
    """The same recipe as the test's ``tiny_state`` (the fixture stores a checksum to catch drift)."""
    from invertkit.features.dino_vit import DinoViTConfig

    cfg = DinoViTConfig(dim=32, depth=2, heads=2, patch=8, grid=8)
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * (0.2 if len(s) > 1 else 0.05) + (1.0 if "norm" in k and k.endswith("weight") else 0.0)
            for k, s in cfg.shapes().items()}


def main(ref_dir: str) -> None:
    torch.set_num_threads(1)
    stand_in = types.ModuleType("utils")
    stand_in.trunc_normal_ = nn.init.trunc_normal_
    sys.modules["utils"] = stand_in
    sys.path.insert(0, ref_dir)
    import vision_transformer as vits  # the reference file, from ref_dir

    model = vits.VisionTransformer(img_size=[64], patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,
                                   qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()
    state = tiny_state(SEED)
    model.load_state_dict(state, strict=True)
    captured: list[torch.Tensor] = []
    model.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, o: captured.append(o))

    out: dict[str, torch.Tensor] = {"seed": torch.tensor(SEED), "state_checksum": sum(v.double().sum() for v in state.values())}
    g = torch.Generator().manual_seed(123)
    for name, (h, w) in (("square", (64, 64)), ("wide", (64, 96))):
        x = torch.randn(1, 3, h, w, generator=g) * 1.5
        captured.clear()
        with torch.no_grad():
            cls = model(x)
        qkv = captured[0][0]  # T x 3D (batch of one, as the official extractor assumes)
        t = qkv.shape[0]
        keys = qkv.reshape(t, 3, 2, 16).permute(1, 2, 0, 3)[1]  # heads x T x d
        concat = keys.transpose(0, 1).reshape(t, 32)
        norms = concat.norm(dim=1, keepdim=True)
        sim = (concat @ concat.T) / (norms @ norms.T).clamp(min=1e-8)
        out.update({f"{name}_input": x, f"{name}_keys": keys[None].clone(), f"{name}_self_sim": sim[None, :16].clone(),
                    f"{name}_cls": cls.clone()})
    dest = REPO / "tests" / "golden" / "pie_bench_dino.pt"
    torch.save(out, dest)
    print(f"wrote {dest} ({dest.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
