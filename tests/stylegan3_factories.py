"""StyleGAN3 network pickles built at test time, without NVIDIA's code, for the hostile and edge cases.

:func:`write_sg3_pkl` writes a pickle with the structure of a real stylegan3 snapshot (the golden
``tests/golden/stylegan3_*.pkl`` were written by NVIDIA's code; ``test_factory_matches_real_structure``
in ``test_stylegan3_checkpoints.py`` pins that both reference the same globals and have the same record
classes, state keys and attribute types): ``dict(G, D, G_ema, augment_pipe, training_set_kwargs)``, every
module a persistence record (``checkpoint_factories.FakePersistent``) whose ``state`` is the module's
``__dict__`` as torch pickles it, with ``None`` entries for the filters a layer does not have, numpy arrays
for sizes, numpy float64 sampling rates and cutoffs, ``_init_args`` / ``_init_kwargs`` on every module.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from invertkit.generators.stylegan3 import StyleGAN3Config, StyleGAN3Network

from .checkpoint_factories import FakePersistent, fake_nvidia_modules, module_state

SG3_SRC = '"""Generator architecture from the paper\n"Alias-Free Generative Adversarial Networks"."""\n'


def sg3_tiny_config(**kw: Any) -> StyleGAN3Config:
    """A 16 px StyleGAN3-T with 4 layers of at most 8 channels (a few thousand parameters)."""
    base: dict[str, Any] = dict(z_dim=16, w_dim=16, img_resolution=16, channel_base=128, channel_max=8, num_layers=4)
    base.update(kw)
    return StyleGAN3Config(**base)


def sg3_random_state(cfg: StyleGAN3Config, seed: int = 0) -> dict[str, Tensor]:
    """NVIDIA-named weights of a randomly initialised network (designed filters), with the input affine,
    biases and input magnitudes made non-trivial."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sd = StyleGAN3Network(cfg).state_dict()
    g = torch.Generator().manual_seed(seed + 1)
    for k, v in sd.items():
        if k.endswith("magnitude_ema"):
            sd[k] = 0.5 + torch.rand([], generator=g)
        elif k == "synthesis.input.affine.weight" or (k.endswith(".bias") and not k.startswith("mapping")):
            sd[k] = v + 0.2 * torch.randn(v.shape, generator=g)
        elif k == "mapping.w_avg":
            sd[k] = 0.1 * torch.randn(v.shape, generator=g)
    return sd


def sg3_init_kwargs(cfg: StyleGAN3Config, easydict: type = dict) -> dict[str, Any]:
    """``Generator._init_kwargs`` as stylegan3's train.py + training_loop.py produce them for ``cfg``."""
    kw: dict[str, Any] = dict(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_kwargs=easydict(num_layers=cfg.mapping_layers),
                              channel_base=cfg.channel_base, channel_max=cfg.channel_max, magnitude_ema_beta=0.998)
    if cfg.mapping_lr_multiplier != 0.01:
        kw["mapping_kwargs"]["lr_multiplier"] = cfg.mapping_lr_multiplier
    default = {f.name: f.default for f in dataclasses.fields(StyleGAN3Config)}
    for name in ("num_layers", "num_critical", "first_cutoff", "first_stopband", "last_stopband_rel", "margin_size",
                 "output_scale", "num_fp16_res", "conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters",
                 "conv_clamp"):
        if getattr(cfg, name) != default[name]:
            kw[name] = getattr(cfg, name)
    kw.update(c_dim=cfg.c_dim, img_resolution=cfg.img_resolution, img_channels=cfg.img_channels)
    return kw


