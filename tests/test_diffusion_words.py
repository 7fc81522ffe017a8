"""Word-table text encoders of diffusers folders (tokens.json + token_embeds.safetensors), the MNIST
diffusion trainer on synthetic digits, and the shipped diffusion-mnist32 zoo entry."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from invertkit.errors import CheckpointError, ConfigError

from .diffusers_factories import write_folder

pytest.importorskip("diffusers")

VOCAB = ["", "cat", "dog", "big", "small", "red"]


def _words(root: Path, vocabulary=VOCAB, max_tokens=3, table=None, *, width: int = 8, seed: int = 3) -> Path:
    from safetensors.torch import save_file

    (root / "tokens.json").write_text(json.dumps({"vocabulary": vocabulary, "max_tokens": max_tokens}))
    if table is None:
        table = torch.randn(len(vocabulary), width, generator=torch.Generator().manual_seed(seed))
    save_file({"token_embeds": table}, str(root / "token_embeds.safetensors"))
    return root


@pytest.fixture(scope="module")
def word_folder(tmp_path_factory) -> Path:
    root = write_folder(tmp_path_factory.mktemp("words"), "cond")
    (root / "prompt_embeds.safetensors").unlink()
    return _words(root)


def _load(root: Path):
    from invertkit.diffusion.generator import load_diffusers

    return load_diffusers(str(root))


def test_prompt_is_its_word_rows_then_padding(word_folder):
    from safetensors.torch import load_file

    G = _load(word_folder)
    table = load_file(str(word_folder / "token_embeds.safetensors"))["token_embeds"]
    emb = G.cond("red  cat")  # any whitespace separates words
    assert emb.shape == (3, 8)
    assert torch.equal(emb, table[[5, 1, 0]])
    assert torch.equal(G.cond("big dog red"), table[[3, 2, 5]])
    assert torch.equal(G.cond(""), table[[0, 0, 0]])
    assert torch.equal(G.cond(None), table[[0, 0, 0]])
    assert G.prompt_words("red cat") == ["red", "cat", ""]
    assert G.prompt_words("") == ["", "", ""]
    assert G.describe()["words"] == VOCAB[1:] and G.describe()["max_tokens"] == 3
    # classifier-free guidance against the all-padding null embedding runs end to end
    x = G.sample(G.sample_latent(2, seed=0), steps=3, prompt="small cat", guidance=3.0)
    assert x.shape == (2, 3, 8, 8) and torch.isfinite(x).all()


def test_unknown_and_too_many_words_are_one_line(word_folder):
    G = _load(word_folder)
    with pytest.raises(ConfigError, match=r"unknown word 'fish' in prompt 'red fish' \(known words: cat, dog, big, small, red\)") as e:
        G.cond("red fish")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown word 'fish'"):
        G.prompt_words("fish")
    with pytest.raises(ConfigError, match="has 4 words; this model takes at most 3") as e:
        G.cond("big red cat dog")
    assert "\n" not in str(e.value)


def test_named_embeddings_take_precedence_and_have_no_words(tmp_path):
    from safetensors.torch import load_file

    root = _words(write_folder(tmp_path / "m", "cond"))  # prompt_embeds "", "cat", "dog" and a word table
    G = _load(root)
    named = load_file(str(root / "prompt_embeds.safetensors"))
    assert torch.equal(G.cond("cat"), named["cat"]) and torch.equal(G.cond(""), named[""])
    assert G.prompt_words("cat") is None and G.prompt_words("") is None
    assert G.prompt_words("red cat") == ["red", "cat", ""]
    assert G.cond("red cat").shape == (3, 8)


def test_models_without_words_say_none(tmp_path):
    G = _load(write_folder(tmp_path / "m", "cond"))
    assert G.words is None and G.prompt_words("cat") is None
    with pytest.raises(ConfigError, match="no prompt embedding named 'red cat'"):
        G.cond("red cat")


def _forged_header(path: Path, shape: list[int]) -> None:
    header = json.dumps({"token_embeds": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * shape[0] * shape[1]]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)


HOSTILE = {
    "first word not padding": (lambda r: _words(r, ["cat", "", "dog"]), r"first vocabulary word must be the padding word"),
    "duplicate word": (lambda r: _words(r, ["", "cat", "cat"]), r"the word 'cat' appears twice"),
    "word with a space": (lambda r: _words(r, ["", "red cat"]), r"vocabulary entry 'red cat' is not a word"),
    "long word": (lambda r: _words(r, ["", "x" * 65]), r"is not a word"),
    "non-string word": (lambda r: _words(r, ["", 7]), r"vocabulary entry 7 is not a word"),
    "vocabulary not a list": (lambda r: (r / "tokens.json").write_text('{"vocabulary": "cat", "max_tokens": 3}'), r"field vocabulary must be a list"),
    "too many words": (lambda r: _words(r, [""] + [f"w{i}" for i in range(10_000)], table=torch.zeros(10_001, 8)), r"list of 2 to 10000 words"),
    "max_tokens zero": (lambda r: _words(r, max_tokens=0), r"field max_tokens must be an integer from 1 to 512"),
    "max_tokens huge": (lambda r: _words(r, max_tokens=513), r"field max_tokens must be an integer from 1 to 512"),
    "max_tokens bool": (lambda r: _words(r, max_tokens=True), r"field max_tokens"),
    "tokens.json not JSON": (lambda r: (r / "tokens.json").write_text("{nope"), r"not readable JSON"),
    "tokens.json huge": (lambda r: (r / "tokens.json").write_text(" " * (2 * 1024 * 1024 + 1)), r"beyond the 2097152 bytes"),
    "rows do not match": (lambda r: _words(r, table=torch.zeros(len(VOCAB) + 1, 8)), r"token_embeds has shape \[7, 8\]; expected \[6, width\]"),
    "width does not fit the unet": (lambda r: _words(r, width=4), r"a word table of width 4 does not fit"),
    "NaN": (lambda r: _words(r, table=torch.full((len(VOCAB), 8), float("nan"))), r"NaN or infinite"),
    "huge value": (lambda r: _words(r, table=torch.full((len(VOCAB), 8), 1e7)), r"beyond 100000"),
    "integer table": (lambda r: _words(r, table=torch.zeros(len(VOCAB), 8, dtype=torch.int32)), r"is I32, not floating point"),
    "forged header": (lambda r: (_words(r), _forged_header(r / "token_embeds.safetensors", [1 << 20, 1 << 10])), r"not a valid|not a readable"),
    "missing embeddings": (lambda r: (_words(r), (r / "token_embeds.safetensors").unlink()), r"found without token_embeds.safetensors"),
    "missing tokens.json": (lambda r: (_words(r), (r / "tokens.json").unlink()), r"found without tokens.json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_word_tables_are_refused_with_one_line(tmp_path, word_folder, case):
    import shutil

    root = tmp_path / "m"
    shutil.copytree(word_folder, root)
    make, pattern = HOSTILE[case]
    make(root)
    with pytest.raises(CheckpointError, match=pattern) as e:
        _load(root)
    assert "\n" not in str(e.value)


def _synthetic_digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bars of different thickness and lean on a -1 background: enough ink for the digit measures."""
    x = torch.full((n, 1, 32, 32), -1.0)
    for i in range(n):
        width, lean = 1 + i % 3, (i % 3) - 1
        for row in range(6, 26):
            col = 15 + (lean * (16 - row)) // 4
            x[i, 0, row, col:col + width] = 1.0
    return x, torch.arange(n) % 10


