"""Stand-ins for the weight files of the frozen feature networks, for the feature and metric tests.

LPIPS: the backbones are seeded random tensors in torchvision's key layout (``features.N.weight/bias`` plus
an unused ``classifier``), written under the torchvision file names; the heads are the real published
ones from the installed ``lpips`` wheel (never imported) or, when it is absent, seeded random
non-negative heads in the same layout. :func:`reference_lpips` recomputes LPIPS v0.1 step by step with
``torch.nn.functional`` in the reference package's order (1x1 conv, then spatial mean).

FID Inception-v3 and IR-SE50 ArcFace: :func:`random_state` fills a network's own layout with seeded
He-initialised weights and plausible BatchNorm statistics (the real files are not reachable offline).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invertkit.features.arcface import ArcFaceIRSE50
from invertkit.features.inception import FIDInceptionV3

# (index in torchvision's `features`, in channels, out channels, kernel, stride, padding) of each conv;
# "pool" entries: (index, kernel, stride). Taps: indices of the ReLUs LPIPS reads.
ALEX_CONVS = [(0, 3, 64, 11, 4, 2), (3, 64, 192, 5, 1, 2), (6, 192, 384, 3, 1, 1), (8, 384, 256, 3, 1, 1), (10, 256, 256, 3, 1, 1)]
ALEX_POOLS = {2: (3, 2), 5: (3, 2), 12: (3, 2)}
ALEX_TAPS = (1, 4, 7, 9, 11)
_VGG_CH = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
_VGG_CONV_IDX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG_CONVS = [(i, cin, cout, 3, 1, 1) for i, (cin, cout) in zip(_VGG_CONV_IDX, _VGG_CH)]
VGG_POOLS = {4: (2, 2), 9: (2, 2), 16: (2, 2), 23: (2, 2), 30: (2, 2)}
VGG_TAPS = (3, 8, 15, 22, 29)
SPECS = {"alex": (ALEX_CONVS, ALEX_POOLS, ALEX_TAPS), "vgg": (VGG_CONVS, VGG_POOLS, VGG_TAPS)}
FILE_NAMES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
HEAD_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def backbone_state(net: str, seed: int = 0) -> dict[str, Tensor]:
    """Seeded random weights in torchvision's layout (He-normal convs, small biases)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for idx, cin, cout, k, _, _ in SPECS[net][0]:
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.05
    state["classifier.1.weight"] = torch.randn(10, 7, generator=g)  # present in real files, unused by LPIPS
    return state


def write_backbone(folder: Path, net: str, seed: int = 0) -> Path:
    """Write :func:`backbone_state` to ``folder / <torchvision file name>``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAMES[net]
    torch.save(backbone_state(net, seed), path)
    return path


def real_heads_path(net: str) -> Path | None:
    """The published v0.1 heads inside the installed ``lpips`` wheel, or None."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "weights" / "v0.1" / f"{net}.pth"
    return path if path.is_file() else None


def heads_path(folder: Path, net: str) -> Path:
    """The real heads if installed, else seeded random non-negative heads written to ``folder``."""
    real = real_heads_path(net)
    if real is not None:
        return real
    g = torch.Generator().manual_seed(7)
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) * 0.1 for k, c in enumerate(HEAD_CHANNELS[net])}
    path = folder / f"heads_{net}.pth"
    torch.save(heads, path)
    return path


def reference_lpips(net: str, state: dict[str, Tensor], heads: dict[str, Tensor], a: Tensor, b: Tensor) -> Tensor:
    """LPIPS v0.1 written out op by op (scaling layer, conv/ReLU/pool chain, unit norm, 1x1 conv head,
    spatial mean, sum over taps), in float64."""
    convs, pools, taps = SPECS[net]
    conv_at = {c[0]: c for c in convs}
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def taps_of(x: Tensor) -> list[Tensor]:
        h = (x.double() - shift) / scale
        out = []
        for i in range(max(taps) + 1):
            if i in conv_at:
                _, _, _, _, stride, pad = conv_at[i]
                h = F.conv2d(h, state[f"features.{i}.weight"].double(), state[f"features.{i}.bias"].double(), stride, pad)
            elif i in pools:
                h = F.max_pool2d(h, *pools[i])
            else:
                h = F.relu(h)
            if i in taps:
                out.append(h / (torch.sqrt((h**2).sum(dim=1, keepdim=True)) + 1e-10))
        return out

    total = torch.zeros(a.shape[0], dtype=torch.float64)
    for k, (fa, fb) in enumerate(zip(taps_of(a), taps_of(b))):
        weighted = F.conv2d((fa - fb) ** 2, heads[f"lin{k}.model.1.weight"].double())
        total += weighted.mean(dim=(1, 2, 3))
    return total


def random_state(module: nn.Module, seed: int, damp: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """He-initialised random weights with plausible BatchNorm statistics, in ``module``'s layout.

    ``module`` may live on the meta device (only shapes are read). Entries whose key ends with one of
    ``damp`` are scaled by 0.3 (e.g. the last BatchNorm of residual branches, to keep a deep random
    residual network well-conditioned).
    """
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=value.dtype)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif value.dim() == 1:  # BN / PReLU weights around 1, biases around 0
            state[key] = (1.0 if key.endswith("weight") else 0.0) + 0.1 * torch.randn(value.shape, generator=g)
        else:
            state[key] = torch.randn(value.shape, generator=g) * math.sqrt(2.0 / value[0].numel())
        if key.endswith(damp):
            state[key] = state[key] * 0.3
    return state


@functools.lru_cache(maxsize=1)
def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = FIDInceptionV3()
    return random_state(shapes, seed)


def random_inception(seed: int = 0) -> FIDInceptionV3:
    """An FID Inception with :func:`random_state` weights (built without default initialisation)."""
    with torch.device("meta"):
        net = FIDInceptionV3()
    net.load_state_dict(random_inception_state(seed), assign=True)
    return net.eval().requires_grad_(False)


@functools.lru_cache(maxsize=1)
def random_arcface_state(seed: int = 3) -> dict[str, torch.Tensor]:
    # Damping the residual branches keeps the random 24-unit network smooth (real weights are).
    with torch.device("meta"):
        shapes = ArcFaceIRSE50()
    return random_state(shapes, seed, damp=("res_layer.4.weight",))


def random_arcface(seed: int = 3) -> ArcFaceIRSE50:
    """An IR-SE50 with random weights (built without default initialisation)."""
    with torch.device("meta"):
        net = ArcFaceIRSE50()
    net.load_state_dict(random_arcface_state(seed), assign=True)
    return net.eval().requires_grad_(False)
