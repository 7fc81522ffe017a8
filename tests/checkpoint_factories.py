"""Build checkpoint files of every supported format for tests, without any third-party code.

NVIDIA pickles
--------------
:func:`write_nvidia_pkl` reproduces the byte-level structure of a real stylegan2-ada-pytorch network
pickle. It was checked against real pickles written by NVIDIA's code (stylegan2-ada-pytorch commit
d72cc7d041b42ec8e806021a205ed9349f87c6a4: ``training.networks.Generator`` built tiny, dumped with
``pickle.dump(dict(training_set_kwargs=..., G=..., D=..., G_ema=..., augment_pipe=...), f)`` as
``training_loop.py`` does, torch 2.13): protocol 4; the top-level dict; every network module as
``REDUCE(torch_utils.persistence._reconstruct_persistent_obj, (meta,))`` with ``meta`` = {type:
'class', version: 6, module_src: <source>, class_name: <bare class name>, state: <module __dict__>};
submodules nested the same way inside ``state['_modules']``; parameters as
``torch._utils._rebuild_parameter(torch._utils._rebuild_tensor_v2(torch.storage._load_from_bytes(b),
...), False, OrderedDict())``; buffers as ``_rebuild_tensor_v2``; hook tables as
``collections.OrderedDict``; ``act_gain`` a numpy float64 (``numpy._core.multiarray.scalar`` +
``numpy.dtype``); ``mapping_kwargs`` a ``dnnlib.util.EasyDict``. The set of globals a pickle
references is exactly :data:`REAL_NVIDIA_GLOBALS` in both; ``test_factory_matches_real_structure``
asserts that for the factory.

To emit those globals without NVIDIA's code, :func:`fake_nvidia_modules` registers stand-in modules
``torch_utils.persistence`` (a ``_reconstruct_persistent_obj`` function) and ``dnnlib.util`` (an
``EasyDict`` dict subclass) in ``sys.modules`` only while pickling, and :class:`FakePersistent`
reduces to ``(_reconstruct_persistent_obj, (meta,))`` exactly as NVIDIA's ``persistent_class``
decorator does.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from invertkit.generators.checkpoints.detect import nvidia_layout, resample_filter_tensor
from invertkit.generators.stylegan2.config import StyleGAN2Config

# globals referenced by real stylegan2-ada-pytorch pickles (numpy's module is numpy.core.multiarray
# under numpy 1.x and numpy._core.multiarray under numpy 2.x)
REAL_NVIDIA_GLOBALS = {
    "torch_utils.persistence._reconstruct_persistent_obj",
    "dnnlib.util.EasyDict",
    "collections.OrderedDict",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_tensor_v2",
    "torch.storage._load_from_bytes",
    "numpy.multiarray.scalar",  # normalised, see normalise_global
    "numpy.dtype",
}

MODULE_SRC = '"""Stand-in for NVIDIA training/networks.py source (never executed by invertkit)."""\n'
SG3_MODULE_SRC = '"""Generator architecture from the paper\n"Alias-Free Generative Adversarial Networks"."""\n'


def normalise_global(name: str) -> str:
    return name.replace("numpy._core.multiarray", "numpy.multiarray").replace("numpy.core.multiarray", "numpy.multiarray")


def tiny_config(**kw: Any) -> StyleGAN2Config:
    """A 16 px StyleGAN2 with 32/32/16 channels and 2 mapping layers (a few 10k parameters)."""
    base = dict(z_dim=32, w_dim=32, img_resolution=16, mapping_layers=2, channel_base=256, channel_max=32)
    base.update(kw)
    return StyleGAN2Config(**base)


def random_nvidia_state(cfg: StyleGAN2Config, seed: int = 0) -> dict[str, Tensor]:
    """NVIDIA-named state dict with seeded random values (filters as NVIDIA stores them)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for key, shape in nvidia_layout(cfg).items():
        if key.endswith("resample_filter"):
            out[key] = resample_filter_tensor(cfg, key)
        elif key.endswith("affine.bias"):
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("noise_strength"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = torch.randn(shape, generator=g)
    return out


# ------------------------------------------------------------------------------------------------
# fake NVIDIA persistence
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_nvidia_modules(reconstruct: Any = None) -> Iterator[types.SimpleNamespace]:
    """Temporarily register stand-ins for ``torch_utils.persistence`` and ``dnnlib.util``.

    ``reconstruct`` replaces the default inert ``_reconstruct_persistent_obj`` (tests use one that
    executes ``module_src`` like NVIDIA's, to prove a pickle is armed).
    """
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    tu = types.ModuleType("torch_utils")
    pers = types.ModuleType("torch_utils.persistence")
    dn = types.ModuleType("dnnlib")
    dnu = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta: Any) -> Any:
        return ("persistent", meta)

    func = reconstruct or _reconstruct_persistent_obj
    func.__module__ = "torch_utils.persistence"
    func.__qualname__ = func.__name__ = "_reconstruct_persistent_obj"
    pers._reconstruct_persistent_obj = func

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    dnu.EasyDict = EasyDict
    tu.persistence = pers
    dn.util = dnu
    sys.modules.update({"torch_utils": tu, "torch_utils.persistence": pers, "dnnlib": dn, "dnnlib.util": dnu})
    try:
        yield types.SimpleNamespace(persistence=pers, EasyDict=EasyDict)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class FakePersistent:
    """Reduces like an instance of an NVIDIA ``@persistent_class`` module."""

    def __init__(self, class_name: str, state: dict[str, Any], module_src: str = MODULE_SRC, version: int = 6) -> None:
        self.meta = dict(type="class", version=version, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self) -> tuple[Any, ...]:
        from torch_utils import persistence  # the stand-in registered by fake_nvidia_modules

        return (persistence._reconstruct_persistent_obj, (self.meta,))


