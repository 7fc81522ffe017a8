"""Hostile and damaged checkpoints and model files (issue 14): every file here is built at test time.

Each one is refused (or, where it is valid, read) with exactly one line that names the file, exit
status 2 from the CLI, nothing executed (no marker file appears), in bounded time; the cases that
declare more than they hold run in a subprocess whose address space may grow by at most 1.5 GiB
beyond what its imports mapped (the 432M-parameter generator one of them declares is 1.7 GB in
float32), so a reader that allocated what a file declares would fail there instead of swapping
this machine.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from invertkit.cli.main import main
from invertkit.errors import CheckpointError
from invertkit.generators.checkpoints import NATIVE, LoadedCheckpoint, detect_format, nvidia_layout, read_checkpoint, save_native
from invertkit.untrusted import MAX_META_NODES, PARAMETERS_ENV

from .checkpoint_factories import (
    FakePersistent,
    dump_with_fake_modules,
    nvidia_init_kwargs,
    random_nvidia_state,
    tiny_config,
    write_nvidia_pkl,
)

SRC = Path(__file__).resolve().parents[1] / "src"
AS_HEADROOM = 3 << 29  # 1.5 GiB: address space the allocation cases may add to what the imports mapped
ESC = "\x1b[31m"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err


def assert_one_line(err: str, name: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert name in lines[0], err
    assert "\x1b" not in err and "weights_only=False" not in err and "Traceback" not in err, err
    return lines[0]


def refuse(path: Path, capsys: pytest.CaptureFixture[str], *words: str, argv: list[str] | None = None) -> str:
    """``invertkit info PATH`` exits 2 with one line naming the file (and ``words``), within a few CPU seconds."""
    t = time.process_time()  # CPU time: bounded work, however busy the machine
    rc, err = cli(argv or ["info", str(path)], capsys)
    assert rc == 2, err
    line = assert_one_line(err, path.name)
    for w in words:
        assert w in line, line
    assert time.process_time() - t < 10
    return line


def bomb(levels: int = 50) -> list[Any]:
    """A list whose walk visits 4**levels nodes (10**30 for 50 levels, within the depth limit); pickled,
    a few hundred bytes."""
    a: list[Any] = []
    for _ in range(levels):
        a = [a, a, a, a]
    return a


def record(class_name: str, params: dict[str, torch.Tensor], modules: dict[str, Any] | None = None,
           attrs: dict[str, Any] | None = None) -> FakePersistent:
    """An NVIDIA persistent-module record holding ``params`` as they are (no copies: views stay views)."""
    state = {"_parameters": params, "_buffers": {}, "_non_persistent_buffers_set": set(), "_modules": modules or {}}
    state.update(attrs or {})
    return FakePersistent(class_name, state)


def flat_generator(cfg: Any, sd: dict[str, torch.Tensor], init_kwargs: dict[str, Any] | None = None) -> Any:
    """A Generator record with ``sd`` split into synthesis and mapping records."""
    subs = {part: record(part.title(), {k[len(part) + 1:]: v for k, v in sd.items() if k.startswith(part + ".")})
            for part in ("synthesis", "mapping")}
    return record("Generator", {}, subs, {"_init_args": (), "_init_kwargs": init_kwargs or nvidia_init_kwargs(cfg)})


def write_pkl(path: Path, obj_fn: Any) -> Path:
    return dump_with_fake_modules(obj_fn, path)


class Touch:
    """Reduces to ``os.system("touch MARKER")``: an armed pickle payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class HugeArray:
    """Reduces to numpy's array constructor with a declared 10**12-element shape."""

    def __reduce__(self) -> tuple[Any, ...]:
        core = np._core if hasattr(np, "_core") else np.core  # numpy >= 2 / < 2
        return (core.multiarray._reconstruct, (np.ndarray, (1_000_000, 1_000_000), b"b"))


