"""``python -m advlib kernel-check``: why a model trained again on another CPU is not the record's model.

Training is deterministic on one machine (``tests/test_training_loop.py``), yet a large cell trained again on this
CPU differed from its committed record on 8 of 1,000 clean test images (``results/large/retrain-check.json``).
PyTorch picks its CPU kernels by the vector instructions the CPU offers (ATen's kernels: ``ATEN_CPU_CAPABILITY``;
oneDNN's convolutions: ``ONEDNN_MAX_CPU_ISA``), and AVX2 and AVX-512 kernels add floating-point numbers in
different orders. This runs the same training (a profile's cell, same seed, same data) in one subprocess per kernel
setting of ``SETTINGS`` and compares, after each of ``STEPS`` optimiser steps, the weights (a digest and the
largest relative difference from the machine's own kernels) and the clean predictions on the profile's test
images. Before any step it compares one forward pass of the untrained model, the size of a single kernel's
difference. The sealed document (kind ``KIND``) names the CPU's own capability: on a CPU without AVX-512 every
setting is the default one.
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
from advlib import protocols, records, reproduce, runtime
from advlib.training import fit

KIND = "kernel-check"
#: Kernel settings, each the environment its subprocess runs in: the machine's own kernels, then ATen's, oneDNN's
#: and both capped at AVX2 (what a CPU without AVX-512 runs).
SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-avx2": {runtime.ONEDNN_ISA_ENV: "AVX2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", runtime.ONEDNN_ISA_ENV: "AVX2"},
}
#: After how many optimiser steps the weights are compared (the medium profile trains 1,000 steps in all).
STEPS = (1, 10, 100, 1000)


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([v.detach().float().reshape(-1) for v in model.state_dict().values()])


def _predictions(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, x.shape[0], 500)])


def worker(profile: str, cell: str, steps: tuple[int, ...], out: Path) -> None:
    """One setting's run (in its own process): writes ``out`` = {"capability", "logits" of the untrained model,
    per step "weights" and "predictions"}."""
    prof = protocols.get_profile(profile)
    device = torch.device("cpu")
    runtime.configure(device)
    tensors = reproduce.load_data(prof, device, reproduce.data_identity(prof))
    defense, norm = protocols.split_cell(cell)
    spec = protocols.train_spec(prof, defense)
    total = spec.epochs * (tensors["x"].shape[0] // spec.batch_size)
    if max(steps) > total:
        raise ValueError(f"steps {max(steps)} beyond the {total} steps {profile}/{cell} trains")
    model = reproduce.starting_model(prof, device)
    with torch.no_grad():
        logits = model(tensors["xt"][:500]).float()
    impl = reproduce.make_defense(defense, norm, prof, [], device)
    state: dict = {"capability": torch.backends.cpu.get_cpu_capability(), "logits": logits, "steps": {}}
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        for s in sorted(steps):
            fit(model, tensors["x"], tensors["y"], impl, replace(spec, checkpoint_every=10 ** 9), seed=prof.seed,
                checkpoint=Path(tmp) / "run.pt", quiet=True, stop_after_steps=s - done)
            done = s
            model.eval()
            state["steps"][s] = {"weights": _weights(model), "predictions": _predictions(model, tensors["xt"])}
            model.train()
    torch.save(state, out)


def compare(runs: dict[str, dict], labels: torch.Tensor) -> dict:
    """Each setting's digests and differences from ``runs["default"]``."""
    base = runs["default"]
    out = {}
    for name, run in runs.items():
        entry = {"capability": run["capability"],
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
        out[name] = entry
    return out


def run(profile: str = "medium", cell: str = "madry-l2", steps: tuple[int, ...] = STEPS,
        out: str | Path | None = None, threads: int = 2, log: Callable[[str], None] = print) -> dict:
    """Run every setting of ``SETTINGS`` (one subprocess each, ``threads`` intra-op threads) and write the sealed
    comparison to ``out`` (default ``<results root>/kernel-check.json``). Returns the document."""
    from advlib.discovery import results_root
    prof = protocols.get_profile(profile)
    protocols.split_cell(cell)
    steps = tuple(sorted({int(s) for s in steps}))
    if not steps or steps[0] < 1:
        raise ValueError(f"steps must be positive step counts, got {steps}")
    path = Path(out) if out is not None else results_root() / "kernel-check.json"
    runs, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in SETTINGS.items():
            target = Path(tmp) / f"{name}.pt"
            code = (f"import torch; torch.set_num_threads({int(threads)}); from advlib.experiments import kernels; "
                    f"kernels.worker({prof.name!r}, {cell!r}, {steps!r}, __import__('pathlib').Path({str(target)!r}))")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True)
            seconds[name] = time.perf_counter() - start
            runs[name] = torch.load(target, weights_only=False)
            log(f"{name}: {runs[name]['capability']} kernels, {seconds[name]:.0f} s")
    labels = reproduce.load_data(prof, torch.device("cpu"), reproduce.data_identity(prof))["yt"]
    doc = {"what": "the same training run under different CPU kernel settings: weights and clean predictions "
                   "compared with the machine's own kernels (advlib.experiments.kernels)",
           "profile": prof.name, "cell": cell, "steps": list(steps), "n_test": int(labels.numel()),
           "settings": SETTINGS, "results": compare(runs, labels), "seconds": seconds, "threads": threads,
           "device": runtime.device_name(torch.device("cpu")), "torch_version": torch.__version__,
           "advlib_version": advlib.__version__, "git_revision": records.git_revision(),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    records.write_document(path, doc, KIND)
    for name, entry in doc["results"].items():
        last = entry["steps"][str(steps[-1])]
        log(f"{name} ({entry['capability']}): forward max |Δlogit| {entry['forward_max_abs_diff']:.2g}; after "
            f"{steps[-1]} steps max relative weight difference {last['max_rel_weight_diff']:.2g}, "
            f"{last['outcomes_differing']} of {doc['n_test']} test outcomes differ")
    return json.loads(path.read_text())