_HOOK_TABLES = (
    "_backward_pre_hooks", "_backward_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


def module_state(params: dict[str, Tensor], buffers: dict[str, Tensor], modules: dict[str, Any],
                 attrs: dict[str, Any] | None = None, non_persistent: set[str] | None = None) -> dict[str, Any]:
    """An ``nn.Module.__dict__`` as torch 2.x pickles it (parameters as ``nn.Parameter``)."""
    st: dict[str, Any] = {"training": False}
    st["_parameters"] = {k: torch.nn.Parameter(v.clone(), requires_grad=False) for k, v in params.items()}
    st["_buffers"] = {k: v.clone() for k, v in buffers.items()}
    st["_non_persistent_buffers_set"] = set(non_persistent or ())
    for name in _HOOK_TABLES:
        st[name] = OrderedDict()
    st["_is_full_backward_hook"] = None
    st["_modules"] = modules
    st.update(attrs or {})
    return st


def generator_record(cfg: StyleGAN2Config, sd: dict[str, Tensor], *, easydict: type = dict,
                     module_src: str = MODULE_SRC, init_kwargs: dict[str, Any] | None = None,
                     extra_buffers: dict[str, dict[str, Tensor]] | None = None) -> FakePersistent:
    """A FakePersistent tree with NVIDIA's module structure holding the NVIDIA-named tensors ``sd``.

    ``extra_buffers`` = {module path: {name: tensor}} adds buffers marked non-persistent there.
    """
    extra_buffers = extra_buffers or {}

    def pick(prefix: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params, bufs = {}, {}
        for k, v in sd.items():
            if k.startswith(prefix) and "." not in k[len(prefix):]:
                name = k[len(prefix):]
                (bufs if name in ("resample_filter", "noise_const", "w_avg") else params)[name] = v
        return params, bufs

    def rec(class_name: str, prefix: str, modules: dict[str, Any], attrs: dict[str, Any]) -> FakePersistent:
        params, bufs = pick(prefix)
        non_persistent = set()
        for name, t in extra_buffers.get(prefix.rstrip("."), {}).items():
            bufs[name] = t
            non_persistent.add(name)
        return FakePersistent(class_name, module_state(params, bufs, modules, attrs, non_persistent), module_src)

    def fc(prefix: str) -> FakePersistent:
        return rec("FullyConnectedLayer", prefix, {}, {"activation": "linear", "weight_gain": 0.1, "bias_gain": 1})

    blocks = {}
    for res in cfg.block_resolutions:
        b = f"synthesis.b{res}."
        mods: dict[str, Any] = {}
        for layer in ("conv0", "conv1"):
            if f"{b}{layer}.weight" in sd:
                mods[layer] = rec("SynthesisLayer", f"{b}{layer}.", {"affine": fc(f"{b}{layer}.affine.")},
                                  {"resolution": res, "act_gain": np.float64(math.sqrt(2)), "_init_args": (1, 1),
                                   "_init_kwargs": {"w_dim": cfg.w_dim, "resolution": res}})
        if f"{b}torgb.weight" in sd:
            mods["torgb"] = rec("ToRGBLayer", f"{b}torgb.", {"affine": fc(f"{b}torgb.affine.")},
                                {"weight_gain": 1 / math.sqrt(cfg.channels_at(res))})
        if f"{b}skip.weight" in sd:
            mods["skip"] = rec("Conv2dLayer", f"{b}skip.", {}, {})
        blocks[f"b{res}"] = rec("SynthesisBlock", b, mods, {"resolution": res, "architecture": cfg.architecture})
    synthesis = rec("SynthesisNetwork", "synthesis.", blocks, {"img_resolution": cfg.img_resolution})
    mmods = {}
    if cfg.c_dim > 0:
        mmods["embed"] = fc("mapping.embed.")
    for i in range(cfg.mapping_layers):
        mmods[f"fc{i}"] = fc(f"mapping.fc{i}.")
    mapping = rec("MappingNetwork", "mapping.", mmods, {"w_avg_beta": 0.995})
    if init_kwargs is None:
        init_kwargs = nvidia_init_kwargs(cfg, easydict)
    attrs = {"z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim, "img_resolution": cfg.img_resolution,
             "img_channels": cfg.img_channels, "num_ws": cfg.num_ws, "_init_args": (), "_init_kwargs": init_kwargs}
    return FakePersistent("Generator", module_state({}, {}, {"synthesis": synthesis, "mapping": mapping}, attrs),
                          module_src)


def nvidia_init_kwargs(cfg: StyleGAN2Config, easydict: type = dict) -> dict[str, Any]:
    """``Generator._init_kwargs`` as stylegan2-ada-pytorch's train.py produces them for ``cfg``."""
    mapping = easydict(num_layers=cfg.mapping_layers, lr_multiplier=cfg.mapping_lr_multiplier)
    if cfg.mapping_layer_features is not None:
        mapping["layer_features"] = cfg.mapping_layer_features
    if cfg.embed_features is not None:
        mapping["embed_features"] = cfg.embed_features
    synthesis = easydict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                         conv_clamp=None if cfg.conv_clamp is None else int(cfg.conv_clamp),
                         architecture=cfg.architecture)
    if tuple(cfg.resample_filter) != (1, 3, 3, 1):
        synthesis["resample_filter"] = list(cfg.resample_filter)
    if not cfg.use_noise:
        synthesis["use_noise"] = False
    return dict(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
                img_channels=cfg.img_channels, mapping_kwargs=mapping, synthesis_kwargs=synthesis)


def write_nvidia_pkl(path: Path, cfg: StyleGAN2Config, sd: dict[str, Tensor], *, g_sd: dict[str, Tensor] | None = None,
                     include: tuple[str, ...] = ("G", "D", "G_ema"), module_src: str = MODULE_SRC,
                     init_kwargs: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                     protocol: int = 4, extra_buffers: dict[str, dict[str, Tensor]] | None = None) -> Path:
    """Write an NVIDIA-structured network pickle: G_ema holds ``sd``, G holds ``g_sd`` (default: ``sd``)."""
    with fake_nvidia_modules() as fake:
        data: dict[str, Any] = {"training_set_kwargs": dict(fake.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                                         path="data.zip", resolution=cfg.img_resolution))}
        for key in ("G", "D", "G_ema"):
            if key not in include:
                continue
            if key == "D":
                data["D"] = None
            else:
                weights = sd if key == "G_ema" else (g_sd if g_sd is not None else sd)
                data[key] = generator_record(cfg, weights, easydict=fake.EasyDict, module_src=module_src,
                                             init_kwargs=init_kwargs, extra_buffers=extra_buffers)
        data["augment_pipe"] = None
        data.update(extra or {})
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path