def header_of(path: Path) -> tuple[int, dict[str, Any], bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return n, json.loads(raw[8:8 + n]), raw[8 + n:]


def write_raw_safetensors(path: Path, header: dict[str, Any], data: bytes, *, length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def native_file(tmp: Path, name: str = "tiny.safetensors", **meta: Any) -> Path:
    cfg = tiny_config()
    return save_native(LoadedCheckpoint("x", cfg, random_nvidia_state(cfg), {}), tmp / name, meta=meta or None)


def with_config(src: Path, dst: Path, **changes: Any) -> Path:
    """A copy of the native checkpoint ``src`` whose stored config has ``changes`` (raw JSON values)."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    payload = json.loads(meta["invertkit"])
    payload["config"].update(changes)
    meta["invertkit"] = json.dumps(payload)
    save_file(tensors, str(dst), metadata=meta)
    return dst


# ------------------------------------------------------------------------------------------------
# the corpus of allocation and walk cases, run once in a memory-limited subprocess
# ------------------------------------------------------------------------------------------------


def _alloc_corpus(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """name -> (CLI argv, file name the line must name, a word the line must hold)."""
    cases: dict[str, tuple[list[str], str, str]] = {}
    cfg = tiny_config()
    sd = random_nvidia_state(cfg)

    def add(name: str, path: Path, word: str, argv: list[str] | None = None) -> None:
        cases[name] = (argv or ["info", str(path)], path.name, word)

    # 1. metadata bombs: one list referenced 2**100 ways, in each walk of a network pickle
    add("bomb_training_kwargs", write_nvidia_pkl(tmp / "bomb_training.pkl", cfg, sd, extra={"training_set_kwargs": {"x": bomb()}}),
        str(MAX_META_NODES))
    kw = nvidia_init_kwargs(cfg)
    kw["synthesis_kwargs"]["fp16_channels_last"] = bomb()  # an ignored option: kept as metadata
    add("bomb_init_kwargs", write_nvidia_pkl(tmp / "bomb_init.pkl", cfg, sd, init_kwargs=kw), str(MAX_META_NODES))
    kw = nvidia_init_kwargs(cfg)
    kw["synthesis_kwargs"]["activation"] = bomb()  # quoted in the refusal
    add("bomb_quoted", write_nvidia_pkl(tmp / "bomb_quoted.pkl", cfg, sd, init_kwargs=kw), "activation")

    def module_fanout(fake: Any) -> Any:
        sub = record("Leaf", {})
        for _ in range(30):  # 2**30 module visits if followed naively
            sub = record("Node", {}, {"a": sub, "b": sub})
        g = flat_generator(cfg, sd)
        g.meta["state"]["_modules"]["extra"] = sub
        return {"G_ema": g}

    add("bomb_modules", write_pkl(tmp / "bomb_modules.pkl", module_fanout), str(MAX_META_NODES))

    # 2. zero-stride tensors declaring a 432M-parameter generator (4000 channels) in a few kB
    big = tiny_config(img_resolution=1024, z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=4000)
    zero = {k: torch.zeros(()).expand(shape) for k, shape in nvidia_layout(big).items()}
    add("zero_stride_pkl", write_pkl(tmp / "zero_stride.pkl", lambda fake: {"G_ema": flat_generator(big, zero)}), "strides")
    g_ema = {"style.1.weight": torch.zeros(()).expand(512, 512), "input.input": torch.zeros(()).expand(1, 4000, 4, 4)}
    torch.save({"g_ema": g_ema}, tmp / "zero_stride.pt")
    add("zero_stride_pt", tmp / "zero_stride.pt", "strides")
    add("numpy_huge_shape", write_pkl(tmp / "numpy_shape.pkl", lambda fake: {"G_ema": HugeArray()}), "non-empty shape")

    # 3. a native file whose config declares a 40-billion-parameter generator (its tensors are tiny)
    src = native_file(tmp, "small.safetensors")
    add("native_huge_config", with_config(src, tmp / "native_huge.safetensors", channel_max=65536, channel_base=1 << 30,
                                          img_resolution=4096), "parameters")

    # 4. an encoder file whose config declares huge backbone stages
    from invertkit.encoders.config import EncoderConfig
    from invertkit.encoders.files import METADATA_KEY, save_encoder
    from invertkit.encoders.nets import Encoder

    ecfg = EncoderConfig(arch="psp", generator="tiny", resolution=16, channels=3, space="w+", latent_shape=(4, 8), widths=(4, 8))
    enc_file = save_encoder(Encoder(ecfg), tmp / "enc.safetensors")

    def encoder_with(name: str, **changes: Any) -> Path:
        with safe_open(str(enc_file), framework="pt") as f:
            meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
        payload = json.loads(meta[METADATA_KEY])
        payload["config"].update(changes)
        meta[METADATA_KEY] = json.dumps(payload)
        save_file(tensors, str(tmp / name), metadata=meta)
        return tmp / name

    add("encoder_huge_widths", encoder_with("enc_huge.safetensors", widths=[8192] * 12, blocks=16), "parameters")
    add("encoder_wrong_shapes", encoder_with("enc_wide.safetensors", widths=[64, 128]), "wrong shape")

    # 5. diffusers folders: absurd configs and a weight_map leading out of the component folder
    def folder(name: str, config: dict[str, Any], *, index: dict[str, Any] | None = None) -> Path:
        root = tmp / name
        (root / "unet").mkdir(parents=True)
        (root / "scheduler").mkdir()
        (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDIMScheduler"}))
        (root / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **config}))
        if index is None:
            save_file({"w": torch.zeros(2)}, str(root / "unet" / "diffusion_pytorch_model.safetensors"))
        else:
            (root / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
        return root

    unet = {"sample_size": 8, "in_channels": 3, "out_channels": 3, "layers_per_block": 1, "norm_num_groups": 4,
            "block_out_channels": [8, 8], "down_block_types": ["DownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "UpBlock2D"]}
    for name, change, word in (("huge_channels", {"block_out_channels": [65536] * 4, "down_block_types": ["DownBlock2D"] * 4,
                                                  "up_block_types": ["UpBlock2D"] * 4}, "parameters"),
                               ("string_size", {"sample_size": "big"}, "sample_size"),
                               ("deep_layers", {"layers_per_block": 10**9}, "layers_per_block"),
                               ("nan_value", {"norm_eps": float("nan")}, "norm_eps")):
        root = folder(f"diffusers_{name}", {**unet, **change})
        cases[f"diffusers_{name}"] = (["info", f"diffusers:{root}"], "config.json", word)
    outside = tmp / "outside.safetensors"
    save_file({"w": torch.zeros(2)}, str(outside))
    root = folder("diffusers_escape", unet, index={"weight_map": {"w": "../../outside.safetensors"}})
    cases["diffusers_weight_map_escape"] = (["info", f"diffusers:{root}"], "index.json", "outside the component folder")
    root = folder("diffusers_absolute", unet, index={"weight_map": {"w": str(outside)}})
    cases["diffusers_weight_map_absolute"] = (["info", f"diffusers:{root}"], "index.json", "outside the component folder")
    root = folder("diffusers_link", unet, index={"weight_map": {"w": "link.safetensors"}})
    (root / "unet" / "link.safetensors").symlink_to(outside)
    cases["diffusers_weight_map_symlink"] = (["info", f"diffusers:{root}"], "index.json", "outside the component folder")
    return cases


_RUNNER = """
import contextlib, io, json, resource, sys, time
import torch
torch.set_num_threads(1)
import diffusers  # imported once here, so that each case's time is its own
from invertkit.cli.main import main
# what the imports mapped (large with CUDA builds of torch) plus {headroom} bytes for the cases
mapped = int([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmSize:")][0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + {headroom}, mapped + {headroom}))
out = {{}}
for name, argv in json.loads(sys.stdin.read()).items():
    err = io.StringIO()
    t = time.process_time()  # CPU time: a bound on the work done, not on how busy the machine is
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except BaseException as exc:  # a crash is a finding, reported as text
            rc = type(exc).__name__ + ": " + str(exc)[:300]
    out[name] = {{"rc": rc, "err": err.getvalue(), "seconds": time.process_time() - t}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def alloc_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space limit uses /proc and RLIMIT_AS")
    tmp = tmp_path_factory.mktemp("alloc")
    cases = _alloc_corpus(tmp)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop(PARAMETERS_ENV, None)
    proc = subprocess.run([sys.executable, "-c", _RUNNER.format(headroom=AS_HEADROOM)], input=json.dumps({k: v[0] for k, v in cases.items()}),
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    print({k: round(v["seconds"], 2) for k, v in results.items()})
    return cases, results


ALLOC_CASES = ["bomb_training_kwargs", "bomb_init_kwargs", "bomb_quoted", "bomb_modules", "zero_stride_pkl", "zero_stride_pt",
               "numpy_huge_shape", "native_huge_config", "encoder_huge_widths", "encoder_wrong_shapes",
               "diffusers_huge_channels", "diffusers_string_size", "diffusers_deep_layers", "diffusers_nan_value",
               "diffusers_weight_map_escape", "diffusers_weight_map_absolute", "diffusers_weight_map_symlink"]


@pytest.mark.parametrize("name", ALLOC_CASES)
def test_declared_size_and_walks_are_bounded(alloc_results: tuple[dict[str, Any], dict[str, Any]], name: str) -> None:
    cases, results = alloc_results
    assert sorted(cases) == sorted(ALLOC_CASES)
    _, file_name, word = cases[name]
    got = results[name]
    assert got["rc"] == 2, got
    line = assert_one_line(got["err"], file_name)
    assert word in line, line
    assert got["seconds"] < 10, got  # CPU seconds; a walk or allocation of what the file declares takes minutes or exhausts memory


# ------------------------------------------------------------------------------------------------
# payloads that would execute code
# ------------------------------------------------------------------------------------------------


def test_pickle_reduce_payload_is_refused_and_never_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    path = write_pkl(tmp_path / "armed.pkl", lambda fake: {"G_ema": Touch(marker)})
    refuse(path, capsys, "not allowed")
    assert not marker.exists()


def test_torch_zip_with_objects_is_refused_without_unsafe_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    torch.save({"g_ema": {"w": torch.zeros(2)}, "args": Touch(marker)}, tmp_path / "armed.pt")
    line = refuse(tmp_path / "armed.pt", capsys, "other than tensors", "could execute code")
    assert "truncated" not in line and "weights_only=False" not in line
    assert not marker.exists()


def test_storage_payload_inside_a_network_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save(Touch(marker), buf)
    payload = buf.getvalue()

    class Storage:
        def __reduce__(self) -> tuple[Any, ...]:
            return (torch.storage._load_from_bytes, (payload,))

    path = write_pkl(tmp_path / "storage.pkl", lambda fake: {"G_ema": Storage()})
    line = refuse(path, capsys, "other than tensors", "could execute code")
    assert "truncated" not in line and "weights_only=False" not in line
    assert not marker.exists()


def test_refused_payload_in_plain_state_dict_reader(tmp_path: Path) -> None:
    from invertkit.store.tensorfiles import read_state_dict

    marker = tmp_path / "pwned"
    torch.save({"w": Touch(marker)}, tmp_path / "weights.pth")
    with pytest.raises(CheckpointError) as info:
        read_state_dict(tmp_path / "weights.pth")
    msg = str(info.value)
    assert "weights.pth" in msg and "could execute code" in msg and "\n" not in msg and "weights_only=False" not in msg
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# safetensors headers that lie
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lie", ["shape_bigger_than_bytes", "offsets_overlap", "offset_beyond_data", "length_beyond_file",
                                 "bad_dtype", "negative_shape"])
def test_lying_safetensors_header_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], lie: str) -> None:
    n, header, data = header_of(native_file(tmp_path))
    names = [k for k in header if k != "__metadata__"]
    a, b = header[names[0]], header[names[1]]
    length = None
    if lie == "shape_bigger_than_bytes":
        a["shape"] = [100000, 100000]
    elif lie == "offsets_overlap":
        b["data_offsets"] = [a["data_offsets"][0], a["data_offsets"][0] + (b["data_offsets"][1] - b["data_offsets"][0])]
    elif lie == "offset_beyond_data":
        size = a["data_offsets"][1] - a["data_offsets"][0]
        a["data_offsets"] = [len(data) + 8, len(data) + 8 + size]
    elif lie == "length_beyond_file":
        length = 1 << 40
    elif lie == "bad_dtype":
        a["dtype"] = "OBJECT"
    else:
        a["shape"] = [-1, 4]
    path = write_raw_safetensors(tmp_path / f"{lie}.safetensors", header, data, length=length)
    if lie == "length_beyond_file":  # not recognisable as safetensors at all: refused as unknown content
        refuse(path, capsys)
        with pytest.raises(CheckpointError, match="beyond the file"):
            from invertkit.untrusted import safetensors_header

            safetensors_header(path)
    else:
        refuse(path, capsys, "not a valid safetensors file")


def test_weight_delta_with_lying_header_is_refused(tmp_path: Path) -> None:
    from invertkit.generators.tuning import METADATA_KEY, read_delta

    save_file({"w": torch.zeros(4)}, str(tmp_path / "d.safetensors"), metadata={METADATA_KEY: json.dumps({"format": "x"})})
    n, header, data = header_of(tmp_path / "d.safetensors")
    header["w"]["shape"] = [10**6, 10**6]
    path = write_raw_safetensors(tmp_path / "lying_delta.safetensors", header, data)
    with pytest.raises(CheckpointError, match=r"lying_delta\.safetensors: not a readable weight delta .*declares shape"):
        read_delta(path)


@pytest.mark.parametrize("mod", [640, 896, 1152, 1408])
def test_safetensors_whose_length_looks_like_a_pickle_opcode(tmp_path: Path, capsys: pytest.CaptureFixture[str], mod: int) -> None:
    pad = 0
    for _ in range(4):  # the header grows with the padding (and is aligned to 8 bytes): converge on the length
        path = native_file(tmp_path, f"n{mod}.safetensors", pad="x" * pad)
        n = header_of(path)[0]
        if n % 65536 == mod:
            break
        pad += (mod - n) % 65536
    assert n % 65536 == mod and path.read_bytes()[:1] == b"\x80"
    assert detect_format(path) == NATIVE
    assert read_checkpoint(path).config == tiny_config()
    rc, err = cli(["info", str(path)], capsys)
    assert rc == 0, err


# ------------------------------------------------------------------------------------------------
# native configs with fields of the wrong type
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("channels", {"4": "x", "8": 32, "16": 16}), ("channels", {"4": 32}), ("channels", [1, 2]),
    ("mapping_layers", "eight"), ("mapping_layers", 2.5), ("mapping_layers", True), ("conv_clamp", "NaN"),
    ("conv_clamp", float("inf")), ("w_dim", -3), ("z_dim", 10**30), ("img_resolution", "16"), ("resample_filter", [[1]]),
    ("resample_filter", [1, -1]), ("architecture", ["skip"]), ("architecture", ESC + "evil\nline"), ("use_noise", "yes"),
    ("mapping_lr_multiplier", None), ("extra", []),
])
def test_native_config_field_of_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any) -> None:
    src = native_file(tmp_path)
    path = with_config(src, tmp_path / "edited.safetensors", **{field: value})
    line = refuse(path, capsys)
    assert field in line or "StyleGAN2" in line, line
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert info.value.__cause__ is not None or info.value.__context__ is not None  # --debug shows the cause


