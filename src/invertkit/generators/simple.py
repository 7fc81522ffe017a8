"""Generators from any ``z -> image`` module (DCGAN, MLP GAN, your own network).

``wrap(module, latent_shape, resolution, channels)`` turns a ``torch.nn.Module`` into a
:class:`~invertkit.generators.base.Generator` with the single latent space ``"z"``. The module's
output is reshaped to ``N x channels x resolution x resolution`` (so an MLP that emits a flat
784-vector works), and is expected in [-1, 1] (a final Tanh, as in DCGAN).

Capabilities: every wrapped module is :class:`~.capabilities.Tunable` (PTI tunes all of it). A module
that is an ``nn.Sequential``, or offers ``as_sequence()`` returning one (the DCGAN), becomes a
:class:`SequentialGenerator`, which is also :class:`~.capabilities.LayerSplitting` (``f:LAYER``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError, LatentSpaceError
from .base import Generator, seeded_generator
from .capabilities import LayerSplitting, Tunable
from .layers import LayerSplit, check_split_layer


class SimpleGenerator(Generator, Tunable):
    """A Generator around a ``z -> image`` module; space ``"z"`` only, z ~ N(0, I).

    The module is put in eval mode (batch-norm uses its running statistics, as at sampling time) and
    its parameters are frozen: inversion optimises latents, not weights. Methods that tune the
    generator (PTI) work on a copy from ``generators.tuning.tunable_copy``; the whole module is tunable.
    """

    family_label = "wrapped z -> image modules (invertkit.wrap)"

    def __init__(
        self,
        module: nn.Module,
        latent_shape: tuple[int, ...] | int,
        resolution: int,
        channels: int,
        *,
        name: str | None = None,
    ) -> None:
        if isinstance(latent_shape, int):
            latent_shape = (latent_shape,)
        if not latent_shape or any(int(d) <= 0 for d in latent_shape):
            raise ConfigError(f"latent_shape must be a tuple of positive sizes, got {latent_shape!r}")
        if resolution <= 0 or channels <= 0:
            raise ConfigError(f"resolution and channels must be positive, got {resolution} and {channels}")
        self.module = module.eval().requires_grad_(False)
        self._latent_shape = tuple(int(d) for d in latent_shape)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.spaces = ("z",)
        self.name = name or type(module).__name__

    @property
    def device(self) -> torch.device:
        # Asked at every step (check_latent): walking the module's parameters each time cost about
        # 10 µs of a 0.4 ms MNIST step. The submodule that owns the first parameter and the
        # parameter's name are found once; reading the attribute again each time stays right when
        # .to() swaps the Parameter object itself (meta tensors, or torch's overwrite-on-conversion).
        probe = self.__dict__.get("_device_probe")
        if probe is None:
            name = next((n for n, _ in self.module.named_parameters()), None)
            if name is None:  # buffers only: look each time
                return next((b.device for b in self.module.buffers()), torch.device("cpu"))
            owner, _, attr = name.rpartition(".")
            probe = self._device_probe = (self.module.get_submodule(owner), attr)
        return getattr(probe[0], probe[1]).device

    def to(self, device: torch.device | str) -> SimpleGenerator:
        self.module.to(device)
        return self

    def weights(self) -> dict[str, Tensor]:
        """The module's state dict (``main.0.weight`` ...)."""
        return self.module.state_dict()

    def state_dict(self) -> dict[str, Tensor]:
        """Same as :meth:`weights` (the module's own naming)."""
        return self.weights()

    def tunable_module(self) -> nn.Module:
        """The whole module (batch-norm layers stay in eval mode: running statistics are not updated)."""
        return self.module

    @property
    def latent_dim(self) -> int:
        return math.prod(self._latent_shape)

    def latent_shape(self, space: str = "z") -> tuple[int, ...]:
        self.check_space(space)
        return self._latent_shape

    def sample_latent(self, n: int, space: str = "z", *, seed: int | None = None) -> Tensor:
        """``n`` latents z ~ N(0, I), shape ``[n, *latent_shape]``; drawn on CPU so a seed gives the same bits everywhere."""
        self.check_space(space)
        z = torch.randn((n, *self._latent_shape), generator=seeded_generator(seed))
        return z.to(self.device)

    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        self.check_space(src)
        self.check_space(dst)
        return latent  # one space: identity

    def mean_latent(self, space: str = "z") -> Tensor:
        self.check_space(space)
        return torch.zeros((1, *self._latent_shape), device=self.device)

    def synthesize(self, latent: Tensor, space: str = "z") -> Tensor:
        """Images ``N x C x R x R``, nominal range [-1, 1], from latents ``[N, *latent_shape]``."""
        latent = self.check_latent(latent, space)
        return self._to_image(self.module(latent), latent.shape[0])

    def _to_image(self, out: Tensor, n: int) -> Tensor:
        want = (self.channels, self.resolution, self.resolution)
        if out.shape[0] != n or math.prod(out.shape[1:]) != math.prod(want):
            raise LatentSpaceError(
                f"{self.name} returned shape {list(out.shape)} for {n} latents; "
                f"expected {n} x {'x'.join(map(str, want))} values (check resolution/channels given to wrap())"
            )
        return out.reshape(n, *want)


