"""``optimize``'s own Adam update is ``torch.optim.Adam``'s, bit for bit (it only drops the optimiser's
per-step machinery), including a changing learning rate and a tensor the loss does not reach."""

from __future__ import annotations

import torch

from invertkit.methods.adam import Adam


def test_adam_matches_torch_optim_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(4, 6, generator=g), torch.randn(4, 1, 3, 3, generator=g), torch.randn(2, generator=g)]
    target = torch.randn(4, 6, generator=g)
    ours = [t.clone().requires_grad_(True) for t in init]
    ref = [t.clone().requires_grad_(True) for t in init]
    adam = Adam(ours)
    opt = torch.optim.Adam(ref, lr=0.1, betas=(0.9, 0.999))

    def loss(p: list[torch.Tensor]) -> torch.Tensor:  # p[2] is never used: no gradient, no update
        return ((p[0] - target) ** 2).sum() + (p[1].sin() * p[0][:, :1, None, None]).sum()

    for step in range(25):
        lr = 0.1 * (0.5 - 0.5 * torch.cos(torch.tensor(step / 25 * 3.14159)).item())  # a schedule, as the projector's
        adam.step(torch.autograd.grad(loss(ours), ours, allow_unused=True), lr)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss(ref).backward()
        opt.step()
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    assert torch.equal(ours[2], init[2])
    assert not torch.equal(ours[0], init[0])
