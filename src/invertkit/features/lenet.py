"""LeNet-5 digit classifier (LeCun et al., 1998), loading the offline pretrained MNIST checkpoint.

The module layout mirrors the checkpoint ``mnist_lenet5/lenet5.pth`` of the project's shared data
(csinva/gan-vae-pretrained-pytorch, MIT licence, 99.1% MNIST test accuracy): ``convnet.c1``
Conv2d(1,6,5), ReLU, ``convnet.s2`` MaxPool(2), ``convnet.c3`` Conv2d(6,16,5), ReLU, ``convnet.s4``
MaxPool(2), ``convnet.c5`` Conv2d(16,120,5), ReLU, flatten, ``fc.f6`` Linear(120,84), ReLU,
``fc.f7`` Linear(84,10), log-softmax. Its input is ``1 x 32 x 32`` in [0, 1] (MNIST resized to 32).

invertkit uses it as the attribute classifier of the MNIST generators (InterFaceGAN, StyleSpace,
editability): :class:`LeNet5Classifier` takes invertkit images ``N x 1 x H x W`` in [-1, 1] of any
size and returns digit log-probabilities ``[N, 10]``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError, ImageError
from ..store.tensorfiles import load_into, read_state_dict

INPUT_SIZE = 32  # the network's native input side; c5 reduces 5x5 maps to 1x1 only at this size
NUM_CLASSES = 10
FILENAME = "lenet5.pth"


class LeNet5(nn.Module):
    """The raw network: ``[N, 1, 32, 32]`` in [0, 1] -> log-probabilities ``[N, 10]``."""

    def __init__(self) -> None:
        super().__init__()
        self.convnet = nn.Sequential(OrderedDict([
            ("c1", nn.Conv2d(1, 6, 5)), ("relu1", nn.ReLU()), ("s2", nn.MaxPool2d(2)),
            ("c3", nn.Conv2d(6, 16, 5)), ("relu3", nn.ReLU()), ("s4", nn.MaxPool2d(2)),
            ("c5", nn.Conv2d(16, 120, 5)), ("relu5", nn.ReLU()),
        ]))
        self.fc = nn.Sequential(OrderedDict([
            ("f6", nn.Linear(120, 84)), ("relu6", nn.ReLU()),
            ("f7", nn.Linear(84, NUM_CLASSES)), ("sig7", nn.LogSoftmax(dim=-1)),
        ]))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convnet(x).flatten(1))


class LeNet5Classifier(nn.Module):
    """LeNet-5 behind invertkit's image contract.

    ``forward(images [N, 1, H, W] in [-1, 1])`` -> log-probabilities ``[N, 10]``. Images are mapped to
    [0, 1] and resized to 32 x 32 bilinearly (as the checkpoint's MNIST digits were), any H and W.
    """

    def __init__(self, net: LeNet5) -> None:
        super().__init__()
        self.net = net

    def prepare(self, images: Tensor) -> Tensor:
        """[-1, 1] images ``[N, 1, H, W]`` -> the network's ``[N, 1, 32, 32]`` in [0, 1]."""
        if images.dim() != 4 or images.shape[1] != 1:
            raise ImageError(f"LeNet-5 classifies greyscale digits N x 1 x H x W, got {list(images.shape)}")
        x = (images.to(self.net.fc.f7.weight.dtype) + 1) / 2
        if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return x

    def forward(self, images: Tensor) -> Tensor:
        return self.net(self.prepare(images))


def lenet5_candidates() -> list[Path]:
    """Where the default weight file is looked for: ``$INVERTKIT_HOME/classifiers/lenet5.pth``
    (``~/.cache/invertkit`` without the variable). Anywhere else, pass the path (``lenet5:PATH``)."""
    from ..store.home import home_path

    return [home_path("classifiers", FILENAME)]


def find_lenet5() -> Path | None:
    """The default LeNet-5 weight file on this machine, or None."""
    return next((p for p in lenet5_candidates() if p.is_file()), None)


def load_lenet5(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> LeNet5Classifier:
    """The pretrained MNIST LeNet-5 wrapped for invertkit images, in eval mode with frozen weights.

    Args:
        path: the weight file (a ``torch.save`` state dict in the layout above); None looks in
            :func:`lenet5_candidates`.
        device: where to put the network.
    Raises:
        CheckpointError: no file found, an unreadable file, keys or shapes that do not fit LeNet-5
            (the message names the file), or non-finite weights.
    """
    if path is None:
        found = find_lenet5()
        if found is None:
            where = ", ".join(str(p) for p in lenet5_candidates())
            raise CheckpointError(f"LeNet-5 weights {FILENAME} not found (looked in {where}); pass the file's path "
                                  f"(classifier 'lenet5:PATH') or copy it to the first of those places")
        path = found
    file = Path(path)
    state = read_state_dict(file)  # weights_only=True: a tensor dict or a CheckpointError naming the file
    net = LeNet5()
    load_into(net, state, file)  # strict keys and shapes, one-line CheckpointError on mismatch
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{file}: the LeNet-5 weights contain NaN or infinite values")
    return LeNet5Classifier(net).eval().requires_grad_(False).to(device)
