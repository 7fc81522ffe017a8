"""SeFa and GANSpace direction discovery: checked against direct eigendecompositions and known answers."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

from invertkit.editing import (
    edit_latents,
    load_directions,
    render_edits,
    save_directions,
)
from invertkit.editing.apply import parse_layers
from invertkit.editing.directions import latent_sigmas
from invertkit.editing.ganspace import default_feature_layer, ganspace
from invertkit.editing.sefa import sefa
from invertkit.errors import ConfigError
from invertkit.generators import wrap
from invertkit.generators.architectures import Reshape

# the module, not the function (a package may re-export the function under the same name)
ganspace_module = importlib.import_module("invertkit.editing.ganspace")


def _reference_sefa(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (rows) of A^T A after unit-norm rows, in numpy."""
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    vals, vecs = np.linalg.eigh(A.T @ A)
    order = np.argsort(vals)[::-1]
    return vals[order], vecs[:, order].T


def _assert_same_up_to_sign(got: torch.Tensor, want: np.ndarray, tol: float = 1e-4) -> None:
    got = got.double().numpy().reshape(len(want), -1)
    cos = np.abs(np.sum(got * want, axis=1)) / np.linalg.norm(want, axis=1)
    assert np.all(cos > 1 - tol), cos


def _assert_orthonormal(vectors: torch.Tensor) -> None:
    v = vectors.flatten(1).double()
    assert torch.allclose(v @ v.T, torch.eye(len(v), dtype=torch.float64), atol=1e-5)


# ---- SeFa ----------------------------------------------------------------------------------------

# The authors' SeFa (genforce/sefa, utils.py ``factorize_weight``), written plainly for the
# NVIDIA-named tiny StyleGAN2. Their StyleGAN2 names its modulated layers by W+ row: ``layer{i}`` is
# the convolution reading row i (layer0 = the 4x4 conv, then conv0/conv1 of each later block) and
# ``output{k}`` the ToRGB of block k. For each selected row i they take ``layer{i}``, except for the
# last row, where they take ``output{i // 2}`` (the final ToRGB, the only layer reading that row);
# they stack the raw ``style.weight.T`` [w_dim, units] side by side, divide every column by its
# norm, and call ``np.linalg.eig(W @ W.T)``, returning ``eigen_vectors.T`` and the eigenvalues.
def _authors_layers(G, rows) -> list[str]:
    """NVIDIA names of genforce's ``layer{i}`` / last ``output{i // 2}`` for W+ rows ``rows``."""
    names = []
    for i in rows:
        if i == G.num_ws - 1:
            names.append(f"b{G.resolution}.torgb")  # output{i // 2}
        elif i == 0:
            names.append("b4.conv1")  # layer0: the conv of the 4x4 block
        else:  # layer{2k-1} / layer{2k}: conv0 / conv1 of the block at 4 * 2^k px
            names.append(f"b{4 * 2 ** ((i + 1) // 2)}.conv{0 if i % 2 else 1}")
    return names


