"""PIE-Bench protocol: RLE masks, background metrics outside the mask, structure distance on a seeded
random DINO ViT, CLIP similarity through a stub encoder, and the folder evaluator on a synthetic
PIE-Bench-like folder (including hostile inputs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invertkit.errors import CheckpointError, ConfigError, ImageError
from invertkit.features.dino_vit import DinoViT, DinoViTConfig, load_dino_vit
from invertkit.metrics.clip_similarity import clip_similarity, load_clip
from invertkit.metrics.edit_background import background_scores
from invertkit.metrics.edit_masks import decode_rle, encode_rle, load_mask, restrict
from invertkit.metrics.edit_scores import COLUMNS, EditScorers, score_edit
from invertkit.metrics.pie_bench import crop_like_official, evaluate_pie_bench, main, read_mapping, summarize
from invertkit.metrics.structure_distance import dino_input, keys_self_similarity, resized_size, structure_distance

TINY = DinoViTConfig(dim=32, depth=2, heads=2, patch=8, grid=28)


def tiny_state(seed: int = 0, cfg: DinoViTConfig = TINY) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * (0.2 if len(s) > 1 else 0.05) + (1.0 if "norm" in k and k.endswith("weight") else 0.0)
            for k, s in cfg.shapes().items()}


@pytest.fixture(scope="module")
def vit() -> DinoViT:
    net = DinoViT(TINY)
    net.load_state_dict(tiny_state())
    return net.eval().requires_grad_(False)


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


# --- masks ---------------------------------------------------------------------------------------------


def test_decode_rle_matches_hand_made_mask():
    # 4 x 5 image, row-major: run (2, 3) covers (0,2) (0,3) (0,4); run (11, 2) covers (2,1) (2,2)
    want = np.zeros((4, 5), bool)
    want[0, 2:5] = True
    want[2, 1:3] = True
    got = decode_rle([2, 3, 11, 2], (4, 5), border=False)
    assert np.array_equal(got, want)
    assert encode_rle(want) == [2, 3, 11, 2]
    bordered = decode_rle([2, 3, 11, 2], (4, 5))
    assert bordered[0].all() and bordered[-1].all() and bordered[:, 0].all() and bordered[:, -1].all()
    assert bordered[1:3, 1:4].sum() == 2  # interior unchanged: (2,1) and (2,2)


def test_decode_rle_refuses_bad_runs_and_clips_on_request():
    with pytest.raises(ConfigError, match="runs past the 4x5 image"):
        decode_rle([18, 5], (4, 5), border=False)
    clipped = decode_rle([18, 5, 25, 3], (4, 5), border=False, clip_runs=True)  # official: clip, ignore past-end start
    assert clipped.reshape(-1).nonzero()[0].tolist() == [18, 19]
    for bad, what in (([1, 2, 3], "even count"), ([1, -2], "non-negative"), ([1, 2.5], "non-negative integer"),
                      ([True, 1], "non-negative integer"), ("1 2", "list")):
        with pytest.raises(ConfigError, match=what):
            decode_rle(bad, (4, 5), where="entry x")


def test_decode_rle_equals_a_pixel_by_pixel_decoder_on_random_overlapping_runs():
    g = np.random.default_rng(0)
    h, w = 9, 11
    rle = [int(v) for pair in zip(g.integers(0, h * w, 12), g.integers(0, 30, 12)) for v in pair]
    naive = np.zeros(h * w, bool)
    for start, length in zip(rle[0::2], rle[1::2]):  # the official loop: set each pixel, clipped at the end
        for j in range(min(length, h * w - start)):
            naive[start + j] = True
    naive = naive.reshape(h, w)
    naive[0, :] = naive[-1, :] = naive[:, 0] = naive[:, -1] = True
    assert np.array_equal(decode_rle(rle, (h, w), clip_runs=True), naive)


def test_load_mask_from_file_and_array(tmp_path):
    m = np.zeros((6, 7), bool)
    m[2:4, 1:5] = True
    np.save(tmp_path / "m.npy", m)
    Image.fromarray((m * 255).astype(np.uint8)).save(tmp_path / "m.png")
    for src in (m, tmp_path / "m.npy", tmp_path / "m.png", torch.from_numpy(m)):
        assert torch.equal(load_mask(src, (6, 7)), torch.from_numpy(m))
    with pytest.raises(ImageError, match="mask is 6x7, the image is 5x5"):
        load_mask(m, (5, 5))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="not an image file"):
        load_mask(tmp_path / "junk.png")


# --- background metrics --------------------------------------------------------------------------------


def test_background_psnr_ignores_the_edited_region_only():
    src = smooth_images(1, 64, 1)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[16:48, 16:48] = True
    inside = src.clone()
    inside[..., 20:40, 20:40] = -inside[..., 20:40, 20:40]
    outside = src.clone()
    outside[..., 0:8, :] = -outside[..., 0:8, :]
    same = background_scores(src, src, mask, metrics=("psnr", "mse", "ssim")).values
    ins = background_scores(src, inside, mask, metrics=("psnr", "mse", "ssim")).values
    out = background_scores(src, outside, mask, metrics=("psnr", "mse", "ssim")).values
    assert ins["psnr"].item() == same["psnr"].item() == 100.0  # identical background: the stated cap
    assert ins["mse"].item() == 0.0 and ins["ssim"].item() == pytest.approx(1.0)
    assert out["psnr"].item() < 40 and out["mse"].item() > 0 and out["ssim"].item() < 1


def test_background_mse_is_the_official_masked_whole_image_mean():
    src, edt = smooth_images(1, 32, 2), smooth_images(1, 32, 3)
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[:10] = True
    a = ((src + 1) * 127.5).round() / 255
    b = ((edt + 1) * 127.5).round() / 255
    keep = (~mask).float()
    official = ((a * keep - b * keep) ** 2).mean()  # torchmetrics MSE over 3 H W of img * (1 - mask)
    got = background_scores(src, edt, mask, metrics=("mse", "psnr")).values
    assert got["mse"].item() == pytest.approx(official.item(), rel=1e-5)
    assert got["psnr"].item() == pytest.approx(10 * math.log10(1 / official.item()), rel=1e-5)


def test_background_ssim_is_torchmetrics_ssim_of_the_masked_images():
    """torchmetrics <= 1.2 (PIE-Bench's era): reflect-pad by 5, Gaussian 11 / 1.5 conv, crop 5, mean."""
    src, edt = smooth_images(1, 40, 13), (smooth_images(1, 40, 14) * 0.5 + smooth_images(1, 40, 13) * 0.5)
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[5:25, 8:30] = True
    keep = (~mask).double()
    a = ((src + 1) * 127.5).round().double() / 255 * keep
    b = ((edt + 1) * 127.5).round().double() / 255 * keep
    d = torch.arange(-5, 6, dtype=torch.float64)
    g1 = torch.exp(-0.5 * (d / 1.5) ** 2)
    g1 = g1 / g1.sum()
    k = (g1[:, None] * g1[None, :]).expand(3, 1, 11, 11)
    pad = lambda x: torch.nn.functional.pad(x, (5, 5, 5, 5), mode="reflect")  # noqa: E731
    conv = lambda x: torch.nn.functional.conv2d(pad(x), k, groups=3)  # noqa: E731
    mu_a, mu_b = conv(a), conv(b)
    va, vb, cab = conv(a * a) - mu_a**2, conv(b * b) - mu_b**2, conv(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    full = ((2 * mu_a * mu_b + c1) * (2 * cab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    want = full[..., 5:-5, 5:-5].mean()
    got = background_scores(src, edt, mask, metrics=("ssim",)).values["ssim"]
    assert got.item() == pytest.approx(want.item(), abs=1e-6)


def test_full_mask_has_no_background_and_scores_nan():
    src, edt = smooth_images(2, 32, 4), smooth_images(2, 32, 5)
    mask = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    mask[0] = True
    s = background_scores(src, edt, mask)
    for name, v in s.values.items():
        assert math.isnan(v[0].item()), name
        assert name == "lpips" or math.isfinite(v[1].item())
    if math.isnan(s.values["lpips"][1].item()):
        assert "weights not available" in s.notes["lpips"]


def test_restrict_blacks_out_outside():
    x = torch.zeros(1, 3, 4, 4)
    m = torch.zeros(4, 4, dtype=torch.bool)
    m[1, 1] = True
    r = restrict(x, m)
    assert r[0, :, 1, 1].eq(0).all() and (r == -1).sum() == 3 * 15


# --- structure distance --------------------------------------------------------------------------------


def test_resized_size_follows_torchvision_resize():
    assert resized_size(512, 512) == (224, 224)
    assert resized_size(512, 768) == (224, 336)
    assert resized_size(300, 1000) == (144, 480)  # the longer side capped at 480


def test_keys_and_self_similarity_shapes(vit):
    x = dino_input(smooth_images(2, 512, 6))
    assert x.shape == (2, 3, 224, 224)
    k = vit.keys(x)
    assert k.shape == (2, TINY.heads, 1 + 28 * 28, TINY.dim // TINY.heads)
    s = keys_self_similarity(vit, x)
    assert s.shape == (2, 785, 785)
    assert torch.allclose(s.diagonal(dim1=1, dim2=2), torch.ones(2, 785), atol=1e-5)
    # a non-square image: position embeddings interpolated to the 28 x 42 grid
    assert vit.keys(dino_input(smooth_images(1, 512, 7)[..., :384])).shape[2] == 1 + 37 * 28  # 298 x 224
    wide = dino_input(torch.zeros(1, 3, 512, 768))
    assert vit.keys(wide).shape[2] == 1 + 28 * 42


def test_structure_distance_properties(vit):
    a = smooth_images(3, 512, 8)
    b = smooth_images(3, 512, 9)
    d0 = structure_distance(a, a, vit)
    assert torch.equal(d0, torch.zeros(3))
    dab, dba = structure_distance(a, b, vit), structure_distance(b, a, vit)
    assert torch.allclose(dab, dba, rtol=1e-6, atol=0)
    assert (dab > 0).all() and (dab <= 4).all()
    # a faint change of appearance moves the structure less than a structural change (a flip)
    faint = (a + 0.02).clamp(-1, 1)
    flipped = a.flip(-1)
    assert (structure_distance(a, faint, vit) < structure_distance(a, flipped, vit)).all()
    # each image is scored alone: the batch does not change a row
    assert torch.allclose(structure_distance(a[1:2], b[1:2], vit), dab[1:2], rtol=1e-5)
    bad = a.clone()
    bad[0, 0, 0, 0] = float("nan")
    d = structure_distance(bad, b, vit)
    assert math.isnan(d[0].item()) and torch.isfinite(d[1:]).all()


def test_dino_loader_reads_pth_and_safetensors_and_refuses_bad_files(tmp_path, vit):
    from safetensors.torch import save_file

    state = tiny_state()
    torch.save(state, tmp_path / "w.pth")
    save_file(state, str(tmp_path / "w.safetensors"))
    x = dino_input(smooth_images(1, 64, 10), size=64)
    for f in ("w.pth", "w.safetensors"):
        net = load_dino_vit(TINY, tmp_path / f)
        assert torch.equal(net.keys(x), vit.keys(x))
    torch.save({k: v for k, v in state.items() if k != "norm.bias"}, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match="missing norm.bias"):
        load_dino_vit(TINY, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match="not a DINO ViT"):
        load_dino_vit("vits8", tmp_path / "w.pth")
    torch.save({"net": Path("x")}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError):
        load_dino_vit(TINY, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="no such DINO ViT weight file"):
        load_dino_vit(TINY, tmp_path / "absent.pth")


def test_dino_vit_matches_reference_fixture():
    """Keys and self-similarity against facebookresearch/dino's vision_transformer.py on the same seeded
    weights (tests/golden/pie_bench_dino.pt, made by benchmarks/pie_bench_dino_reference.py)."""
    golden = Path(__file__).parent / "golden" / "pie_bench_dino.pt"
    ref = torch.load(golden, weights_only=True)
    cfg = DinoViTConfig(dim=32, depth=2, heads=2, patch=8, grid=8)
    state = tiny_state(int(ref["seed"]), cfg)
    assert sum(v.double().sum() for v in state.values()).item() == pytest.approx(ref["state_checksum"].item(), abs=1e-9)
    net = DinoViT(cfg)
    net.load_state_dict(state)
    for name in ("square", "wide"):
        x = ref[f"{name}_input"]
        assert torch.allclose(net.keys(x), ref[f"{name}_keys"], atol=1e-5, rtol=0)
        assert torch.allclose(keys_self_similarity(net, x)[:, :16], ref[f"{name}_self_sim"], atol=1e-5, rtol=0)
        assert torch.allclose(net(x)[:, 0], ref[f"{name}_cls"], atol=1e-5, rtol=0)


# --- CLIP ----------------------------------------------------------------------------------------------


class StubClip:
    """Image embedding: mean colour per channel; text embedding: a fixed direction per prompt."""

    def image_features(self, images):
        assert images.dtype == torch.uint8
        return images.float().mean(dim=(2, 3)) + 1.0

    def text_features(self, prompts):
        table = {"red": [1.0, 0.0, 0.0], "blue": [0.0, 0.0, 1.0]}
        return torch.tensor([table[p.split()[-1]] for p in prompts])


def test_clip_similarity_formula_and_region():
    img = torch.full((1, 3, 8, 8), -1.0)
    img[:, 0] = 1.0  # pure red
    red = clip_similarity(StubClip(), img, ["a red"])
    f = torch.tensor([256.0, 1.0, 1.0])
    assert red.item() == pytest.approx(100 * f[0].item() / f.norm().item(), rel=1e-5)
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[:2] = True
    part = clip_similarity(StubClip(), img, ["a red"], region)
    g = torch.tensor([255 * 16 / 64 + 1, 1.0, 1.0])
    assert part.item() == pytest.approx(100 * g[0].item() / g.norm().item(), rel=1e-5)


def test_clip_folder_absent_or_transformers_missing_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not a CLIP model folder"):
        load_clip(tmp_path)
    s = EditScorers.create(dino_weights=tmp_path / "absent.pth", clip_model=tmp_path)
    assert s.vit is None and "not loaded" in s.unavailable["structure_distance"]
    assert "not a CLIP model folder" in s.unavailable["clip_similarity_target_image"]


def test_score_edit_rows_from_tensors(vit):
    src, edt = smooth_images(2, 64, 11), smooth_images(2, 64, 12)
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[0, 10:30, 10:30] = True
    scorers = EditScorers(vit=vit, clip=StubClip())
    rows = score_edit(src, edt, mask, ["a red", "a blue"], scorers, source_prompts=["a [red]", "a blue"])
    assert [list(r) for r in rows] == [list(COLUMNS)] * 2
    assert all(math.isfinite(rows[0][c]) for c in COLUMNS if c != "lpips_unedit_part")
    assert math.isnan(rows[1]["clip_similarity_target_image_edit_part"])  # empty edit mask: no edit part
    assert math.isfinite(rows[1]["psnr_unedit_part"])
    bare = score_edit(src, edt, mask)
    assert math.isnan(bare[0]["structure_distance"]) and math.isnan(bare[0]["clip_similarity_target_image"])


# --- the folder evaluator ------------------------------------------------------------------------------


def _save(path: Path, x: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(((x[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()).save(path)


def make_bench(root: Path) -> tuple[Path, Path]:
    """A PIE-Bench-like folder with 5 entries and an edited folder: ok, ok with a strip edit (1536 x 512),
    missing edit, full mask, bad mask, and an edited file that is no image."""
    bench, edited = root / "bench", root / "edited"
    src = smooth_images(6, 512, 20)
    edt = smooth_images(6, 512, 21)
    box = np.zeros((512, 512), bool)
    box[100:300, 150:350] = True
    entries = {}
    for i in range(6):
        rel = f"{i % 2}_cat/{i:012d}.jpg".replace(".jpg", ".png")
        _save(bench / "annotation_images" / rel, src[i : i + 1])
        mask = encode_rle(np.ones((512, 512), bool)) if i == 3 else encode_rle(box)
        if i == 4:
            mask = [262000, 500]
        entries[f"{i:012d}"] = {"image_path": rel, "original_prompt": "a cat", "editing_prompt": "a [red] cat",
                                "editing_instruction": "x", "editing_type_id": str(i % 2), "blended_word": "cat cat", "mask": mask}
        if i == 1:
            strip = torch.cat([src[i : i + 1], src[i : i + 1], edt[i : i + 1]], dim=-1)
            _save(edited / rel, strip)
        elif i == 5:
            (edited / rel).parent.mkdir(parents=True, exist_ok=True)
            (edited / rel).write_bytes(b"\x89PNG but not really")
        elif i != 2:
            _save(edited / rel, edt[i : i + 1])
    (bench / "mapping_file.json").write_text(json.dumps(entries))
    return bench, edited


@pytest.fixture(scope="module")
def bench_folder(tmp_path_factory) -> tuple[Path, Path]:
    return make_bench(tmp_path_factory.mktemp("pie"))


# SSIM at 512 px costs ~1 s per image on one CPU thread; it is scored on small images above
NO_SSIM = tuple(c for c in COLUMNS if c != "ssim_unedit_part")


def test_evaluate_folder_rows_and_nan_policy(bench_folder, vit):
    bench, edited = bench_folder
    rows = evaluate_pie_bench(bench, edited, EditScorers(vit=vit), columns=NO_SSIM)
    assert [r["status"] for r in rows] == ["ok", "ok", "missing", "ok", "error", "error"]
    assert "cropped to its bottom-right 512x512" in rows[1]["note"]
    assert "no edited image" in rows[2]["note"]
    assert "whole image" in rows[3]["note"] and math.isnan(rows[3]["psnr_unedit_part"])
    assert "runs past the 512x512 image" in rows[4]["note"]
    assert "not an image file" in rows[5]["note"]
    for r in rows[:2]:
        assert r["psnr_unedit_part"] > 0 and 0 < r["structure_distance"] < 4
    # the strip's crop is the edit itself: same scores as the plain edit of the same image would give
    s = summarize(rows, NO_SSIM)
    assert s["status"] == {"ok": 3, "missing": 1, "error": 2}
    assert s["overall"]["psnr_unedit_part"]["n"] == 2 and s["overall"]["psnr_unedit_part"]["nan"] == 1
    assert s["overall"]["structure_distance"]["n"] == 3
    only = evaluate_pie_bench(bench, edited, EditScorers(vit=vit), categories=["1"], columns=("mse_unedit_part",))
    assert [r["id"] for r in only] == ["000000000001", "000000000003", "000000000005"]
    clipped = evaluate_pie_bench(bench, edited, EditScorers(), clip_mask_runs=True, columns=("mse_unedit_part",))
    assert clipped[4]["status"] == "ok"


def test_crop_like_official():
    x = torch.zeros(1, 3, 512, 1536)
    x[..., 1024:] = 1
    y, note = crop_like_official(x, (512, 512))
    assert y.shape[-2:] == (512, 512) and y.eq(1).all() and note
    with pytest.raises(ImageError, match="save edits at the source's size"):
        crop_like_official(torch.zeros(1, 3, 256, 256), (512, 512))


def test_hostile_mapping_files(tmp_path):
    f = tmp_path / "mapping_file.json"
    for text, what in (("{not json", "not valid JSON"), ("[1, 2]", "got a list"), ("[" * 100000, "JSON")):
        f.write_text(text)
        with pytest.raises(ConfigError, match=what):
            read_mapping(f)
    f.write_text(json.dumps({"a": {"image_path": "x.png", "mask": []}}) + " " * 2000)
    with pytest.raises(ConfigError, match="over the limit"):
        read_mapping(f, max_bytes=1000)
    f.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_mapping(f)
    # damaged entries are rows, not crashes
    (tmp_path / "edited").mkdir()
    f.write_text(json.dumps({"a": 3, "b": {"image_path": "../../etc/passwd", "mask": []}, "c": {"mask": []},
                             "d": {"image_path": "x.png", "mask": [0, 1], "editing_prompt": ["no"]}}))
    rows = evaluate_pie_bench(tmp_path, tmp_path / "edited")
    assert [r["status"] for r in rows] == ["error"] * 4
    assert "expected an object" in rows[0]["note"] and "relative path" in rows[1]["note"]
    assert "missing image_path" in rows[2]["note"] and "must be a string" in rows[3]["note"]


def test_cli_writes_csv_and_summary(tmp_path, capsys, bench_folder):
    bench, edited = bench_folder
    out = tmp_path / "res" / "scores.csv"
    rc = main(["--bench", str(bench), "--edited", str(edited), "--out", str(out), "--dino-weights", str(tmp_path / "none.pth"),
               "--metrics", "structure_distance", "psnr_unedit_part", "clip_similarity_target_image"])
    assert rc == 1  # a missing and two broken entries
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == ["id", "image_path", "editing_type_id", "status", "note", "structure_distance",
                                   "psnr_unedit_part", "clip_similarity_target_image"] and len(lines) == 7
    assert lines[1].split(",")[5] == "nan" and float(lines[1].split(",")[6]) > 0
    summary = json.loads((tmp_path / "res" / "scores.csv.summary.json").read_text())
    assert "not loaded" in summary["unavailable"]["structure_distance"]
    assert summary["overall"]["structure_distance"]["mean"] is None
    printed = capsys.readouterr().out
    assert "3 of 6 entries scored" in printed and "structure_distance: nan" in printed and "no CLIP model given" in printed
    assert main(["--bench", str(tmp_path / "nope"), "--edited", str(edited), "--out", str(out)]) == 2


def test_dino_weights_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    """The official file name in $TORCH_HOME/hub/checkpoints is found without a path (nothing downloaded)."""
    import invertkit.features.dino_vit as dv
    from invertkit.features.weights import WeightFile

    monkeypatch.setitem(dv.ARCHS, "tiny-test", (TINY, WeightFile("dino_tiny_test.pth", "https://example.invalid/x.pth")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))
    scorers = EditScorers.create(dino_arch="tiny-test")
    assert "dino_tiny_test.pth not found" in scorers.unavailable["structure_distance"]
    assert "https://example.invalid/x.pth" in scorers.unavailable["structure_distance"]
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(tiny_state(), tmp_path / "hub" / "checkpoints" / "dino_tiny_test.pth")
    scorers = EditScorers.create(dino_arch="tiny-test")
    assert scorers.vit is not None and "structure_distance" not in scorers.unavailable


def test_lpips_squeeze_matches_reference_package(tmp_path, monkeypatch):
    """PIE-Bench's LPIPS backbone. Values from lpips==0.1.4 (its real squeeze heads) with torchvision's
    SqueezeNet class holding the same seeded features (benchmarks/lpips_squeeze_reference.py)."""
    from invertkit.features.lpips import LPIPS, load_lpips
    from invertkit.features.weights import LPIPS_HEADS, find_weight

    if find_weight(LPIPS_HEADS["squeeze"]) is None:
        pytest.skip("the lpips wheel (published squeeze heads) is not installed")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("lpips_squeeze_reference", Path(__file__).parents[1] / "benchmarks" / "lpips_squeeze_reference.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    sys.modules.pop("lpips_squeeze_reference", None)
    state = ref.random_features({f"features.{k}": v for k, v in LPIPS("squeeze").backbone.state_dict().items()})
    torch.save(state, tmp_path / "squeezenet1_1-b8a52dc0.pth")
    model = load_lpips("squeeze", tmp_path / "squeezenet1_1-b8a52dc0.pth")
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, 48, 40, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(2, 3, 48, 40, generator=g)).clamp(-1, 1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    with torch.no_grad():
        assert model(a, b).tolist() == pytest.approx([0.03093704954, 0.04102950171], rel=1e-5)
        smooth = model(torch.stack([xx, yy, xx * yy])[None], torch.stack([yy, xx, -xx * yy])[None])
    assert smooth.item() == pytest.approx(0.2586662471, rel=1e-5)
    # found in the torch hub cache by the background metrics: blind to the edited region, NaN without background
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    src = smooth_images(1, 64, 30)
    inside, outside = src.clone(), src.clone()
    inside[..., 24:40, 24:40] *= -1
    outside[..., :8, :] *= -1
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[16:48, 16:48] = True
    lp = lambda e, m: background_scores(src, e, m, metrics=("lpips",)).values["lpips"].item()  # noqa: E731
    assert lp(inside, mask) == 0.0 and lp(outside, mask) > 0 and math.isnan(lp(outside, torch.ones(64, 64, dtype=torch.bool)))
