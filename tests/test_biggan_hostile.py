"""Hostile and damaged BigGAN checkpoints: each is refused with one line naming the file, nothing
executed, nothing allocated from what the file declares (configs are checked on the meta device)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from invertkit.cli.main import main
from invertkit.errors import CheckpointError
from invertkit.generators.biggan import claims, read_biggan
from invertkit.generators.loading import load_generator

from .biggan_factories import TINY, write_folder

ESC = "\x1b[31m"


class Touch:
    """Reduces to ``os.system("touch MARKER")``: an armed pickle payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    """One valid tiny BigGAN folder, copied by each case."""
    return write_folder(tmp_path_factory.mktemp("biggan_valid") / "m")


@pytest.fixture(scope="module")
def state(valid) -> dict[str, torch.Tensor]:
    return torch.load(valid / "pytorch_model.bin", weights_only=True)


@pytest.fixture
def folder_with(tmp_path, valid):
    def make(payload: Any = None, config: Any = None, raw_config: str | None = None, name: str = "m") -> Path:
        """A copy of the valid folder holding ``payload`` (torch.save'd) and ``config`` instead."""
        folder = tmp_path / name
        shutil.copytree(valid, folder)
        if payload is not None:
            torch.save(payload, folder / "pytorch_model.bin")
        text = json.dumps(config) if config is not None else raw_config
        if text is not None:
            (folder / "config.json").write_text(text, encoding="utf-8")
        return folder

    return make


def refuse(path: Path, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """``invertkit info PATH`` exits 2 with one line naming the file and ``words``; load_generator raises CheckpointError."""
    t = time.process_time()
    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert path.name in lines[0] and "\x1b" not in err and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    with pytest.raises(CheckpointError):
        load_generator(str(path))
    assert time.process_time() - t < 10
    return lines[0]


def test_valid_folder_is_claimed_and_read(tmp_path):
    folder = write_folder(tmp_path / "ok")
    assert claims(folder) and claims(folder / "pytorch_model.bin") and not claims(tmp_path)
    cfg, st, plain = read_biggan(folder)
    assert cfg.channel_width == 8 and not plain and all(t.dtype == torch.float32 for t in st.values())


def test_pickle_payload_is_refused_and_never_runs(tmp_path, state, folder_with, capsys):
    marker = tmp_path / "pwned"
    folder = folder_with({**state, "extra": Touch(marker)})
    line = refuse(folder, capsys, "other than tensors", "could execute code")
    assert "weights_only=False" not in line and not marker.exists()


def test_truncated_weights(folder_with, capsys):
    folder = folder_with()
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    refuse(folder, capsys, "truncated")


def _wrong_shape(state):
    return {**state, "generator.gen_z.bias": torch.zeros(7)}


def _renamed(state):
    return {(k.replace("bn_0", "batchnorm0") if k.startswith("generator.layers.0.") else k): v for k, v in state.items()}


def _escaped_key(state):
    return {**state, f"evil{ESC}key": torch.zeros(1)}


def _nan(state):
    return {k: (v.clone().fill_(float("nan")) if k == "generator.conv_to_rgb.bias" else v) for k, v in state.items()}


def _ints(state):
    return {**state, "embeddings.weight": torch.zeros_like(state["embeddings.weight"], dtype=torch.int32)}


def _zero_strides(state):  # a [16, 10] view of one stored float: 160 values claimed from 4 bytes
    return {**state, "embeddings.weight": torch.zeros(1).expand(16, 10)}


def _legacy(state):  # torch < 1.0 spectral norm: weight_orig, weight_u and weight, no weight_v
    out = dict(state)
    out["generator.gen_z.weight"] = out.pop("generator.gen_z.weight_v")[:1]
    return out


@pytest.mark.parametrize(("damage", "words"), [
    (_wrong_shape, ("wrong shape", "generator.gen_z.bias")),
    (_renamed, ("missing", "unexpected")),
    (_escaped_key, ("unexpected",)),
    (_nan, ("NaN", "generator.conv_to_rgb.bias")),
    (_ints, ("not floating point",)),
    (_zero_strides, ("overlapping strides",)),
    (_legacy, ("pre-1.0",)),
    (lambda state: [torch.zeros(3)], ("expected a state dict",)),
])
def test_damaged_weights(state, folder_with, capsys, damage, words):
    refuse(folder_with(damage(state)), capsys, *words)


@pytest.mark.parametrize(("change", "words"), [
    ({"channel_width": "8"}, ("channel_width", "integer")),
    ({"z_dim": -5}, ("z_dim", "between")),
    ({"channel_width": 10**9}, ("channel_width", "between")),
    ({"num_classes": 2**40}, ("num_classes",)),
    ({"n_stats": 0}, ("n_stats",)),
    ({"eps": float("inf")}, ("eps",)),
    ({"layers": [[True, 16, 8]] * 100}, ("layers",)),
    ({"layers": "16"}, ("layers",)),
    ({"extra_code": "import os"}, ("unknown BigGAN config keys",)),
    # self-attention at 512 x 512: a 262144 x 65536 matrix per image
    ({"output_dim": 1024, "layers": [[True, 16, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1]] + [[True, 1, 1]] * 4,
      "attention_layer_position": 7}, ("self-attention over a 512 x 512",)),
    # in range, but 4.3 billion embedding weights: refused before anything is built
    ({"z_dim": 4096, "class_embed_dim": 4096, "num_classes": 1 << 20}, ("parameters", "INVERTKIT_MAX_PARAMETERS")),
])
def test_absurd_config_numbers(folder_with, capsys, change, words):
    refuse(folder_with(config={**TINY, **change}), capsys, "config.json", *words)


def test_large_declared_model_with_a_small_file_allocates_nothing(folder_with, capsys):
    """3.6 billion declared parameters (below the limit) against a 200 kB file: the shape check refuses
    it from the meta-device layout, in well under the time (and memory) a build would take."""
    big = {**TINY, "output_dim": 512, "channel_width": 1024,
           "layers": [[True, 16, 16], [True, 16, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1], [False, 1, 1],
                      [True, 1, 1], [True, 1, 1]]}
    refuse(folder_with(config=big), capsys, "weights do not fit", "wrong shape")


@pytest.mark.parametrize(("raw", "words"), [
    ("{not json", ("not valid JSON",)),
    ("[1, 2]", ("expected a JSON object",)),
    (" " * (1 << 20) + "{}", ("too large",)),
    (json.dumps({**TINY, "class_embed_dim": 8}), ("class_embed_dim", "unused")),
])
def test_config_damage(folder_with, capsys, raw, words):
    refuse(folder_with(raw_config=raw), capsys, "config.json", *words)
