"""StyleSpace channels: named channels, attribute-specific channels, locally-active channels."""

from __future__ import annotations

import pytest
import torch

from invertkit.editing import edit_latents
from invertkit.editing.directions import latent_sigmas
from invertkit.editing.stylespace import (
    channel_direction,
    channel_index,
    channel_name,
    channels_for_classifier,
    channels_for_label,
    channels_for_mask,
    parse_channel,
    select_layers,
)
from invertkit.errors import ConfigError, LatentSpaceError


def test_channel_names_and_layers(tiny_sg2):
    # tiny_sg2 S layout: b4.conv1 32, b4.torgb 32, b8.conv0 32, b8.conv1 32, b8.torgb 32, b16.conv0 32, ...
    assert channel_index(tiny_sg2, "b8.conv1", 4) == 100
    assert channel_name(tiny_sg2, 100) == "b8.conv1 c4"
    assert parse_channel("b8.conv1 c4") == ("b8.conv1", 4) == parse_channel("b8.conv1:4")
    assert select_layers(tiny_sg2, None) == ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"]
    assert select_layers(tiny_sg2, "b16") == ["b16.conv0", "b16.conv1", "b16.torgb"]
    assert select_layers(tiny_sg2, "all") == tiny_sg2.style_layer_names
    with pytest.raises(ConfigError, match="unknown style layer 'b32'"):
        select_layers(tiny_sg2, ["b32"])
    with pytest.raises(ConfigError, match="out of range.*0..15"):
        channel_index(tiny_sg2, "b16.conv1", 16)
    with pytest.raises(ConfigError, match="LAYER cN"):
        parse_channel("b8.conv1")


def test_stylespace_needs_an_s_space(tiny_mlp):
    with pytest.raises(ConfigError, match=r"StyleSpace .* needs style spaces.*tiny-mlp \(SequentialGenerator\) has none; generators that have it: StyleGAN2"):
        channel_direction(tiny_mlp, "b4.conv1", 0)


def test_channel_direction_edits_exactly_one_entry(tiny_sg2):
    d = channel_direction(tiny_sg2, "b8.conv1", 4)
    assert d.space == "s" and d.names == ["b8.conv1 c4"] and d.vectors.shape == (1, 224)
    s = tiny_sg2.sample_latent(3, "s", seed=0)
    edited, space = edit_latents(tiny_sg2, s, "s", d, 0, [2.0])
    diff = edited[:, 0] - s
    assert space == "s"
    assert torch.count_nonzero(diff[:, torch.arange(224) != 100]) == 0
    assert torch.allclose(diff[:, 100], torch.full((3,), 2.0 * float(d.sigmas[0])))
    # sigma is the spread of that channel over sampled styles: latent_sigmas's value (the same draws,
    # read off one channel instead of projected; its statistics are pinned in test_editing_core)
    assert torch.allclose(d.sigmas, latent_sigmas(tiny_sg2, "s", d.vectors), rtol=1e-4)


@pytest.mark.parametrize("kind", ["scores", "negated", "labels"])
def test_channels_for_label_finds_the_channel(tiny_sg2, kind):
    s = tiny_sg2.sample_latent(2000, "s", seed=1)
    x = s[:, 100]
    target = {"scores": x, "negated": -x, "labels": x > x.median()}[kind]
    d = channels_for_label(tiny_sg2, s, target, top=5)
    assert d.names[0] == "b8.conv1 c4"
    assert float(d.values[0]) > 1.2 * float(d.values[1])  # clearly first, not by a hair
    assert torch.all(d.values[:-1] >= d.values[1:])
    sign = -1.0 if kind == "negated" else 1.0
    assert float(d.vectors[0, 100]) == sign and torch.count_nonzero(d.vectors[0]) == 1
    assert d.info["samples"] == 2000 and d.info["positives"] == (200 if kind != "labels" else 1000)