def test_nvidia_config_field_of_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config()
    for i, (part, key, value) in enumerate([("synthesis_kwargs", "conv_clamp", "NaN"), ("mapping_kwargs", "num_layers", "eight"),
                                            ("synthesis_kwargs", "channel_max", 10**400), ("mapping_kwargs", "lr_multiplier", [1]),
                                            ("synthesis_kwargs", "resample_filter", "1331"), ("synthesis_kwargs", "use_noise", "no")]):
        kw = nvidia_init_kwargs(cfg)
        kw[part][key] = value
        path = write_nvidia_pkl(tmp_path / f"typed{i}.pkl", cfg, random_nvidia_state(cfg), init_kwargs=kw)
        line = refuse(path, capsys)
        assert key.split("_")[0] in line, line


def test_parameter_limit_is_documented_and_overridable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = native_file(tmp_path)
    monkeypatch.setenv(PARAMETERS_ENV, "1000")
    refuse(path, capsys, "limit of 1,000", PARAMETERS_ENV)
    monkeypatch.setenv(PARAMETERS_ENV, "10000000")
    assert cli(["info", str(path)], capsys)[0] == 0
    monkeypatch.setenv(PARAMETERS_ENV, "many")
    with pytest.raises(CheckpointError, match=PARAMETERS_ENV):
        read_checkpoint(path)