def dump_with_fake_modules(obj_fn: Any, path: Path, protocol: int = 4) -> Path:
    """Pickle ``obj_fn(fake)`` while the fake NVIDIA modules are registered."""
    with fake_nvidia_modules() as fake:
        obj = obj_fn(fake)
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)
    return path


def referenced_globals(path: Path) -> set[str]:
    """The globals a pickle file references, collected by the restricted unpickler (nothing runs)."""
    from invertkit.generators.checkpoints.nvidia_pkl import RestrictedUnpickler

    seen: set[str] = set()

    class Recording(RestrictedUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            seen.add(normalise_global(f"{module}.{name}"))
            return super().find_class(module, name)

    with open(path, "rb") as f:
        Recording(f, path).load()
    return seen


# ------------------------------------------------------------------------------------------------
# rosinality
# ------------------------------------------------------------------------------------------------


def random_rosinality_g_ema(size: int, style_dim: int, n_mlp: int, channels: dict[int, int], seed: int = 0,
                            blur_kernel: tuple[int, ...] = (1, 3, 3, 1)) -> dict[str, Tensor]:
    """A g_ema state dict with the keys, order and shapes of rosinality's ``model.Generator``.

    Written from rosinality/stylegan2-pytorch ``model.py`` (commit bef283a1c24087da704d16c30abc8e36e63efa0e),
    independently of invertkit's converter.
    """
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g)

    k = torch.tensor(blur_kernel, dtype=torch.float32)
    k = torch.outer(k, k)
    kernel = k / k.sum() * 4
    sd: dict[str, Tensor] = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = rnd(style_dim, style_dim)
        sd[f"style.{i}.bias"] = 0.1 * rnd(style_dim)
    c4 = channels[4]
    sd["input.input"] = rnd(1, c4, 4, 4)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        sd[f"{prefix}.conv.weight"] = rnd(1, cout, cin, 3, 3)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = kernel.clone()
        sd[f"{prefix}.conv.modulation.weight"] = rnd(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * rnd(cin)
        sd[f"{prefix}.noise.weight"] = 0.1 * rnd(1)
        sd[f"{prefix}.activate.bias"] = 0.1 * rnd(cout)

    def to_rgb(prefix: str, cin: int, up: bool) -> None:
        sd[f"{prefix}.bias"] = 0.1 * rnd(1, 3, 1, 1)
        if up:
            sd[f"{prefix}.upsample.kernel"] = kernel.clone()
        sd[f"{prefix}.conv.weight"] = rnd(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = rnd(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * rnd(cin)

    styled("conv1", c4, c4, False)
    to_rgb("to_rgb1", c4, False)
    log_size = int(math.log2(size))
    cin = c4
    convs, rgbs = {}, {}
    for idx, i in enumerate(range(3, log_size + 1)):
        cout = channels[2**i]
        convs[2 * idx] = (cin, cout, True)
        convs[2 * idx + 1] = (cout, cout, False)
        rgbs[idx] = cout
        cin = cout
    for j, (a, b, up) in convs.items():
        styled(f"convs.{j}", a, b, up)
    for j, c in rgbs.items():
        to_rgb(f"to_rgbs.{j}", c, True)
    n_layers = (log_size - 2) * 2 + 1
    for j in range(n_layers):
        res = 2 ** ((j + 5) // 2)
        sd[f"noises.noise_{j}"] = rnd(1, 1, res, res)
    return sd