def test_channels_for_label_skips_torgb_unless_asked(tiny_sg2):
    s = tiny_sg2.sample_latent(2000, "s", seed=1)
    idx = channel_index(tiny_sg2, "b8.torgb", 7)
    assert "b8.torgb c7" not in channels_for_label(tiny_sg2, s, s[:, idx]).names
    assert channels_for_label(tiny_sg2, s, s[:, idx], layers="all").names[0] == "b8.torgb c7"
    with pytest.raises(LatentSpaceError, match="224"):
        channels_for_label(tiny_sg2, s[:, :10], s[:, 0])
    with pytest.raises(ConfigError, match="both positive and other"):
        channels_for_label(tiny_sg2, s, torch.ones(2000, dtype=torch.bool))


def test_channels_for_classifier_scores_sampled_styles(tiny_sg2):
    # Relevance is correlational (as in the paper): in a random generator every channel is a function
    # of one 32-d w, so whether a channel *causes* the score is not testable here; check the plumbing
    # (seeded samples, the target's log-probability as the score) against channels_for_label.
    def two_class(images):
        b = images.mean(dim=(1, 2, 3)) * 5
        return torch.stack([b, -b], dim=1)

    d = channels_for_classifier(tiny_sg2, two_class, target=1, n=300, top=4, seed=2, batch=64)
    s = tiny_sg2.sample_latent(300, "s", seed=2)
    with torch.no_grad():
        scores = torch.log_softmax(two_class(tiny_sg2.synthesize(s, "s").clamp(-1, 1)), dim=1)[:, 1]
    want = channels_for_label(tiny_sg2, s, scores, top=4)
    assert d.names == want.names and torch.allclose(d.values, want.values, atol=1e-4)
    assert torch.equal(d.vectors, want.vectors)
    assert d.info["label_source"] == "classifier" and d.info["target"] == 1
    with pytest.raises(ConfigError, match="target class"):
        channels_for_classifier(tiny_sg2, two_class, n=10)


def _share(G, d, i, mask, s, strength):
    """Brute force, one channel at a time: share of the mean |image change| inside the mask."""
    edited, _ = edit_latents(G, s, "s", d, i, [strength])
    with torch.no_grad():
        change = (G.synthesize(edited[:, 0], "s") - G.synthesize(s, "s")).abs().sum(1).mean(0)
    return float((change * mask).sum() / change.sum())


def test_channels_for_mask_ranks_local_channels(tiny_sg2):
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:, :6] = True  # the left strip
    cand = sum(d for n, d in zip(tiny_sg2.style_layer_names, tiny_sg2.style_dims) if not n.endswith("torgb"))
    d = channels_for_mask(tiny_sg2, mask, n=4, top=cand, seed=1, strength=3.0, batch=40)
    assert len(d) == cand == 144
    assert torch.all(d.values[:-1] >= d.values[1:])
    s = tiny_sg2.sample_latent(4, "s", seed=1)
    for i in (0, 1, 70, cand - 1):  # batched scores equal an independent per-channel computation
        assert abs(_share(tiny_sg2, d, i, mask, s, 3.0) - float(d.values[i])) < 1e-4
    area = float(mask.float().mean())  # a channel without locality would score about the area share
    assert float(d.values[0]) > area + 0.15 and float(d.values[-1]) < area - 0.15
    # the complement region reverses the preference: the most local channel for the left strip is
    # among the least local for the rest
    rest = channels_for_mask(tiny_sg2, ~mask, n=4, top=cand, seed=1, strength=3.0)
    j = rest.names.index(d.names[0])
    assert abs(float(rest.values[j]) + float(d.values[0]) - 1) < 1e-4
    assert j >= cand - 10


def test_channels_for_mask_options(tiny_sg2):
    mask = torch.zeros(8, 8)
    mask[:4] = 1  # top half at 8 px, resized to the generator's 16 px
    d = channels_for_mask(tiny_sg2, mask, n=2, top=3, layers="b16.conv1")
    assert len(d) == 3 and all(n.startswith("b16.conv1 ") for n in d.names)
    assert d.info["mask_pixels"] == 128 and len(d.info["change"]) == 3
    assert d.sigmas.shape == (3,) and bool((d.sigmas > 0).all())
    with pytest.raises(ConfigError, match="some but not all"):
        channels_for_mask(tiny_sg2, torch.ones(16, 16, dtype=torch.bool))
    with pytest.raises(ConfigError, match="strength"):
        channels_for_mask(tiny_sg2, mask, strength=0)
