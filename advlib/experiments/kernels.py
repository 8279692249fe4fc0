"""``python -m advlib kernel-check``: why a model trained again on another CPU is not the record's model.

Training is deterministic on one machine (``tests/test_training_loop.py``), yet a large cell trained again on this
CPU differed from its committed record on 8 of 1,000 clean test images (``results/large/retrain-check.json``).
PyTorch picks its CPU kernels by the vector instructions the CPU offers (ATen's kernels: ``ATEN_CPU_CAPABILITY``;
oneDNN's convolutions: ``ONEDNN_MAX_CPU_ISA``), and AVX2 and AVX-512 kernels add floating-point numbers in
different orders; so may the same kernels split over another number of threads. This runs the same training (a
profile's cell, same seed, same data) in one subprocess per setting of ``SETTINGS`` (environment and threads) and
compares, after each of ``STEPS`` optimiser steps, the weights (a digest and the largest relative difference from
the first setting, the records' own) and the clean predictions on the profile's test images; after the last step,
also with the committed record's clean outcomes when the run is the cell's whole training. Before any step it
compares one forward pass of the untrained model, the size of a single kernel's difference. Each setting's run is
kept in the cache until the document is written, so a killed check resumes at the next setting. On a CPU without
AVX-512 the AVX2 settings are the default kernels.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch

import advlib
from advlib import data, identity, protocols, records, reproduce, runtime
from advlib.evaluation import predict
from advlib.training import fit
from advlib.training.loop import steps_per_epoch

KIND = "kernel-check"
#: Settings, each the environment and intra-op threads of its subprocess: the records' own (this CPU's kernels, 2
#: threads), one thread, then ATen's, oneDNN's and both kernel libraries capped at AVX2 (what a CPU without AVX-512
#: runs).
SETTINGS: dict[str, dict] = {
    "default": {"env": {}, "threads": 2},
    "1-thread": {"env": {}, "threads": 1},
    "aten-avx2": {"env": {runtime.ATEN_CAPABILITY_ENV: "avx2"}, "threads": 2},
    "onednn-avx2": {"env": {runtime.ONEDNN_ISA_ENV: "AVX2"}, "threads": 2},
    "avx2": {"env": {runtime.ATEN_CAPABILITY_ENV: "avx2", runtime.ONEDNN_ISA_ENV: "AVX2"}, "threads": 2},
}
#: After how many optimiser steps the weights are compared (the medium profile trains 1,000 steps in all).
STEPS = (1, 10, 100, 1000)


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([v.detach().float().reshape(-1) for v in model.state_dict().values()])


def whole_training(prof: protocols.Profile, cell: str) -> int:
    """The optimiser steps of ``cell``'s whole training at profile ``prof``."""
    spec = protocols.train_spec(prof, protocols.split_cell(cell)[0])
    return spec.epochs * steps_per_epoch(prof.n_train or data.SPLIT_SIZES["train"], spec)


def worker(profile: str, cell: str, steps: tuple[int, ...], out: Path) -> None:
    """One setting's run (in its own process): writes ``out`` = {"capability", "logits" of the untrained model,
    per step "weights" and "predictions"}."""
    prof = protocols.get_profile(profile)
    device = torch.device("cpu")
    runtime.configure(device)
    tensors = reproduce.load_data(prof, device, reproduce.data_identity(prof))
    defense, norm = protocols.split_cell(cell)
    spec = protocols.train_spec(prof, defense)
    total = whole_training(prof, cell)
    if max(steps) > total:
        raise ValueError(f"steps {max(steps)} beyond the {total} steps {profile}/{cell} trains")
    model = reproduce.starting_model(prof, device)
    with torch.no_grad():
        logits = model(tensors["xt"][:500]).float()
    impl = reproduce.make_defense(defense, norm, prof, [], device)
    state: dict = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                   "logits": logits, "steps": {}}
    begun = time.perf_counter()
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        for s in sorted(steps):
            fit(model, tensors["x"], tensors["y"], impl, replace(spec, checkpoint_every=10 ** 9), seed=prof.seed,
                checkpoint=Path(tmp) / "run.pt", quiet=True, stop_after_steps=s - done)
            done = s
            state["steps"][s] = {"weights": _weights(model), "predictions": predict(model, tensors["xt"])}
    state["seconds"] = time.perf_counter() - begun
    torch.save(state, out)


