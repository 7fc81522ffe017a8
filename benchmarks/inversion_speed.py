"""Speed of the optimisation engine, per generator, on a shared machine.

    python benchmarks/inversion_speed.py [--quick] [--threads 1] [--only stylegan2] [--device cpu]
                                         [--modconv auto|fused|nonfused] [--malloc reuse|system]

Prints one JSON object. For each generator (the two offline zoo models and a random-weight 256 px
StyleGAN2 in W+), with the default (auto) settings of ``optimize`` for that generator:

- ``seconds_per_step``: one step of ``invertkit.invert(..., method="optimize", restarts=1)`` at
  batch 4, as the difference of a long and a short run over their step difference (so set-up, the
  final render and scoring drop out);
- ``overhead_ratio``: that over one generator + objective forward+backward at the same batch
  (1.0: the loop adds nothing, not even the optimiser update);
- ``plain_loop_ratio``: that over a plain 20-line ``torch.optim.Adam`` loop on the same objective;
- ``minimal_loop_ratio``: that over the least a loop with an Adam update can cost: the forward and
  backward above, then one call of PyTorch's fused Adam kernel (``torch._fused_adam_``) and nothing
  else (so ``overhead_ratio / minimal_loop_ratio`` is what the update itself costs);
- ``throughput``: images x steps per second at batch 1, 4, 8, 16 (``per_image_gain_8_over_1``:
  batch 8's over batch 1's);
- ``roofline``: FLOPs of one image's generator + objective forward+backward (counted by
  ``torch.utils.flop_counter``), the FLOP/s the step achieves, the machine's matrix-multiply limit
  (a 2048^3 float32 matmul at the same thread count) and their ratio (``fraction_of_matmul_limit``;
  0.5 means a step is 2x the time the matmul limit allows);
- ``peak_memory_mb``: peak resident memory of the process after that generator (cumulative), or
  peak CUDA memory allocated.

``--modconv`` picks StyleGAN2's modulated convolution: ``auto`` (the default: NVIDIA's fused grouped
form on CUDA, the non-fused channels-last form on CPU), ``fused`` or ``nonfused`` on any device, so
both forms can be timed on a GPU (and on CPU). ``--malloc reuse`` (the default) keeps freed memory
for reuse as the ``invertkit`` program does (:func:`invertkit.allocator.reuse_freed_memory`);
``system`` leaves glibc's allocator as it is, as a plain ``import invertkit`` does.

Timing: on CPU the clock is the process's CPU time (``time.process_time``) at a fixed thread count,
so other sessions on a shared machine do not inflate it (wall time would); on CUDA it is wall time
after a synchronise. Each configuration is measured ``--rounds`` times, interleaved (ours, forward+
backward, plain loop, ours, ...), and the minimum is kept. Works against older invertkit trees too
(public API only), which is how the before/after rows in the README were made.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import invertkit
from invertkit.allocator import reuse_freed_memory
from invertkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from invertkit.methods.optimize import auto_defaults
from invertkit.objectives.combined import Objective

DEVICE = "cpu"
# --modconv -> (SynthesisNetwork.fused_modconv, .channels_last); None: the device's default
MODCONV: dict[str, tuple[bool | None, bool | None]] = {"auto": (None, None), "fused": (True, False), "nonfused": (False, None)}


def clock() -> float:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def timed(fn: Callable[[], object]) -> float:
    start = clock()
    fn()
    return clock() - start


def _start(G, targets: torch.Tensor, space: str) -> torch.Tensor:
    latent = G.mean_latent(space).repeat(targets.shape[0], *[1] * (G.mean_latent(space).dim() - 1)).clone()
    return (latent + 0.1 * torch.randn_like(latent)).requires_grad_(True)


def plain_loop(G, targets: torch.Tensor, space: str, steps: int, objective: Objective) -> float:
    """The loop a user would write: Adam on the latent, the same objective; seconds per step."""
    prepared = objective.prepare(targets)
    latent = _start(G, targets, space)
    opt = torch.optim.Adam([latent], lr=0.1)

    def run() -> None:
        for _ in range(steps):
            img = G.synthesize(latent, space)
            loss = objective(img, prepared, G=G, latent=latent, space=space)[0].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return timed(run) / steps


def minimal_loop(G, targets: torch.Tensor, space: str, steps: int, objective: Objective) -> float:
    """Forward, backward, one fused Adam kernel call: the floor of any Adam loop; seconds per step."""
    prepared = objective.prepare(targets)
    latent = _start(G, targets, space)
    data, m, v = latent.detach(), torch.zeros_like(latent), torch.zeros_like(latent)
    counts = torch.arange(1, steps + 1, dtype=torch.float32, device=latent.device).unbind()

    def run() -> None:
        for k in range(steps):
            img = G.synthesize(latent, space)
            loss = objective(img, prepared, G=G, latent=latent, space=space)[0].sum()
            (grad,) = torch.autograd.grad(loss, [latent])
            torch._fused_adam_([data], [grad], [m], [v], [], [counts[k]], lr=0.1, beta1=0.9, beta2=0.999,
                               weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)

    return timed(run) / steps


def fwd_bwd(G, targets: torch.Tensor, space: str, objective: Objective, repeats: int) -> float:
    """One generator + objective forward and backward w.r.t. the latent; seconds."""
    prepared = objective.prepare(targets)
    latent = G.sample_latent(targets.shape[0], space, seed=0).requires_grad_(True)

    def once() -> None:
        img = G.synthesize(latent, space)
        objective(img, prepared, G=G, latent=latent, space=space)[0].sum().backward()

    once()
    return timed(lambda: [once() for _ in range(repeats)]) / repeats


def flops_per_image(G, targets: torch.Tensor, space: str, objective: Objective) -> float:
    prepared = objective.prepare(targets)
    latent = G.sample_latent(targets.shape[0], space, seed=0).requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        img = G.synthesize(latent, space)
        objective(img, prepared, G=G, latent=latent, space=space)[0].sum().backward()
    return counter.get_total_flops() / targets.shape[0]


def ours(G, targets: torch.Tensor, space: str, steps: int) -> float:
    """Seconds per ``optimize`` step: (run of ``steps`` - run of 1 step) / (steps - 1), after one
    untimed run of 1 step at this batch: the first run at a new, larger batch grows the heap, and
    faulting those pages in (seconds at batch 16) would otherwise land in one of the two runs."""
    def run(n: int) -> float:
        return timed(lambda: invertkit.invert(G, targets, space=space, steps=n, seed=0, restarts=1))

    run(1)
    return (run(steps) - run(1)) / (steps - 1)


def matmul_limit(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix product on this device and thread count (best of ``repeats``)."""
    a = torch.randn(n, n, device=DEVICE)
    b = torch.randn(n, n, device=DEVICE)
    a @ b
    return 2 * n**3 / min(timed(lambda: a @ b) for _ in range(repeats))