def test_mnist_prompts_words_and_dropout():
    from invertkit.diffusion.train_mnist import VOCABULARY, digit_words, drop_words

    x, y = _synthetic_digits(9)
    ids, thresholds = digit_words(x, y)
    assert thresholds[0] <= thresholds[1]
    words = [[VOCABULARY[i] for i in row] for row in ids.tolist()]
    assert words[3][0] == "three" and all(w[1] in ("thin", "medium", "thick") and w[2] in ("left", "upright", "right") for w in words)
    assert words[0][1] == "thin" and words[2][1] == "thick"  # 1-pixel bars vs 3-pixel bars
    assert words[0][2] == "left" and words[2][2] == "right"
    many = ids[:1].expand(4000, 3)
    dropped = drop_words(many, torch.Generator().manual_seed(0))
    null = (dropped == 0).all(1)
    assert 0.12 < float(null.float().mean()) < 0.18
    kept = dropped[~null]
    assert (kept[:, 0] == many[0, 0]).all()  # the digit word always stays first
    # dropped words leave padding at the end only, order kept: [d, t, s], [d, s, 0], [d, t, 0], [d, 0, 0]
    rows = {tuple(r) for r in kept.tolist()}
    d, t, s = many[0].tolist()
    assert rows == {(d, t, s), (d, s, 0), (d, t, 0), (d, 0, 0)}


