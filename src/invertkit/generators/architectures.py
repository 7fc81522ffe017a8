"""Small fixed architectures of the offline pretrained models (no weights here, just shapes)."""

from __future__ import annotations

from torch import Tensor, nn


class DCGANGenerator(nn.Module):
    """The classic DCGAN generator (Radford et al. 2016; PyTorch tutorial layout), 64 x 64 output.

    ``z [N, nz]`` is reshaped to ``[N, nz, 1, 1]`` and up-sampled 4 -> 8 -> 16 -> 32 -> 64 by
    transposed convolutions with batch-norm and ReLU; Tanh output in [-1, 1]. State-dict keys are
    ``main.{0,3,6,9,12}.weight`` and batch-norm at ``main.{1,4,7,10}.*``, as in the tutorial.
    """

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.nz = nz
        chans = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, chans[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))

    def as_sequence(self) -> nn.Sequential:
        """``[reshape to N x nz x 1 x 1, *main]`` sharing this module's layers: the indices layerwise
        inversion cuts at (``"1"`` = after the reshape, ``"k"`` = after ``main[k-2]``)."""
        return nn.Sequential(Reshape(self.nz, 1, 1), *self.main)


class Reshape(nn.Module):
    """``x -> x.reshape(N, *shape)`` as a module, so reshapes can sit inside an ``nn.Sequential``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def mlp_generator(z_dim: int = 64, hidden: int = 256, out_dim: int = 784) -> nn.Sequential:
    """``Linear ReLU Linear ReLU Linear Tanh``: the MNIST MLP GAN generator (keys ``0.*``, ``2.*``, ``4.*``)."""
    return nn.Sequential(
        nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.Tanh()
    )
