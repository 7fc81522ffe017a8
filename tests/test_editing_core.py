"""Direction files, applying edits in every latent space, and editability numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from invertkit.editing import (
    Directions,
    edit_latents,
    load_directions,
    parse_layers,
    render_edits,
    save_directions,
)
from invertkit.editing.directions import identity, latent_sigmas, unit_rows
from invertkit.editing.editability import EditProbe, editability, parse_strengths
from invertkit.errors import CheckpointError, ConfigError, LatentSpaceError
from invertkit.generators import wrap


def _w_directions(G, k=3, layers=None, seed=0, info=None):
    torch.manual_seed(seed)
    v = unit_rows(torch.randn(k, G.latent_shape("w")[0]))
    return Directions(v, latent_sigmas(G, "w", v, n=2000), torch.arange(k, 0, -1).float(), "w", "test",
                      layers=layers, generator=identity(G), info=info or {})


def test_file_round_trip_and_generator_check(tiny_sg2, tiny_mlp, tmp_path):
    info = {"samples": 600, "seed": 3, "ratio": 0.1, "rows": [0, 1], "weights": ["b4.conv1", "b4.torgb"], "pca": "eigh (exact)"}
    d = _w_directions(tiny_sg2, layers=(0, 1), info=info)
    path = save_directions(d, tmp_path / "d.safetensors")
    back = load_directions(path, tiny_sg2)
    # every field comes back (the one round-trip test of the file; the discovery tests only check
    # that their own info and generator identity survive)
    assert torch.equal(back.vectors, d.vectors) and torch.equal(back.sigmas, d.sigmas) and torch.equal(back.values, d.values)
    assert back.layers == (0, 1) and back.names == ["test 0", "test 1", "test 2"] and back.space == "w" and back.method == "test"
    assert back.info == info and back.generator == d.generator == identity(tiny_sg2)
    with pytest.raises(LatentSpaceError, match="has only z"):
        load_directions(path, tiny_mlp)
    # same shapes, other weights: refused by the weights' digest
    from invertkit.generators.stylegan2 import StyleGAN2Generator

    other = StyleGAN2Generator(tiny_sg2.config, name="other", init_seed=1)
    with pytest.raises(CheckpointError, match="other weights"):
        load_directions(path, other)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_directions(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no such directions file"):
        load_directions(tmp_path / "missing.safetensors")


def test_sigmas_measure_the_spread_of_sampled_latents(tiny_sg2):
    """latent_sigmas, the sigma of every discovery method (SeFa, GANSpace in z, InterFaceGAN and
    StyleSpace assert they use it): the spread of fresh samples along each direction."""
    d = _w_directions(tiny_sg2)
    w = tiny_sg2.sample_latent(4000, "w", seed=123)
    direct = (w @ d.vectors.T).std(0)
    assert torch.allclose(d.sigmas, direct, rtol=0.08)
    assert torch.equal(latent_sigmas(tiny_sg2, "z", d.vectors), torch.ones(3))
    s = tiny_sg2.sample_latent(4000, "s", seed=5)
    one_hot = torch.zeros(1, s.shape[1])
    one_hot[0, 100] = 1.0
    assert abs(float(latent_sigmas(tiny_sg2, "s", one_hot)[0]) - float(s[:, 100].std())) < 0.05 * float(s[:, 100].std())


def test_parse_layers():
    assert parse_layers("0-2,5", 8) == (0, 1, 2, 5)
    assert parse_layers("coarse", 8) == (0, 1, 2, 3)
    assert parse_layers("fine", 10) == (8, 9)
    assert parse_layers("all", 6) is None and parse_layers("0-5", 6) is None
    with pytest.raises(ConfigError, match=r"rows outside W\+ \(6, 7\); W\+ has rows 0..5"):
        parse_layers("4-7", 6)
    with pytest.raises(ConfigError, match=r"\(6, 7, 8, 9, 10 \(\+89 more\)\)"):  # one short line, not 100 numbers
        parse_layers("0-99", 6)
    with pytest.raises(ConfigError, match="A-B"):
        parse_layers("top", 6)


def test_w_edit_on_chosen_rows_of_every_w_type_latent(tiny_sg2):
    G = tiny_sg2
    d = _w_directions(G, layers=(0, 1))
    step = d.vectors[1] * d.sigmas[1]
    wplus = G.sample_latent(2, "w+", seed=1)
    edited, space = edit_latents(G, wplus, "w+", d, 1, [-2.0, 0.0, 1.5])
    assert space == "w+" and edited.shape == (2, 3, 6, 32)
    assert torch.allclose(edited[:, 1], wplus)
    assert torch.allclose(edited[:, 2, :2] - wplus[:, :2], 1.5 * step.expand(2, 2, -1), atol=1e-5)
    assert torch.equal(edited[:, 2, 2:], wplus[:, 2:])  # rows outside the layers never move
    # a z latent is mapped to w; without a row restriction the edit stays in W
    z = G.sample_latent(2, "z", seed=2)
    edited, space = edit_latents(G, z, "z", d, 0, [1.0], layers="all")
    assert space == "w"
    assert torch.allclose(edited[:, 0], G.convert(z, "z", "w") + d.vectors[0] * d.sigmas[0], atol=1e-5)
    # P_N latents are mapped to w+ first; raw units move by the bare unit vector
    pn = G.convert(wplus, "w+", "pn")
    edited, space = edit_latents(G, pn, "pn", d, 2, [1.0], layers="all", units="raw")
    assert space == "w+"
    assert torch.allclose(edited[:, 0], wplus + d.vectors[2], atol=1e-4)


def test_edits_refuse_upstream_conversions(tiny_sg2):
    G = tiny_sg2
    v = unit_rows(torch.randn(1, 32))
    zdir = Directions(v, torch.ones(1), torch.ones(1), "z", "test")
    with pytest.raises(LatentSpaceError, match="cannot edit a 'w\\+' latent"):
        edit_latents(G, G.sample_latent(1, "w+", seed=0), "w+", zdir, 0, [1.0])
    s = G.sample_latent(1, "s", seed=0)
    with pytest.raises(LatentSpaceError, match="W direction cannot edit a 's' latent"):
        edit_latents(G, s, "s", _w_directions(G), 0, [1.0])
    with pytest.raises(ConfigError, match="out of range"):
        edit_latents(G, G.sample_latent(1, "w", seed=0), "w", _w_directions(G), 5, [1.0])


def test_s_edit_changes_one_style_entry_and_renders(tiny_sg2):
    G = tiny_sg2
    dim = G.latent_shape("s")[0]
    v = torch.zeros(1, dim)
    v[0, 7] = 1.0
    d = Directions(v, torch.full((1,), 0.5), torch.ones(1), "s", "test")
    w = G.sample_latent(2, "w", seed=3)
    edited, space = edit_latents(G, w, "w", d, 0, [0.0, 2.0])
    assert space == "s"
    delta = edited[:, 1] - edited[:, 0]
    assert torch.allclose(delta[:, 7], torch.full((2,), 1.0)) and float(delta.abs().sum()) == pytest.approx(2.0)
    images = render_edits(G, edited, space)
    assert images.shape == (2, 2, 3, 16, 16)
    assert torch.allclose(images[:, 0], G.synthesize(w, "w").clamp(-1, 1), atol=1e-5)


class _Linear(nn.Module):
    """z in R^4 -> 1 x 4 x 4 image: top half tanh(z_0 / 2), bottom half tanh(z_1 / 2); the attribute
    (brightness of the top half) is linear in z."""

    def forward(self, z):
        return torch.cat([torch.tanh(z[:, :1] / 2).expand(-1, 8), torch.tanh(z[:, 1:2] / 2).expand(-1, 8)], 1)


def test_editability_counts_flips_strengths_and_change():
    G = wrap(_Linear(), (4,), 4, 1, name="linear")
    d = Directions(torch.eye(4)[:1], torch.ones(1), torch.ones(1), "z", "test")
    z = torch.zeros(4, 4)
    z[:, 0] = torch.tensor([-0.5, -2.5, -4.0, 1.0])
    score = lambda images: images[:, :, :2].mean((1, 2, 3))  # noqa: E731 - positive = attribute present
    probe = EditProbe(d, 0, parse_strengths("-3:3", 7), score)
    out = editability(G, z, "z", probe)
    # -0.5 flips at +1, -2.5 at +3, -4.0 never; 1.0 already has it
    assert out["edit_flip"] == pytest.approx(2 / 3)
    assert out["edit_reach"] == pytest.approx(3 / 4)
    assert out["edit_strength"] == pytest.approx(2.0)
    assert out["edit_slope"] > 0 and out["edit_change"] > 0
    assert out["edit_efficiency"] == pytest.approx(out["edit_slope"] / out["edit_change"])
    # the opposite direction moves the attribute the other way and flips nothing that lacks it
    back = editability(G, z, "z", EditProbe(Directions(-torch.eye(4)[:1], torch.ones(1), torch.ones(1), "z", "t"),
                                             0, parse_strengths("-3:3", 7), score))
    assert back["edit_slope"] == pytest.approx(-out["edit_slope"], rel=1e-5)
    # the edit acts on the top half only: nothing changes outside a mask of it
    top = torch.zeros(4, 4, dtype=torch.bool)
    top[:2] = True
    masked = editability(G, z, "z", EditProbe(d, 0, (0.0, 1.0), None, mask=top))
    assert masked["edit_change"] == 0.0 and "edit_flip" not in masked
    assert editability(G, z, "z", EditProbe(d, 0, (0.0, 1.0), None, mask=~top))["edit_change"] > 0


def test_parse_strengths():
    assert parse_strengths("-3:3", 7) == (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
    assert parse_strengths("0,2.5") == (0.0, 2.5)
    with pytest.raises(ConfigError, match="A:B"):
        parse_strengths("a:b")
    with pytest.raises(ConfigError, match="steps >= 2"):
        parse_strengths("-1:1", 1)
    assert math.isclose(EditProbe(Directions(torch.eye(2)[:1], torch.ones(1), torch.ones(1), "z", "t"),
                                  strengths=(1.0, 2.0)).strengths[0], 0.0)
