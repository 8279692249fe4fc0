"""Do two independent packagings of APGD agree? pyautoattack (fra31/auto-attack on PyPI) vs torchattacks.

On the TRADES authors' released MNIST SmallCNN (``advlib.models.load_trades_smallcnn``) and the first ``n`` MNIST
test images, runs APGD-CE and APGD-T (targeted DLR loss, 9 target classes) in ℓ∞ (ε = 0.3) and ℓ2 (ε = 2.0)
with both libraries at the same settings (100 iterations, 1 restart, ρ = 0.75, seed 0), and records per setting
the robust accuracy of each, the number of examples on which they disagree, the largest perturbation and the
seconds. Writes one JSON record and prints a table::

    python benchmarks/autoattack_crosscheck.py --n 500 --out results/bench/autoattack-crosscheck-cpu.json

The default ``--n 500`` takes about an hour on 2 busy CPU cores, because APGD-T runs 9 × 100 iterations;
the committed CPU record was made with ``--n 300 --n-targeted 100 --threads 1`` (559 s; see docs/autoattack.md).
On a GPU, ``--device cuda`` runs everything at n = 500 in under a minute.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import torch
from torch import Tensor, nn

import advlib
from advlib import records, runtime
from advlib.data import load_mnist
from advlib.models import TRADES_SMALLCNN_MD5, load_trades_smallcnn

STEPS, RESTARTS, RHO, SEED, TARGETS = 100, 1, 0.75, 0, 9


@dataclass(frozen=True)
class Setting:
    """One attack at one threat model: ``attack`` is AutoAttack's name ("apgd-ce" or "apgd-t")."""

    attack: str
    norm: str  # AutoAttack's spelling: "Linf" or "L2"
    eps: float

    @property
    def name(self) -> str:
        return f"{self.attack}-{self.norm.lower()}"


SETTINGS = (Setting("apgd-ce", "Linf", 0.3), Setting("apgd-ce", "L2", 2.0),
            Setting("apgd-t", "Linf", 0.3), Setting("apgd-t", "L2", 2.0))


def max_norm(x_adv: Tensor, x: Tensor, norm: str) -> float:
    """The largest per-example ‖x_adv − x‖ (ℓ∞ or ℓ2) in the batch."""
    delta = (x_adv - x).flatten(1)
    return (delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)).max().item()


def robust_mask(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def fraction(mask: Tensor) -> float:
    """Exact share of True entries (a count over n, not a float32 mean)."""
    return int(mask.sum()) / len(mask)


def with_pyautoattack(model: nn.Module, x: Tensor, y: Tensor, s: Setting, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(x_adv, robust)`` from pyautoattack's AutoAttack restricted to one attack (version="custom")."""
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, norm=s.norm, eps=s.eps, version="custom", attacks=[s.attack], seed=SEED,
                    device=str(device))
    apgd = aa.apgd if s.attack == "apgd-ce" else aa.apgd_targeted
    apgd.n_restarts = RESTARTS
    # The step-size checkpoints (n_iter_2, n_iter_min, size_decr) are fixed when APGDAttack is built, from its
    # n_iter (default 100): assigning a different n_iter afterwards would keep the 100-step checkpoints.
    if apgd.n_iter != STEPS:
        raise ValueError(f"pyautoattack built APGD with n_iter={apgd.n_iter}; this check needs {STEPS}")
    if s.attack == "apgd-t":
        apgd.n_target_classes = TARGETS
    x_adv, y_adv = aa.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv, y_adv == y


def with_torchattacks(model: nn.Module, x: Tensor, y: Tensor, s: Setting, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(x_adv, robust)`` from torchattacks' APGD (loss "ce") or APGDT (10 classes, so 9 targets)."""
    import torchattacks

    common = dict(norm=s.norm, eps=s.eps, steps=STEPS, n_restarts=RESTARTS, seed=SEED, rho=RHO)
    attack = (torchattacks.APGD(model, loss="ce", **common) if s.attack == "apgd-ce"
              else torchattacks.APGDT(model, n_classes=TARGETS + 1, **common))
    x_adv = attack(x, y)
    return x_adv, robust_mask(model, x_adv, y)


RUNNERS = {"pyautoattack": with_pyautoattack, "torchattacks": with_torchattacks}


def compare(model: nn.Module, x: Tensor, y: Tensor, s: Setting, device: torch.device) -> dict:
    """Both libraries on one setting: robust accuracy, seconds and largest perturbation each, disagreements."""
    out: dict = {"setting": asdict(s), "n": len(x)}
    masks = {}
    for lib, run in RUNNERS.items():
        start = time.perf_counter()
        x_adv, robust = run(model, x, y, s, device)
        seconds = time.perf_counter() - start
        masks[lib] = robust.cpu()
        out[lib] = {"robust": int(robust.sum()), "robust_accuracy": fraction(masks[lib]), "seconds": round(seconds, 2),
                    "max_perturbation": max_norm(x_adv, x, s.norm)}
    a, b = masks["pyautoattack"], masks["torchattacks"]
    out["disagreements"] = int((a != b).sum())
    out["robust_only_pyautoattack"] = int((a & ~b).sum())
    out["robust_only_torchattacks"] = int((~a & b).sum())
    out["robust_in_both"] = fraction(a & b)
    return out


def table(rows: list[dict]) -> str:
    """A plain-text table of the comparison rows."""
    head = f"{'setting':<14}{'n':>5}{'pyautoattack':>14}{'torchattacks':>14}{'disagree':>10}{'s (pyaa)':>10}{'s (ta)':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        pa, ta = r["pyautoattack"], r["torchattacks"]
        lines.append(f"{r['setting']['attack'] + '-' + r['setting']['norm']:<14}{r['n']:>5}"
                     f"{100 * pa['robust_accuracy']:>13.1f}%{100 * ta['robust_accuracy']:>13.1f}%"
                     f"{r['disagreements']:>10}{pa['seconds']:>10.1f}{ta['seconds']:>9.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="first n MNIST test images for APGD-CE (default 500)")
    parser.add_argument("--n-targeted", type=int, default=None, help="first n images for APGD-T (default: --n)")
    parser.add_argument("--settings", nargs="+", default=[s.name for s in SETTINGS],
                        choices=[s.name for s in SETTINGS])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=None, help="JSON record to write (default: print only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_trades_smallcnn(device)
    n_max = max(args.n, args.n_targeted or 0)
    x_all, y_all = load_mnist("test", limit=n_max, device=device)
    rows = []
    for s in (s for s in SETTINGS if s.name in args.settings):
        n = args.n if s.attack == "apgd-ce" or args.n_targeted is None else args.n_targeted
        rows.append(compare(model, x_all[:n], y_all[:n], s, device))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    rec = {"device": runtime.device_name(device), "torch_version": torch.__version__,
           "versions": {p: version(p) for p in ("pyautoattack", "torchattacks")} | {"advlib": advlib.__version__},
           "git_revision": records.git_revision(), "host": platform.node(), "threads": torch.get_num_threads(),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "model": {"name": "TRADES SmallCNN (authors' MNIST checkpoint)", "md5": TRADES_SMALLCNN_MD5},
           "data": "first n MNIST test images", "natural_accuracy": {
               str(n): fraction(robust_mask(model, x_all[:n], y_all[:n])) for n in sorted({r["n"] for r in rows})},
           "common": {"steps": STEPS, "restarts": RESTARTS, "rho": RHO, "seed": SEED, "target_classes": TARGETS},
           "rows": rows, "total_seconds": round(sum(r[lib]["seconds"] for r in rows for lib in RUNNERS), 1)}
    print(table(rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()