def compare(runs: dict[str, dict], labels: torch.Tensor, record_mask: torch.Tensor | None = None) -> dict:
    """Each setting's digests and differences from the first setting's run (``record_mask``: the committed
    record's clean outcomes, compared with each run's after its last step)."""
    base = next(iter(runs.values()))
    out = {}
    for name, run in runs.items():
        entry = {"capability": run["capability"], "threads": run["threads"],
                 "forward_max_abs_diff": float((run["logits"] - base["logits"]).abs().max()), "steps": {}}
        for s, at in run["steps"].items():
            ref = base["steps"][s]
            entry["steps"][str(s)] = {
                "digest": hashlib.sha256(at["weights"].numpy().tobytes()).hexdigest()[:16],
                "max_rel_weight_diff": float((at["weights"] - ref["weights"]).abs().max()
                                             / ref["weights"].abs().max()),
                "predictions_differing": int((at["predictions"] != ref["predictions"]).sum()),
                "outcomes_differing": int(((at["predictions"] == labels) != (ref["predictions"] == labels)).sum()),
                "clean_accuracy": float((at["predictions"] == labels).float().mean()),
            }
        if record_mask is not None:
            last = run["steps"][max(run["steps"])]["predictions"] == labels
            entry["record_outcomes_differing"] = int((last != record_mask).sum())
        out[name] = entry
    return out


def _record_mask(prof: protocols.Profile, cell: str, steps: tuple[int, ...], n: int) -> tuple[torch.Tensor | None, str]:
    """The committed record's clean outcomes if ``steps`` ends with the cell's whole training, else None."""
    from advlib.discovery import results_root
    path = results_root() / prof.name / f"{cell}.json"
    if not path.is_file() or steps[-1] != whole_training(prof, cell):
        return None, ""
    rec = records.read_record(path)
    if rec["n_test"] != n:
        return None, ""
    return records.unpack_mask(rec["masks"][identity.CLEAN], n), f"{prof.name}/{cell}.json"


def run(profile: str = "medium", cell: str = "madry-l2", steps: tuple[int, ...] | None = None,
        out: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Run every setting of ``SETTINGS`` (one subprocess each; a setting whose run is in the cache is not run again)
    after each of ``steps`` (default ``STEPS``) and write the sealed comparison to ``out`` (default
    ``<results root>/kernel-check.json``). Returns the document."""
    from advlib.discovery import results_root
    prof = protocols.get_profile(profile)
    protocols.split_cell(cell)
    steps = tuple(sorted({int(s) for s in (STEPS if steps is None else steps)}))
    if not steps or steps[0] < 1:
        raise ValueError(f"steps must be positive step counts, got {steps}")
    path = Path(out) if out is not None else results_root() / "kernel-check.json"
    parts = data.cache_dir() / "kernel-check"
    parts.mkdir(parents=True, exist_ok=True)
    runs, seconds = {}, {}
    for name, setting in SETTINGS.items():
        key = identity.key({"profile": prof.config(), "cell": cell, "steps": list(steps), "name": name,
                            "setting": setting,
                            "torch": torch.__version__, "revision": records.git_revision()})[:16]
        target = parts / f"{name}-{key}.pt"
        if not target.is_file():
            code = (f"import torch; torch.set_num_threads({int(setting['threads'])}); "
                    f"from advlib.experiments import kernels; kernels.worker({prof.name!r}, {cell!r}, {steps!r}, "
                    f"__import__('pathlib').Path({str(target) + '.part'!r}))")
            subprocess.run([sys.executable, "-c", code], env={**os.environ, **setting["env"]}, check=True)
            Path(str(target) + ".part").replace(target)
        runs[name] = torch.load(target, weights_only=False)
        seconds[name] = runs[name]["seconds"]
        log(f"{name}: {runs[name]['capability']} kernels, {runs[name]['threads']} threads, {seconds[name]:.0f} s")
    labels = reproduce.load_data(prof, torch.device("cpu"), reproduce.data_identity(prof))["yt"]
    mask, record = _record_mask(prof, cell, steps, int(labels.numel()))
    doc = {"what": "the same training run under different CPU kernel settings and thread counts: weights and clean "
                   "predictions compared with the first setting's (advlib.experiments.kernels)",
           "profile": prof.name, "cell": cell, "steps": list(steps), "n_test": int(labels.numel()),
           "record": record, "settings": SETTINGS, "order": list(SETTINGS), "results": compare(runs, labels, mask),
           "seconds": seconds,
           "device": runtime.device_name(torch.device("cpu")), "torch_version": torch.__version__,
           "advlib_version": advlib.__version__, "git_revision": records.git_revision(),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    records.write_document(path, doc, KIND)
    for name, entry in doc["results"].items():
        last = entry["steps"][str(steps[-1])]
        log(f"{name} ({entry['capability']}, {entry['threads']} threads): forward max |Δlogit| "
            f"{entry['forward_max_abs_diff']:.2g}; after {steps[-1]} steps max relative weight difference "
            f"{last['max_rel_weight_diff']:.2g}, {last['outcomes_differing']} of {doc['n_test']} test outcomes differ"
            + (f", {entry['record_outcomes_differing']} from the record" if record else ""))
    return json.loads(path.read_text())