def _authors_sefa(G, rows) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(layers, eigenvalues descending, eigenvectors as rows) by the authors' equations.

    They cast to float32; float64 here, so the comparison can be tight. They keep np.linalg.eig's
    order, which LAPACK makes descending only for the top few eigenvalues (here the first 6 to 20):
    sorted here, as the paper's "top-k" means and as ``sefa`` returns them.
    """
    syn = G.net.synthesis
    layers = _authors_layers(G, rows)
    weight = np.concatenate([syn.layer(n).affine.weight.detach().double().numpy().T for n in layers], axis=1)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(weight.dot(weight.T))
    # a symmetric matrix: real eigenvalues, up to ~1e-17 imaginary parts that the general solver
    # leaves in a null space (fewer units than w_dim), whose eigenvectors may then be complex
    assert np.abs(values.imag).max() < 1e-12 * values.real.max()
    order = np.argsort(-values.real)
    return layers, values.real[order], vectors.T[order]


def _assert_same_eigensystem(d, values: np.ndarray, vectors: np.ndarray) -> None:
    """Eigenvalues and eigenvectors to float32 rounding (``sefa`` returns float32): each eigenvector
    up to sign, or, inside a cluster of equal eigenvalues (the null space when the stacked layers have
    fewer units than w_dim), the subspace they span."""
    np.testing.assert_allclose(d.values.double().numpy(), values, rtol=1e-6, atol=1e-6 * values[0])
    got = d.vectors.double().numpy()
    start = 0
    while start < len(values):
        stop = start + 1
        while stop < len(values) and values[stop - 1] - values[stop] < 1e-6 * values[0]:
            stop += 1
        if stop - start == 1:
            want = vectors[start]
            assert np.abs(want.imag).max() == 0
            sign = np.sign(got[start] @ want.real)
            np.testing.assert_allclose(got[start], sign * want.real, atol=1e-6)
        else:  # compare orthogonal projectors; complex eigenvectors span it with their real and imaginary parts
            b = vectors[start:stop]
            basis = np.linalg.svd(np.concatenate([b.real, b.imag]))[2][: stop - start]
            a = got[start:stop]
            np.testing.assert_allclose(a.T @ a, basis.T @ basis, atol=1e-6)
        start = stop


# rows 0-5 of the 16 px model read by: 0 b4.conv1 | 1 b4.torgb, b8.conv0 | 2 b8.conv1 |
# 3 b8.torgb, b16.conv0 | 4 b16.conv1 | 5 b16.torgb (the final ToRGB)
@pytest.mark.parametrize("layers", ["all", "0-1", "1", "1,3", "0,2,4", "5", "3-5"])
def test_sefa_stylegan2_matches_authors_factorisation(tiny_sg2, layers):
    rows = list(range(tiny_sg2.num_ws)) if layers == "all" else parse_layers(layers, tiny_sg2.num_ws)
    want_layers, values, vectors = _authors_sefa(tiny_sg2, rows)
    d = sefa(tiny_sg2, layers=layers)
    assert d.info["weights"] == want_layers  # one layer per row: intermediate ToRGBs never stacked
    assert d.info["units"] == sum(tiny_sg2.net.synthesis.layer(n).in_channels for n in want_layers)
    assert d.vectors.shape == (32, 32) and torch.all(d.values[:-1] >= d.values[1:])
    _assert_same_eigensystem(d, values, vectors)
    _assert_orthonormal(d.vectors)


def test_sefa_stylegan2_intermediate_torgb_would_change_the_answer(tiny_sg2):
    # stacking every layer that reads the chosen rows (b4.torgb and b8.torgb share rows 1 and 3 with
    # b8.conv0 and b16.conv0) gives another factorisation: the test above can tell them apart
    syn = tiny_sg2.net.synthesis
    for rows in ([1], [1, 3], list(range(tiny_sg2.num_ws))):
        every = np.concatenate([syn.layer(n).affine.weight.detach().double().numpy()
                                for n, r in zip(syn.layer_names, syn.layer_w_index) if r in rows])
        wrong, _ = _reference_sefa(every)
        _, right, _ = _authors_sefa(tiny_sg2, rows)
        assert np.abs(wrong - right).max() > 0.1 * right[0]


def test_sefa_stylegan2_directions_and_spread(tiny_sg2):
    d = sefa(tiny_sg2)
    assert d.space == "w" and d.method == "sefa" and d.layers is None
    assert d.vectors.shape == (32, 32) and d.names[:2] == ["sefa 0", "sefa 1"]
    assert d.info["weights"] == ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1", "b16.torgb"]
    assert d.info["rows"] is None
    # sigmas: the spread of sampled w along each direction (latent_sigmas, whose statistics
    # test_editing_core pins; W is not isotropic, so not all 1)
    assert torch.equal(d.sigmas, latent_sigmas(tiny_sg2, "w", d.vectors)) and d.sigmas.std() > 0


def test_sefa_layer_restriction_uses_those_weights_only(tiny_sg2):
    d = sefa(tiny_sg2, layers="0-1", count=5)
    assert d.layers == (0, 1) and d.info["weights"] == ["b4.conv1", "b8.conv0"] and d.info["rows"] == [0, 1]
    _, vals, vecs = _authors_sefa(tiny_sg2, [0, 1])
    np.testing.assert_allclose(d.values.numpy(), vals[:5], rtol=1e-6)
    _assert_same_up_to_sign(d.vectors, vecs[:5].real, tol=1e-6)
    # the restriction matters: the full-network factorisation gives another top direction
    full = sefa(tiny_sg2, count=1)
    assert abs(float(full.vectors[0] @ d.vectors[0])) < 0.99
    with pytest.raises(ConfigError, match=r"W\+ has rows 0..5"):
        sefa(tiny_sg2, layers="0-99")
    with pytest.raises(ConfigError, match="count=33 must be between 1 and 32"):
        sefa(tiny_sg2, count=33)


def test_sefa_mlp_first_linear(tiny_mlp):
    d = sefa(tiny_mlp)
    W = tiny_mlp.module[0].weight.detach().double().numpy()  # [32, 8]: out x z
    vals, vecs = _reference_sefa(W)
    assert d.space == "z" and d.vectors.shape == (8, 8) and d.layers is None
    np.testing.assert_allclose(d.values.numpy(), vals, rtol=1e-5, atol=1e-6)
    _assert_same_up_to_sign(d.vectors, vecs)
    _assert_orthonormal(d.vectors)
    assert torch.equal(d.sigmas, torch.ones(8))
    assert d.info["weights"] == ["0"] and d.info["units"] == 32
    with pytest.raises(ConfigError, match="no W space"):
        sefa(tiny_mlp, layers="0-1")


def test_sefa_dcgan_shaped_conv_transpose():
    torch.manual_seed(1)
    net = nn.Sequential(Reshape(8, 1, 1), nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.ConvTranspose2d(16, 1, 4, 2, 1, bias=False), nn.Tanh())
    G = wrap(net, (8,), 8, 1, name="tiny-dcgan")
    d = sefa(G, count=4)
    W = net[1].weight.detach().double().numpy()  # [in=z, out, k, k]: one unit per (out, y, x)
    vals, vecs = _reference_sefa(W.reshape(8, -1).T)
    assert d.space == "z" and d.vectors.shape == (4, 8) and d.info["units"] == 16 * 4 * 4
    np.testing.assert_allclose(d.values.numpy(), vals[:4], rtol=1e-5)
    _assert_same_up_to_sign(d.vectors, vecs[:4])
    # reading the weight as [out..., z] instead would give different directions
    wrong_vals, _ = _reference_sefa(W.reshape(-1, 8))
    assert not np.allclose(wrong_vals[:4], vals[:4], rtol=1e-3)


def test_sefa_refuses_generator_without_first_layer():
    G = wrap(nn.Sequential(nn.Tanh(), Reshape(1, 2, 2)), (4,), 2, 1, name="no-weights")
    with pytest.raises(ConfigError, match="Linear/ConvTranspose2d"):
        sefa(G)


def test_sefa_top_direction_changes_images_more_than_last(tiny_sg2):
    d = sefa(tiny_sg2)
    w = tiny_sg2.sample_latent(8, "w", seed=11)

    def change(index: int) -> float:
        edited, space = edit_latents(tiny_sg2, w, "w", d, index, [-3.0, 3.0], units="raw")
        images = render_edits(tiny_sg2, edited, space)
        return float((images[:, 1] - images[:, 0]).abs().mean())

    assert change(0) > 1.5 * change(-1)


# ---- GANSpace ------------------------------------------------------------------------------------

def test_ganspace_w_equals_pca_of_the_same_samples(tiny_sg2):
    d = ganspace(tiny_sg2, samples=600, components=6, seed=3)
    w = tiny_sg2.sample_latent(600, "w", seed=3).double()
    cov = np.cov(w.numpy(), rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[::-1], vecs[:, ::-1].T
    assert d.space == "w" and d.layers is None and d.vectors.shape == (6, 32)
    _assert_same_up_to_sign(d.vectors, vecs[:6], tol=1e-5)
    _assert_orthonormal(d.vectors)
    np.testing.assert_allclose(d.values.numpy(), vals[:6] / vals.sum(), rtol=1e-4)
    proj_std = (w @ d.vectors.double().T).std(0)
    np.testing.assert_allclose(d.sigmas.numpy(), proj_std.numpy(), rtol=1e-4)
    assert torch.all(d.values[:-1] >= d.values[1:])
    assert d.info["samples"] == 600 and d.info["seed"] == 3 and d.info["layer"] == "w"
    again = ganspace(tiny_sg2, samples=600, components=6, seed=3)
    assert torch.equal(again.vectors, d.vectors)


def _anisotropic(seed: int = 0):
    """z (8-d) -> Linear with known singular values; v0 is the z direction the features vary most along."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(24, 24, generator=g)).Q[:, :8]
    V = torch.linalg.qr(torch.randn(8, 8, generator=g)).Q
    s = torch.tensor([10.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    first = nn.Linear(8, 24)
    with torch.no_grad():
        first.weight.copy_(U @ torch.diag(s) @ V.T)
        first.bias.normal_(generator=g)
    net = nn.Sequential(first, nn.Tanh(), nn.Linear(24, 64), nn.Tanh())
    return wrap(net, (8,), 8, 1, name="aniso"), V[:, 0]


def test_ganspace_features_recover_dominant_z_direction():
    G, v0 = _anisotropic()
    d = ganspace(G, samples=2000, components=4, feature_layer="1", seed=0)  # "1": the linear map's output
    assert d.space == "z" and d.vectors.shape == (4, 8) and torch.equal(d.sigmas, torch.ones(4))
    assert abs(float(d.vectors[0] @ v0)) > 0.99
    assert d.values[0] > 0.9  # 100 of ~104 units of variance
    assert d.info["layer"] == "1" and d.info["feature_dim"] == 24
    # the default layer is after the first activation; still dominated by the same direction
    assert default_feature_layer(G) == "2"
    d2 = ganspace(G, samples=2000, components=2, seed=0)
    assert d2.info["layer"] == "2" and abs(float(d2.vectors[0] @ v0)) > 0.9


def test_ganspace_randomized_pca_matches_exact(monkeypatch):
    G, v0 = _anisotropic(seed=4)
    exact = ganspace(G, samples=1500, components=3, feature_layer="2", seed=1)
    monkeypatch.setattr(ganspace_module, "EXACT_PCA_MAX_DIM", 4)
    approx = ganspace(G, samples=1500, components=3, feature_layer="2", seed=1)
    assert "randomized" in approx.info["pca"] and "eigh" in exact.info["pca"]
    np.testing.assert_allclose(approx.values.numpy(), exact.values.numpy(), rtol=1e-3)
    assert abs(float(approx.vectors[0] @ exact.vectors[0])) > 0.999


def test_ganspace_default_layer_dcgan_shape():
    net = nn.Sequential(Reshape(8, 1, 1), nn.ConvTranspose2d(8, 16, 4, 1, 0), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh())
    G = wrap(net, (8,), 8, 1)
    assert default_feature_layer(G) == "4"  # after Reshape, ConvTranspose2d, BatchNorm2d, ReLU


def test_ganspace_options_checked(tiny_sg2, tiny_mlp):
    with pytest.raises(ConfigError, match="exceeds"):
        ganspace(tiny_sg2, samples=100, components=33)
    with pytest.raises(ConfigError, match="samples"):
        ganspace(tiny_mlp, samples=5, components=5)
    with pytest.raises(ConfigError, match="feature_layer"):
        ganspace(tiny_sg2, samples=100, components=2, feature_layer="8")
    with pytest.raises(ConfigError, match="exceeds"):
        ganspace(tiny_mlp, samples=100, components=33)  # features after the first ReLU are 32-d


def test_found_directions_save_with_their_info(tmp_path, tiny_sg2):
    """What SeFa and GANSpace record (info, generator identity) survives the file; the other fields'
    round trip is test_editing_core's."""
    for name, d in (("sefa", sefa(tiny_sg2, layers="coarse", count=3)), ("ganspace", ganspace(tiny_sg2, samples=200, components=2))):
        back = load_directions(save_directions(d, tmp_path / f"{name}.safetensors"), tiny_sg2)
        assert back.info == d.info and back.generator == d.generator and back.layers == d.layers, name
        assert torch.equal(back.vectors, d.vectors), name
