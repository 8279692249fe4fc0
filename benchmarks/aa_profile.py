"""Where AutoAttack's time goes on a CPU (issue 24, item 4b): per attack of the cascade, the seconds spent inside
the model's forward and backward passes and the seconds spent in the attack's own code around them.

    python benchmarks/aa_profile.py --model medium-madry-linf --n 500 --out results/bench/aa-profile-cpu.json

The model (a kept one, channels_last, the allocator tuned, as ``reproduce`` runs the extended block) is wrapped in
``ModelClock``, which adds the wall time of every forward call and of every backward pass through it: a backward
pass is timed from the moment the gradient reaches the model's output to the moment it leaves through its input
(two identity autograd functions mark the ends), so it includes nothing of the attack's own loss or update. The
cascade is ``benchmarks/aa_speed.cascade`` in fp32, the extended block's AutoAttack rows; its accuracies are reported
so the run can be checked against the committed records. Whatever is not forward or backward is the attack's own
work (projections, sorting, bookkeeping, sampling): the part that a faster model cannot cut.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from aa_speed import ROWS, cascade
from torch import Tensor, nn

import advlib
from advlib import kept, records, runtime
from advlib.strong import package_version


class _Mark(torch.autograd.Function):
    """Identity; its backward calls ``clock.mark(end)``: at the output when the gradient arrives (``end`` False),
    at the input when it leaves (``end`` True)."""

    @staticmethod
    def forward(ctx, x: Tensor, clock: ModelClock, end: bool) -> Tensor:
        ctx.clock, ctx.end = clock, end
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        ctx.clock.mark(ctx.end)
        return grad, None, None


class ModelClock(nn.Module):
    """``model`` with the wall time of its forward calls and backward passes added up (seconds), and the images
    it forwarded."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.forward_s, self.backward_s, self.images, self._since = 0.0, 0.0, 0, None

    def mark(self, end: bool) -> None:
        now = time.perf_counter()
        if end and self._since is not None:
            self.backward_s += now - self._since
        self._since = None if end else now

    def forward(self, x: Tensor) -> Tensor:
        x = _Mark.apply(x, self, True) if x.requires_grad else x
        start = time.perf_counter()
        out = self.model(x)
        self.forward_s += time.perf_counter() - start
        self.images += x.shape[0]
        return _Mark.apply(out, self, False) if out.requires_grad else out


def profile(clock: ModelClock, x: Tensor, y: Tensor, spec) -> dict:
    """The cascade of ``spec`` on ``x`` (``aa_speed.cascade``), with each attack's share of time in the model."""
    found: dict[str, dict] = {}

    def before(name: str, points: int) -> None:  # close the previous attack's clock, open this one's
        _close(found, clock)
        found[name] = {"points": points}
        clock.reset()

    robust, seconds = cascade(clock, x, y, spec, "fp32", before)
    _close(found, clock)
    for name, entry in found.items():
        total = entry["seconds"] = seconds[name]
        entry["model_share"] = (entry["forward_s"] + entry["backward_s"]) / total if total else 0.0
    return {"accuracy": float(robust.float().mean()), "attacks": found}


def _close(found: dict[str, dict], clock: ModelClock) -> None:
    """Store the clock's time in the last attack of ``found`` (if any)."""
    if found:
        last = found[next(reversed(found))]
        last.update(forward_s=clock.forward_s, backward_s=clock.backward_s, images_forwarded=clock.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="medium-madry-linf", help="a kept model, <profile>-<cell>")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {', '.join(ROWS)}")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    names = [r.strip() for r in args.rows.split(",") if r.strip()]
    if not names or any(r not in ROWS for r in names):
        parser.error(f"--rows {args.rows!r}: choose among {', '.join(ROWS)}")
    runtime.tune_allocator()
    clock = ModelClock(kept.load_named(args.model).to(memory_format=torch.channels_last))
    x, y = advlib.load_mnist("test", limit=args.n)
    x = x.contiguous(memory_format=torch.channels_last)
    rows = {}
    for row in names:
        rows[row] = profile(clock, x, y, ROWS[row])
        print(row, json.dumps(rows[row], indent=1), flush=True)
    seconds = sum(a["seconds"] for r in rows.values() for a in r["attacks"].values())
    model_s = sum(a["forward_s"] + a["backward_s"] for r in rows.values() for a in r["attacks"].values())
    doc = {"what": "AutoAttack's time inside and outside the model, per attack (benchmarks/aa_profile.py)",
           "model": f"kept {args.model}", "n": args.n, "rows": rows, "seconds": seconds, "model_seconds": model_s,
           "model_share": model_s / seconds, "load_average_1min_at_end": os.getloadavg()[0],
           "device": runtime.device_name(torch.device("cpu")), "cpu_model": runtime.cpu_model(),
           "threads": torch.get_num_threads(), "rows_config": {r: ROWS[r].config() for r in names},
           "torch_version": torch.__version__, "autoattack": package_version(),
           "git_revision": records.git_revision(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in ("seconds", "model_seconds", "model_share")}, indent=1))


if __name__ == "__main__":
    main()