def peak_mb() -> float:
    if DEVICE.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(G, space: str, steps: int, batches: list[int], rounds: int, limit: float) -> dict[str, object]:
    objective = Objective.build(str(auto_defaults(G)["loss"]), device=DEVICE)
    with torch.no_grad():
        pool = G.synthesize(G.sample_latent(max(batches), space, seed=1), space).clamp(-1, 1)
    b4 = pool[: min(4, pool.shape[0])]
    invertkit.invert(G, b4[:1], space=space, steps=2, restarts=1)  # warm-up: feature networks, caches
    times: dict[str, list[float]] = {"ours": [], "fwd_bwd": [], "plain": [], "minimal": []}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits all four alike
        times["ours"].append(ours(G, b4, space, steps))
        times["fwd_bwd"].append(fwd_bwd(G, b4, space, objective, max(2, steps // 4)))
        times["plain"].append(plain_loop(G, b4, space, steps, objective))
        times["minimal"].append(minimal_loop(G, b4, space, steps, objective))
    best = {k: min(v) for k, v in times.items()}
    per_step = {b: (best["ours"] if b == b4.shape[0] else ours(G, pool[:b], space, max(2, steps // 2)))
                for b in batches}
    throughput = {str(b): b / t for b, t in per_step.items()}
    flops = flops_per_image(G, b4, space, objective)
    achieved = flops * b4.shape[0] / best["ours"]
    out: dict[str, object] = {
        "space": space,
        "loss": auto_defaults(G)["loss"],
        "batch": b4.shape[0],
        "steps": steps,
        "seconds_per_step": best["ours"],
        "fwd_bwd_seconds": best["fwd_bwd"],
        "plain_loop_seconds_per_step": best["plain"],
        "overhead_ratio": best["ours"] / best["fwd_bwd"],
        "plain_loop_ratio": best["ours"] / best["plain"],
        "minimal_loop_seconds_per_step": best["minimal"],
        "minimal_loop_ratio": best["ours"] / best["minimal"],
        "throughput": throughput,
        "roofline": {
            "gflop_per_image_step": flops / 1e9,
            "achieved_gflops": achieved / 1e9,
            "matmul_limit_gflops": limit / 1e9,
            "fraction_of_matmul_limit": achieved / limit,
        },
        "peak_memory_mb": peak_mb(),
    }
    if "1" in throughput and "8" in throughput:
        out["per_image_gain_8_over_1"] = throughput["8"] / throughput["1"]
    print(json.dumps({G.name: out}), file=sys.stderr, flush=True)  # progress: a long run that is cut off keeps its rows
    return out


def main() -> None:
    global DEVICE
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/data", help="the real-data folder (the MNIST GAN\'s weights)")
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds (a few minutes on 1 core)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (stated in the output)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved repetitions (default 2 quick, 3 full)")
    ap.add_argument("--batches", default="1,4,8,16", help="batches for the throughput figures")
    ap.add_argument("--only", choices=("dcgan", "mnist", "stylegan2"), action="append", help="run only these generators")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modconv", choices=tuple(MODCONV), default="auto", help="StyleGAN2's modulated convolution form")
    ap.add_argument("--malloc", choices=("reuse", "system"), default="reuse", help="keep freed memory for reuse, as the invertkit program does")
    args = ap.parse_args()
    applied = reuse_freed_memory() if args.malloc == "reuse" else False
    DEVICE = args.device
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (2 if args.quick else 3)
    steps = 30 if args.quick else 100
    only = set(args.only or ("dcgan", "mnist", "stylegan2"))
    limit = matmul_limit()
    out: dict[str, object] = {"device": args.device, "torch_threads": torch.get_num_threads(), "malloc": args.malloc, "malloc_applied": applied,
                              "clock": "wall" if DEVICE.startswith("cuda") else "process CPU time",
                              "matmul_limit_gflops": limit / 1e9}
    small = [int(b) for b in args.batches.split(",")]
    if "dcgan" in only:
        out["dcgan-digiface64"] = bench(invertkit.load_generator("dcgan-digiface64", DEVICE), "z", steps, small, rounds, limit)
    if "mnist" in only:
        try:
            G = invertkit.load_generator("mnist-mlp-gan", DEVICE, weights=Path(args.shared) / "mnist_mlp_gan" / "generator.ckpt")
            out["mnist-mlp-gan"] = bench(G, "z", steps * 10, small, rounds, limit)  # 0.7 ms steps: many, or the clock's grain shows
        except invertkit.CheckpointError as exc:
            out["mnist-mlp-gan"] = f"skipped: {exc}"
    if "stylegan2" in only:
        cfg = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=256, channel_base=16384, channel_max=512)
        sg = StyleGAN2Generator(cfg, name="stylegan2-256-random").to(DEVICE)
        sg.net.synthesis.fused_modconv, sg.net.synthesis.channels_last = MODCONV[args.modconv]
        out["stylegan2_modconv"] = args.modconv
        out["stylegan2-256-random"] = bench(sg, "w+", 3 if args.quick else 6, small, rounds, limit)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
