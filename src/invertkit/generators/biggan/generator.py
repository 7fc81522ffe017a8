"""BigGAN-deep as an invertkit Generator: class-conditional, truncated z, class embedding in the latent.

Spaces:

- ``"z"`` ``[z_dim]``: the noise input. ``sample_latent`` draws ``truncation * truncnorm(-2, 2)`` as the
  package's ``truncated_noise_sample``; the class is the generator's ``class_index`` (or the
  ``class_index`` keyword of ``sample_latent`` / ``convert`` / ``synthesize`` / ``mean_latent``).
- ``"zc"`` ``[2 * z_dim]``: z followed by the class embedding ``embeddings.weight @ one_hot`` (the
  package's condition vector). Optimising in ``zc`` moves z and the class vector together, as
  pix2latent's BigGAN inversion (Huh et al. 2020) does; :meth:`BigGANGenerator.nearest_class` names
  the class whose embedding is closest to an optimised one. ``z -> zc`` appends the embedding of
  the chosen class; ``zc -> z`` is refused (it would drop the class).

``truncation`` (default 0.4, the package's README example; in (0, 1]) is a property of the generator:
it scales sampled z and selects the batch-norm statistics, exactly as the package's ``truncation``
argument. Both ``truncation`` and ``class_index`` are plain attributes and are not part of
:meth:`~invertkit.generators.base.Generator.weights` (nor of the fingerprint): change them before
caching statistics for a generator, not after.

Capability: :class:`~invertkit.generators.capabilities.Tunable`: PTI tunes ``generator.*`` (the
synthesis network); the class embeddings stay fixed so a class index keeps its meaning.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import Tensor, nn

from ...errors import CheckpointError, ConfigError, LatentSpaceError
from ...untrusted import shape_problems
from ..base import Generator, seeded_generator
from ..capabilities import Tunable
from .config import BigGANConfig
from .network import BigGANNetwork, seeded_weights
from .sampling import truncated_normal

DEFAULT_TRUNCATION = 0.4


def check_truncation(value: float) -> float:
    """``value`` as a float in (0, 1] (the package asserts ``0 < truncation <= 1``), else ConfigError."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"BigGAN truncation must be a number in (0, 1], got {value!r}") from None
    if not 0.0 < t <= 1.0:
        raise ConfigError(f"BigGAN truncation must be in (0, 1] (it selects stored batch-norm statistics), got {value!r}")
    return t


