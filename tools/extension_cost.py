"""What the extended evaluation costs on this machine: one cell's extended block on its first n test images.

    python tools/extension_cost.py RECORD --models-from DIR [--n 50] [--out FILE]

RECORD is a Table 1 record (e.g. a medium cell made on the CPU) and DIR the results folder whose checkpoints hold
the model that made it. The block (``advlib.extended.extend``) runs on the record's first ``n`` test images (the
record's masks cut to them), and the file written holds the block's stage times, the record's own training and
evaluation times, and their extrapolation to the record's n_test (the cost is linear in the number of images: every
attack runs image by image in batches). On a 2-core CPU the block takes hours for a medium cell's 1,000 images,
which is why this tool exists.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from advlib import data, extended, protocols, records, runtime
from advlib.reproduce import trained_model


def cut(record: dict, n: int) -> dict:
    """``record`` restricted to its first ``n`` test images (masks re-packed, n_test = n)."""
    masks = {k: records.pack_mask(records.unpack_mask(v, record["n_test"])[:n]) for k, v in record["masks"].items()}
    return {**record, "masks": masks, "n_test": n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--models-from", type=Path, required=True, help="results folder holding the checkpoints")
    parser.add_argument("--n", type=int, default=50, help="test images to extend on (default 50)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    record = records.read_record(args.record)
    if not 1 <= args.n <= record["n_test"]:
        parser.error(f"--n must be between 1 and the record's n_test {record['n_test']}, got {args.n}")
    runtime.tune_allocator()
    device = runtime.default_device()
    profile = protocols.get_profile(record["profile"])
    model = trained_model(profile, record["cell"], out=args.models_from, device=device).eval()
    x, y = data.load_mnist("test", limit=args.n, device=device)
    block = extended.extend(model, x, y, profile, cut(record, args.n), records.git_revision())["extended"]
    scale = record["n_test"] / args.n
    out = {"what": "cost of the extended evaluation (tools/extension_cost.py)", "record": str(args.record),
           "cell": record["cell"], "profile": record["profile"], "model": records.model_key(record),
           "n_sample": args.n, "n_test": record["n_test"], "device": runtime.device_name(device),
           "git_revision": records.git_revision(), "record_wall_time": record["wall_time"],
           "extended_wall_time_sample": block["wall_time"],
           "extended_wall_time_extrapolated": {k: v * scale for k, v in block["wall_time"].items()},
           "extended_accuracy_sample": block["accuracy"], "created": block["created"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: round(v) for k, v in out["extended_wall_time_extrapolated"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
