"""The progress channel (``invertkit.progress``): per-step updates from the methods, the terminal
reporter's bar and plain lines, and results that do not depend on whether anyone watches."""

from __future__ import annotations

import io

import pytest
import torch

import invertkit
from invertkit.methods import invert
from invertkit.progress import QUIET, StepUpdate, track
from invertkit.progress.terminal import TerminalReporter


class Recorder:
    """A reporter that wants every step (``due`` always true) and records what it is shown."""

    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.updates: list[StepUpdate] = []
        self.ended: list[StepUpdate] = []

    def start(self, label: str, total: int, unit: str = "step") -> None:
        self.started.append((label, total))

    def due(self, step: int, total: int) -> bool:
        return True

    def update(self, update: StepUpdate) -> None:
        self.updates.append(update)

    def end(self, update: StepUpdate) -> None:
        self.ended.append(update)

    def steps(self, label: str) -> list[int]:
        return [u.step for u in self.updates if u.label == label]


def _images(G, n: int = 2, seed: int = 3) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesize(G.sample_latent(n, G.spaces[0], seed=seed), G.spaces[0])


def test_optimize_reports_every_step_of_both_phases_with_its_loss(tiny_mlp):
    rec = Recorder()
    invert(tiny_mlp, _images(tiny_mlp), "optimize", steps=20, restarts=2, restart_steps=4, progress=rec)
    assert rec.started == [("2 starts (adam)", 4), ("adam", 16)]
    assert rec.steps("2 starts (adam)") == [1, 2, 3, 4]
    assert rec.steps("adam") == list(range(1, 17))
    assert all(u.metric == "loss" and u.value is not None and u.value >= 0 for u in rec.updates)
    assert [(e.label, e.step, e.total) for e in rec.ended] == [("2 starts (adam)", 4, 4), ("adam", 16, 16)]


def test_results_are_bit_identical_with_and_without_progress(tiny_mlp):
    images = _images(tiny_mlp)
    for method, opts in (("optimize", {"steps": 12, "restarts": 2}), ("plain", {"steps": 10}),
                         ("optimize", {"steps": 6, "optimizer": "lbfgs", "restarts": 1})):
        quiet = invert(tiny_mlp, images, method, **opts)
        watched = invert(tiny_mlp, images, method, progress=Recorder(), **opts)
        assert torch.equal(quiet.latents, watched.latents), method
        assert torch.equal(quiet.history["loss"], watched.history["loss"]), method


def test_early_stop_ends_the_phase_before_its_total(tiny_mlp):
    rec = Recorder()
    invert(tiny_mlp, _images(tiny_mlp), "optimize", steps=200, restarts=1, target_psnr=0.0, check_every=5, progress=rec)
    (end,) = rec.ended
    assert end.step == 5 < end.total == 200


def test_pti_reports_its_pivot_then_each_image_tuning(tiny_mlp):
    rec = Recorder()
    invert(tiny_mlp, _images(tiny_mlp), "pti", pivot="optimize", pivot_steps=6, steps=5, pivot_options="restarts=1",
           target_perceptual=None, progress=rec)
    labels = [label for label, _ in rec.started]
    assert labels == ["pivot (optimize): adam", "tuning image 1/2", "tuning image 2/2"]
    assert rec.steps("tuning image 2/2") == [1, 2, 3, 4, 5]


def test_cma_reports_generations(tiny_mlp):
    rec = Recorder()
    invert(tiny_mlp, _images(tiny_mlp, 1), "cma", steps=3, popsize=4, progress=rec)
    assert rec.steps("cma-es generations") == [1, 2, 3]


@pytest.mark.parametrize("method", ["ddim", "edict", "bdia"])
def test_diffusion_methods_report_inversion_and_reconstruction_steps(method):
    G = invertkit.load_generator("analytic:diffusion")
    images = _images(G, 2)
    rec = Recorder()
    watched = invert(G, images, method, steps=6, progress=rec)
    assert rec.started == [("invert", 6), ("reconstruct", 6)]
    assert rec.steps("invert") == [1, 2, 3, 4, 5, 6]  # two-sequence methods report each step once
    assert rec.steps("reconstruct") == [1, 2, 3, 4, 5, 6]
    quiet = invert(G, images, method, steps=6)
    assert torch.equal(quiet.latents, watched.latents)


def test_flow_inversion_reports_its_steps():
    G = invertkit.load_generator("analytic:flow")
    rec = Recorder()
    invert(G, _images(G, 1), "flow-midpoint", steps=5, progress=rec)
    assert rec.steps("invert") == [1, 2, 3, 4, 5] and rec.steps("reconstruct") == [1, 2, 3, 4, 5]


def test_quiet_phase_does_nothing_and_values_are_read_only_when_due():
    assert track(None, "x", 10) is QUIET
    QUIET.step(torch.ones(3))
    QUIET.end()

    class Rarely(Recorder):
        def due(self, step: int, total: int) -> bool:
            return step == total

    reads = []
    rec = Rarely()
    phase = track(rec, "p", 4, "loss")
    for k in range(4):
        phase.step(lambda k=k: reads.append(k) or float(k))
    phase.end()
    assert reads == [3, 3]  # the due update and the end read the latest value; earlier ones never
    assert rec.updates == [StepUpdate("p", 4, 4, "loss", 3.0)]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_when_not_a_terminal_at_most_every_tenth_and_at_the_end():
    out, clock = io.StringIO(), _Clock()
    rep = TerminalReporter(out, tty=False, plain_every=10.0, plain_gap=0.0, clock=clock)
    rep.set_context("images 1-8 of 12")
    phase = track(rep, "adam", 100, "loss")
    for _ in range(100):
        clock.now += 0.01
        phase.step(torch.tensor([0.5, 0.25]))
    phase.end()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # 10%, 20%, ... 90%, and the end line (100%)
    assert lines[0].startswith("invertkit: images 1-8 of 12, adam: step 10/100 (10%), loss 0.375")
    assert "ETA" in lines[0] and "step 100/100" in lines[-1] and lines[-1].endswith("done")


def test_a_stream_that_is_no_terminal_gets_plain_lines():
    assert not TerminalReporter(io.StringIO()).tty


def test_short_phases_get_only_their_end_line():
    out, clock = io.StringIO(), _Clock()
    rep = TerminalReporter(out, tty=False, clock=clock)
    phase = track(rep, "adam", 100, "loss")
    for _ in range(100):
        clock.now += 0.005  # half a second in all: no 10% line (each waits a second after the last)
        phase.step(torch.tensor([0.5]))
    phase.end()
    assert out.getvalue().count("\n") == 1 and "step 100/100" in out.getvalue()


def test_plain_lines_also_every_interval_on_slow_phases():
    out, clock = io.StringIO(), _Clock()
    rep = TerminalReporter(out, tty=False, plain_every=10.0, plain_fraction=0.5, clock=clock)
    phase = track(rep, "tuning", 1000)
    for _ in range(20):
        clock.now += 6.0
        phase.step()
    assert len(out.getvalue().splitlines()) == 10  # every other step passes 10 s; 50% is far away


def test_terminal_bar_shows_steps_and_value():
    out, clock = io.StringIO(), _Clock()
    rep = TerminalReporter(out, tty=True, interval=0.0, clock=clock)
    phase = track(rep, "adam", 50, "loss")
    for _ in range(50):
        clock.now += 1.0
        phase.step(torch.tensor([0.125]))
    text = out.getvalue()
    assert "adam" in text and "/50" in text and "loss 0.125" in text
    phase.end()
