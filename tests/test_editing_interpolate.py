"""Interpolation and style mixing (``editing.interpolate``), latent sources (``editing.sources``) and
strips/GIFs (``io.strips``) on the tiny generators."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from invertkit.editing.interpolate import (
    common_space,
    interpolate,
    lerp,
    mix_grid,
    slerp,
    style_mix,
)
from invertkit.editing.sources import item_generator, read_latents
from invertkit.errors import ConfigError, ImageError, LatentSpaceError
from invertkit.io.strips import label_height, save_gif, save_strip
from invertkit.results import save_latent


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- slerp / lerp ------------------------------------------------------------------------------

def test_slerp_keeps_equal_norms_and_hits_endpoints():
    a, b = _randn(4, 3, 5, seed=1), _randn(4, 3, 5, seed=2)
    b = b / b.flatten(1).norm(dim=1).reshape(-1, 1, 1) * a.flatten(1).norm(dim=1).reshape(-1, 1, 1)  # equal norms per sample
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    for t in (0.1, 0.5, 0.77):
        out = slerp(a, b, t)
        assert torch.allclose(out.flatten(1).norm(dim=1), a.flatten(1).norm(dim=1), rtol=1e-5)
        assert not torch.allclose(out, lerp(a, b, t), atol=1e-3)  # a straight line would dip inside the sphere
    mid = slerp(a, b, 0.5).flatten(1)  # the midpoint bisects the angle: equal angles to both ends
    cos_a = torch.nn.functional.cosine_similarity(mid, a.flatten(1))
    cos_b = torch.nn.functional.cosine_similarity(mid, b.flatten(1))
    assert torch.allclose(cos_a, cos_b, atol=1e-5)


def test_slerp_per_sample_weights_unequal_norms_and_parallel_fallback():
    a, b = _randn(3, 8, seed=3), 2.5 * _randn(3, 8, seed=4)
    t = torch.tensor([0.0, 0.3, 1.0])
    out = slerp(a, b, t)
    assert torch.equal(out[0], a[0]) and torch.equal(out[2], b[2])
    n, na, nb = out[1].norm(), a[1].norm(), b[1].norm()
    assert min(na, nb) <= n <= max(na, nb)
    par = slerp(a, 3 * a, 0.5)  # parallel: no great circle, the straight line is the answer
    assert torch.allclose(par, 2 * a)
    with pytest.raises(ConfigError, match=r"one per sample \(\[3\]\), got \[2\]"):
        slerp(a, b, torch.tensor([0.1, 0.2]))


def test_interpolate_z_is_slerp_and_w_is_lerp(tiny_mlp, tiny_sg2):
    za, zb = _randn(1, 8, seed=5), _randn(1, 8, seed=6)
    path = interpolate(tiny_mlp, za, zb, "z", 5)
    assert path.shape == (5, 8)
    assert torch.equal(path[0], za[0]) and torch.equal(path[-1], zb[0])
    assert torch.allclose(path[2], slerp(za, zb, 0.5)[0])
    wa, wb = tiny_sg2.sample_latent(1, "w", seed=1), tiny_sg2.sample_latent(1, "w", seed=2)
    path = interpolate(tiny_sg2, wa, wb, "w", 3)
    assert torch.allclose(path[1], (wa[0] + wb[0]) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="at least 2 steps"):
        interpolate(tiny_sg2, wa, wb, "w", 1)


def test_interpolate_mixed_spaces_meet_downstream(tiny_sg2):
    G = tiny_sg2
    z, wp = G.sample_latent(1, "z", seed=1), G.sample_latent(1, "w+", seed=2)
    assert common_space(G, "z", "w+") == "w+" and common_space(G, "p", "w+") == "w+" and common_space(G, "w", "s") == "s"
    assert common_space(G, "z-sphere", "z") == "z"
    path = interpolate(G, z, wp, "z", 4, space_b="w+")
    assert path.shape == (4, *G.latent_shape("w+"))
    assert torch.allclose(path[0], G.convert(z, "z", "w+")[0], atol=1e-6) and torch.equal(path[-1], wp[0])
    s = interpolate(G, z, wp, "z", 3, space_b="w+", into="s")
    assert s.shape == (3, *G.latent_shape("s"))
    with pytest.raises(LatentSpaceError, match="downstream"):
        interpolate(G, z, wp, "z", 3, space_b="w+", into="w")  # w+ -> w does not exist


# ---- style mixing ------------------------------------------------------------------------------

def test_style_mix_takes_chosen_rows_from_b(tiny_sg2):
    G = tiny_sg2
    a, b = G.sample_latent(1, "w", seed=1), G.sample_latent(1, "w+", seed=2)
    mixed, space = style_mix(G, a, "w", b, "w+", "coarse")
    assert space == "w+" and mixed.shape == (1, 6, 32)
    assert torch.equal(mixed[0, :4], b[0, :4])
    assert torch.allclose(mixed[0, 4:], a.expand(2, -1), atol=0)
    mixed, _ = style_mix(G, a, "w", b, "w+", "4-5")
    assert torch.equal(mixed[0, 4:], b[0, 4:]) and torch.allclose(mixed[0, :4], a.expand(4, -1))
    assert torch.equal(style_mix(G, a, "w", b, "w+", "all")[0], b)
    grid, labels = mix_grid(G, a, "w", b, "w+")
    assert labels == ["coarse", "middle"] and grid.shape == (2, 6, 32)  # 6 rows: no fine ones at 16 px
    with pytest.raises(ConfigError, match="rows"):
        style_mix(G, a, "w", b, "w+", "fine")
    with pytest.raises(LatentSpaceError, match="downstream"):
        style_mix(G, a, "w", G.convert(b, "w+", "s"), "s", "coarse")


def test_style_mix_refuses_z_only_generators(tiny_mlp):
    z = _randn(1, 8)
    with pytest.raises(ConfigError, match=r"style mixing \(interpolate the two latents instead\) needs style spaces.*StyleGAN2"):
        style_mix(tiny_mlp, z, "z", z, "z", "coarse")


# ---- latent sources ----------------------------------------------------------------------------

def _write_latent(G, path, space, seed):
    lat = G.sample_latent(1, "z" if space == "z-sphere" else space, seed=seed)
    return save_latent(path, G, lat, space), lat


def test_read_latents_file_folder_and_run_folder(tiny_sg2, tmp_path):
    G = tiny_sg2
    f1, lat1 = _write_latent(G, tmp_path / "lat" / "a.npz", "w+", 1)
    f2, lat2 = _write_latent(G, tmp_path / "lat" / "b.npz", "w", 2)
    (tmp_path / "lat" / "notes.txt").write_text("ignored")
    one = read_latents(f1, G)
    assert [i.name for i in one] == ["a"] and torch.equal(one[0].latent, lat1) and not one[0].tuned
    items = read_latents(tmp_path / "lat", G)
    assert [(i.name, i.space) for i in items] == [("a", "w+"), ("b", "w")]
    assert torch.allclose(items[1].latent, lat2)
    run = tmp_path / "run"
    _write_latent(G, run / "latents" / "x.npz", "w", 3)
    (run / "run.json").write_text(json.dumps({"generator": G.describe()}))
    assert [i.name for i in read_latents(run, G)] == ["x"]
    (run / "run.json").unlink()  # an interrupted run: latents/ is written before run.json
    assert [i.name for i in read_latents(run, G)] == ["x"]


def test_read_latents_errors_name_the_path(tiny_sg2, tiny_mlp, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty.*no latents found.*\.npz"):
        read_latents(tmp_path / "empty", tiny_sg2)
    f, _ = _write_latent(tiny_sg2, tmp_path / "a.npz", "w+", 1)
    with pytest.raises(LatentSpaceError, match=r"a\.npz.*'w\+'.*tiny-mlp"):
        read_latents(f, tiny_mlp)
    np.savez(tmp_path / "z.npz", z=np.zeros((1, 5), np.float32), space=np.asarray("z"))
    with pytest.raises(LatentSpaceError, match=r"z\.npz.*\[1, 5\]"):
        read_latents(tmp_path / "z.npz", tiny_mlp)
    with pytest.raises(ConfigError, match="no such file"):
        read_latents(tmp_path / "missing", tiny_mlp)


def test_item_generator_applies_the_delta_beside_the_latent(tiny_sg2, tmp_path):
    from invertkit.results import DeltaBase, TunedInversion

    G = tiny_sg2
    lat = G.sample_latent(1, "w", seed=1)
    name = "synthesis.b16.conv1.bias"
    tuned = TunedInversion(latents=lat, space="w", reconstructions=torch.zeros(1, 3, 16, 16),
                           deltas=[{name: torch.full_like(G.state_dict()[name], 0.5)}],
                           base=DeltaBase(G.name, G.fingerprint(), type(G).__name__))
    assert tuned.save_item(0, tmp_path, "a", G) == ["a.npz", "a_delta.safetensors"]
    item = read_latents(tmp_path / "a.npz", G)[0]
    assert item.tuned and torch.equal(item.latent, lat)
    T = item_generator(G, item)
    assert T is not G and torch.allclose(T.state_dict()[name], G.state_dict()[name] + 0.5)
    with torch.no_grad():
        assert not torch.allclose(T.synthesize(lat, "w"), G.synthesize(lat, "w"), atol=1e-3)
    assert item_generator(G, read_latents(_write_latent(G, tmp_path / "b.npz", "w", 2)[0], G)[0]) is G


# ---- strips and GIFs ---------------------------------------------------------------------------

def test_save_strip_layout_and_pixels(tmp_path):
    frames = torch.linspace(-1, 1, 5).reshape(5, 1, 1, 1).expand(5, 3, 6, 4).contiguous()
    p = save_strip(frames, tmp_path / "s.png", scale=2, pad=1)
    img = np.asarray(Image.open(p))
    assert img.shape == (6 * 2 + 2, 5 * (4 * 2 + 1) + 1, 3)
    for i in range(5):  # each tile holds its frame's value
        expected = round((float(frames[i, 0, 0, 0]) + 1) * 127.5)
        assert (img[1:13, 1 + i * 9: 9 + i * 9] == expected).all()
    labelled = Image.open(save_strip(frames, tmp_path / "l.png", labels=["-2.0", "-1.0", "0.0", "1.0", "2.0"]))
    assert labelled.size == (5 * 6 + 2, 6 + 4 + label_height())
    band = np.asarray(labelled)[6 + 4:]
    assert (band < 128).any()  # text was drawn
    with pytest.raises(ImageError, match="1 labels for 5 frames"):
        save_strip(frames, tmp_path / "x.png", labels=["a"])
    with pytest.raises(ImageError, match=r"expected frames \[S, C, H, W\].*got \[3, 6, 4\]"):
        save_strip(frames[0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_save_gif_bounces(tmp_path):
    frames = torch.linspace(-1, 1, 4).reshape(4, 1, 1, 1).expand(4, 1, 5, 5).contiguous()
    with Image.open(save_gif(frames, tmp_path / "b.gif", scale=3)) as g:
        assert g.n_frames == 6 and g.size == (15, 15)
        values = []
        for k in range(g.n_frames):
            g.seek(k)
            values.append(int(np.asarray(g.convert("L"))[0, 0]))
    assert values == [0, 85, 170, 255, 170, 85]  # forward, then back without repeating the ends
    with Image.open(save_gif(frames, tmp_path / "f.gif", bounce=False)) as g:
        assert g.n_frames == 4 and g.size == (5, 5)