def test_control_characters_from_a_file_never_reach_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config()
    kw = nvidia_init_kwargs(cfg)
    kw["synthesis_kwargs"][ESC + "evil\nsecond line"] = 1
    path = write_nvidia_pkl(tmp_path / "escapes.pkl", cfg, random_nvidia_state(cfg), init_kwargs=kw)
    refuse(path, capsys, "unsupported synthesis")


# ------------------------------------------------------------------------------------------------
# encoder files, diffusion states, training states
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("widths", ["x", 8]), ("widths", [4, 8.5]), ("blocks", "two"), ("blocks", 10**9),
                                              ("resolution", None), ("latent_shape", [4, -8]), ("channels", True)])
def test_encoder_config_of_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any) -> None:
    from invertkit.encoders.config import EncoderConfig
    from invertkit.encoders.files import METADATA_KEY, load_encoder, save_encoder
    from invertkit.encoders.nets import Encoder

    cfg = EncoderConfig(arch="psp", generator="tiny", resolution=16, channels=3, space="w+", latent_shape=(4, 8), widths=(4, 8))
    src = save_encoder(Encoder(cfg), tmp_path / "enc.safetensors")
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    payload = json.loads(meta[METADATA_KEY])
    payload["config"][field] = value
    meta[METADATA_KEY] = json.dumps(payload)
    path = tmp_path / "edited_enc.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as info:
        load_encoder(path)
    msg = str(info.value)
    assert "edited_enc.safetensors" in msg and field in msg and "\n" not in msg
    refuse(path, capsys, field)


