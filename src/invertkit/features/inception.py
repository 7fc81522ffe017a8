"""The FID Inception-v3 (TensorFlow's 2015-12-05 graph) in pure PyTorch.

FID and KID are defined on the 2048-d pool3 features of one specific network: the Inception-v3 graph
TensorFlow published on 2015-12-05, which differs from the torchvision Inception-v3 in its weights, its
1008-class head and three pooling details. pytorch-fid ported those weights to
``pt_inception-2015-12-05-6726825d.pth``; this module is a torchvision-free network whose state dict
has exactly that file's layout (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``,
..., ``fc.weight``), so the file loads with a strict key and shape check.

Differences to torchvision's Inception-v3 that matter for the numbers:

- the 3x3 average pools of the A, C and first E blocks do not count the zero padding
  (TensorFlow's ``AVG`` padding semantics), and the last E block (``Mixed_7c``) max-pools instead;
- every BatchNorm has eps 0.001; convolutions have no bias;
- the classifier has 1008 outputs (kept only so the file loads strictly; FID never uses it).

Input convention (pytorch-fid's): images in [-1, 1], resized to 299 x 299 with bilinear
interpolation (``align_corners=False``, no antialiasing) whatever their size; greyscale images are
replicated to RGB. Output: ``[N, 2048]`` pool3 features.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ImageError
from .weights import WeightFile, find_weight, load_frozen

# pytorch-fid's release asset: the TF 2015-12-05 Inception weights in torchvision's key layout.
FID_INCEPTION = WeightFile(
    name="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
)
INPUT_SIZE = 299
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: keys ``conv.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: Tensor) -> Tensor:
    # TensorFlow averages only over the window cells inside the image.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _run(x: Tensor, *layers: nn.Module) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b/5c/5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                _run(x, self.branch5x5_1, self.branch5x5_2),
                _run(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                self.branch_pool(_avg_pool_tf(x)),
            ],
            dim=1,
        )


class InceptionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                _run(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            dim=1,
        )


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 7x7 convolutions and a TF-style average pool."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                _run(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                _run(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5),
                self.branch_pool(_avg_pool_tf(x)),
            ],
            dim=1,
        )


class InceptionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                _run(x, self.branch3x3_1, self.branch3x3_2),
                _run(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            dim=1,
        )


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c) with split 1x3 / 3x1 convolutions.

    ``pool="avg"`` (Mixed_7b) uses the TF-style average pool; ``pool="max"`` (Mixed_7c) a 3x3 max pool,
    as in the TensorFlow graph FID is defined on.
    """

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = _run(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pooled = _avg_pool_tf(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3; ``forward(x in [-1, 1]) -> [N, 2048]`` pool3 features.

    Build it with :func:`load_fid_inception`; a freshly constructed module has random weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, 1008)

    def prepare(self, x: Tensor) -> Tensor:
        """Check the input contract; greyscale -> RGB; bilinear resize to 299 x 299."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ImageError(f"FID Inception: expected N x C x H x W images with C = 1 or 3, got {list(x.shape)}")
        x = x.to(self.fc.weight.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        # pytorch-fid always interpolates, even at 299 (where it is the identity).
        return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.prepare(x)
        x = _run(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = _run(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = _run(
            x,
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d,
            self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
            self.Mixed_7a, self.Mixed_7b, self.Mixed_7c,
        )  # fmt: skip
        return x.mean(dim=(2, 3))

    def logits(self, x: Tensor) -> Tensor:
        """The 1008-way classifier output (for the Inception Score; not used by FID/KID)."""
        return self.fc(self.forward(x))


def fid_inception_available() -> bool:
    """Whether the FID Inception weight file is found in the usual places (nothing is loaded)."""
    return find_weight(FID_INCEPTION) is not None


def load_fid_inception(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID Inception-v3 in eval mode with frozen parameters.

    Args:
        path: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's port of the TF weights) or a file
            in the same layout. When None it is looked up in torch's hub cache
            (``$TORCH_HOME/hub/checkpoints``, ``~/.cache/torch/hub/checkpoints``), where pytorch-fid
            downloads it, then ``$INVERTKIT_HOME`` / ``~/.cache/invertkit``. Nothing is downloaded.
        device: where to put the network.
    Raises:
        CheckpointError: the file is missing (the message gives the download URL), unreadable or not
            in this layout.
    """
    return load_frozen(FIDInceptionV3(), FID_INCEPTION, path, device, "Inception")
