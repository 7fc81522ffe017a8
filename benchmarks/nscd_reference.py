"""Golden values of LSAP's NSCD computed by the authors' code (caopulan/GANInverter), checked in
``tests/test_metrics_nscd_extra.py::test_nscd_matches_the_authors_code``.

Run outside the project, with a checkout of https://github.com/caopulan/GANInverter::

    PYTHONPATH=src python benchmarks/nscd_reference.py /path/to/GANInverter tests/golden/nscd_lsap.safetensors

What is the authors' code here: ``models/stylegan2/model.py`` (their rosinality-derived Generator): its
mapping network ``style`` (PixelNorm + EqualLinear with the fused leaky ReLU), its ``EqualLinear``
modulation layers, ``get_modulation_modules`` (which layers NSCD reads) and ``get_style_space`` (one
W+ row per modulation layer). The anchor (mean over 10^4 mapped samples of ``s / ||s||``, not
re-normalised) and the per-layer similarity (``unit style . anchor``) are those of their LSAP loss in
``training/encoder_trainer.py``, written out here; the metric is ``mean_l 1 - similarity_l / ||anchor_l||``
(the cosine). Their CUDA ops are not built: ``models.stylegan2.op`` is replaced by a pure-PyTorch
stand-in (only the mapping's bias + leaky ReLU(0.2) * sqrt(2) is evaluated; ``upfirdn2d`` is unused).

Weights: invertkit's tiny seeded StyleGAN2 (the tests' ``tiny_sg2`` config) with its mapping and
affine biases perturbed from a fixed seed, converted to rosinality names by invertkit's converter and
loaded into the authors' modules (whose modulation layers are rebuilt at the tiny channel counts:
their Generator fixes 512 channels at 16 px). Anchor draws: ``z ~ N(0, I)`` from
``torch.Generator().manual_seed(seed + 1_000_003)``, seed 0: invertkit's documented anchor stream.
The golden file holds the NVIDIA-named mapping/affine weights, the test latents (W+) and the reference
NSCD, anchors and LSAP loss terms (about 60 kB).
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

TINY = dict(z_dim=32, w_dim=32, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32)


def _op_stand_in() -> types.ModuleType:
    """``models.stylegan2.op`` without CUDA: what the mapping evaluates, in plain PyTorch."""
    op = types.ModuleType("models.stylegan2.op")

    def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        return F.leaky_relu(x + bias.view(shape), negative_slope) * scale

    class FusedLeakyReLU(torch.nn.Module):
        def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(channel)) if bias else None
            self.negative_slope, self.scale = negative_slope, scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)

    def upfirdn2d(*args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("upfirdn2d is not needed for NSCD")

    op.fused_leaky_relu, op.FusedLeakyReLU, op.upfirdn2d = fused_leaky_relu, FusedLeakyReLU, upfirdn2d
    return op


def seeded_generator():  # noqa: ANN201 - invertkit's StyleGAN2Generator
    """The tiny StyleGAN2 with its mapping and affine biases perturbed from seed 4 (weights as initialised)."""
    from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    G = StyleGAN2Generator(StyleGAN2Config(**TINY), name="tiny-sg2", init_seed=0)
    g = torch.Generator().manual_seed(4)
    state = G.state_dict()
    for k in sorted(state):
        if k.endswith(".bias") and (k.startswith("mapping.") or ".affine." in k):
            state[k] = state[k] + 0.5 * torch.randn(state[k].shape, generator=g)
    G.load_state_dict(state)
    return G


def test_latents(G) -> torch.Tensor:  # noqa: ANN001 - the tiny generator
    """Ten W+ codes: four mapped samples, three far-away random rows, three samples plus large noise."""
    g = torch.Generator().manual_seed(21)
    n, d = G.num_ws, G.config.w_dim
    with torch.no_grad():
        w = G.net.mapping(torch.randn(7, d, generator=g), None)
    sampled = w[:4, None].repeat(1, n, 1)
    far = 4.0 * torch.randn(3, n, d, generator=g)
    noisy = w[4:, None].repeat(1, n, 1) + 2.0 * torch.randn(3, n, d, generator=g)
    return torch.cat([sampled, far, noisy])


def main(authors: str, out: str) -> None:
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from invertkit.generators.checkpoints.rosinality import nvidia_to_rosinality
    from invertkit.generators.stylegan2.nscd import ANCHOR_SAMPLES

    G = seeded_generator()
    ros = nvidia_to_rosinality(G.config, G.state_dict())

    sys.path.insert(0, str(Path(authors).resolve()))
    import models.stylegan2  # noqa: F401  (the package, so that the stand-in can sit under it)

    sys.modules["models.stylegan2.op"] = _op_stand_in()
    from models.stylegan2.model import EqualLinear, Generator

    ref = Generator(G.resolution, G.config.w_dim, G.config.mapping_layers, lr_mlp=G.config.mapping_lr_multiplier)
    # their modulation layers at the tiny generator's channel counts (EqualLinear(style_dim, in_channel, bias_init=1))
    for name, mod in [("conv1", ref.conv1), *[(f"convs.{k}", c) for k, c in enumerate(ref.convs)],
                      *[(f"to_rgbs.{k}", t) for k, t in enumerate(ref.to_rgbs)], ("to_rgb1", ref.to_rgb1)]:
        weight = ros[f"{name}.conv.modulation.weight"]
        mod.conv.modulation = EqualLinear(weight.shape[1], weight.shape[0], bias_init=1)
    keys = [k for k in ros if k.startswith("style.") or ".conv.modulation." in k]
    missing = ref.load_state_dict({k: ros[k] for k in keys}, strict=False).unexpected_keys
    assert not missing, missing
    ref.eval()

    seed = 0
    z = torch.randn([ANCHOR_SAMPLES, G.config.z_dim], generator=torch.Generator().manual_seed(seed + 1_000_003))
    latents = test_latents(G)
    with torch.no_grad():
        w = ref.style(z)  # their w_sample(n), with our seeded z
        styles = ref.get_style_space(w, split=True)
        anchors = [(s / s.norm(2, dim=-1, keepdim=True)).mean(dim=0, keepdim=True) for s in styles]
        unit = [s / s.norm(2, dim=-1, keepdim=True) for s in ref.get_style_space(latents, split=True)]
        similarity = torch.cat([u @ a.T for u, a in zip(unit, anchors)], dim=1)  # [N, layers]: their loss terms
        cosine = similarity / torch.cat([a.norm(dim=1) for a in anchors])[None]
        nscd = (1.0 - cosine).mean(dim=1)
    print(f"layers: {len(anchors)} modulation layers (num_ws {G.num_ws}); anchor norms "
          f"{[round(float(a.norm()), 4) for a in anchors]}")
    print("reference NSCD:", [round(v, 6) for v in nscd.tolist()])
    tensors = {f"weights.{k}": v.contiguous() for k, v in G.state_dict().items()
               if k.startswith("mapping.fc") or ".affine." in k}
    tensors.update({"latents": latents.contiguous(), "nscd": nscd.contiguous(), "lsap_similarity": similarity.contiguous()})
    tensors.update({f"anchor_{k}": a[0].contiguous() for k, a in enumerate(anchors)})
    meta = {"source": "caopulan/GANInverter models/stylegan2/model.py + training/encoder_trainer.py (LSAP)",
            "anchor_samples": str(ANCHOR_SAMPLES), "anchor_seed": str(seed), "script": "benchmarks/nscd_reference.py"}
    save_file(tensors, out, metadata=meta)
    print(f"wrote {out} ({Path(out).stat().st_size} bytes); finite: {bool(torch.isfinite(nscd).all())}, "
          f"range {float(nscd.min()):.4f}..{float(nscd.max()):.4f} (max 2), log10 samples {math.log10(ANCHOR_SAMPLES):.0f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python benchmarks/nscd_reference.py AUTHORS_CHECKOUT OUT.safetensors")
    main(sys.argv[1], sys.argv[2])
