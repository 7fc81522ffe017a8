"""The tail of a StyleGAN2 synthesis layer in few memory passes: demodulate, add noise and bias,
leaky ReLU, gain, clamp.

Written as NVIDIA writes it (``y * dcoefs``, ``+ noise``, ``bias_act``), that tail is six element-wise
passes forward and about eight backward over a ``[N, O, H, W]`` tensor. On CPU each pass over a
64-channel 256 px map costs about a quarter of the 3x3 convolution it follows (the passes are
memory-bound, the convolution is not), so at 256 px the element-wise tail, not the convolutions,
made most of a step. :func:`demod_bias_act` computes the same values in three passes forward (two
without noise) and four backward (five with a clamp), with a hand-written backward that reuses the
output to recover the activation and clamp masks. :func:`demod_bias_act_reference` is the plain
PyTorch composition it must equal (tested, values and gradients).

The gain is folded into the per-(sample, channel) demodulation coefficient, the noise and the bias
before the activation, which is exact because ``lrelu(a) * g = lrelu(a * g)`` and
``clamp(a * g, c) = clamp(a, c / g) * g`` for ``g > 0``.

``INVERTKIT_COMPILE=1`` in the environment runs the reference composition through
``torch.compile`` instead (inductor writes one fused C++ loop forward and one backward; a C
compiler is needed). On 1 CPU thread at 256 px that epilogue took 160-190 ms forward+backward per
4 images against 220-240 ms for the hand-written one (about 5% of a whole step), for 25-70 s of
compilation per new shape, so eager stays the default. Should compiling fail (no compiler, an
unsupported platform) the eager path is used, with one warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["demod_bias_act", "demod_bias_act_reference", "COMPILE_ENV", "compile_requested"]

COMPILE_ENV = "INVERTKIT_COMPILE"


def compile_requested() -> bool:
    """Whether ``INVERTKIT_COMPILE=1`` asks for the ``torch.compile`` epilogue (read at each call)."""
    return os.environ.get(COMPILE_ENV, "") == "1"


def demod_bias_act_reference(y: Tensor, dcoefs: Tensor, noise: Tensor | None, bias: Tensor, *, gain: float,
                             clamp: float | None, slope: float = 0.2) -> Tensor:
    """``clamp(lrelu(y * dcoefs + noise + bias, slope) * gain, -clamp, clamp)`` in plain PyTorch.

    ``y [N, O, H, W]``, ``dcoefs [N, O]``, ``noise`` broadcastable to ``y`` (e.g. ``[N, 1, H, W]``,
    ``[H, W]``) or None, ``bias [O]``.
    """
    x = y * dcoefs.reshape(*dcoefs.shape, 1, 1)
    if noise is not None:
        x = x + noise
    x = F.leaky_relu(x + bias.reshape(1, -1, 1, 1), slope) * gain
    return x.clamp(-clamp, clamp) if clamp is not None and clamp >= 0 else x


class _DemodBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, dcoefs: Tensor, noise: Tensor | None, bias: Tensor, gain: float,
                clamp: float | None, slope: float) -> Tensor:
        n, o = dcoefs.shape
        dg = (dcoefs * gain).reshape(n, o, 1, 1)
        out = torch.addcmul((bias * gain).reshape(1, o, 1, 1), y, dg)  # pass 1, in y's memory layout
        if noise is not None:
            out.add_(noise * gain)  # pass 2 (noise * gain is a small [.., 1, H, W] map)
        F.leaky_relu(out, slope, inplace=True)  # pass 3
        if clamp is not None:
            out.clamp_(-clamp, clamp)
        ctx.save_for_backward(y, dcoefs, out)
        ctx.noise_shape = None if noise is None else noise.shape
        ctx.gain, ctx.clamp, ctx.slope = gain, clamp, slope
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        y, dcoefs, out = ctx.saved_tensors
        gain, clamp, slope = ctx.gain, ctx.clamp, ctx.slope
        g = grad_out
        if clamp is not None:
            # zero where the output saturated; out is strictly inside (-clamp, clamp) elsewhere
            g = torch.ops.aten.hardtanh_backward(g, out, -clamp, clamp)
        # gradient w.r.t. the pre-activation (times 1/gain): out > 0 exactly where it was > 0
        g = torch.ops.aten.leaky_relu_backward(g, out, slope, True)
        n, o = dcoefs.shape
        need_y, need_d, need_noise, need_b = ctx.needs_input_grad[:4]
        grad_y = g * (dcoefs * gain).reshape(n, o, 1, 1) if need_y else None
        grad_d = (g * y).sum(dim=(2, 3)).mul_(gain) if need_d else None
        grad_noise = None
        if need_noise:
            grad_noise = (g.sum(dim=1, keepdim=True) * gain).sum_to_size(ctx.noise_shape)
        grad_b = g.sum(dim=(0, 2, 3)).mul_(gain) if need_b else None
        return grad_y, grad_d, grad_noise, grad_b, None, None, None


class _Compiled:
    """The compiled reference, built and tried once per process; None after a failure."""

    fn: Callable[..., Tensor] | None = None
    failed: bool = False


def _compiled_epilogue() -> Callable[..., Tensor] | None:
    if _Compiled.fn is None and not _Compiled.failed:
        try:
            # static shapes and constants: one graph per layer shape, gain and clamp (with dynamic
            # ones, gradients came out wrong on torch 2.13 once the gain changed between calls)
            fn = torch.compile(demod_bias_act_reference, dynamic=False)
            # a tiny forward and backward, so a missing compiler shows here rather than mid-backward
            with torch.enable_grad():
                y = torch.randn(1, 2, 4, 4, requires_grad=True)
                fn(y, torch.ones(1, 2), None, torch.zeros(2), gain=2.0, clamp=None).sum().backward()
            _Compiled.fn = fn
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: use the eager path
            _Compiled.failed = True
            warnings.warn(f"{COMPILE_ENV}=1: torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                          "using the eager StyleGAN2 epilogue", RuntimeWarning, stacklevel=3)
    return _Compiled.fn


def demod_bias_act(y: Tensor, dcoefs: Tensor, noise: Tensor | None, bias: Tensor, *, gain: float,
                   clamp: float | None, slope: float = 0.2) -> Tensor:
    """Same value and gradients as :func:`demod_bias_act_reference` (``gain > 0``), fewer memory passes.

    A non-positive gain (where the folding above would be wrong) gets the reference composition.
    """
    if gain <= 0 or clamp is not None and clamp < 0:
        return demod_bias_act_reference(y, dcoefs, noise, bias, gain=gain, clamp=clamp, slope=slope)
    if noise is not None and noise.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"noise of shape {list(noise.shape)} does not match the feature map {list(y.shape)}")
    if compile_requested():
        compiled = _compiled_epilogue()
        if compiled is not None:
            return compiled(y, dcoefs, noise, bias, gain=gain, clamp=clamp, slope=slope)
    return _DemodBiasAct.apply(y, dcoefs, noise, bias, float(gain), None if clamp is None else float(clamp), slope)
