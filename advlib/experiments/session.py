"""One run of an experiment: its models and images, its open document, and attack runs stored as they finish.

Every attack run is written to the document at once (``Session.save``), so a killed run resumes where it
stopped, and a run whose key (``store.run_key``) is already in the document is not repeated.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import advlib
from advlib import lp, records, runtime
from advlib.ablations import gradient_evaluations, so_clamp_at_end, worst_case_restarts
from advlib.attacks import run_attack, traced_attack
from advlib.evaluation import predict
from advlib.experiments import store
from advlib.specs import AttackSpec


def provenance(device: torch.device) -> dict:
    """Code, library versions, device, threads and time of a write."""
    return {"git_revision": records.git_revision(), "advlib_version": advlib.__version__,
            "torch_version": torch.__version__, "device": runtime.device_name(device),
            "threads": torch.get_num_threads(), "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def trained_identity(profile: str, cell: str) -> dict:
    """What the model of ``cell`` (or "natural") trained under ``profile`` is, for a document's ``models``: its
    identity key (``advlib.identity.model_dependencies``: training data, seed, defense settings, ...)."""
    from advlib import identity, protocols
    from advlib.reproduce import data_identity
    prof = protocols.get_profile(profile)
    deps = identity.model_dependencies(prof.config(), cell, data_identity(prof)["train"]["fingerprint"])
    return {"architecture": "madry-cnn", "cell": cell, "profile": prof.name, "model_key": identity.key(deps),
            "n_train": prof.n_train}


def jsonable(value: object) -> object:
    """Tuples as lists and keys as strings, recursively (what JSON would give back)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass
class Session:
    """The models (by name), the first test images, and the open document of one experiment run.

    ``settings`` is the experiment's frozen settings dataclass (it has a ``seed``); ``kind`` the document kind.
    """

    settings: Any
    kind: str
    out: Path
    device: torch.device
    x: Tensor
    y: Tensor
    models: dict[str, nn.Module]
    identity: dict[str, dict]
    doc: dict
    log: Callable[[str], None] = print

    def save(self) -> None:
        """Write the document (sealed, atomically) with this run's settings, provenance and model identities."""
        self.doc["settings"] = jsonable(asdict(self.settings))
        self.doc["provenance"] = provenance(self.device)
        self.doc["models"] = self.identity
        store.save(self.out, self.doc, self.kind)

    def generator(self) -> torch.Generator:
        """A fresh generator on the session's device, seeded with the settings' seed."""
        return torch.Generator(device=self.device).manual_seed(self.settings.seed)


def attack_run(session: Session, model: str, spec: AttackSpec, n: int, *, variant: str = store.ADVLIB,
               traced: bool = False) -> dict:
    """One attack of ``spec`` on the first ``n`` images of ``model``: the stored run if there is one, else run, saved.

    ``variant``: ``store.ADVLIB`` (``run_attack``; ``traced_attack`` if ``traced``: the per-step batch-mean
    gradient norm and loss are kept) or ``store.CLAMP_AT_END`` (``advlib.ablations.so_clamp_at_end``).
    Returns the entry: accuracy, packed mask, mean ‖x_adv − x‖₂, seconds, trace, ...
    """
    if variant not in (store.ADVLIB, store.CLAMP_AT_END):
        raise ValueError(f"unknown variant {variant!r}; valid: {store.ADVLIB}, {store.CLAMP_AT_END}")
    key = store.run_key(model, variant, spec, n, session.settings.seed)
    have = session.doc["runs"].get(key)
    if have is not None and (have.get("trace") is not None or not traced):
        return have
    net, x, y = session.models[model], session.x[:n], session.y[:n]
    generator = session.generator()
    start, trace = time.perf_counter(), None
    if variant == store.CLAMP_AT_END:
        x_adv = so_clamp_at_end(spec, net, x, y, generator=generator)
    elif traced:
        result = traced_attack(spec, net, x, y, generator=generator)
        x_adv, trace = result.x_adv, {"grad_norm": result.trace.grad_norm, "loss": result.trace.loss}
    else:
        x_adv = run_attack(spec, net, x, y, generator=generator)
    correct = predict(net, x_adv) == y
    entry = {"model": model, "variant": variant, "spec": spec.config(), "n": n, "seed": session.settings.seed,
             "gradient_evaluations": gradient_evaluations(spec), "accuracy": correct.float().mean().item(),
             "mask": records.pack_mask(correct), "mean_l2_perturbation": lp.norm_of(x_adv - x, "l2").mean().item(),
             "seconds": time.perf_counter() - start, "trace": trace, "git_revision": records.git_revision()}
    session.doc["runs"][key] = entry
    session.save()
    session.log(f"  run {key}: {100 * entry['accuracy']:.1f} % in {entry['seconds']:.0f} s")
    return entry


def restarts_run(session: Session, model: str, spec: AttackSpec, n: int, restarts: int) -> dict:
    """The per-example worst case of ``restarts`` runs of ``spec`` (``advlib.ablations.worst_case_restarts``),
    stored like an attack run under the variant ``store.restarts_variant(restarts)``; reused if stored.

    Its entry adds ``restarts`` and ``accuracy_after_each_restart``; ``mean_l2_perturbation`` is None (the cascade
    keeps no single adversarial image per example).
    """
    variant = store.restarts_variant(restarts)
    key = store.run_key(model, variant, spec, n, session.settings.seed)
    if key in session.doc["runs"]:
        return session.doc["runs"][key]
    start = time.perf_counter()
    res = worst_case_restarts(spec, session.models[model], session.x[:n], session.y[:n], restarts=restarts,
                              seed=session.settings.seed)
    entry = {"model": model, "variant": variant, "spec": spec.config(), "n": n, "seed": session.settings.seed,
             "restarts": restarts, "gradient_evaluations": restarts * gradient_evaluations(spec),
             "accuracy": res.accuracy[-1], "accuracy_after_each_restart": res.accuracy,
             "mask": records.pack_mask(res.correct), "mean_l2_perturbation": None,
             "seconds": time.perf_counter() - start, "git_revision": records.git_revision()}
    session.doc["runs"][key] = entry
    session.save()
    session.log(f"  run {key}: {100 * entry['accuracy']:.1f} %")
    return entry
