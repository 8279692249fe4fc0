"""``advlib.experiments.session``: attack runs stored at once, under their key, and reused instead of rerun."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from advlib.attacks import run_attack
from advlib.evaluation import predict
from advlib.experiments import session as session_module
from advlib.experiments import store
from advlib.experiments.session import Session, attack_run, jsonable, restarts_run
from advlib.specs import AttackSpec


@dataclass(frozen=True)
class Tiny:
    seed: int = 3
    sizes: tuple[int, ...] = (1, 2)


def open_session(tmp_path: Path, model, batch) -> tuple[Session, list[str]]:
    x, y = batch
    lines: list[str] = []
    doc = store.new_document("test", {})
    return Session(Tiny(), store.RELEASED_ABLATIONS, tmp_path / "doc.json", torch.device("cpu"), x, y,
                   {"m": model}, {"m": {"architecture": "linear"}}, doc, lines.append), lines


def test_a_run_is_stored_at_once_and_reused(tmp_path, natural_linear, batch):
    ctx, lines = open_session(tmp_path, natural_linear, batch)
    spec = AttackSpec.pgd("l2", eps=1.5, steps=3)
    first = attack_run(ctx, "m", spec, 6)
    on_disk = store.read(ctx.out, store.RELEASED_ABLATIONS)
    assert on_disk["runs"][store.run_key("m", store.ADVLIB, spec, 6, 3)]["mask"] == first["mask"]
    assert on_disk["settings"] == {"seed": 3, "sizes": [1, 2]} and on_disk["models"] == ctx.identity
    x, y = batch
    expected = predict(natural_linear, run_attack(spec, natural_linear, x[:6], y[:6],
                                                  generator=torch.Generator().manual_seed(3))) == y[:6]
    assert store.mask_of(first).tolist() == expected.tolist()
    assert first["trace"] is None and len(lines) == 1
    assert attack_run(ctx, "m", spec, 6) is first and len(lines) == 1  # reused, not rerun
    traced = attack_run(ctx, "m", spec, 6, traced=True)  # a trace was asked for and is missing: rerun once
    assert len(traced["trace"]["grad_norm"]) == spec.steps + 1 and traced["mask"] == first["mask"]
    assert attack_run(ctx, "m", spec, 6) is traced and len(lines) == 2


def test_the_authors_clamp_is_its_own_run(tmp_path, natural_linear, batch):
    ctx, _ = open_session(tmp_path, natural_linear, batch)
    spec = AttackSpec.so("l2", eps=1.5, steps=2, samples=2)
    ours, theirs = attack_run(ctx, "m", spec, 4), attack_run(ctx, "m", spec, 4, variant=store.CLAMP_AT_END)
    assert ours is not theirs and len(ctx.doc["runs"]) == 2
    assert store.run(ctx.doc, model="m", spec=spec, n=4, variant=store.CLAMP_AT_END) is theirs
    with pytest.raises(ValueError, match="'fancy'.*advlib, clamp-at-end"):
        attack_run(ctx, "m", spec, 4, variant="fancy")


def test_restarts_are_stored_like_a_run(tmp_path, natural_linear, batch, monkeypatch):
    ctx, _ = open_session(tmp_path, natural_linear, batch)
    spec = AttackSpec.pgd("l2", eps=1.5, steps=2)
    entry = restarts_run(ctx, "m", spec, 8, 3)
    assert entry["restarts"] == 3 and entry["gradient_evaluations"] == 3 * spec.steps
    assert len(entry["accuracy_after_each_restart"]) == 3 and entry["mean_l2_perturbation"] is None
    assert store.run(ctx.doc, model="m", spec=spec, n=8, variant=store.restarts_variant(3)) is entry
    monkeypatch.setattr(session_module, "worst_case_restarts", None)  # a second call must not compute again
    assert restarts_run(ctx, "m", spec, 8, 3) is entry


def test_jsonable_is_what_json_gives_back():
    assert jsonable({1: (2, (3,)), "a": [{"b": (4,)}]}) == {"1": [2, [3]], "a": [{"b": [4]}]}
