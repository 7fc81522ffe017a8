"""Reference values for LPIPS with the SqueezeNet 1.1 backbone (PIE-Bench's LPIPS), checked in
tests/test_metrics_pie_bench.py::test_lpips_squeeze_matches_reference_package.

Neither torchvision (it does not import beside the CPU torch build here) nor its weights are needed:
the ``lpips==0.1.4`` package (its real v0.1 ``squeeze.pth`` heads) runs with ``torchvision.models``
replaced by a stand-in whose ``squeezenet1_1`` is torchvision's own ``SqueezeNet`` class, executed
from its source file (``torchvision/models/squeezenet.py`` of a pytorch/vision checkout, relative
imports and the weights enums dropped), holding seeded random features. Run outside the project::

    python benchmarks/lpips_squeeze_reference.py /path/to/vision/torchvision/models/squeezenet.py

and paste the printed values into the test. The seeded state is drawn in torchvision's key order,
which invertkit's ``features.lpips`` SqueezeNet shares (the test draws it from invertkit's module).
"""

from __future__ import annotations

import sys
import types

import torch


def random_features(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """He-scaled normal weights, small biases, for the ``features.*`` entries, in ``state``'s key order."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if k.startswith("features."):
            fan_in = v[0].numel() if v.dim() > 1 else 1
            out[k] = torch.randn(v.shape, generator=g) * ((2.0 / fan_in) ** 0.5 if v.dim() > 1 else 0.01)
    return out


def main(squeezenet_py: str) -> None:
    torch.set_num_threads(1)
    src = open(squeezenet_py, encoding="utf-8").read()
    src = "\n".join(line for line in src.splitlines() if not line.startswith("from ."))
    src = src.split("def _squeezenet(")[0]
    ns: dict = {"_log_api_usage_once": lambda self: None}
    exec(compile(src, squeezenet_py, "exec"), ns)
    reference = ns["SqueezeNet"]("1_1")
    features = random_features(reference.state_dict())
    reference.load_state_dict(features, strict=False)

    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.squeezenet1_1 = lambda pretrained=False, **kw: reference
    tv.models = models
    sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, models
    import lpips

    model = lpips.LPIPS(net="squeeze", version="0.1", verbose=False).eval()
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, 48, 40, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(2, 3, 48, 40, generator=g)).clamp(-1, 1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    with torch.no_grad():
        noisy = model(a, b).flatten().tolist()
        smooth = model(torch.stack([xx, yy, xx * yy])[None], torch.stack([yy, xx, -xx * yy])[None]).item()
    print(f"noisy {[float(f'{v:.10g}') for v in noisy]} smooth {smooth:.10g}")


if __name__ == "__main__":
    main(sys.argv[1])
