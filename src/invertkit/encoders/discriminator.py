"""e4e's latent discriminator: tells codes of sampled latents from the encoder's, so the encoder's
base code stays where the generator's own codes live (Tov et al., "Designing an Encoder for
StyleGAN Image Manipulation", 2021: a 4-layer MLP, non-saturating loss, R1 penalty on real codes)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class LatentDiscriminator(nn.Module):
    """``[N, dim]`` codes -> ``[N]`` logits (high = looks sampled)."""

    def __init__(self, dim: int, hidden: int = 256, layers: int = 4) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden), nn.LeakyReLU(0.2)]
            d = hidden
        mods.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, codes: Tensor) -> Tensor:
        return self.net(codes).squeeze(1)


def generator_loss(D: LatentDiscriminator, fake: Tensor) -> Tensor:
    """Non-saturating loss pushing encoded codes toward 'sampled', scalar."""
    return F.softplus(-D(fake)).mean()


def discriminator_loss(D: LatentDiscriminator, real: Tensor, fake: Tensor, r1: float = 10.0) -> Tensor:
    """Non-saturating discriminator loss plus ``r1/2 * E||grad D(real)||^2``, scalar."""
    real = real.detach().requires_grad_(True)
    real_logits = D(real)
    loss = F.softplus(-real_logits).mean() + F.softplus(D(fake.detach())).mean()
    if r1 > 0:
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        loss = loss + r1 / 2 * grad.square().sum(1).mean()
    return loss
