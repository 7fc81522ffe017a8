"""SeFa: edit directions read off the generator's weights, without sampling or training.

Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs" (CVPR 2021). The first
operation applied to a latent is affine, ``y = A x + b``; a direction ``n`` moves every output by
``A n``, so the directions that change those outputs most are the top eigenvectors of ``A^T A``.

"Units" are the outputs of that first projection, one row of ``A [units, latent_dim]`` each:

- StyleGAN2: **one style affine per selected W+ row**, exactly the layers the authors' code
  (genforce/sefa ``utils.factorize_weight``) stacks. Their generator names its modulated layers by
  W+ row: ``layer{i}`` is the convolution that reads row ``i`` and ``output{k}`` the ToRGB of block
  ``k``; for row ``i`` they take ``layer{i}``, except for the last row, which only the final ToRGB
  reads, where they take that ToRGB. In NVIDIA's naming (``SynthesisNetwork.layer_names``): row 0
  -> ``b4.conv1``; row ``2k - 1`` -> ``b{4 * 2^k}.conv0``; row ``2k`` -> ``b{4 * 2^k}.conv1``;
  the last row -> the last block's ``torgb``. The intermediate ToRGB layers of the skip
  architecture (``b4.torgb``, ``b8.torgb``, ...) share their W+ row with the next block's
  ``conv0`` and are **not** stacked (with ``orig``/``resnet`` there are none). Each layer contributes
  the rows of its affine weight ``[in_channels, w_dim]`` (``G.style_affines()``; the authors take
  their raw ``style.weight``: the runtime gains are per-layer constants that the per-unit
  normalisation below removes, so they change nothing). The layers are ``G.row_layers()``, the
  same ones LSAP's NSCD reads.
  Directions live in W. (rosinality's ``closed_form_factorization.py`` is a different reading: every
  layer but ``to_rgbs`` -- so ``b4.torgb`` in and the last ToRGB out --, no normalisation, no row
  selection.)
- z-only generators (DCGAN, MLP GAN): every output value of the first ``Linear`` or
  ``ConvTranspose2d`` that reads z. For a transposed convolution on the ``z_dim x 1 x 1`` input
  (DCGAN) that is one row per (output channel, y, x) of its output, taken from
  ``weight [z_dim, out, k, k]``. Directions live in Z.

As in the authors' code, every unit's row is scaled to unit L2 norm before the eigendecomposition
(their ``weight / norm(weight, axis=0)`` on the transposed ``[w_dim, units]`` matrix), so wide layers
or large-gain layers do not dominate by scale alone. They decompose ``W W^T`` (the same matrix as our
``A^T A``) with ``numpy.linalg.eig`` in float32 and keep LAPACK's order, which is descending only for
the first few eigenvalues; here the symmetric solver runs in float64 and the eigenvalues are sorted
descending (the paper's "top-k"). Eigenvectors have no sign: each is flipped so that its
largest-magnitude entry is positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces, Tunable
from .apply import parse_layers
from .directions import Directions, identity, latent_sigmas, unit_rows

NORMALISATION = "each unit's row scaled to unit L2 norm (reference SeFa)"


def sefa(G: Generator, *, layers: str | Sequence[int] | None = "all", count: int | None = None) -> Directions:
    """Closed-form factorisation of ``G``'s first latent projection (SeFa).

    Args:
        G: a StyleGAN2 (directions in W) or a z-only generator whose module contains a ``Linear`` /
            ``ConvTranspose2d`` reading z (directions in Z).
        layers: StyleGAN2 only: W+ rows whose style affines are factorised, one layer per row as in
            the authors' code (the convolution reading the row; the final ToRGB for the last row)
            (``"all"``, ``"coarse"``, ``"0-3"``, ... see :func:`~invertkit.editing.apply.parse_layers`);
            the result's ``layers`` are those rows, so edits change only them by default.
        count: keep the top ``count`` directions (default: all, ``latent_dim`` of them).

    Returns:
        :class:`Directions` with ``vectors [K, latent_dim]`` (orthonormal eigenvectors of ``A^T A``,
        eigenvalue descending), ``values [K]`` the eigenvalues, ``sigmas [K]`` the spread of G's
        latents along each; ``info["weights"]`` names the stacked layers, ``info["units"]`` counts
        the rows of ``A``.

    Raises:
        ConfigError: a generator with neither style affines nor a first Linear/ConvTranspose2d
            layer; layers given for a z-only generator; ``count`` out of range.
    """
    if isinstance(G, StyleSpaces):
        space = "w"
        rows = parse_layers(layers, G.num_ws)
        A, used = _style_weights(G, rows)
    else:
        space = "z"
        if not (layers is None or (isinstance(layers, str) and layers.strip() in ("", "all"))):
            raise ConfigError(f"sefa: layers={layers!r} selects W+ rows, but {G.name} has no W space; leave layers as 'all'")
        rows = None
        A, used = _first_layer_weights(G)
    A = A[A.norm(dim=1) > 0]  # an output no latent reaches (e.g. padding of a transposed conv) says nothing
    A = A / A.norm(dim=1, keepdim=True)
    eigvals, eigvecs = torch.linalg.eigh(A.T @ A)  # ascending, float64
    order = torch.argsort(eigvals, descending=True)
    eigvals, eigvecs = eigvals[order], _canonical_signs(eigvecs[:, order].T)
    k = eigvals.numel()
    if count is not None and not 1 <= int(count) <= k:
        raise ConfigError(f"sefa: count={count} must be between 1 and {k} (the latent dimension of {G.name})")
    k = k if count is None else int(count)
    vectors = unit_rows(eigvecs[:k].float()).reshape(k, *G.latent_shape(space))
    info: dict[str, Any] = {"weights": used, "rows": None if rows is None else list(rows), "units": int(A.shape[0]),
                            "normalisation": NORMALISATION, "count": k}
    return Directions(vectors, latent_sigmas(G, space, vectors), eigvals[:k].float().cpu(), space, "sefa",
                      [f"sefa {i}" for i in range(k)], rows, identity(G), info)


def _style_weights(G: StyleSpaces, rows: tuple[int, ...] | None) -> tuple[Tensor, list[str]]:
    """Stacked style-affine weights ``[units, w_dim]`` (float64): one layer per W+ row in ``rows``
    (None: every row), the authors' choice (see the module docstring): ``G.row_layers()``, the
    convolution reading each row and the final ToRGB for the last. The weights carry their runtime
    gain, a per-layer constant that the per-unit normalisation removes."""
    affines = G.style_affines()
    mats, used = [], []
    for index in G.row_layers():
        a = affines[index]
        if rows is not None and a.row not in rows:
            continue
        mats.append(a.weight.double().cpu())
        used.append(a.name)
    return torch.cat(mats), used


def _first_layer_weights(G: Generator) -> tuple[Tensor, list[str]]:
    """``A [outputs, z_dim]`` (float64) of the first Linear / ConvTranspose2d whose input size is z's."""
    z_dim = math.prod(G.latent_shape("z"))
    module = G.tunable_module() if isinstance(G, Tunable) else None
    for name, m in (module.named_modules() if module is not None else ()):
        if isinstance(m, nn.Linear) and m.in_features == z_dim:
            return m.weight.detach().double().cpu(), [name]
        if isinstance(m, nn.ConvTranspose2d) and m.in_channels == z_dim:
            # z enters as z_dim x 1 x 1 (DCGAN); applying the bias-free layer to the basis of z gives
            # each output value's weights [z_dim, out, H, W], honouring stride, padding and groups
            basis = torch.eye(z_dim, dtype=torch.float64).reshape(z_dim, z_dim, 1, 1)
            out = F.conv_transpose2d(basis, m.weight.detach().double().cpu(), None, m.stride, m.padding,
                                     m.output_padding, m.groups, m.dilation)
            return out.reshape(z_dim, -1).T.contiguous(), [name]
    raise ConfigError(f"sefa: {G.name} has no first Linear/ConvTranspose2d layer reading its {z_dim}-d z and is not a "
                      "StyleGAN2; SeFa needs one of them (use ganspace or interfacegan for this generator)")


def _canonical_signs(vectors: Tensor) -> Tensor:
    """Flip each row ``[K, D]`` so its largest-magnitude entry is positive (eigenvectors have no sign)."""
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    return vectors * torch.sign(vectors.gather(1, idx))
