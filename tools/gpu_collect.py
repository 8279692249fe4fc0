"""Check and file what a GPU call of ``tools/gpu_session.sh`` brought back.

    python tools/gpu_collect.py <folder with *-records.tgz and/or bench.json> [--results results]

Every record in ``full-records.tgz`` must pass ``advlib.records.read_record`` (schema and digest), be of the
``full`` profile with the current full configuration, and name a CUDA device (not a CPU); those that do are
copied to ``<results>/full/`` (a record already there is replaced only by a valid one). A record in another
``<profile>-records.tgz`` is one of two kinds. For a cell with a record in ``<results>/<profile>/``, it must be
that record with the current extended block added and nothing else changed (``EXTEND_PROFILE`` in
``tools/gpu_session.sh``); it replaces that record, and a record that comes back as it went is left alone. For a
cell without one (``CELLS_PROFILE``), it must pass the same checks as a full-profile record, for its own profile.
``bench.json`` goes to ``<results>/bench/<gpu>.json``, named after the device it names. Prints one line per file;
exits 1 if any record was rejected.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from advlib import extended, protocols, records
from advlib.reproduce import config_hash


def check_record(path: Path, profile: str = "full") -> dict:
    """The record at ``path`` if it is a valid record of ``profile``'s current configuration made on a GPU; else
    ``RecordError``."""
    rec = records.read_record(path)
    if rec["profile"] != profile or rec["config"].get("hash") != config_hash(protocols.get_profile(profile)):
        raise records.RecordError(f"{path.name}: not a record of the current {profile} profile "
                                  f"({rec['profile']}, config {rec['config'].get('hash')})")
    if rec["device"].startswith("cpu"):
        raise records.RecordError(f"{path.name}: made on {rec['device']!r}, not on a GPU")
    return rec


def check_extended(path: Path, local_path: Path) -> tuple[dict, bool]:
    """The record at ``path`` if it is the record at ``local_path`` with the current extended block added and
    nothing else changed (made from a carried checkpoint, ``tools/slim_checkpoints.py``), and whether it differs
    from that record (False: it came back as it went); else ``RecordError``."""
    rec = records.read_record(path)
    local = records.read_record(local_path)
    if rec == local:
        return rec, False
    if not extended.current(rec, protocols.get_profile(rec["profile"])):
        raise records.RecordError(f"{path.name}: no extended block of the current configuration")
    if {k: v for k, v in rec.items() if k not in ("extended", "digest")} != \
            {k: v for k, v in local.items() if k not in ("extended", "digest")}:
        raise records.RecordError(f"{path.name}: its base evaluation differs from {local_path}'s")
    return rec, True


def check_returned(path: Path, profile: str, results: Path) -> tuple[dict, str]:
    """A record that came back in ``<profile>-records.tgz``, checked as the module docstring says, and what it is
    to ``results``: "new" (a record to file), "extended" (the local record with the block added) or "unchanged";
    else ``RecordError``."""
    local_path = results / profile / path.name
    if profile == "full" or not local_path.is_file():
        return check_record(path, profile), "new"
    rec, changed = check_extended(path, local_path)
    return rec, "extended" if changed else "unchanged"


def device_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def collect(folder: Path, results: Path) -> int:
    rejected = 0
    for archive in sorted(folder.glob("*-records.tgz")):
        profile = archive.name.removesuffix("-records.tgz")
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
            for path in sorted(Path(tmp).rglob("*.json")):
                try:
                    rec, kind = check_returned(path, profile, results)
                except records.RecordError as err:
                    print(f"REJECTED {err}")
                    rejected += 1
                    continue
                name = f"{rec['profile']}/{path.name}"
                if kind == "unchanged":
                    print(f"unchanged {name}: the same as here")
                    continue
                target = results / rec["profile"] / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                if kind == "new":
                    print(f"ok {name}: {rec['device']}, {rec['n_test']} test images, {rec['wall_time']['this_run']:.0f} s, "
                          f"norm-agnostic {100 * rec['norm_agnostic']:.1f} %")
                else:
                    block = rec["extended"]
                    print(f"ok {name}: extended block added ({block['device']}, {rec['n_test']} test images, "
                          f"{block['wall_time']['total']:.0f} s)")
    bench = folder / "bench.json"
    if bench.exists():
        rec = json.loads(bench.read_text())
        target = results / "bench" / f"{device_slug(rec['device'])}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bench, target)
        print(f"ok bench -> {target}")
    return rejected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    return 1 if collect(args.folder, args.results) else 0


if __name__ == "__main__":
    sys.exit(main())