def test_tiny_mnist_training_writes_a_loadable_resumable_folder(tmp_path, monkeypatch):
    import invertkit.diffusion.train_mnist as tm
    from invertkit.diffusion.generator import load_diffusers

    x, y = _synthetic_digits(6)
    a = tm.train(x, y, tmp_path / "a", steps=2, batch=4, width=8, checkpoint_every=1, log_every=1)
    G = load_diffusers(str(a))
    assert G.cond("three thick right").shape == (3, 32)
    assert G.prompt_words("three") == ["three", "", ""]
    info = json.loads((a / "training.json").read_text())
    assert info["steps"] == 2 and info["vocabulary"] == tm.VOCABULARY and len(info["thickness_thresholds_px"]) == 2
    # an interrupted run resumes from its checkpoint to the same weights
    real = tm.ema_update

    def stop_at_2(pairs, step, **kw):
        if step == 2:
            raise KeyboardInterrupt
        real(pairs, step, **kw)

    monkeypatch.setattr(tm, "ema_update", stop_at_2)
    with pytest.raises(KeyboardInterrupt):
        tm.train(x, y, tmp_path / "b", steps=2, batch=4, width=8, checkpoint_every=1, log_every=1)
    monkeypatch.setattr(tm, "ema_update", real)
    b = tm.train(x, y, tmp_path / "b", steps=2, batch=4, width=8, checkpoint_every=1, log_every=1)
    from safetensors.torch import load_file

    wa = load_file(str(a / "unet" / "diffusion_pytorch_model.safetensors"))
    wb = load_file(str(b / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert torch.equal(load_file(str(a / "token_embeds.safetensors"))["token_embeds"],
                       load_file(str(b / "token_embeds.safetensors"))["token_embeds"])
    # a resume with another total continues the schedule towards it, and says so
    tm.train(x, y, tmp_path / "b", steps=3, batch=4, width=8, checkpoint_every=1, log_every=1)
    info = json.loads((b / "training.json").read_text())
    assert info["steps"] == 3 and info["schedule_changes"] == [[2, 2, 3]]
    with pytest.raises(SystemExit, match="made for batch=4 width=8"):
        tm.train(x, y, tmp_path / "b", steps=3, batch=2, width=8)


def test_ship_model_keeps_the_word_table(tmp_path):
    from invertkit.diffusion.train import ship_model

    src = _words(write_folder(tmp_path / "src", "cond"))
    (src / "model_index.json").write_text("{}")
    (src / "training.json").write_text("{}")
    dst = ship_model(src, tmp_path / "dst", "float32")
    G = _load(dst)
    assert G.prompt_words("red cat") == ["red", "cat", ""]
    assert (dst / "prompt_embeds.safetensors").is_file()
    (src / "prompt_embeds.safetensors").unlink()
    ship_model(src, dst)  # float16 weights, and a prompt file the source no longer has is removed
    assert not (dst / "prompt_embeds.safetensors").exists()
    assert _load(dst).cond("dog").shape == (3, 8)


def test_shipped_mnist32_zoo_entry():
    import invertkit
    from invertkit.generators.zoo import ZOO

    if ZOO.get("diffusion-mnist32").locate() is None:
        pytest.skip("the shipped diffusion-mnist32 model is not in this checkout (make mnist-diffusion-model)")
    G = invertkit.load_generator("diffusion-mnist32")
    assert G.resolution == 32 and G.channels == 1
    assert G.prompt_words("three thick right") == ["three", "thick", "right"]
    assert G.prompt_words("seven") == ["seven", "", ""]
    assert G.cond("").shape == (3, 32)
    x = G.sample(G.sample_latent(1, seed=0), steps=2, prompt="three", guidance=3.0)
    assert x.shape == (1, 1, 32, 32) and torch.isfinite(x).all()
