"""Per-image latent files: what ``invertkit invert`` writes reads back exactly; bad files are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invertkit.errors import LatentSpaceError
from invertkit.io.latents import load_latent_file, space_key
from invertkit.results import save_latent


def test_roundtrip_w_plus_with_nvidia_key(tiny_sg2, tmp_path):
    w = tiny_sg2.sample_latent(1, "w+", seed=3)
    path = save_latent(tmp_path / "a.npz", tiny_sg2, w, "w+")
    back, space = load_latent_file(path)
    assert space == "w+" and torch.equal(back, w)
    with np.load(path) as f:
        assert f["w"].shape == (1, tiny_sg2.num_ws, 32)


def test_roundtrip_w_whose_key_is_also_nvidias(tiny_sg2, tmp_path):
    w = tiny_sg2.sample_latent(2, "w", seed=3)[1:]
    back, space = load_latent_file(save_latent(tmp_path / "w.npz", tiny_sg2, w, "w"))
    assert space == "w" and back.shape == (1, 32) and torch.equal(back, w)


def test_roundtrip_pn_and_z(tiny_sg2, tiny_mlp, tmp_path):
    pn = tiny_sg2.sample_latent(1, "w+", seed=4)
    pn = tiny_sg2.convert(pn, "w+", "pn")
    back, space = load_latent_file(save_latent(tmp_path / "p.npz", tiny_sg2, pn, "pn"))
    assert space == "pn" and torch.equal(back, pn)
    z = tiny_mlp.sample_latent(1, seed=0)
    back, space = load_latent_file(save_latent(tmp_path / "z.npz", tiny_mlp, z, "z-sphere"))
    assert space == "z-sphere" and torch.equal(back, z) and space_key("f:16") == "f_16"


def test_bad_latent_files(tmp_path):
    np.savez(tmp_path / "nan.npz", z=np.full((1, 4), np.nan, np.float32), space=np.asarray("z"))
    with pytest.raises(LatentSpaceError, match="NaN"):
        load_latent_file(tmp_path / "nan.npz")
    np.savez(tmp_path / "plain.npz", z=np.zeros((1, 4), np.float32))
    with pytest.raises(LatentSpaceError, match="not an invertkit latent file"):
        load_latent_file(tmp_path / "plain.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(LatentSpaceError, match="junk.npz"):
        load_latent_file(tmp_path / "junk.npz")
