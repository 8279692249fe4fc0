"""Which run-time settings make PGD-40 adversarial training fastest on this device (seconds; not a test).

Times graphed PGD-40 ℓ∞ training steps of Madry's CNN at the full profile's batch (128) for each memory
format (channels_last or not) and cuDNN benchmark mode (on or off), then prints the fastest as shell
``export`` lines for ``advlib.runtime``'s switches. The settings change only floating-point summation order.

    eval "$(python benchmarks/step_probe.py --device cuda --json $OUT/probe.json | tail -2)"
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from advlib import load_mnist, runtime
from advlib.models import MadryCNN
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec
from advlib.training import MadryAT, fit


def time_steps(device: torch.device, channels_last: bool, benchmark: bool, steps: int, batch: int) -> float:
    """Seconds per training step (after a warm-up that records the CUDA graph)."""
    os.environ[runtime.CHANNELS_LAST_ENV] = "1" if channels_last else "0"
    os.environ[runtime.CUDNN_BENCHMARK_ENV] = "1" if benchmark else "0"
    runtime.configure(device)
    x, y = load_mnist("train", limit=batch * steps, device=device)
    x = x.contiguous(memory_format=runtime.memory_format())
    torch.manual_seed(0)
    model = MadryCNN(init="torch").to(device).to(memory_format=runtime.memory_format())
    defense = MadryAT("linf", {"linf": AttackSpec.pgd("linf")})
    spec = TrainSpec(epochs=1, batch_size=batch)
    fit(model, x[:batch * 3], y[:batch * 3], defense, spec, seed=0, quiet=True)  # warm-up and graph capture
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    start = time.perf_counter()
    fit(model, x, y, defense, spec, seed=0, quiet=True)
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else runtime.default_device()
    timings = {}
    for cl in (True, False):
        for bench in ((False, True) if device.type == "cuda" else (False,)):
            timings[f"channels_last={int(cl)},cudnn_benchmark={int(bench)}"] = time_steps(
                device, cl, bench, args.steps, args.batch)
            print(f"channels_last={cl} cudnn_benchmark={bench}: "
                  f"{1000 * list(timings.values())[-1]:.1f} ms per PGD-40 training step", flush=True)
    best = min(timings, key=timings.get)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": runtime.device_name(device), "batch": args.batch, "steps_timed": args.steps,
                       "seconds_per_step": timings, "best": best}, fh, indent=1)
    cl, bench = (int(part.split("=")[1]) for part in best.split(","))
    print(f"export {runtime.CHANNELS_LAST_ENV}={cl}")
    print(f"export {runtime.CUDNN_BENCHMARK_ENV}={bench}")


if __name__ == "__main__":
    main()
