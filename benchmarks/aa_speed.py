"""AutoAttack's standard suite with an fp32 search and with a bf16 search, on the same images in one run (issue 24,
item 4b): where the time goes (seconds per attack of the cascade), the speed-up, and the fp32 check.

    python benchmarks/aa_speed.py --model medium-madry-linf --n 1000 --out results/bench/aa-speed-cpu.json

The model is a kept one (``advlib.kept``), placed in channels_last as ``reproduce`` places it, with the allocator
tuned as ``reproduce`` tunes it, so "fp32" is the extended block's AutoAttack rows as they run by default (there in
one call over all the images, here in chunks). The chunks are taken by the two precisions in turn (which one goes
first alternates), so a load that changes during the run weighs on both alike. Each chunk runs AutoAttack's cascade
one attack at a time, exactly as ``strong.autoattack`` does, and times each attack. The verdict of every point is the
fp32 model's in both runs (``strong.autoattack``), so the check is whether a bf16 search misses adversarial examples
that the fp32 search finds: the accuracies, and the share of images only the fp32 search breaks, within 0.3 points.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch

import advlib
from advlib import extended, kept, protocols, records, runtime
from advlib.strong import ATTACKS, AutoAttackSpec, autoattack, package_version

#: The extended block's costly rows (most images survive them), AutoAttack's standard suite as the block runs it.
ROWS = {name: extended.extended_spec(protocols.MEDIUM).rows[name] for name in ("AA-linf", "AA-l2@2")}
PRECISIONS = ("fp32", "bf16")
TOLERANCE = 0.003  # 0.3 points, the bound for a lower-precision evaluation


def cascade(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AutoAttackSpec, precision: str,
            before: Callable[[str, int], None] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The robust mask after AutoAttack's cascade and the seconds of each attack (run on the points left);
    ``before(name, points)`` is called as each attack starts."""
    robust = torch.ones_like(y, dtype=torch.bool)
    seconds = {}
    for i, name in enumerate(spec.attacks):
        start = time.perf_counter()
        idx = robust.nonzero().flatten()
        if before is not None:
            before(name, int(idx.numel()))
        if idx.numel():
            mask = autoattack(model, x[idx], y[idx], replace(spec, attacks=(name,)), precision=precision)[name]
            if i == 0:  # the first call also removes the points misclassified without attack
                robust = mask
            else:
                robust = robust.clone()
                robust[idx] = mask
        seconds[name] = time.perf_counter() - start
    return robust, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="medium-madry-linf", help="a kept model, <profile>-<cell>")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=250)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {', '.join(ROWS)} "
                                                                "(default both)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    names = [r.strip() for r in args.rows.split(",") if r.strip()]
    if not names or any(r not in ROWS for r in names):
        parser.error(f"--rows {args.rows!r}: choose among {', '.join(ROWS)}")
    chosen = {r: ROWS[r] for r in names}
    runtime.tune_allocator()
    model = kept.load_named(args.model).to(memory_format=torch.channels_last)
    x, y = advlib.load_mnist("test", limit=args.n)
    x = x.contiguous(memory_format=torch.channels_last)
    masks = {r: {p: [] for p in PRECISIONS} for r in chosen}
    seconds = {r: {p: dict.fromkeys(ATTACKS, 0.0) for p in PRECISIONS} for r in chosen}
    load = []
    for c, start in enumerate(range(0, args.n, args.chunk)):
        xc, yc = x[start:start + args.chunk], y[start:start + args.chunk]
        for row, spec in chosen.items():
            for precision in (PRECISIONS if c % 2 == 0 else PRECISIONS[::-1]):
                mask, secs = cascade(model, xc, yc, spec, precision)
                masks[row][precision].append(mask)
                for name, s in secs.items():
                    seconds[row][precision][name] += s
                print(f"chunk {c} {row} {precision}: {sum(secs.values()):.0f} s, robust {int(mask.sum())}/{len(yc)}",
                      flush=True)
        load.append(os.getloadavg()[0])
    rows = {}
    for row in chosen:
        m = {p: torch.cat(masks[row][p]) for p in PRECISIONS}
        acc = {p: float(m[p].float().mean()) for p in PRECISIONS}
        missed = int((m["bf16"] & ~m["fp32"]).sum())
        rows[row] = {"accuracy": acc, "seconds": seconds[row],
                     "total_seconds": {p: sum(seconds[row][p].values()) for p in PRECISIONS},
                     "images_differing": int((m["fp32"] != m["bf16"]).sum()), "robust_only_in_bf16": missed,
                     "within_tolerance": abs(acc["bf16"] - acc["fp32"]) <= TOLERANCE and missed <= TOLERANCE * args.n}
    total = {p: sum(r["total_seconds"][p] for r in rows.values()) for p in PRECISIONS}
    doc = {"what": "AutoAttack standard suite, fp32 search vs bf16 search, fp32 verdict (benchmarks/aa_speed.py)",
           "model": f"kept {args.model}", "n": args.n, "chunk": args.chunk, "rows": rows,
           "total_seconds": total, "speedup": total["fp32"] / total["bf16"],
           "all_within_0.3_points": all(r["within_tolerance"] for r in rows.values()),
           "load_average_1min_per_chunk": load, "device": runtime.device_name(torch.device("cpu")),
           "threads": torch.get_num_threads(), "rows_config": {r: spec.config() for r, spec in chosen.items()},
           "native_bf16": runtime.native_bf16(), "torch_version": torch.__version__,
           "autoattack": package_version(), "git_revision": records.git_revision(),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in ("total_seconds", "speedup", "all_within_0.3_points")}, indent=1))


if __name__ == "__main__":
    main()
