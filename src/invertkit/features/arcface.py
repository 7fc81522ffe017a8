"""The IR-SE50 ArcFace face-identity network in pure PyTorch (the one pSp / e4e use for ID scores).

pSp (Richardson et al., 2021) and e4e (Tov et al., 2021) measure identity preservation with an
ArcFace-trained IR-SE50 (TreB1eN's InsightFace_Pytorch weights, distributed as
``model_ir_se50.pth``). This module's state dict has exactly that file's layout: ``input_layer.{0,1,2}``
(conv 3x3, BatchNorm, PReLU), ``body.{0..23}`` bottlenecks with ``res_layer.{0..5}`` (BN, conv, PReLU,
conv, BN, squeeze-excitation ``fc1``/``fc2``) and, where the width changes, ``shortcut_layer.{0,1}``,
then ``output_layer.{0,3,4}`` (BN2d, Linear 512*7*7 -> 512, BN1d).

Face-crop convention (pSp's ``IDLoss.extract_feats``, defined on 256 x 256 FFHQ-aligned images):
crop rows 35:223 and columns 32:220 (a 188 x 188 window, slightly below centre), then adaptive
average pooling to 112 x 112. Other sizes are first brought to 256 x 256 the way pSp brings its
1024-px generator outputs there: adaptive average pooling when larger, bilinear upsampling when
smaller. Images already cropped to the 112-px ArcFace input can skip all this (``face_crop=False``).
Inputs are in [-1, 1] (pSp feeds its [-1, 1] tensors directly); greyscale is replicated to RGB.
Output: 512-d embeddings with unit L2 norm.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ImageError
from .weights import WeightFile, find_weight, load_frozen

ARCFACE_IR_SE50 = WeightFile(
    name="model_ir_se50.pth",
    # pSp's README links this file (TreB1eN's IR-SE50) from Google Drive; there is no stable direct URL.
    url="https://drive.google.com/file/d/1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn/view",
)
EMBED_DIM = 512
INPUT_SIZE = 112
CROP_REFERENCE = 256
CROP_ROWS = (35, 223)  # pSp's crop of a 256 x 256 aligned face
CROP_COLS = (32, 220)

# IR-50 stage layout: (output channels, units); the first unit of each stage has stride 2.
_STAGES = ((64, 3), (128, 4), (256, 14), (512, 3))


class SEModule(nn.Module):
    """Squeeze-and-excitation with 1x1 convolutions (no bias), reduction 16."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class BottleneckIRSE(nn.Module):
    """Improved residual unit: BN-conv-PReLU-conv(stride)-BN-SE, plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if cin == cout:
            # A 1x1 max pool is plain subsampling: identity at stride 1.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            SEModule(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class ArcFaceIRSE50(nn.Module):
    """IR-SE50 for 112 x 112 faces; ``forward`` -> unit-norm ``[N, 512]``; :meth:`embed` adds the crop.

    Build it with :func:`load_arcface`; a freshly constructed module has random weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units: list[nn.Module] = []
        cin = 64
        for cout, n in _STAGES:
            for i in range(n):
                units.append(BottleneckIRSE(cin, cout, 2 if i == 0 else 1))
                cin = cout
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.6),  # inactive in eval mode; kept so the indices match the file
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, EMBED_DIM),
            nn.BatchNorm1d(EMBED_DIM),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[N, 3, 112, 112]`` in [-1, 1] -> unit-norm ``[N, 512]`` (no cropping)."""
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ImageError(f"ArcFace: expected N x 3 x {INPUT_SIZE} x {INPUT_SIZE} faces, got {list(x.shape)}")
        y = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(y, dim=1)

    def embed(self, x: Tensor, *, face_crop: bool = True) -> Tensor:
        """Identity embeddings ``[N, 512]`` (unit L2 norm) of ``N x C x H x W`` faces in [-1, 1].

        ``face_crop=True`` applies pSp's crop (see the module docstring) to FFHQ-aligned faces of any
        size; ``face_crop=False`` only resizes the whole image to 112 x 112 (adaptive average pooling
        when larger, bilinear when smaller).
        """
        return self(face_input(x, face_crop=face_crop).to(self.output_layer[3].weight.dtype))


def _to_size(x: Tensor, size: int) -> Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    if x.shape[-2] >= size and x.shape[-1] >= size:
        return F.adaptive_avg_pool2d(x, (size, size))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def face_input(x: Tensor, *, face_crop: bool = True) -> Tensor:
    """``N x C x H x W`` faces in [-1, 1] -> the ``N x 3 x 112 x 112`` ArcFace input (see module doc)."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ImageError(f"ArcFace: expected N x C x H x W images with C = 1 or 3, got {list(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = x.float() if not x.is_floating_point() else x
    if face_crop:
        x = _to_size(x, CROP_REFERENCE)
        x = x[:, :, CROP_ROWS[0] : CROP_ROWS[1], CROP_COLS[0] : CROP_COLS[1]]
    return _to_size(x, INPUT_SIZE)


def arcface_available() -> bool:
    """Whether ``model_ir_se50.pth`` is found in the usual places (nothing is loaded)."""
    return find_weight(ARCFACE_IR_SE50) is not None


def load_arcface(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> ArcFaceIRSE50:
    """The IR-SE50 ArcFace network in eval mode with frozen parameters.

    Args:
        path: pSp / e4e's ``model_ir_se50.pth`` or a file in the same layout. When None it is looked
            up as ``model_ir_se50.pth`` in torch's hub cache and ``$INVERTKIT_HOME`` /
            ``~/.cache/invertkit``. Nothing is downloaded.
        device: where to put the network.
    Raises:
        CheckpointError: the file is missing (the message says where to get it), unreadable or not in
            the IR-SE50 layout.
    """
    return load_frozen(ArcFaceIRSE50(), ARCFACE_IR_SE50, path, device, "ArcFace")
