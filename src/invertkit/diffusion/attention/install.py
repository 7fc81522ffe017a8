"""Install a controller on a diffusers network for the duration of a ``with`` block.

:func:`attention_control` gives every attention module of the network a processor that calls the
controller's hooks, chosen by the processor the module runs now (one that computes the same attention):

- ``AttnProcessor`` / ``AttnProcessor2_0`` / ``XFormersAttnProcessor`` (UNet2DConditionModel,
  UNet2DModel): :class:`~.processor.ControlProcessor`;
- ``JointAttnProcessor2_0`` (SD3Transformer2DModel): :class:`~.joint.JointProcessor`;
- ``FluxAttnProcessor`` (FluxTransformer2DModel): :class:`~.joint.FluxProcessor`, with a pre-hook on its
  block that tells it the prompt's token count;

and any other processor is refused with one line. It also adds a forward hook on each module the
controller names (:meth:`~.processor.AttentionHooks.feature_modules`). On exit, also after an error,
every module gets its own processor back and every hook is removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from ...errors import ConfigError
from .joint import FluxProcessor, JointProcessor, count_text
from .processor import AttentionHooks, ControlProcessor, Site, _place

PROCESSORS: dict[str, Callable[[AttentionHooks, Site], Any]] = {
    "AttnProcessor": ControlProcessor, "AttnProcessor2_0": ControlProcessor, "XFormersAttnProcessor": ControlProcessor,
    "JointAttnProcessor2_0": JointProcessor,
    "FluxAttnProcessor": FluxProcessor, "FluxAttnProcessor2_0": FluxProcessor,
}


def attention_modules(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every diffusers attention module (one with a ``processor``), in module order
    (the order of diffusers' ``attn_processors``)."""
    found = [(name, m) for name, m in network.named_modules() if hasattr(m, "processor") and hasattr(m, "set_processor")]
    if not found:
        raise ConfigError(f"{type(network).__name__} has no diffusers attention modules; attention control needs a diffusers "
                          "UNet with attention, an SD3Transformer2DModel or a FluxTransformer2DModel")
    return found


def sites(network: nn.Module) -> list[Site]:
    """The attention modules of ``network`` in processor order."""
    return [Site(f"{name}.processor", _place(name), i) for i, (name, _) in enumerate(attention_modules(network))]


def _controlled(hooks: AttentionHooks, site: Site, module: nn.Module) -> Any:
    kind = type(module.processor).__name__
    make = PROCESSORS.get(kind)
    if make is None:
        raise ConfigError(f"attention control does not know {type(module).__name__} with processor {kind} "
                          f"({site.name}); it knows {', '.join(sorted(PROCESSORS))}")
    return make(hooks, site)


@contextmanager
def attention_control(network: nn.Module, hooks: AttentionHooks) -> Iterator[list[Site]]:
    """Route every attention module of ``network`` through ``hooks`` (and the outputs of the modules it
    names through ``hooks.feature``) inside the block; everything is put back on exit, also after an
    error. Yields the sites."""
    modules = attention_modules(network)
    where = sites(network)
    owners = dict(network.named_modules())
    chosen = [(m, _controlled(hooks, s, m)) for (_, m), s in zip(modules, where, strict=True)]  # all known before any change
    saved = [(m, m.processor) for m, _ in chosen]
    handles: list[Any] = []
    hooks.bind(network, where)
    try:
        for (name, m), (_, proc) in zip(modules, chosen, strict=True):
            m.set_processor(proc)
            if isinstance(proc, FluxProcessor):
                handles.append(count_text(owners[name.rsplit(".", 1)[0]] if "." in name else network, proc))
        for fname, fm in hooks.feature_modules(network):
            handles.append(fm.register_forward_hook(lambda _m, _i, out, fname=fname: hooks.feature(fname, out)))
        yield where
    finally:
        for h in handles:
            h.remove()
        for m, proc in saved:
            m.set_processor(proc)