def as_sequence(module: nn.Module) -> nn.Sequential | None:
    """The module as an ``nn.Sequential`` to cut at layer indices: itself, or ``module.as_sequence()``
    (a module's declared sequential form, e.g. the DCGAN's ``[reshape, *main]``); None if neither."""
    if isinstance(module, nn.Sequential):
        return module
    declared = getattr(module, "as_sequence", None)  # the module's own declaration, read once when wrapping
    if callable(declared):
        seq = declared()
        if isinstance(seq, nn.Sequential):
            return seq
    return None


class SequentialGenerator(SimpleGenerator, LayerSplitting):
    """A wrapped module with a sequential form: it can also be cut between its layers (``f:LAYER``)."""

    family_label = "wrapped nn.Sequential modules or modules with as_sequence() (dcgan-digiface64, mnist-mlp-gan)"

    def __init__(self, module: nn.Module, latent_shape: tuple[int, ...] | int, resolution: int, channels: int, *,
                 name: str | None = None) -> None:
        super().__init__(module, latent_shape, resolution, channels, name=name)
        seq = as_sequence(self.module)
        if seq is None:
            raise ConfigError(f"{self.name}: SequentialGenerator needs an nn.Sequential or a module with as_sequence()")
        self.sequence = seq

    def split_layers(self) -> list[str]:
        """Split points ``"1"`` .. ``str(len - 1)`` of the module's sequence."""
        return [str(k) for k in range(1, len(self.sequence))]

    def layer_sequence(self) -> nn.Sequential:
        """The module's sequential form (``split layer "k"`` cuts before ``sequence[k]``)."""
        return self.sequence

    def layer_split(self, layer: str | int) -> LayerSplit:
        """Cut the module's sequence before index ``layer`` (see ``generators.layers``).

        ``head(z, "z")`` returns ``(sequence[:k](z),)``; ``tail((x,), None)`` runs ``sequence[k:]`` and
        reshapes to ``N x C x R x R``. The tail takes no latent (``tail_space`` None) and no noise.
        """
        k = int(check_split_layer(self.name, layer, self.split_layers()))
        first, rest = self.sequence[:k], self.sequence[k:]

        def head(latent: Tensor, space: str = "z") -> tuple[Tensor]:
            return (first(self.check_latent(latent, space)),)

        def tail(state: tuple[Tensor, ...], latent_tail: Tensor | None = None, noise: object = None) -> Tensor:
            (x,) = state
            # a copy: the tail may begin with an in-place module (DCGAN's ReLU(inplace=True)), which must
            # not overwrite the optimised state (autograd refuses that for a leaf, and it would corrupt it)
            return self._to_image(rest(x.clone()), x.shape[0])

        return LayerSplit(name=str(k), head=head, tail=tail, tail_space=None)


def wrap(
    module: nn.Module,
    latent_shape: tuple[int, ...] | int,
    resolution: int,
    channels: int,
    *,
    name: str | None = None,
) -> SimpleGenerator:
    """Turn a ``z -> image`` module into a Generator (a :class:`SequentialGenerator` when the module
    is an ``nn.Sequential`` or declares ``as_sequence()``, so it can be cut for ``f:LAYER``).

    Args:
        module: maps ``[N, *latent_shape]`` to ``N x channels x resolution x resolution`` values in
            [-1, 1] (any output shape with that many values per sample is reshaped).
        latent_shape: shape of one z, e.g. ``(100,)``; an int means ``(int,)``.
        resolution: output height and width.
        channels: 1 (greyscale) or 3 (RGB).
        name: display name for reports and errors.
    """
    cls = SequentialGenerator if as_sequence(module) is not None else SimpleGenerator
    return cls(module, latent_shape, resolution, channels, name=name)