@pytest.mark.parametrize(("field", "value"), [("options", {"steps": "ten"}), ("options", {"steps": 10**12}),
                                              ("options", {"guidance": "NaN"}), ("options", {"dtype": "float8"}),
                                              ("options", [1]), ("lists", "x_T"), ("lists", ["nope"]), ("method", ["ddim"]),
                                              ("format_version", True)])
def test_malformed_diffusion_state_fields(tmp_path: Path, field: str, value: Any) -> None:
    from invertkit.generators.loading import load_generator
    from invertkit.io.safetensors_file import write_safetensors
    from invertkit.results.diffusion import HEADER, load_state

    G = load_generator("analytic:diffusion")
    meta = {"format_version": 1, "method": "ddim", "options": {}, "generator": G.name, "fingerprint": G.fingerprint(), "lists": []}
    meta[field] = value
    shape = (1, *G.latent_shape("noise")) if hasattr(G, "latent_shape") else (1, 3, 8, 8)
    path = write_safetensors(tmp_path / "s_state.safetensors", {"x_T": torch.zeros(shape)}, {HEADER: json.dumps(meta)}, "state")
    with pytest.raises(CheckpointError) as info:
        load_state(path, G)
    msg = str(info.value)
    assert "s_state.safetensors" in msg and field in msg and "\n" not in msg, msg