class BigGANGenerator(Generator, Tunable):
    """A BigGAN-deep generator (pytorch-pretrained-biggan layout), spaces ``"z"`` and ``"zc"``.

    Args:
        config: the architecture.
        state_dict: weights in the package's naming (``embeddings.weight``, ``generator.*``), loaded
            strictly; None draws ``network.seeded_weights(config, init_seed)`` (tests).
        plain: layers stored already normalised (see :class:`~.network.BigGANNetwork`).
        truncation: in (0, 1]; see the module docstring.
        class_index: the default class, in ``[0, num_classes)``.
        name: identity used in messages.
        device: where the weights live.
    """

    spaces = ("z", "zc")
    channels = 3
    family_label = "BigGAN-deep checkpoints (pytorch-pretrained-biggan config.json + pytorch_model.bin)"

    def __init__(self, config: BigGANConfig, state_dict: Mapping[str, Tensor] | None = None, *,
                 plain: Collection[str] = (), truncation: float = DEFAULT_TRUNCATION, class_index: int = 0,
                 name: str = "biggan", device: torch.device | str = "cpu", init_seed: int = 0) -> None:
        self.config = config
        self.name = name
        self.resolution = config.output_dim
        self.net = BigGANNetwork(config, set(plain))
        if state_dict is None:
            state_dict = seeded_weights(config, init_seed)
        want = {k: tuple(v.shape) for k, v in self.net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state_dict.items()}
        if want != got:
            raise CheckpointError(f"{name}: weights do not fit the BigGAN config: {'; '.join(shape_problems(want, got))}")
        self.net.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()}, strict=True)
        # frozen like every loaded generator; PTI tunes a copy (generators.tuning.tunable_copy)
        self.net.eval().requires_grad_(False)
        self.net.to(device)
        self.truncation = truncation
        self.class_index = class_index

    # ---- settings ------------------------------------------------------------------------------
    @property
    def truncation(self) -> float:
        """Truncation in (0, 1]: the scale of sampled z and the batch-norm statistics level."""
        return self._truncation

    @truncation.setter
    def truncation(self, value: float) -> None:
        self._truncation = check_truncation(value)

    @property
    def class_index(self) -> int:
        """The default class of ``"z"`` latents and of ``zc`` samples, in ``[0, num_classes)``."""
        return self._class_index

    @class_index.setter
    def class_index(self, value: int) -> None:
        self._class_index = self._check_class(value)

    def _check_class(self, value: int | None) -> int:
        if value is None:
            return self._class_index
        if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
            raise ConfigError(f"{self.name}: class_index must be an integer, got {value!r}")
        k = int(value)
        if not 0 <= k < self.config.num_classes:
            raise ConfigError(f"{self.name}: class_index {k} is outside [0, {self.config.num_classes})")
        return k

    def describe(self) -> dict[str, object]:
        """The Generator summary plus the class count, the settings and the package config."""
        return {**super().describe(), "num_classes": self.config.num_classes, "truncation": self.truncation,
                "class_index": self.class_index, "config": self.config.to_dict()}

    # ---- Generator -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.net.embeddings.weight.device

    def to(self, device: torch.device | str) -> BigGANGenerator:
        self.net.to(device)
        return self

    def weights(self) -> dict[str, Tensor]:
        """The package's state dict (``embeddings.weight``, ``generator.*``)."""
        return self.net.state_dict()

    def state_dict(self) -> dict[str, Tensor]:
        """Same as :meth:`weights`: ``torch.save`` it as ``pytorch_model.bin`` for the package."""
        return self.weights()

    def tunable_module(self) -> nn.Module:
        """``generator.*`` (the class embeddings stay fixed)."""
        return self.net.generator

    def latent_shape(self, space: str) -> tuple[int, ...]:
        self.check_space(space)
        return (self.config.z_dim,) if space == "z" else (self.config.condition_dim,)

    def class_embedding(self, class_index: int | None = None) -> Tensor:
        """The embedding ``[1, z_dim]`` of a class (default: ``class_index``): ``embeddings(one_hot)``."""
        k = self._check_class(class_index)
        return self.net.embeddings.weight[:, k].unsqueeze(0)

    def embed_classes(self, one_hot: Tensor) -> Tensor:
        """Embeddings ``[N, z_dim]`` of class vectors ``[N, num_classes]`` (one-hot, or a mixture)."""
        if one_hot.dim() != 2 or one_hot.shape[1] != self.config.num_classes:
            raise LatentSpaceError(f"{self.name}: class vectors must be [N, {self.config.num_classes}], got {list(one_hot.shape)}")
        return self.net.embeddings(one_hot.to(self.device, torch.float32))

    def nearest_class(self, zc: Tensor) -> Tensor:
        """Index ``[N]`` of the class whose embedding is nearest (Euclidean) to each ``zc`` latent's class part."""
        zc = self.check_latent(zc, "zc")
        emb = zc[:, self.config.z_dim:]
        return torch.cdist(emb, self.net.embeddings.weight.t()).argmin(dim=1)

    def sample_latent(self, n: int, space: str = "z", *, seed: int | None = None, class_index: int | None = None) -> Tensor:
        """``n`` latents: ``z = truncation * truncnorm(-2, 2)`` drawn on CPU from ``seed``; for ``"zc"``
        followed by the embedding of ``class_index`` (default: the generator's)."""
        self.check_space(space)
        z = self.truncation * truncated_normal((n, self.config.z_dim), generator=seeded_generator(seed))
        return self.convert(z.to(self.device), "z", space, class_index=class_index)

    def convert(self, latent: Tensor, src: str, dst: str, *, class_index: int | None = None) -> Tensor:
        """``z -> zc`` appends the class embedding (of ``class_index``, default the generator's);
        identity for ``src == dst``; ``zc -> z`` is refused (the class would be lost)."""
        latent = self.check_latent(latent, src)
        self.check_space(dst)
        if src == dst:
            return latent
        if src == "z" and dst == "zc":
            emb = self.class_embedding(class_index).expand(latent.shape[0], -1)
            return torch.cat([latent, emb], dim=1)
        raise LatentSpaceError(f"{self.name}: cannot convert 'zc' to 'z' (the class embedding would be dropped); "
                               "render 'zc' latents directly, or use nearest_class() to name their class")

    def mean_latent(self, space: str = "z", *, class_index: int | None = None) -> Tensor:
        """z = 0 (the mode of the truncated normal); for ``"zc"`` with the class embedding appended."""
        self.check_space(space)
        z = torch.zeros(1, self.config.z_dim, device=self.device)
        return self.convert(z, "z", space, class_index=class_index)

    def synthesize(self, latent: Tensor, space: str = "z", *, class_index: int | None = None,
                   truncation: float | None = None) -> Tensor:
        """Images ``[N, 3, R, R]`` in [-1, 1] (tanh) from ``z`` (with the class ``class_index``) or ``zc``
        latents, with the batch-norm statistics of ``truncation`` (default: the generator's)."""
        t = self.truncation if truncation is None else check_truncation(truncation)
        cond = self.convert(latent, space, "zc", class_index=class_index) if space == "z" else self.check_latent(latent, space)
        return self.net(cond, t)
