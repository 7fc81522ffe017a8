"""NVIDIA StyleGAN2-ADA network pickles: read safely, config and weights right, unsafe files refused.

The pickles here are built by ``checkpoint_factories.write_nvidia_pkl`` without NVIDIA's code. Its
structure was compared with real pickles written by stylegan2-ada-pytorch (commit
d72cc7d041b42ec8e806021a205ed9349f87c6a4) and by the stylegan3 repository's
``networks_stylegan2`` / ``networks_stylegan3`` (commit c233a919a6faee6e36a316ddd4eddababad1adf9):
the reader returned exactly ``G_ema.state_dict()`` (keys, order, values) and the constructor
config for skip / orig / resnet / conditional generators, a full snapshot with D and AugmentPipe
loaded, and the StyleGAN3 generator was refused (by these StyleGAN2 readers; ``read_stylegan3_pkl`` reads it). ``test_factory_matches_real_structure`` pins the
byte-level facts the factory shares with those files (protocol, globals, top-level keys).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from invertkit.errors import CheckpointError
from invertkit.generators.checkpoints import detect_format, read_checkpoint, read_nvidia_pkl

from .checkpoint_factories import (
    REAL_NVIDIA_GLOBALS,
    SG3_MODULE_SRC,
    FakePersistent,
    dump_with_fake_modules,
    fake_nvidia_modules,
    generator_record,
    module_state,
    nvidia_init_kwargs,
    random_nvidia_state,
    referenced_globals,
    tiny_config,
    write_nvidia_pkl,
)


class Evil:
    """Reduces to an arbitrary callable: what a malicious pickle does."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _assert_same(loaded_sd, sd):
    assert list(loaded_sd) == list(sd)
    for k, v in sd.items():
        assert loaded_sd[k].dtype == torch.float32
        assert torch.equal(loaded_sd[k], v), k


def test_factory_matches_real_structure(tmp_path):
    """Factory pickles reference exactly the globals real NVIDIA pickles do, with the same framing."""
    cfg = tiny_config()
    path = write_nvidia_pkl(tmp_path / "net.pkl", cfg, random_nvidia_state(cfg))
    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x04"  # protocol 4, as pickle.dump writes on Python >= 3.8
    assert referenced_globals(path) == REAL_NVIDIA_GLOBALS
    from invertkit.generators.checkpoints.nvidia_pkl import PersistentRecord, safe_unpickle

    data = safe_unpickle(path)
    assert list(data) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    rec = data["G_ema"]
    assert isinstance(rec, PersistentRecord)
    assert set(rec.meta) == {"type", "version", "module_src", "class_name", "state"}
    assert rec.meta["version"] == 6 and rec.class_name == "Generator"
    assert isinstance(rec.state["_modules"]["synthesis"], PersistentRecord)


def test_reads_config_and_weights(tmp_path):
    cfg = tiny_config()
    sd = random_nvidia_state(cfg, seed=1)
    path = write_nvidia_pkl(tmp_path / "net.pkl", cfg, sd, g_sd=random_nvidia_state(cfg, seed=2))
    assert detect_format(path) == "nvidia-pkl"
    loaded = read_checkpoint(path)
    assert loaded.format == "nvidia-pkl"
    assert loaded.config == cfg
    _assert_same(loaded.state_dict, sd)  # G_ema, not G
    assert loaded.meta["network"] == "G_ema"
    assert loaded.meta["w_avg"].startswith("from checkpoint")
    assert loaded.meta["init_kwargs"]["mapping_kwargs"]["num_layers"] == 2


@pytest.mark.parametrize("protocol", [2, 3])
def test_older_pickle_protocols(tmp_path, protocol):
    """Python 3.7 wrote protocol 3 (sets become builtins.set calls); protocol 2 names __builtin__."""
    cfg = tiny_config(architecture="orig")
    sd = random_nvidia_state(cfg)
    path = write_nvidia_pkl(tmp_path / "net.pkl", cfg, sd, protocol=protocol)
    loaded = read_nvidia_pkl(path)
    assert loaded.config == cfg
    _assert_same(loaded.state_dict, sd)


