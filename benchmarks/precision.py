"""Is bf16 (+ channels_last) evaluation safe for a trained cell? Robust accuracy in fp32 vs bf16, same attacks.

Loads a cell that ``python -m advlib reproduce`` has finished (its record must exist, so nothing is trained
here), runs the profile's PGD rows (and S-O rows with ``--so``) in fp32, fp32 + channels_last and bf16 +
channels_last on the profile's test images, and writes accuracies, seconds and the 0.3-point verdict::

    python benchmarks/precision.py --profile large --cell madry-linf --out results/bench/precision-large-cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch
from bench import precision_check

import advlib
from advlib import protocols, records, reproduce, runtime
from advlib.attacks import default_batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="large")
    parser.add_argument("--cell", default="madry-linf")
    parser.add_argument("--results", default=None, help="folder with the cell's record and checkpoints "
                        "(default results/<profile>)")
    parser.add_argument("--so", action="store_true", help="also the S-O rows (slow on a CPU)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    profile = protocols.get_profile(args.profile)
    folder = Path(args.results or Path("results") / profile.name)
    if not (folder / f"{args.cell}.json").exists():
        raise SystemExit(f"{folder / (args.cell + '.json')} does not exist: finish the cell with reproduce first")
    device = runtime.default_device()
    runtime.tune_allocator()
    model = reproduce.trained_model(profile, args.cell, out=folder, device=device).eval()
    xt, yt = advlib.load_mnist("test", limit=profile.n_test, device=device)
    attacks = {k: v for k, v in profile.evaluation.items() if args.so or k.startswith("PGD")}
    batch = default_batch_size(device)
    rec = {"device": runtime.device_name(device), "torch_version": torch.__version__,
           "advlib_version": advlib.__version__, "git_revision": records.git_revision(), "host": platform.node(),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile.name,
           "cell": args.cell, "seed": 0,
           "precision_check": precision_check(model, xt, yt, attacks, device, batch, f"{profile.name}/{args.cell}")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=1) + "\n")
    print(json.dumps(rec["precision_check"], indent=1))


if __name__ == "__main__":
    main()
