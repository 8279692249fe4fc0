"""Wall time of the S-O attack (40 steps × 20 Gaussian draws) on the released TRADES SmallCNN: advlib or a plain loop.

Each run times one implementation in its own process, so the two can be compared as whole-process wall times,
paired and interleaved (issue 24, item 4a):

    python benchmarks/so_speed.py --impl advlib --norm linf [--n 200]
    python benchmarks/so_speed.py --impl loop --norm linf [--n 200]

``advlib`` calls ``advlib.second_order`` as a user's own script would (no set-up beforehand). ``loop`` is written
here in the shape of the authors' S-O scripts (Bai-Li/TRADES ``pgd_attack_mnist_{linf,l2}.py``, docs/protocols.md
§6.1): batches of 200 images; per step one forward/backward of the batch-mean cross-entropy per Gaussian draw; the
model in eval mode with its parameters left trainable, so that, as in theirs, every backward also fills the
parameter gradients (``--frozen`` turns that off). It takes the authors' σ and step (``advlib.specs``) and, like
advlib's default S-O, clamps to [0,1] after every step. The two make different random draws, so their robust
accuracies agree within a few points, not exactly. Prints the attack's wall time and the robust accuracy.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import advlib
from advlib import data, models, specs


def so_loop(model: nn.Module, x: Tensor, y: Tensor, norm: str, *, batch: int = 200) -> Tensor:
    """S-O as a plain loop: per batch of ``batch`` images and step, one forward/backward per Gaussian draw."""
    spec = specs.AttackSpec.so(norm)  # the authors' σ, ε, steps, draws and step size
    out = []
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        x_adv = xb.clone()
        for _ in range(spec.steps):
            total = torch.zeros_like(xb)
            for _ in range(spec.samples):
                noisy = (x_adv + spec.sigma * torch.randn_like(xb)).requires_grad_(True)
                F.cross_entropy(model(noisy), yb).backward()
                total += noisy.grad
            g = total / spec.samples
            if norm == "linf":
                x_adv = torch.min(torch.max(x_adv + spec.step_size * g.sign(), xb - spec.eps), xb + spec.eps)
            else:
                g = g / g.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
                delta = x_adv + spec.step_size * g - xb
                size = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                x_adv = xb + delta * (size.clamp(max=spec.eps) / size.clamp_min(1e-12))
            x_adv = x_adv.clamp(0, 1)
        out.append(x_adv.detach())
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="the first n MNIST test images (default 200)")
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf")
    parser.add_argument("--impl", choices=("advlib", "loop"), default="advlib")
    parser.add_argument("--frozen", action="store_true", help="loop: no parameter gradients (advlib never has them)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x, y = data.load_mnist("test", limit=args.n)
    model = models.load_trades_smallcnn("cpu")
    model.requires_grad_(not args.frozen)
    start = time.perf_counter()
    if args.impl == "advlib":
        x_adv = advlib.second_order(model, x, y, norm=args.norm, generator=torch.Generator().manual_seed(args.seed))
    else:
        x_adv = so_loop(model, x, y, args.norm)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    print(f"impl={args.impl} norm={args.norm} n={args.n} threads={torch.get_num_threads()} "
          f"attack_seconds={seconds:.2f} robust_accuracy={100 * robust:.2f}%")


if __name__ == "__main__":
    main()