def test_conditional_and_options(tmp_path):
    cfg = tiny_config(c_dim=3, embed_features=8, mapping_layer_features=24, conv_clamp=256.0, num_fp16_res=2,
                      architecture="resnet", resample_filter=(1, 2, 1), mapping_lr_multiplier=0.1)
    sd = random_nvidia_state(cfg)
    loaded = read_checkpoint(write_nvidia_pkl(tmp_path / "cond.pkl", cfg, sd))
    assert loaded.config == cfg
    _assert_same(loaded.state_dict, sd)
    assert "mapping.embed.weight" in loaded.state_dict


def test_stylegan3_repo_flat_kwargs(tmp_path):
    """stylegan3's networks_stylegan2.Generator keeps synthesis options flat beside mapping_kwargs."""
    cfg = tiny_config(conv_clamp=256.0)
    kw = nvidia_init_kwargs(cfg)
    kw.update(kw.pop("synthesis_kwargs"))
    kw["fused_modconv_default"] = "inference_only"
    loaded = read_checkpoint(write_nvidia_pkl(tmp_path / "sg3repo.pkl", cfg, random_nvidia_state(cfg), init_kwargs=kw))
    assert loaded.config == cfg
    assert loaded.meta["ignored_kwargs"] == {"synthesis.fused_modconv_default": "inference_only"}


def test_falls_back_to_G(tmp_path):
    cfg = tiny_config()
    sd = random_nvidia_state(cfg, seed=5)
    loaded = read_checkpoint(write_nvidia_pkl(tmp_path / "g_only.pkl", cfg, random_nvidia_state(cfg), g_sd=sd,
                                              include=("G", "D")))
    assert loaded.meta["network"] == "G" and "G_ema" in loaded.meta["note"]
    _assert_same(loaded.state_dict, sd)


def test_non_persistent_buffers_excluded(tmp_path):
    cfg = tiny_config()
    sd = random_nvidia_state(cfg)
    path = write_nvidia_pkl(tmp_path / "np.pkl", cfg, sd, extra_buffers={"synthesis.b8.conv0": {"scratch": torch.ones(3)}})
    loaded = read_checkpoint(path)
    assert "synthesis.b8.conv0.scratch" not in loaded.state_dict
    _assert_same(loaded.state_dict, sd)


def test_missing_w_avg_is_estimated(tmp_path):
    cfg = tiny_config()
    sd = random_nvidia_state(cfg)
    del sd["mapping.w_avg"]
    loaded = read_checkpoint(write_nvidia_pkl(tmp_path / "noavg.pkl", cfg, sd))
    assert loaded.meta["w_avg"].startswith("estimated")
    _assert_same({k: v for k, v in loaded.state_dict.items() if k != "mapping.w_avg"}, sd)
    # the shared estimate (its definition, the mean mapping output of 10^4 seeded z, is pinned by
    # test_checkpoints_rosinality.py::test_latent_avg_estimated_when_absent) from this file's mapping
    from invertkit.generators.checkpoints.detect import estimate_w_avg

    w_avg = loaded.state_dict["mapping.w_avg"]
    assert w_avg.shape == (cfg.w_dim,) and torch.equal(w_avg, estimate_w_avg(cfg, loaded.state_dict))
    assert not torch.equal(w_avg, estimate_w_avg(cfg, random_nvidia_state(cfg, seed=9)))  # it depends on the weights


def test_no_generator_refused(tmp_path):
    cfg = tiny_config()
    path = write_nvidia_pkl(tmp_path / "d_only.pkl", cfg, random_nvidia_state(cfg), include=("D",))
    with pytest.raises(CheckpointError, match=r"d_only\.pkl.*no generator.*G_ema"):
        read_checkpoint(path)


def test_shapes_must_fit_config(tmp_path):
    cfg = tiny_config()
    kw = nvidia_init_kwargs(cfg)
    kw["synthesis_kwargs"]["channel_max"] = 16  # claims 16 channels, weights have 32
    path = write_nvidia_pkl(tmp_path / "bad.pkl", cfg, random_nvidia_state(cfg), init_kwargs=kw)
    with pytest.raises(CheckpointError, match=r"bad\.pkl: weights do not fit.*wrong shape"):
        read_checkpoint(path)


