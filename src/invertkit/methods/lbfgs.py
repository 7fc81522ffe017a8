"""A batched L-BFGS: every image keeps its own curvature history and its own step size.

``torch.optim.LBFGS`` minimises one scalar, so a batch would share a line search and images would
influence each other. Here each row of the flattened variables is an independent problem: the
two-loop recursion runs per row (as batched tensor algebra) and a backtracking (Armijo) line search
accepts or halves each row's step separately; all rows are evaluated together in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class BatchedLBFGS:
    """Minimise ``f(x) -> [B]`` over ``x [B, D]`` row by row.

    Args:
        history: curvature pairs kept per row.
        lr: initial step length of the first iteration, relative to the gradient norm.
        max_backtracks: halvings tried per iteration before a row accepts the smallest step.
    """

    def __init__(self, history: int = 10, lr: float = 1.0, max_backtracks: int = 8, c1: float = 1e-4) -> None:
        self.m = history
        self.lr = lr
        self.max_backtracks = max_backtracks
        self.c1 = c1
        self.s: list[Tensor] = []
        self.y: list[Tensor] = []

    def direction(self, g: Tensor) -> Tensor:
        """Two-loop recursion, per row: approximately ``-H g``."""
        q = g.clone()
        alphas = []
        rhos = [1.0 / (y * s).sum(1, keepdim=True).clamp_min(1e-10) for s, y in zip(self.s, self.y)]
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(rhos)):
            a = rho * (s * q).sum(1, keepdim=True)
            alphas.append(a)
            q = q - a * y
        if self.s:
            s, y = self.s[-1], self.y[-1]
            gamma = (s * y).sum(1, keepdim=True) / (y * y).sum(1, keepdim=True).clamp_min(1e-10)
            q = q * gamma.clamp_min(1e-10)
        else:
            q = q * (self.lr / g.norm(dim=1, keepdim=True).clamp_min(1e-10))
        for s, y, rho, a in zip(self.s, self.y, rhos, reversed(alphas)):
            b = rho * (y * q).sum(1, keepdim=True)
            q = q + s * (a - b)
        return -q

    def step(self, x: Tensor, f: Callable[[Tensor], Tensor], loss: Tensor, grad: Tensor) -> tuple[Tensor, int]:
        """One iteration from ``x`` with known ``loss [B]`` and ``grad [B, D]``; returns (new x, evaluations)."""
        d = self.direction(grad)
        slope = (grad * d).sum(1)
        # a non-descent direction (stale curvature): fall back to steepest descent for that row
        bad = slope >= 0
        d = torch.where(bad[:, None], -grad * (self.lr / grad.norm(dim=1, keepdim=True).clamp_min(1e-10)), d)
        slope = (grad * d).sum(1)
        step = torch.ones_like(loss)
        accepted = torch.zeros_like(loss, dtype=torch.bool)
        new_x = x
        evals = 0
        with torch.no_grad():
            for _ in range(self.max_backtracks + 1):
                trial = x + step[:, None] * d
                trial_loss = f(trial)
                evals += 1
                ok = (trial_loss <= loss + self.c1 * step * slope) & ~accepted
                new_x = torch.where(ok[:, None], trial, new_x)
                accepted = accepted | ok
                if bool(accepted.all()):  # one host sync per trial: line searches need decisions
                    break
                step = torch.where(accepted, step, step * 0.5)
        # rows that never satisfied Armijo stay where they are (x unchanged)
        return new_x, evals

    def update(self, s: Tensor, y: Tensor) -> None:
        """Store a curvature pair (rows with non-positive curvature are zeroed so they do nothing)."""
        ok = ((s * y).sum(1, keepdim=True) > 1e-10).float()
        self.s.append(s * ok)
        self.y.append(y * ok + (1 - ok))  # y=1 where skipped keeps rho finite, s=0 makes the pair inert
        if len(self.s) > self.m:
            self.s.pop(0)
            self.y.pop(0)
