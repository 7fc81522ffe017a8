"""Speed of diffusion sampling and inversion: seconds per step, and the loop's overhead over the network.

    python benchmarks/diffusion_speed.py [--batch 16] [--steps 50] [--repeats 3] [--threads N] [--device cuda]

On the shipped ``diffusion-faces32`` (prompt "photo"), float32, guidance 1 and 7.5:
- ``network``: one forward pass of the UNet on the batch (what a step cannot avoid);
- invertkit's DDIM sampling and DDIM inversion, and diffusers' own ``DDIMScheduler`` loop on the same
  network, each in seconds per step and as ``overhead = step time / (evaluations per step x network
  time) - 1`` (the cost of everything that is not the network);
- images per second of a 50-step sampling run, and the process's peak resident memory (on CUDA also
  the peak memory torch allocated on the device);
- at guidance 7.5, classifier-free guidance as one call on a doubled batch (the default) against two
  calls per step (``Guidance(batched=False)``): ``cfg_batched_speedup`` = two-call step time / batched
  step time (both count 2 evaluations per step).

Prints JSON. Best of ``--repeats`` runs, wall clock (on CUDA after a synchronise).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

import invertkit
from invertkit.diffusion.ddim import ddim_invert, ddim_sample

DEVICE = torch.device("cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:K]")
    args = ap.parse_args()
    from diffusers import DDIMScheduler

    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    G = invertkit.load_generator("diffusion-faces32", device=DEVICE)
    x = G.sample_latent(args.batch, seed=0)
    cond, t = G.cond("photo"), torch.full((args.batch,), 500.0, device=DEVICE)
    den = G.denoiser()
    net_s = best(lambda: den(x, t, cond), args.repeats * 5)
    out = {"model": G.name, "device": str(DEVICE), "batch": args.batch, "steps": args.steps, "threads": torch.get_num_threads(),
           "network_seconds": net_s}
    grid = G.grid(args.steps)
    for scale in (1.0, 7.5):
        g = G.guidance("photo", scale)
        per = 1 if scale == 1.0 else 2
        sample_s = best(lambda: ddim_sample(den, x, grid, guidance=g), args.repeats) / args.steps
        invert_s = best(lambda: ddim_invert(den, x, grid, guidance=g), args.repeats) / args.steps
        sched = DDIMScheduler.from_config(G.scheduler)

        def diffusers_loop() -> None:
            sched.set_timesteps(args.steps)
            y = x
            emb = cond.expand(args.batch, -1, -1)
            null = G.cond("").expand(args.batch, -1, -1)
            for step_t in sched.timesteps:
                tt = step_t.expand(args.batch).to(DEVICE)
                e = G.network(y, tt, encoder_hidden_states=emb).sample
                if scale != 1.0:
                    u = G.network(y, tt, encoder_hidden_states=null).sample
                    e = u + scale * (e - u)
                y = sched.step(e, step_t, y).prev_sample

        ref_s = best(diffusers_loop, args.repeats) / args.steps
        two_calls = {}
        if scale != 1.0:
            unbatched = dataclasses.replace(g, batched=False)
            two_s = best(lambda: ddim_sample(den, x, grid, guidance=unbatched), args.repeats) / args.steps  # noqa: B023
            two_calls = {"sample_two_calls_seconds_per_step": two_s, "cfg_batched_speedup": two_s / sample_s}
        out[f"guidance_{scale:g}"] = {
            "sample_seconds_per_step": sample_s, "sample_overhead": sample_s / (per * net_s) - 1,
            "invert_seconds_per_step": invert_s, "invert_overhead": invert_s / (per * net_s) - 1,
            "diffusers_ddim_seconds_per_step": ref_s, "diffusers_overhead": ref_s / (per * net_s) - 1,
            "images_per_second": args.batch / (sample_s * args.steps),
            **two_calls,
        }
    import resource

    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    if DEVICE.type == "cuda":
        out["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated(DEVICE) / 2**20
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
