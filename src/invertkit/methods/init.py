"""Initial latents: the mean latent, seeded random starts, or a given latent.

Each (image, candidate) pair draws from its own seed, derived from the run seed and the image's id
(its position in the whole run, not in the batch), so results do not depend on how images are
batched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces
from ..seeds import derive_seed
from ..store.statcache import cached_stats

INITS = ("auto", "mean", "random", "given")


def resolve_init(G: Generator, init: str) -> str:
    """``auto``: the mean latent for style-space generators (as NVIDIA's projector), random otherwise
    (a DCGAN's mean z = 0 can sit where every first-layer ReLU is off, giving no gradient)."""
    if init not in INITS:
        raise ConfigError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "auto":
        return "mean" if isinstance(G, StyleSpaces) else "random"
    return init


def initial_latents(
    G: Generator,
    space: str,
    image_ids: Sequence[int],
    candidates: int,
    *,
    init: str,
    seed: int,
    given: Tensor | None = None,
) -> Tensor:
    """Latents ``[len(image_ids) * candidates, ...]`` in ``space`` (a generator space), image-major.

    With ``mean`` init the first candidate of each image is the mean latent and the others are random;
    with ``given``, ``given[i]`` seeds every candidate of image i (candidates beyond the first are
    perturbed copies, so K starts still explore).
    """
    n = len(image_ids)
    rows = []
    for i, image_id in enumerate(image_ids):
        for k in range(candidates):
            s = derive_seed(seed, image_id, k)
            if init == "given":
                if given is None:
                    raise ConfigError("init='given' needs an initial latent (init_latent=...)")
                base = G.check_latent(given[i : i + 1] if given.dim() > len(G.latent_shape(space)) else given, space)[:1]
                if k > 0:
                    g = torch.Generator().manual_seed(s)
                    base = base + 0.1 * base.std() * torch.randn(base.shape, generator=g).to(base.device)
                rows.append(base)
            elif init == "mean" and k == 0:
                rows.append(G.mean_latent(space))
            else:
                rows.append(G.sample_latent(1, space, seed=s))
    out = torch.cat(rows).detach()
    if given is not None and init == "given" and given.shape[0] not in (1, n):
        raise LatentSpaceError(f"init_latent has {given.shape[0]} rows for {n} images")
    return out


ROW_STD_SAMPLES = 1000
ROW_STD_SEED = 123_456


@torch.no_grad()
def latent_row_std(G: Generator, space: str, samples: int = ROW_STD_SAMPLES) -> float:
    """RMS norm of a centred latent row (last dimension) over seeded samples: NVIDIA's ``w_std``.

    A property of the weights: cached in memory under their fingerprint (``store.statcache``)."""

    def compute() -> dict[str, Tensor]:
        x = G.sample_latent(samples, space, seed=ROW_STD_SEED).float()
        rows = x.reshape(-1, x.shape[-1])
        return {"std": (rows - rows.mean(0)).square().sum(1).mean().sqrt().cpu()}

    info = {"space": space, "samples": int(samples), "seed": ROW_STD_SEED}
    out = cached_stats(G, "latent_row_std", weights=G.weights(), info=info, expect={"std": ()}, compute=compute, disk=False)
    return float(out["std"])