def test_unsupported_option_refused(tmp_path):
    cfg = tiny_config()
    kw = nvidia_init_kwargs(cfg)
    kw["synthesis_kwargs"]["activation"] = "relu"
    path = write_nvidia_pkl(tmp_path / "relu.pkl", cfg, random_nvidia_state(cfg), init_kwargs=kw)
    with pytest.raises(CheckpointError, match=r"relu\.pkl.*activation 'relu' is not supported"):
        read_checkpoint(path)


def test_stylegan3_refused(tmp_path):
    """The StyleGAN2 readers refuse StyleGAN3 networks and name the reader that takes them
    (``load_generator`` builds them: tests/test_stylegan3_checkpoints.py)."""
    cfg = tiny_config()
    path = write_nvidia_pkl(tmp_path / "sg3.pkl", cfg, random_nvidia_state(cfg), module_src=SG3_MODULE_SRC)
    with pytest.raises(CheckpointError, match=r"sg3\.pkl: G_ema is a StyleGAN3 \(alias-free\) generator.*load_generator"):
        read_checkpoint(path)

    def build(fake):  # structure only: a synthesis network with a SynthesisInput, as networks_stylegan3 has
        inp = FakePersistent("SynthesisInput", module_state({}, {}, {}))
        syn = FakePersistent("SynthesisNetwork", module_state({}, {}, {"input": inp}))
        g = FakePersistent("Generator", module_state({}, {}, {"synthesis": syn}, {"_init_kwargs": {}}))
        return {"G": g, "G_ema": g, "D": None}

    path2 = dump_with_fake_modules(build, tmp_path / "sg3b.pkl")
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        read_checkpoint(path2)


def test_tensorflow_pickle_refused(tmp_path):
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {n: sys.modules.get(n) for n in names}
    mod = types.ModuleType("dnnlib.tflib.network")

    class Network:
        def __getstate__(self):
            return {"version": 4, "name": "G", "static_kwargs": {}, "components": {}, "build_module_src": "x = 1",
                    "build_func_name": "G_main", "variables": []}

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    mod.Network = Network
    sys.modules.update({"dnnlib": types.ModuleType("dnnlib"), "dnnlib.tflib": types.ModuleType("dnnlib.tflib"),
                        "dnnlib.tflib.network": mod})
    try:
        path = tmp_path / "stylegan2-ffhq-config-f.pkl"
        with open(path, "wb") as f:
            pickle.dump((Network(), Network(), Network()), f, protocol=3)
    finally:
        for n, m in saved.items():
            sys.modules.pop(n, None) if m is None else sys.modules.__setitem__(n, m)
    with pytest.raises(CheckpointError, match=r"stylegan2-ffhq-config-f\.pkl is a legacy TensorFlow.*legacy\.py"):
        read_checkpoint(path)


# ------------------------------------------------------------------------------------------------
# security: nothing in the file runs
# ------------------------------------------------------------------------------------------------


def test_module_src_is_never_executed(tmp_path):
    """A pickle whose module_src writes a marker: our reader loads the data and runs nothing.

    The same bytes under a naive load (a persistence hook that executes module_src, as NVIDIA's
    ``_reconstruct_persistent_obj`` does) do create the marker: the pickle is armed.
    """
    marker = tmp_path / "pwned.txt"
    src = f"open({str(marker)!r}, 'w').write('module_src ran')\n"
    cfg = tiny_config()
    sd = random_nvidia_state(cfg)
    path = write_nvidia_pkl(tmp_path / "armed.pkl", cfg, sd, module_src=src)

    loaded = read_checkpoint(path)
    _assert_same(loaded.state_dict, sd)
    assert not marker.exists()

    # a malformed variant (no _init_kwargs) is refused, still without running anything
    bad = dump_with_fake_modules(lambda fake: {"G_ema": FakePersistent("Generator", module_state({}, {}, {}), src)},
                                 tmp_path / "armed_bad.pkl")
    with pytest.raises(CheckpointError, match=r"armed_bad\.pkl"):
        read_checkpoint(bad)
    assert not marker.exists()

    def naive_reconstruct(meta):
        exec(meta["module_src"], {})  # what NVIDIA's persistence module does
        return meta

    with fake_nvidia_modules(reconstruct=naive_reconstruct):
        with open(path, "rb") as f:
            pickle.load(f)  # test-only proof that the file is armed
    assert marker.exists()


