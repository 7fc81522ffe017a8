"""``optimize``'s own Adam update is ``torch.optim.Adam``'s, bit for bit (it only drops the optimiser's
per-step machinery), including a changing learning rate and a tensor the loss does not reach: the
``reference`` kernel against ``torch.optim.Adam()``, the ``fused`` one against ``torch.optim.Adam(fused=True)``."""

from __future__ import annotations

import pytest
import torch

from invertkit.errors import ConfigError
from invertkit.methods.adam import Adam, fused_supported


def _run_both(kernel: str, fused_ref: bool, steps: int = 25, intermittent: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(4, 6, generator=g), torch.randn(4, 1, 3, 3, generator=g), torch.randn(2, generator=g),
            torch.randn(3, generator=g)]
    target = torch.randn(4, 6, generator=g)
    ours = [t.clone().requires_grad_(True) for t in init]
    ref = [t.clone().requires_grad_(True) for t in init]
    adam = Adam(ours, kernel=kernel)
    opt = torch.optim.Adam(ref, lr=0.1, betas=(0.9, 0.999), fused=fused_ref)

    def loss(p: list[torch.Tensor], step: int) -> torch.Tensor:
        # p[2] is never used: no gradient, no update; p[3] (with intermittent) only at every third
        # step, so its own step count, which the bias corrections read, falls behind the others'
        out = ((p[0] - target) ** 2).sum() + (p[1].sin() * p[0][:, :1, None, None]).sum()
        return out + (p[3].cos().sum() * p[0].mean() if intermittent and step % 3 == 0 else 0)

    for step in range(steps):
        lr = 0.1 * (0.5 - 0.5 * torch.cos(torch.tensor(step / steps * 3.14159)).item())  # a schedule, as the projector's
        adam.step(torch.autograd.grad(loss(ours, step), ours, allow_unused=True), lr)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss(ref, step).backward()
        opt.step()
    return init, ours, ref


@pytest.mark.parametrize("intermittent", [False, True])
@pytest.mark.parametrize(("kernel", "fused_ref"), [("reference", False), ("fused", True)])
def test_adam_matches_torch_optim_bit_for_bit(kernel, fused_ref, intermittent):
    init, ours, ref = _run_both(kernel, fused_ref, intermittent=intermittent)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    assert torch.equal(ours[2], init[2])
    assert not torch.equal(ours[0], init[0])
    assert torch.equal(ours[3], init[3]) is not intermittent


def test_fused_and_reference_kernels_differ_by_rounding_only():
    _, fused, _ = _run_both("fused", True)
    _, reference, _ = _run_both("reference", False)
    assert any(not torch.equal(a, b) for a, b in zip(fused, reference))  # two kernels ...
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # ... of one update


def test_default_kernel_is_fused_on_cpu_and_refused_where_unsupported():
    p = torch.zeros(3, requires_grad=True)
    assert fused_supported([p]) and Adam([p]).kernel == "fused"
    ints = torch.zeros(3, dtype=torch.int64)
    assert not fused_supported([ints])
    assert Adam([ints]).kernel == "reference"  # auto falls back
    with pytest.raises(ConfigError, match="adam_kernel=reference"):
        Adam([ints], kernel="fused")


def test_optimize_resolves_the_kernel_and_refuses_fused_where_there_is_none():
    from torch import nn

    from invertkit.generators import wrap
    from invertkit.methods.optimize import OptimizeOptions, resolve_options

    G = wrap(nn.Sequential(nn.Linear(4, 12), nn.Tanh()), (4,), 2, 3)
    assert resolve_options(G, OptimizeOptions()).adam_kernel == "fused"  # CPU
    G.module.to("meta")  # a device type without the fused kernel
    assert resolve_options(G, OptimizeOptions()).adam_kernel == "reference"
    with pytest.raises(ConfigError, match="adam_kernel=reference"):
        resolve_options(G, OptimizeOptions(adam_kernel="fused"))
