"""Return types of the samplers and inversions."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

StepHook = Callable[[int, Tensor], Tensor]
"""Called by a sampler after its sampling step j (0 = noisiest) with the new state ``x [N, ...]``; returns
the state to go on from (attention control's local blending; step counting). Two-sequence samplers
call it once per sequence with the same j."""


class Trajectory(NamedTuple):
    """End point ``x`` (shape of the input) and ``nfe``, the number of model evaluations used."""

    x: Tensor
    nfe: int


class PairTrajectory(NamedTuple):
    """End state of a two-sequence method (EDICT, BDIA, coupled flow) and its ``nfe``.

    EDICT / coupled flow: the two coupled sequences ``x`` and ``y``. BDIA: ``x`` the last level
    reached and ``y`` the level before it (BDIA's state is two consecutive levels).
    """

    x: Tensor
    y: Tensor
    nfe: int