def test_truncated_training_state_is_one_line(tmp_path: Path, tiny_mlp: Any) -> None:
    from invertkit.encoders.train import TrainOptions, train_encoder

    opts = TrainOptions(steps=2, batch=2, checkpoint_every=2, eval_images=2, perceptual_weight=0.0)
    train_encoder(tiny_mlp, tmp_path / "run", opts)
    state = tmp_path / "run" / "train_state.pt"
    raw = state.read_bytes()
    state.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError) as info:
        train_encoder(tiny_mlp, tmp_path / "run", opts)
    msg = str(info.value)
    assert "train_state.pt" in msg and "\n" not in msg and "weights_only=False" not in msg
    torch.save({"step": torch.tensor(1), "seconds": torch.tensor(0.5), "encoder": {"nope": torch.zeros(1)}}, state)
    with pytest.raises(CheckpointError, match="field encoder"):
        train_encoder(tiny_mlp, tmp_path / "run", opts)


def test_invert_refuses_a_hostile_generator_before_writing_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    cfg = tiny_config()
    path = write_nvidia_pkl(tmp_path / "bomb.pkl", cfg, random_nvidia_state(cfg), extra={"training_set_kwargs": {"x": bomb()}})
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    refuse(path, capsys, str(MAX_META_NODES),
           argv=["invert", str(tmp_path / "x.png"), "-g", str(path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