def sg3_generator_record(cfg: StyleGAN3Config, sd: dict[str, Tensor], *, easydict: type = dict, module_src: str = SG3_SRC,
                         init_kwargs: dict[str, Any] | None = None) -> FakePersistent:
    """A FakePersistent tree with networks_stylegan3's module structure holding the NVIDIA-named tensors ``sd``."""
    net = StyleGAN3Network(cfg)
    specs = {s.name: s for s in cfg.layer_specs()}
    inp = cfg.input_spec()

    def attrs_of(path: str) -> tuple[str, dict[str, Any]]:
        last = path.rsplit(".", 1)[-1]
        if path == "":
            return "Generator", {"z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim, "img_resolution": cfg.img_resolution,
                                 "img_channels": cfg.img_channels, "num_ws": cfg.num_ws, "_init_args": (),
                                 "_init_kwargs": init_kwargs if init_kwargs is not None else sg3_init_kwargs(cfg, easydict)}
        if path == "synthesis":
            return "SynthesisNetwork", {"w_dim": cfg.w_dim, "num_ws": cfg.num_ws, "img_resolution": cfg.img_resolution,
                                        "layer_names": list(specs), "output_scale": cfg.output_scale, "_init_args": (), "_init_kwargs": {}}
        if path == "synthesis.input":
            return "SynthesisInput", {"w_dim": cfg.w_dim, "channels": inp.channels, "size": np.broadcast_to(np.asarray(inp.size), [2]),
                                      "sampling_rate": np.float64(inp.sampling_rate), "bandwidth": np.float64(inp.bandwidth),
                                      "_init_args": (), "_init_kwargs": {"w_dim": cfg.w_dim, "channels": inp.channels}}
        if path.startswith("synthesis.") and last in specs:
            s = specs[last]
            return "SynthesisLayer", {"w_dim": cfg.w_dim, "is_torgb": s.is_torgb, "in_channels": s.in_channels,
                                      "in_size": np.broadcast_to(np.asarray(s.in_size), [2]),
                                      "in_cutoff": np.float64(s.in_cutoff), "padding": list(s.padding),
                                      "_init_args": (), "_init_kwargs": {"w_dim": cfg.w_dim, "is_torgb": s.is_torgb}}
        if path == "mapping":
            return "MappingNetwork", {"z_dim": cfg.z_dim, "w_avg_beta": 0.998, "_init_args": (), "_init_kwargs": {}}
        return "FullyConnectedLayer", {"activation": "linear", "weight_gain": 0.25, "bias_gain": 1,
                                       "_init_args": (), "_init_kwargs": {}}

    def build(module: torch.nn.Module, path: str) -> FakePersistent:
        pre = f"{path}." if path else ""
        params = {k: sd[f"{pre}{k}"] for k in module._parameters if f"{pre}{k}" in sd}
        buffers: dict[str, Any] = {k: sd.get(f"{pre}{k}") for k in module._buffers}
        subs = {k: build(m, f"{pre}{k}") for k, m in module._modules.items()}
        cls, attrs = attrs_of(path)
        st = module_state(params, {k: v for k, v in buffers.items() if v is not None}, subs, attrs)
        st["_buffers"].update({k: None for k, v in buffers.items() if v is None})  # NVIDIA keeps None filters
        return FakePersistent(cls, st, module_src)

    return build(net, "")


def write_sg3_pkl(path: Path, cfg: StyleGAN3Config, sd: dict[str, Tensor], *, g_sd: dict[str, Tensor] | None = None,
                  include: tuple[str, ...] = ("G", "D", "G_ema"), module_src: str = SG3_SRC,
                  init_kwargs: dict[str, Any] | None = None,
                  mutate: Callable[[dict[str, Any], Any], None] | None = None, protocol: int = 4) -> Path:
    """Write a stylegan3-structured snapshot: ``G_ema`` holds ``sd``, ``G`` holds ``g_sd`` (default ``sd``).

    ``mutate(data, fake)`` may change the pickled objects (``fake``: the stand-in modules) before dumping.
    """
    with fake_nvidia_modules() as fake:
        data: dict[str, Any] = {}
        for key in ("G", "D", "G_ema"):
            if key not in include:
                continue
            if key == "D":
                data["D"] = None
            else:
                weights = sd if key == "G_ema" else (g_sd if g_sd is not None else sd)
                data[key] = sg3_generator_record(cfg, weights, easydict=fake.EasyDict, module_src=module_src,
                                                 init_kwargs=init_kwargs)
        data["augment_pipe"] = None
        data["training_set_kwargs"] = dict(fake.EasyDict(class_name="training.dataset.ImageFolderDataset", path="data.zip",
                                                         resolution=cfg.img_resolution))
        if mutate is not None:
            mutate(data, fake)
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path


def record_at(data: dict[str, Any], key: str, path: str) -> FakePersistent:
    """The record of module ``path`` (``"synthesis.L0_36_8"``) inside network ``key`` of a snapshot being built."""
    rec = data[key]
    for part in [p for p in path.split(".") if p]:
        rec = rec.meta["state"]["_modules"][part]
    return rec
