"""Throughput benchmark of advlib on whatever device it runs; writes a JSON record (not a test).

Measures: input-gradient throughput of Madry's CNN (fp32, channels_last, bf16 autocast); PGD-40 ℓ∞ with advlib
against torchattacks 3.5.1 on the same model, data and device (as a ratio); one epoch of PGD-40 adversarial
training on 60k images (on a CPU extrapolated from a measured number of steps, and labelled so); the achieved
FLOP rate (55.5 MFLOP per input gradient, 82 MFLOP per training example) against the device's measured matmul
rate; and whether channels_last / bf16 keep a trained model's PGD accuracy within 0.3 points of fp32.

    python benchmarks/bench.py --out results/bench/<device>.json [--n-pgd 10000] [--train-steps 20]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

import advlib
from advlib import graphs, load_mnist, records, run_attack, runtime
from advlib.attacks import default_batch_size
from advlib.models import MadryCNN
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec
from advlib.reproduce import trained_model
from advlib.training import MadryAT, fit

GRAD_MFLOP, TRAIN_MFLOP = 55.5, 82.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, min_seconds: float = 2.0) -> tuple[float, int]:
    """Seconds per call (after one warm-up call), averaged over ≥ min_seconds."""
    fn()
    sync(device)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    sync(device)
    return (time.perf_counter() - start) / calls, calls


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Achieved TFLOP/s of a square matmul (4096 on GPU, 1024 on CPU)."""
    n = 4096 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds, _ = timed(lambda: a @ b, device, 1.0)
    return 2 * n ** 3 / seconds / 1e12


def gradient_throughput(model, x, y, device) -> float:
    def step():
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xx), y, reduction="sum"), xx)
        return g
    seconds, _ = timed(step, device)
    return x.shape[0] / seconds