def _evil_payloads(marker: Path):
    py = sys.executable
    touch = [py, "-c", f"open({str(marker)!r}, 'w').write('x')"]
    return {
        "os.system": Evil(os.system, (subprocess.list2cmdline(touch),)),
        "builtins.exec": Evil(exec, (f"open({str(marker)!r}, 'w').write('x')",)),
        "builtins.eval": Evil(eval, (f"open({str(marker)!r}, 'w').write('x')",)),
        "subprocess.Popen": Evil(subprocess.Popen, (touch,)),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "builtins.eval", "subprocess.Popen"])
@pytest.mark.parametrize("protocol", [2, 4])  # 2: GLOBAL opcode, 4: STACK_GLOBAL
def test_dangerous_global_at_top_level(tmp_path, name, protocol):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _evil_payloads(marker)[name]}, f, protocol=protocol)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pkl: pickle references \S+, which is not allowed"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "subprocess.Popen"])
@pytest.mark.parametrize("where", ["init_kwargs", "buffer", "discriminator"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_dangerous_global_nested_in_state(tmp_path, name, where, protocol):
    marker = tmp_path / "pwned.txt"
    evil = _evil_payloads(marker)[name]
    cfg = tiny_config()
    sd = random_nvidia_state(cfg)

    def build(fake):
        kw = nvidia_init_kwargs(cfg, fake.EasyDict)
        if where == "init_kwargs":
            kw["mapping_kwargs"]["payload"] = evil
        g = generator_record(cfg, sd, easydict=fake.EasyDict, init_kwargs=kw)
        if where == "buffer":
            g.meta["state"]["_modules"]["synthesis"].meta["state"]["_buffers"]["x"] = evil
        data = {"G": g, "D": None, "G_ema": g}
        if where == "discriminator":
            data["D"] = FakePersistent("Discriminator", module_state({}, {}, {}, {"payload": evil}))
        return data

    path = dump_with_fake_modules(build, tmp_path / "nested.pkl", protocol=protocol)
    with pytest.raises(CheckpointError, match=r"refusing to load .*nested\.pkl: pickle references"):
        read_checkpoint(path)
    assert not marker.exists()


def test_python2_style_builtin_getattr_refused(tmp_path):
    # protocol 2 header + GLOBAL '__builtin__ getattr' called on (object, '__class__')
    raw = b"\x80\x02c__builtin__\ngetattr\nc__builtin__\nobject\nX\t\x00\x00\x00__class__\x86R."
    path = tmp_path / "getattr.pkl"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match=r"getattr\.pkl: pickle references __builtin__\.getattr"):
        read_checkpoint(path)


def test_persistent_ids_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if isinstance(obj, str) and obj == "pid" else None

    path = tmp_path / "pid.pkl"
    with open(path, "wb") as f:
        P(f, protocol=4).dump({"G_ema": "pid"})
    with pytest.raises(CheckpointError, match=r"pid\.pkl: pickle uses persistent IDs"):
        read_checkpoint(path)


def test_storage_blob_is_loaded_weights_only(tmp_path):
    """torch.storage._load_from_bytes payloads go through torch.load(weights_only=True)."""
    marker = tmp_path / "pwned.txt"
    import io

    buf = io.BytesIO()
    torch.save(Evil(exec, (f"open({str(marker)!r}, 'w').write('x')",)), buf, _use_new_zipfile_serialization=False)
    blob = buf.getvalue()

    class Smuggle:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (blob,))

    path = tmp_path / "smuggle.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": Smuggle()}, f, protocol=4)
    with pytest.raises(CheckpointError, match=r"smuggle\.pkl"):
        read_checkpoint(path)
    assert not marker.exists()
