"""Adam's update without ``torch.optim``'s per-step machinery.

``torch.optim.Adam.step()`` wraps every call in a profiler ``record_function``, hook checks, grad
lookups and per-parameter state dictionaries: about 0.2 ms per step on CPU, which is a third of a
whole 0.7 ms MNIST-GAN step. :class:`Adam` keeps only the update (amsgrad off, no weight decay,
``eps`` added after the bias-corrected square root), in one of two kernels:

- ``fused`` (the default where PyTorch has it, CPU and CUDA float tensors): PyTorch's own fused
  kernel, the one ``torch.optim.Adam(fused=True)`` runs, one call for all tensors. Bit-identical to
  ``torch.optim.Adam(fused=True)``; against the default ``torch.optim.Adam`` it differs by float32
  rounding (its arithmetic is ordered differently: about 2e-7 after 300 steps on unit-scale values).
  On CPU it is about 2 µs per step against 17 µs for the op-by-op form, which was most of the loop's
  overhead on small generators.
- ``reference``: ``torch.optim.Adam``'s default (for-each) update op for op, as
  :mod:`invertkit.methods.projector_reference` spells it out after NVIDIA's projector: bit-identical
  to ``torch.optim.Adam()``.

Both are tested against ``torch.optim.Adam`` bit for bit (``tests/test_adam_update.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ..errors import ConfigError

AdamKernel = Literal["fused", "reference"]
FUSED_DEVICES = ("cpu", "cuda")  # where torch.optim documents fused Adam and this module tests it
FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
STEP_TABLE = 1024  # step counts made per table (one small tensor per 1024 steps)


def fused_available(device: torch.device) -> bool:
    """Whether this PyTorch has the fused Adam kernel for ``device``'s type."""
    return hasattr(torch, "_fused_adam_") and device.type in FUSED_DEVICES


def fused_supported(params: Sequence[Tensor]) -> bool:
    """Whether PyTorch's fused Adam kernel can update all of ``params`` (same device, CPU or CUDA,
    floating dtypes, dense)."""
    if not params or not fused_available(params[0].device):
        return False
    return all(p.device == params[0].device and p.dtype in FUSED_DTYPES and not p.is_sparse for p in params)


class Adam:
    """Adam moments for ``params`` (leaf tensors updated in place); ``step(grads, lr)`` per step.

    ``kernel``: ``"fused"``, ``"reference"``, or None for fused where :func:`fused_supported`.
    """

    def __init__(
        self, params: list[Tensor], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        kernel: AdamKernel | None = None,
    ) -> None:
        self.params = params
        self.beta1, self.beta2 = betas
        self.eps = eps
        if kernel is None:
            kernel = "fused" if fused_supported(params) else "reference"
        elif kernel == "fused" and not fused_supported(params):
            raise ConfigError("adam_kernel=fused needs dense floating tensors on one CPU or CUDA device; use adam_kernel=reference")
        self.kernel: AdamKernel = kernel
        self.m = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.v = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.k = 0  # steps taken
        # Per step the fused path makes one kernel call and nothing else: right after a backward pass
        # every further op costs a few µs of cold caches, more than the fused update itself. So it
        # writes through detached aliases of the leaves (no no_grad context to enter) and reads the
        # step count, which the kernel takes as a float32 tensor per parameter (as torch.optim keeps
        # it), from a table of counts made once per STEP_TABLE steps (no increment op per step).
        self._data = [p.detach() for p in params]
        self._counts: list[Tensor] = []
        # per parameter: steps it skipped for want of a gradient (its own step count is k minus these,
        # as torch.optim counts per parameter); while none has skipped, all share the count k
        self._skipped = [0] * len(params)

    def step(self, grads: Sequence[Tensor | None], lr: float) -> None:
        """One update with learning rate ``lr`` (``grads`` aligned with ``params``; a None grad, a
        tensor the loss does not reach, leaves that tensor and its step count alone, as
        ``torch.optim.Adam`` does)."""
        self.k += 1
        if not any(self._skipped) and all(g is not None for g in grads):  # every step of a latent's loop
            live = None
        else:
            live = []
            for i, g in enumerate(grads):
                if g is None:
                    self._skipped[i] += 1
                else:
                    live.append(i)
        if self.kernel == "fused":
            self._fused(grads, lr, live)
        else:
            self._reference(grads, lr, live)

    @torch.no_grad()
    def _reference(self, grads: Sequence[Tensor | None], lr: float, live: list[int] | None) -> None:
        for i in range(len(self.params)) if live is None else live:
            k = self.k - self._skipped[i]
            step_size = lr / (1 - self.beta1**k)  # bias corrections in float64, as torch computes them
            correction2_sqrt = (1 - self.beta2**k) ** 0.5
            g, m, v = grads[i], self.m[i], self.v[i]
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v.sqrt() / correction2_sqrt).add_(self.eps)
            self.params[i].addcdiv_(m, denom, value=-step_size)

    def _fused(self, grads: Sequence[Tensor | None], lr: float, live: list[int] | None) -> None:
        if live is None:
            params, gs, ms, vs = self._data, list(grads), self.m, self.v
            steps = [self._count(self.k)] * len(params)
        elif not live:
            return
        else:
            params, gs = [self._data[i] for i in live], [grads[i] for i in live]
            ms, vs = [self.m[i] for i in live], [self.v[i] for i in live]
            steps = [self._count(self.k - self._skipped[i]) for i in live]
        torch._fused_adam_(params, gs, ms, vs, [], steps, lr=lr, beta1=self.beta1, beta2=self.beta2,
                           weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)

    def _count(self, k: int) -> Tensor:
        """The step count ``k`` (from 1) as a float32 0-d tensor on the parameters' device."""
        while k > len(self._counts):
            start = len(self._counts) + 1
            table = torch.arange(start, start + STEP_TABLE, dtype=torch.float32, device=self.params[0].device)
            self._counts.extend(table.unbind())
        return self._counts[k - 1]