class _no_tf32:
    """Strict fp32 convolutions and matmuls inside the block (cuDNN uses TF32 by default on Ampere and later)."""

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def precision_check(trained, xe, ye, attacks: dict, device, batch: int, label: str) -> dict:
    """Robust accuracy of ``trained`` under each attack computed in fp32, fp32 + channels_last and bf16 +
    channels_last (and strict fp32 without TF32 on a GPU), and whether each stays within 0.3 points of fp32."""
    plain, last = copy.deepcopy(trained).to(memory_format=torch.contiguous_format), copy.deepcopy(trained)
    runtime.channels_last(last)
    x_last = xe.contiguous(memory_format=torch.channels_last)
    variants = {"fp32": (plain, xe.contiguous()), "fp32_channels_last": (last, x_last),
                "bf16_channels_last": (runtime.Autocast(last), x_last)}
    out: dict = {"model": label, "n": int(xe.shape[0]), "accuracy": {}, "seconds": {}, "within_0.3_points": {}}
    for attack, spec in attacks.items():
        accs, secs = {}, {}
        for name, (mod, xx) in variants.items():
            g = torch.Generator(device=device).manual_seed(0)
            start = time.perf_counter()
            xa = run_attack(spec, mod, xx, ye, generator=g, batch_size=batch)
            secs[name] = time.perf_counter() - start
            with torch.no_grad():
                accs[name] = float((plain(xa).argmax(1) == ye).float().mean())
        if device.type == "cuda":  # the fp32 rows above let cuDNN use TF32 convolutions (PyTorch's default)
            with _no_tf32():
                g = torch.Generator(device=device).manual_seed(0)
                xa = run_attack(spec, plain, xe.contiguous(), ye, generator=g, batch_size=batch)
                with torch.no_grad():
                    accs["fp32_no_tf32"] = float((plain(xa).argmax(1) == ye).float().mean())
        out["accuracy"][attack], out["seconds"][attack] = accs, secs
        out["within_0.3_points"][attack] = {k: abs(v - accs["fp32"]) * 100 <= 0.3 for k, v in accs.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--n-pgd", type=int, default=10_000, help="test images for the PGD-40 comparison")
    parser.add_argument("--train-steps", type=int, default=0, help="AT steps to time (0: a whole epoch)")
    parser.add_argument("--check-profile", default="quick", help="profile of the trained model for the precision check")
    parser.add_argument("--check-out", default=None, help="results folder whose checkpoints hold that model "
                        "(default: the per-user cache; trained there if missing)")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else runtime.default_device()
    runtime.tune_allocator()
    torch.manual_seed(0)
    rec: dict = {"device": runtime.device_name(device), "torch_version": torch.__version__,
                 "advlib_version": advlib.__version__, "git_revision": records.git_revision(),
                 "host": platform.node(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    batch = default_batch_size(device)

    # 1. input-gradient throughput
    xt, yt = load_mnist("test", device=device)
    model = MadryCNN(init="torch").to(device).eval().requires_grad_(False)
    x, y = xt[:batch], yt[:batch]
    thr = {"fp32": gradient_throughput(model, x, y, device)}
    m_cl, x_cl = runtime.channels_last(MadryCNN(init="torch").to(device).eval().requires_grad_(False), x)
    m_cl.load_state_dict(model.state_dict())
    thr["fp32_channels_last"] = gradient_throughput(m_cl, x_cl, y, device)
    thr["bf16_channels_last"] = gradient_throughput(runtime.Autocast(m_cl), x_cl, y, device)
    rec["input_gradients_per_s"] = thr
    print("input gradients/s:", {k: round(v) for k, v in thr.items()}, flush=True)

    # 2. PGD-40 ℓ∞ (ε=0.3, α=0.01, random start): advlib vs torchattacks, same model, data, device and chunking
    import torchattacks
    n = min(args.n_pgd, xt.shape[0])
    xp, yp = xt[:n].contiguous(memory_format=torch.channels_last), yt[:n]
    gen = torch.Generator(device=device).manual_seed(0)
    sync(device)
    t0 = time.perf_counter()
    spec = AttackSpec.pgd("linf")
    adv = run_attack(spec, m_cl, xp, yp, generator=gen, batch_size=batch)
    sync(device)
    t_advlib = time.perf_counter() - t0
    atk = torchattacks.PGD(m_cl, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=spec.random_start)
    t0 = time.perf_counter()
    adv_ta = torch.cat([atk(xp[i:i + batch], yp[i:i + batch]) for i in range(0, n, batch)])
    sync(device)
    t_ta = time.perf_counter() - t0
    rec["pgd40_linf"] = {"n": n, "batch": batch, "advlib_s": t_advlib, "torchattacks_s": t_ta,
                         "speedup_vs_torchattacks": t_ta / t_advlib,
                         "advlib_grads_per_s": n * 40 / t_advlib,
                         "max_linf": float((adv - xp).abs().max()), "max_linf_torchattacks": float((adv_ta - xp).abs().max())}
    print("PGD-40:", {k: round(v, 3) if isinstance(v, float) else v for k, v in rec["pgd40_linf"].items()}, flush=True)

    # 3. one epoch of PGD-40 ℓ∞ adversarial training on 60k (timed over train_steps batches on a CPU); on a GPU
    #    also without CUDA-graph replay of the attack (advlib.graphs), timed over 60 batches and labelled so
    xs, ys = load_mnist("train", device=device)
    xs = xs.contiguous(memory_format=torch.channels_last)
    bs = 128
    attack = {"linf": AttackSpec.pgd("linf")}

    def at_epoch(steps: int) -> dict:
        sub = min(xs.shape[0], steps * bs)
        net = runtime.channels_last(MadryCNN(init="torch").to(device))[0]
        sync(device)
        t0 = time.perf_counter()
        fit(net, xs[:sub], ys[:sub], MadryAT("linf", attack), TrainSpec(epochs=1, batch_size=bs), seed=0, quiet=True)
        sync(device)
        seconds = time.perf_counter() - t0
        return {"examples_timed": sub, "batch": bs, "seconds_timed": seconds,
                "epoch_seconds_60k": seconds * xs.shape[0] / sub, "extrapolated": sub < xs.shape[0]}

    rec["pgd40_at_epoch"] = at_epoch(args.train_steps or (xs.shape[0] + bs - 1) // bs)
    rec["pgd40_at_epoch"]["cuda_graphs"] = graphs.enabled(device)
    epoch_s = rec["pgd40_at_epoch"]["epoch_seconds_60k"]
    print("AT epoch:", rec["pgd40_at_epoch"], flush=True)
    if graphs.enabled(device):
        os.environ[graphs.ENV] = "0"
        rec["pgd40_at_epoch_eager"] = at_epoch(60)
        del os.environ[graphs.ENV]
        print("AT epoch, eager:", rec["pgd40_at_epoch_eager"], flush=True)

    # 4. FLOP rates
    fp32 = matmul_rate(device, torch.float32)
    bf16 = matmul_rate(device, torch.bfloat16)
    best_grad = max(thr.values())
    rec["flops"] = {"matmul_tflops_fp32": fp32, "matmul_tflops_bf16": bf16,
                    "attack_tflops": best_grad * GRAD_MFLOP / 1e6, "training_tflops": 60_000 / epoch_s * 41 * GRAD_MFLOP / 1e6
                    + 60_000 / epoch_s * TRAIN_MFLOP / 1e6,
                    "attack_fraction_of_bf16_peak": best_grad * GRAD_MFLOP / 1e6 / bf16}
    print("FLOPs:", {k: round(v, 4) for k, v in rec["flops"].items()}, flush=True)

    # 5. precision check on a trained model: channels_last and bf16 vs fp32 PGD accuracy (must stay within 0.3 points)
    trained = trained_model(args.check_profile, "madry-linf", out=args.check_out, device=device).eval()
    m = min(n, 2000)
    rec["precision_check"] = precision_check(trained, xt[:m], yt[:m], {"PGD-linf": AttackSpec.pgd("linf")}, device,
                                             batch, f"{args.check_profile}/madry-linf")
    print("precision:", rec["precision_check"], flush=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
