"""Identity similarity: cosine similarity of ArcFace (IR-SE50) embeddings, as reported by pSp / e4e.

For face images only (FFHQ-aligned crops); the network and its face-crop convention are described in
:mod:`invertkit.features.arcface`. Images are quantised to uint8 levels first (the metric protocol).
Higher is better; 1 means the same embedding.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from ..features.arcface import ArcFaceIRSE50, load_arcface
from .protocol import check_pair, quantize

IDENTITY_PROTOCOL = (
    "cosine similarity of IR-SE50 ArcFace embeddings (pSp/e4e model_ir_se50.pth) of uint8-quantised images; "
    "pSp face crop: image brought to 256 px, rows 35:223 / columns 32:220, adaptive-average-pooled to 112; "
    "higher is better"
)


def _network(weights: str | os.PathLike[str] | ArcFaceIRSE50 | None, device: torch.device) -> ArcFaceIRSE50:
    return weights if isinstance(weights, nn.Module) else load_arcface(weights, device)


def identity_similarity(
    a: Tensor,
    b: Tensor,
    *,
    weights: str | os.PathLike[str] | ArcFaceIRSE50 | None = None,
    face_crop: bool = True,
    quantized: bool = True,
    batch_size: int = 32,
) -> Tensor:
    """Per-image cosine similarity ``[N]`` of the ArcFace embeddings of two face batches.

    Args:
        a, b: ``N x C x H x W`` in [-1, 1], same shape (C = 1 or 3; FFHQ-aligned faces).
        weights: path of pSp's ``model_ir_se50.pth`` or a loaded network from
            :func:`~invertkit.features.arcface.load_arcface`; None looks in the usual caches.
        face_crop: apply pSp's crop (rows 35:223, columns 32:220 of the 256-px image); False for
            images that are already 112-px ArcFace crops.
        quantized: score uint8-quantised images (the protocol default).
    Raises:
        CheckpointError: the weights are absent or not an IR-SE50 file (the message names the file
            and where it was looked for).
    """
    check_pair(a, b, "identity_similarity")
    net = _network(weights, a.device)
    device = next(net.parameters()).device
    sims = []
    with torch.inference_mode():
        for xa, xb in zip(a.split(batch_size), b.split(batch_size)):
            if quantized:
                xa, xb = quantize(xa) * 2 - 1, quantize(xb) * 2 - 1
            ea = net.embed(xa.to(device), face_crop=face_crop)
            eb = net.embed(xb.to(device), face_crop=face_crop)
            sims.append((ea * eb).sum(dim=1))
    return torch.cat(sims).to(a.device)


class IdentitySimilarity(nn.Module):
    """Module form of :func:`identity_similarity` that loads the network once (returns the batch mean).

    Move it with ``.to(device)``; ``weights`` is a path, a loaded network, or None (usual caches).
    """

    def __init__(
        self, weights: str | os.PathLike[str] | ArcFaceIRSE50 | None = None, *, face_crop: bool = True, quantized: bool = True
    ) -> None:
        super().__init__()
        self.net = _network(weights, torch.device("cpu"))
        self.face_crop = face_crop
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return identity_similarity(a, b, weights=self.net, face_crop=self.face_crop, quantized=self.quantized).mean()
