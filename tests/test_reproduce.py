"""``advlib.reproduce``: profiles and cells, records with every field, skip / recompute / resume.

Most tests use a tiny custom profile (100 training images, 30 test images, 2-step attacks), registered as
"tiny" in ``advlib.protocols.PROFILES`` for the duration of a test; one slow test runs one real cell of the
quick profile end to end.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import advlib
from advlib import protocols, records, runtime
from advlib import reproduce as rep
from advlib.protocols import QUICK, ROWS, TrainSpec
from advlib.records import unpack_mask
from advlib.specs import AttackSpec
from advlib.training import ATDA, EnsembleAT, MadryAT, Trades
from conftest import KillAt, Killed, REPO, strip_seconds, synthetic_identity


_BASE = TrainSpec(epochs=2, batch_size=25, checkpoint_every=2, eps_hold=0.1, eps_ramp=0.5)
TINY = replace(
    QUICK, name="tiny", description="test-only", n_train=100, n_test=30, seed=7,
    train_attack={"l2": AttackSpec.pgd("l2", steps=2), "linf": AttackSpec.pgd("linf", steps=2)},
    defenses={"madry": _BASE, "trades": replace(_BASE, beta=1.0), "atda": _BASE,
              "ensemble": replace(_BASE, epochs=1, static_models=("tramer_d",))},
    static=TrainSpec(epochs=1, batch_size=25),
    evaluation={"PGD-l2": AttackSpec.pgd("l2", steps=2), "PGD-linf": AttackSpec.pgd("linf", steps=2),
                "SO-l2": AttackSpec.so("l2", steps=2, samples=2), "SO-linf": AttackSpec.so("linf", steps=2, samples=2)},
)


@pytest.fixture(autouse=True)
def _data_env(monkeypatch, mnist_root):
    """Full MNIST from $ADVLIB_DATA when available (else the loader's own fallback), never a download."""
    if mnist_root is not None:
        monkeypatch.setenv("ADVLIB_DATA", str(mnist_root))
    monkeypatch.setattr("advlib.data._download", lambda folder: False)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(protocols.PROFILES, "tiny", TINY)
    return TINY


@pytest.fixture(scope="module")
def tensors(mnist_root):
    old = os.environ.get("ADVLIB_DATA")
    if mnist_root is not None:
        os.environ["ADVLIB_DATA"] = str(mnist_root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rep.load_data(TINY, torch.device("cpu"))
    finally:
        if old is None:
            os.environ.pop("ADVLIB_DATA", None)
        else:
            os.environ["ADVLIB_DATA"] = old


@pytest.fixture(scope="module")
def madry_record(tensors, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return out, rep.run_cell(TINY, "madry-linf", out, tensors, quiet=True, revision="test-rev")


# ---------------------------------------------------------------------------------------------- names


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'quick', 'medium', 'tour', 'large', 'full', 'paper'"):
        rep.reproduce("nope")


def test_unknown_cell_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="'atda-mix'"):
        rep.reproduce("quick", "bogus", out=tmp_path / "out")
    with pytest.raises(ValueError, match="valid choices"):
        rep.reproduce("quick", ["madry-linf", "nope"], out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # validation happens before any work


def test_the_tiny_profile_keeps_the_specs_it_had_before_issue_8():
    """``pgd_spec(norm, steps)`` / ``so_spec(norm, steps, samples)`` of old: 2.5·ε/steps, the authors' σ."""
    assert TINY.train_attack["l2"] == AttackSpec("pgd", "l2", 4.0, 2, 5.0)
    assert TINY.evaluation["SO-linf"] == AttackSpec("so", "linf", 0.3, 2, 0.375, random_start=False, sigma=0.1,
                                                    samples=2)


def test_checkpoints_are_keyed_by_what_the_model_depends_on(tensors, tmp_path):
    path = rep.checkpoint_path(tmp_path, TINY, "madry-linf", tensors["sources"])
    assert path.parent == tmp_path / "checkpoints" and path.name.startswith("madry-linf-")
    same = (replace(TINY, name="other", n_test=7, description="x", notes=("y",), evaluation={}),  # evaluation, prose
            replace(TINY, defenses={**TINY.defenses, "trades": replace(_BASE, epochs=9)}),  # another defense
            replace(TINY, train_attack={**TINY.train_attack, "l2": AttackSpec.pgd("l2", steps=9)}),  # another norm
            replace(TINY, defenses={**TINY.defenses, "madry": replace(_BASE, checkpoint_every=5)}))  # operational
    for profile in same:
        assert rep.checkpoint_path(tmp_path, profile, "madry-linf", tensors["sources"]) == path
    other = (replace(TINY, seed=8), replace(TINY, defenses={**TINY.defenses, "madry": replace(_BASE, epochs=3)}),
             replace(TINY, train_attack={**TINY.train_attack, "linf": AttackSpec.pgd("linf", steps=3)}),
             replace(TINY, init="tf"))
    for profile in other:
        assert rep.checkpoint_path(tmp_path, profile, "madry-linf", tensors["sources"]) != path
    moved = {**tensors["sources"], "train": {**tensors["sources"]["train"], "fingerprint": "0" * 16}}
    assert rep.checkpoint_path(tmp_path, TINY, "madry-linf", moved) != path  # other training examples
    assert rep.checkpoint_path(tmp_path, TINY, "madry-l2", tensors["sources"]) != path


def test_the_tour_reuses_the_medium_models(tensors, tmp_path):
    sources = tensors["sources"]
    for cell in ("madry-linf", "trades-linf", rep.NATURAL):
        assert rep.checkpoint_path(tmp_path, protocols.TOUR, cell, sources) == \
            rep.checkpoint_path(tmp_path, protocols.MEDIUM, cell, sources)


def test_make_defense_builds_each_defense(tensors):
    static = [torch.nn.Linear(1, 1)]
    assert isinstance(rep.make_defense("madry", "l2", TINY, [], "cpu"), MadryAT)
    trades = rep.make_defense("trades", "mix", TINY, [], "cpu")
    assert isinstance(trades, Trades) and trades.beta == 1.0 and trades.norm == "mix"
    ens = rep.make_defense("ensemble", "linf", TINY, static, "cpu")
    assert isinstance(ens, EnsembleAT) and ens.static == static
    atda = rep.make_defense("atda", "l2", TINY, [], "cpu")
    assert isinstance(atda, ATDA) and atda.attacks is TINY.train_attack


def test_make_defense_rejects_an_unknown_defense_listing_the_valid_ones():
    with pytest.raises(ValueError, match="unknown defense 'nope'; valid choices: 'madry', 'trades', 'ensemble', 'atda'"):
        rep.make_defense("nope", "l2", TINY, [], "cpu")


# ---------------------------------------------------------------------------------------------- one record


def test_record_has_every_field(madry_record, tensors):
    out, rec = madry_record
    path = out / "madry-linf.json"
    assert path.is_file() and records.read_record(path) == json.loads(json.dumps(rec))
    assert rec["profile"] == "tiny" and rec["cell"] == "madry-linf" and rec["seed"] == 7
    assert json.loads(json.dumps(rec["config"])) == {k: v for k, v in json.loads(json.dumps(TINY.config())).items()
                             if k not in ("description", "notes")}  # prose is no part of a record
    assert rec["identity"] == json.loads(json.dumps(rep.expected_identity(TINY, "madry-linf", tensors["sources"])))
    assert rec["git_revision"] == "test-rev" and rec["advlib_version"] == advlib.__version__
    assert rec["torch_version"] == torch.__version__
    assert rec["device"].startswith("cpu")
    assert rec["data"]["n_train"] == 100 and rec["data"]["n_test"] == 30 == rec["n_test"]
    assert set(rec["data"]["train"]) == {"kind", "path", "fingerprint"}
    assert not Path(rec["data"]["train"]["path"]).is_absolute()  # records name no folder of the machine
    assert rec["data"]["train"]["fingerprint"] == advlib.data.fingerprint("train", limit=100)
    wall = rec["wall_time"]
    assert set(wall) == {"static_models", "train", "evaluate", "this_run"}
    assert set(wall["evaluate"]) == set(TINY.evaluation)
    assert wall["train"] > 0 and wall["this_run"] >= wall["train"] + sum(wall["evaluate"].values())
    assert list(rec["accuracy"]) == list(ROWS)
    for name, mask in rec["masks"].items():
        bits = unpack_mask(mask, rec["n_test"])
        assert bits.float().mean().item() == pytest.approx(rec["accuracy"][name])
    every = torch.stack([unpack_mask(m, 30) for m in rec["masks"].values()]).all(0).float().mean().item()
    assert rec["norm_agnostic"] == pytest.approx(every)
    for name, spec in TINY.evaluation.items():
        trace = rec["traces"][name]
        assert len(trace["grad_norm"]) == len(trace["loss"]) == spec.steps + 1
    assert [r["epoch"] for r in rec["training"]] == [1, 2]
    assert all({"loss", "adv_acc", "seconds", "lr"} <= set(r) for r in rec["training"])
    assert rec["accuracy"]["Natural"] > 0.3  # 8 Adam steps on 100 images already beat chance


def test_status_compares_the_record_s_identity_with_the_code_s(madry_record, tensors):
    out, _ = madry_record
    path, sources = out / "madry-linf.json", tensors["sources"]
    assert rep.status(path, TINY, sources) == ("current", [], [])
    assert rep.status(out / "absent.json", TINY, sources)[0] == "absent"
    assert rep.status(path, replace(TINY, description="new words", notes=("more",)), sources) == ("current", [], [])
    state, reasons, _ = rep.status(path, replace(TINY, seed=1), sources)
    assert state == "stale" and "model seed: 7 → 1" in reasons
    other_data = {**sources, "train": {**sources["train"], "fingerprint": "f" * 16}}
    assert rep.status(path, TINY, other_data)[0] == "stale"
    longer = replace(TINY, evaluation={**TINY.evaluation, "PGD-l2": AttackSpec.pgd("l2", steps=3)})
    state, reasons, _ = rep.status(path, longer, sources)
    assert state == "stale" and any(r.startswith("row PGD-l2: attack.steps: 2 → 3") for r in reasons)
    more = replace(TINY, evaluation={**TINY.evaluation, "PGD-l2-x0": AttackSpec.pgd("l2", steps=2, random_start=False)})
    assert rep.status(path, more, sources) == ("current", [], ["PGD-l2-x0"])  # a new row is missing, not stale


def test_train_cell_loads_a_finished_checkpoint(madry_record, tensors, monkeypatch):
    out, rec = madry_record
    def boom(*args, **kwargs):
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(MadryAT, "loss", boom)
    model, info = rep.train_cell(TINY, "madry-linf", tensors, out)
    assert info["history"] == rec["training"]
    assert rep.evaluate(model, tensors["xt"], tensors["yt"], {}, seed=0).accuracy()["Natural"] == \
        pytest.approx(rec["accuracy"]["Natural"])


# ---------------------------------------------------------------------------------------------- skip / recompute


def test_reproduce_skips_a_finished_cell(tiny, tmp_path, monkeypatch):
    first = rep.reproduce("tiny", "madry-l2", out=tmp_path, quiet=True)
    path = tmp_path / "madry-l2.json"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns

    def forbidden(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(rep, "run_cell", forbidden)
    monkeypatch.setattr(rep, "load_data", forbidden)
    again = rep.reproduce("tiny", ["madry-l2"], out=tmp_path, quiet=True)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert again == first


@pytest.mark.parametrize("damage", ["truncate", "tamper", "garbage", "stale-identity"])
def test_reproduce_recomputes_a_damaged_record(damage, tiny, madry_record, tensors, tmp_path, monkeypatch):
    monkeypatch.setattr(rep, "load_data", lambda profile, device, sources=None: tensors)
    src, original = madry_record
    out = tmp_path / "res"
    (out / "checkpoints").mkdir(parents=True)
    for f in (src / "checkpoints").rglob("*"):  # the trained checkpoint: recomputing re-evaluates only
        dest = out / f.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if f.is_file():
            dest.write_bytes(f.read_bytes())
    path = out / "madry-linf.json"
    text = (src / "madry-linf.json").read_text()
    if damage == "truncate":
        text = text[: len(text) // 2]
    elif damage == "tamper":
        rec = json.loads(text)
        rec["accuracy"]["PGD-linf"] = 0.999
        text = json.dumps(rec)
    elif damage == "garbage":
        text = "\x00\x01 not json"
    else:
        rec = json.loads(text)
        rec["identity"]["rows"]["PGD-linf"]["key"] = "0" * 16
        body = {k: v for k, v in rec.items() if k != "digest"}
        rec["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        text = json.dumps(rec)
    path.write_text(text)
    with pytest.warns(UserWarning, match="recomputing"):
        result = rep.reproduce("tiny", "madry-linf", out=out, quiet=True)
    fresh = records.read_record(path)  # valid again
    assert result["madry-linf"] == fresh
    for key in ("accuracy", "masks", "traces", "training", "norm_agnostic", "config", "identity"):
        assert fresh[key] == json.loads(json.dumps(original[key])), key


@pytest.fixture(scope="module")
def atda_clean(tensors, tmp_path_factory):
    """An uninterrupted tiny atda-mix cell (ATDA: defense state; mix: alternating norms; ε warm-up)."""
    return rep.run_cell(TINY, "atda-mix", tmp_path_factory.mktemp("clean"), tensors, quiet=True, revision="x")


@pytest.mark.parametrize("kill_at", [3, 7])  # mid first epoch; mid second epoch (8 steps in all)
def test_killed_cell_resumes_to_the_same_numbers(kill_at, tiny, atda_clean, tensors, tmp_path, monkeypatch):
    cell, clean = "atda-mix", json.loads(json.dumps(atda_clean))
    monkeypatch.setattr(rep, "load_data", lambda profile, device, sources=None: tensors)
    real = rep.make_defense
    monkeypatch.setattr(rep, "make_defense", lambda *a, **k: KillAt(real(*a, **k), kill_at))
    with pytest.raises(Killed):
        rep.reproduce("tiny", cell, out=tmp_path, quiet=True)
    assert not (tmp_path / f"{cell}.json").exists()
    ckpt = rep.checkpoint_path(tmp_path, TINY, cell, tensors["sources"])
    assert ckpt.is_file()
    monkeypatch.setattr(rep, "make_defense", real)
    torch.manual_seed(1234)  # as in a new process
    resumed = rep.reproduce("tiny", cell, out=tmp_path, quiet=True)[cell]
    for key in ("accuracy", "masks", "traces", "norm_agnostic"):
        assert resumed[key] == clean[key], key
    assert strip_seconds(resumed["training"]) == strip_seconds(clean["training"])
    assert list(tmp_path.rglob("*.tmp")) == []


def test_ensemble_cell_trains_and_caches_its_static_models(tensors, tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    model, info = rep.train_cell(TINY, "ensemble-l2", tensors, folder)
    assert rep.static_checkpoint_path(folder, TINY, "tramer_d", tensors["sources"]).is_file()
    assert rep.checkpoint_path(folder, TINY, "ensemble-l2", tensors["sources"]).is_file()
    assert info["static_seconds"] > 0 and len(info["history"]) == 1
    assert 0.0 <= info["history"][0]["self_source"] <= 1.0

    def boom(*args, **kwargs):
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(EnsembleAT, "loss", boom)
    monkeypatch.setattr(rep.Natural, "loss", boom)
    again, info2 = rep.train_cell(TINY, "ensemble-l2", tensors, folder)
    assert info2["history"] == info["history"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_natural_pseudo_cell(tensors, tmp_path):
    model, info = rep.train_cell(TINY, rep.NATURAL, tensors, tmp_path / "ck")
    assert rep.checkpoint_path(tmp_path / "ck", TINY, rep.NATURAL, tensors["sources"]).is_file()
    assert [r["epoch"] for r in info["history"]] == [1, 2] and "acc" in info["history"][0]


def test_static_model_training_is_a_function_of_the_profile(tensors, tmp_path):
    """Regression: the static models (dropout) must not depend on what ran before in the process, and
    train_static must create its folder."""
    weights = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model = rep.train_static(TINY, "tramer_d", tensors, tmp_path / str(global_seed))
        weights.append(model.state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


# ---------------------------------------------------------------------------------------------- the quick profile


@pytest.mark.slow
def test_quick_profile_one_cell_end_to_end(tmp_path, mnist_root, monkeypatch):
    """The real quick profile, one cell: record fields, skip on re-run, and the table CLI (≈1 min on 2 cores)."""
    if mnist_root is None:
        pytest.skip("full MNIST not available (set ADVLIB_DATA)")
    out = tmp_path / "quick"
    start = time.perf_counter()
    recs = rep.reproduce("quick", "madry-linf", out=out, quiet=True)
    first_seconds = time.perf_counter() - start
    rec = recs["madry-linf"]
    path = out / "madry-linf.json"
    assert records.read_record(path) == rec
    assert rec["profile"] == "quick" and rec["seed"] == QUICK.seed
    assert rec["identity"]["model"]["key"] == rep.expected_identity(QUICK, "madry-linf", rep.data_identity(QUICK))[
        "model"]["key"] and rec["config"]["n_train"] == 2000
    assert rec["git_revision"] and rec["torch_version"] == torch.__version__ and rec["device"].startswith("cpu")
    assert rec["data"]["train"]["kind"] == "env" and rec["data"]["n_train"] == 2000 and rec["n_test"] == 200
    assert set(rec["wall_time"]) == {"static_models", "train", "evaluate", "this_run"}
    assert set(rec["wall_time"]["evaluate"]) == set(QUICK.evaluation)
    assert list(rec["accuracy"]) == list(ROWS)
    assert all(0 <= v <= 1 for v in rec["accuracy"].values())
    assert rec["accuracy"]["Natural"] > 0.5
    assert set(rec["traces"]) == set(QUICK.evaluation)
    assert len(rec["traces"]["PGD-linf"]["grad_norm"]) == QUICK.evaluation["PGD-linf"].steps + 1
    assert len(rec["training"]) == QUICK.defenses["madry"].epochs
    # a second call skips the finished cell: same bytes, fast
    before = path.read_bytes()
    monkeypatch.setattr(rep, "run_cell", lambda *a, **k: pytest.fail("the finished cell was recomputed"))
    start = time.perf_counter()
    again = rep.reproduce("quick", "madry-linf", out=out, quiet=True)
    assert time.perf_counter() - start < max(10.0, first_seconds / 5)
    assert path.read_bytes() == before and again["madry-linf"] == rec
    # the table command prints ours/paper per cell
    env = {**os.environ, "ADVLIB_DATA": str(mnist_root)}
    proc = subprocess.run([sys.executable, "-m", "advlib", "table", str(out)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    ours = 100 * rec["accuracy"]["PGD-linf"]
    assert f"{ours:.1f}/92.5" in proc.stdout
    assert "ours/paper, accuracy in %" in proc.stdout and "profile(s): quick" in proc.stdout and "1 of 12 cells" in proc.stdout
    assert "norm-agnostic" in proc.stdout


# ---------------------------------------------------------------------------------------------- time budget


def test_a_cell_stopped_at_the_time_budget_resumes_to_the_same_numbers(tiny, atda_clean, tensors, tmp_path,
                                                                        monkeypatch, capsys):
    """A deadline already past: training saves a checkpoint and stops, no record is written, and the next
    call (no budget) resumes and ends with the numbers of an uninterrupted run."""
    cell, clean = "atda-mix", json.loads(json.dumps(atda_clean))
    monkeypatch.setattr(rep, "load_data", lambda profile, device, sources=None: tensors)
    monkeypatch.setattr(rep, "estimated_seconds", lambda *a: None)  # no estimate: the cell is started
    clock = iter([0.0, 0.0] + [1e6] * 10_000)  # run start, cell start; then training looks far past the deadline
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    got = rep.reproduce("tiny", cell, out=tmp_path, quiet=True, time_budget=60)
    assert got == {} and not (tmp_path / f"{cell}.json").exists()
    assert "stopped at the time budget after 0 of 2 epochs" in capsys.readouterr().out
    assert rep.checkpoint_path(tmp_path, TINY, cell, tensors["sources"]).is_file()
    monkeypatch.undo()
    monkeypatch.setitem(protocols.PROFILES, "tiny", TINY)
    monkeypatch.setattr(rep, "load_data", lambda profile, device, sources=None: tensors)
    resumed = rep.reproduce("tiny", cell, out=tmp_path, quiet=True)[cell]
    for key in ("accuracy", "masks", "norm_agnostic"):
        assert resumed[key] == clean[key], key
    assert strip_seconds(resumed["training"]) == strip_seconds(clean["training"])


def test_a_cell_expected_to_overrun_the_budget_is_not_started(tiny, madry_record, tmp_path, monkeypatch, capsys):
    src, record = madry_record
    (tmp_path / "madry-linf.json").write_bytes((src / "madry-linf.json").read_bytes())

    def forbidden(*a, **k):
        raise AssertionError("a cell that cannot fit was started")

    monkeypatch.setattr(rep, "run_cell", forbidden)
    expected = rep.estimated_seconds("madry-l2", tmp_path, record["device"])
    wall = record["wall_time"]
    assert expected["train"] == pytest.approx(wall["train"] + wall["static_models"])  # same defense and device
    budget = 0.5 * (expected["train"] + expected["evaluate"])
    got = rep.reproduce("tiny", "madry-l2,madry-linf", out=tmp_path, quiet=True, time_budget=budget)
    assert set(got) == {"madry-linf"}
    assert "madry-l2: expected" in capsys.readouterr().out


def test_estimates_prefer_the_cell_then_the_defense_then_any_record_on_the_same_device(tmp_path):
    def write(cell, train, device="GPU X"):
        rec = {"profile": "full", "cell": cell, "config": {}, "identity": synthetic_identity(cell), "seed": 0, "advlib_version": "0", "git_revision": "r",
               "torch_version": "t", "device": device, "data": {}, "accuracy": {"Natural": 0.5}, "norm_agnostic": 0.5,
               "n_test": 1, "masks": {}, "traces": {}, "training": [], "created": "now",
               "wall_time": {"train": train, "static_models": 1.0, "evaluate": {"PGD-l2": 2.0, "SO-l2": 3.0}}}
        records.write_record(tmp_path / f"{cell}.json", rec)

    assert rep.estimated_seconds("madry-l2", tmp_path / "none", "GPU X") is None
    write("madry-linf", 10.0)
    write("trades-l2", 100.0)
    write("atda-l2", 1000.0, device="cpu (x86_64, 2 threads)")
    assert rep.estimated_seconds("madry-l2", tmp_path, "GPU X") == {"train": 11.0, "evaluate": 5.0}
    assert rep.estimated_seconds("trades-l2", tmp_path, "GPU X") == {"train": 101.0, "evaluate": 5.0}
    assert rep.estimated_seconds("ensemble-l2", tmp_path, "GPU X")["train"] == pytest.approx(56.0)
    assert rep.estimated_seconds("atda-l2", tmp_path, "GPU Y") is None


@pytest.mark.parametrize("budget", [0, -5.0, float("nan")])
def test_a_time_budget_must_be_positive(budget):
    with pytest.raises(ValueError, match="time_budget must be a positive number of seconds"):
        rep.reproduce("quick", "madry-linf", time_budget=budget)


def test_records_name_the_runtime_settings(madry_record):
    _, record = madry_record
    # on a CPU: the memory format, the processor and the kernels' vector instructions
    assert record["runtime"] == {"channels_last": True, "cpu_model": runtime.cpu_model(),
                                 "cpu_capability": torch.backends.cpu.get_cpu_capability()}


# ---------------------------------------------------------------------------------------------- data identity


def test_a_cell_retrains_when_its_data_change_and_its_record_says_which_data(tiny, tmp_path, monkeypatch):
    """Train a cell on the packaged MNIST, then point ADVLIB_DATA at other images: the record is recomputed,
    the model is retrained (not loaded from the first checkpoint), and the record names the new data."""
    from test_data import write_split
    monkeypatch.delenv("ADVLIB_DATA", raising=False)
    first = rep.reproduce("tiny", "madry-linf", out=tmp_path, quiet=True)["madry-linf"]
    assert first["data"]["train"]["kind"] == "package"
    other = tmp_path / "other"
    for split, n in (("train", 100), ("test", 30)):
        write_split(other, split, n, seed=11, gz=True)
    monkeypatch.setenv("ADVLIB_DATA", str(other))
    trained = []
    real = rep.train_cell
    monkeypatch.setattr(rep, "train_cell", lambda *a, **k: trained.append(a[2]["sources"]) or real(*a, **k))
    with pytest.warns(UserWarning, match="model data: '[0-9a-f]{16}' → '[0-9a-f]{16}'.*; recomputing"):
        second = rep.reproduce("tiny", "madry-linf", out=tmp_path, quiet=True)["madry-linf"]
    assert second["data"]["train"] == {"kind": "env", "path": "$ADVLIB_DATA",
                                       "fingerprint": advlib.data.fingerprint("train", limit=100)}
    assert second["data"]["train"]["fingerprint"] != first["data"]["train"]["fingerprint"]
    paths = [rep.checkpoint_path(tmp_path, TINY, "madry-linf", rec["data"]) for rec in (first, second)]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(p.name for p in paths)
    assert [rep.checkpoint_path(tmp_path, TINY, "madry-linf", s) for s in trained] == paths[1:]  # trained afresh
    assert second["training"] != first["training"]


# ---------------------------------------------------------------------------------------------- extended evaluation


def test_reproduce_extended_adds_the_block_once(tiny, madry_record, tensors, tmp_path, monkeypatch, capsys):
    """``reproduce(extend=True)`` on a fresh folder: trains and evaluates the cell, then adds the extended block
    (a cheap spec here: one AutoAttack row) with the same model; the paper's rows and the configuration hash are
    those of a plain run; a second call does nothing."""
    from advlib import extended
    from advlib.extended import ExtendedSpec
    from advlib.strong import AutoAttackSpec
    cheap = ExtendedSpec(rows={"AA-linf": AutoAttackSpec("linf", 0.3, attacks=("apgd-ce",)),
                               "PGD-l2@2": AttackSpec.pgd("l2", steps=2, eps=2.0)},
                         pgd_steps=2, so_steps=2, so_samples=2, radii={"l2": (4.0,), "linf": (0.3,)}, so_every=1)
    monkeypatch.setattr(extended, "extended_spec", lambda profile: cheap)
    monkeypatch.setattr(rep, "load_data", lambda profile, device, sources=None: tensors)
    _, plain = madry_record
    rec = rep.reproduce("tiny", "madry-linf", out=tmp_path, device="cpu", quiet=True, extend=True)["madry-linf"]
    path = tmp_path / "madry-linf.json"
    assert records.assemble(path) == rec and extended.current(rec, TINY) and "extended" not in records.read_record(path)
    assert rec["identity"] == plain["identity"]
    for key in ("accuracy", "masks", "norm_agnostic", "traces"):
        assert rec[key] == json.loads(json.dumps(plain[key])), key
    block = rec["extended"]
    assert block["identity"] == extended.expected_identity(TINY, rec) and set(block["accuracy"]) == {"AA-linf", "PGD-l2@2"}
    assert not list((tmp_path / "progress").iterdir())  # the progress file is gone once the block is written
    assert block["accuracy"]["AA-linf"] <= rec["accuracy"]["Natural"]
    assert block["curves"]["PGD-linf"]["accuracy"] == [rec["accuracy"]["PGD-linf"]]  # reused, same model
    assert "madry-linf extended: AA-linf" in capsys.readouterr().out
    # a second call: nothing to do, nothing loaded, the file untouched
    before = path.read_bytes()

    def forbidden(*a, **k):
        raise AssertionError("an extended cell was recomputed")

    for name in ("load_data", "run_cell", "extend_cell", "train_cell"):
        monkeypatch.setattr(rep, name, forbidden)
    monkeypatch.setattr(extended, "extend", forbidden)
    start = time.perf_counter()
    again = rep.reproduce("tiny", "madry-linf", out=tmp_path, device="cpu", quiet=True, extend=True)
    assert time.perf_counter() - start < 10.0
    assert again == {"madry-linf": rec} and path.read_bytes() == before
    # a record that lacks the current block but whose model is gone: said so, nothing recomputed or lost
    rep.checkpoint_path(tmp_path, TINY, "madry-linf", tensors["sources"]).unlink()
    monkeypatch.setattr(extended, "extended_spec", lambda profile: replace(cheap, so_every=2))
    capsys.readouterr()
    again = rep.reproduce("tiny", "madry-linf", out=tmp_path, device="cpu", quiet=True, extend=True)
    assert again == {"madry-linf": rec}
    assert "madry-linf: the record has no current extended evaluation and the model" in capsys.readouterr().out
    assert path.read_bytes() == before
    # the CLI flag reaches reproduce(extend=True)
    from advlib.__main__ import main
    import inspect
    signature, seen = inspect.signature(rep.reproduce), []
    monkeypatch.setattr(rep, "reproduce", lambda *a, **k: seen.append(signature.bind(*a, **k).arguments) or {})
    assert main(["reproduce", "--profile", "tiny", "--cells", "madry-linf", "--out", str(tmp_path), "--quiet",
                 "--extended"]) == 0
    assert main(["reproduce", "--profile", "tiny", "--cells", "madry-linf", "--out", str(tmp_path), "--quiet"]) == 0
    assert [(a["profile"], a["cells"], a["extend"]) for a in seen] == [("tiny", "madry-linf", True),
                                                                       ("tiny", "madry-linf", False)]


# ---------------------------------------------------------------------------------------------- identity over time


def test_a_row_added_to_a_profile_goes_to_the_rows_side_file_and_leaves_the_record(tiny, madry_record, tensors,
                                                                                 tmp_path, monkeypatch):
    """A profile that gains an evaluation row keeps its records: ``reproduce`` evaluates only the new row, on the
    model that made the record, into ``<cell>.rows.json``; the record's bytes do not change."""
    src, original = madry_record
    for f in src.rglob("*"):
        if f.is_file():
            (tmp_path / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f.relative_to(src)).write_bytes(f.read_bytes())
    path = tmp_path / "madry-linf.json"
    before = path.read_bytes()
    start_at_x = AttackSpec.pgd("l2", steps=2, random_start=False)
    more = replace(TINY, evaluation={**TINY.evaluation, "PGD-l2-x0": start_at_x})
    monkeypatch.setitem(protocols.PROFILES, "tiny", more)
    monkeypatch.setattr(rep, "load_data", lambda profile, device, sources=None: tensors)
    monkeypatch.setattr(rep, "run_cell", lambda *a, **k: pytest.fail("a current record was recomputed"))
    got = rep.reproduce("tiny", "madry-linf", out=tmp_path, quiet=True)["madry-linf"]
    assert path.read_bytes() == before
    model = rep.train_cell(TINY, "madry-linf", tensors, tmp_path)[0]
    alone = rep.evaluate(model, tensors["xt"], tensors["yt"], {"PGD-l2-x0": start_at_x}, seed=TINY.seed)
    assert got["added_rows"]["PGD-l2-x0"]["accuracy"] == alone.accuracy()["PGD-l2-x0"]
    assert got["accuracy"] == original["accuracy"]
    assert rep.status(path, more, tensors["sources"]) == ("current", [], [])  # the record lacks it, its side file not
    side = records.read_document(records.side_path(path, "rows"), "rows")
    assert set(side["rows"]) == {"PGD-l2-x0"} and side["model"] == records.model_key(original)
    again = rep.reproduce("tiny", "madry-linf", out=tmp_path, quiet=True)["madry-linf"]  # nothing left to do
    assert again == got and path.read_bytes() == before


def test_an_interrupted_extended_evaluation_resumes_at_the_next_piece(tiny, madry_record, tensors, tmp_path,
                                                                     monkeypatch):
    from advlib import extended
    from advlib.extended import ExtendedSpec
    src, _ = madry_record
    for f in src.rglob("*"):
        if f.is_file():
            (tmp_path / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f.relative_to(src)).write_bytes(f.read_bytes())
    cheap = ExtendedSpec(rows={"PGD-l2@2": AttackSpec.pgd("l2", steps=2, eps=2.0)}, pgd_steps=2, so_steps=2,
                         so_samples=2, radii={"l2": (1.0, 4.0), "linf": (0.3,)}, so_every=1)
    monkeypatch.setattr(extended, "extended_spec", lambda profile: cheap)
    real, calls = extended._correct, []

    def dies_after_three(*a, **k):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(a[3])
        return real(*a, **k)

    monkeypatch.setattr(extended, "_correct", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        rep.extend_cell(TINY, "madry-linf", tmp_path, tensors, quiet=True, revision="r")
    progress = records.read_document(tmp_path / "progress" / "madry-linf.extended.json", "extended-progress")
    masks = [name for name, piece in progress["pieces"].items() if "mask" in piece]
    assert len(masks) == 3 and not records.side_path(tmp_path / "madry-linf.json", "extended").exists()
    resumed = []
    monkeypatch.setattr(extended, "_correct", lambda *a, **k: resumed.append(a[3]) or real(*a, **k))
    rec = rep.extend_cell(TINY, "madry-linf", tmp_path, tensors, quiet=True, revision="r")
    assert not set(resumed) & set(calls[:3]) and extended.current(rec, TINY)
    monkeypatch.setattr(extended, "_correct", real)
    (tmp_path / "fresh").mkdir()
    for f in src.rglob("*"):
        if f.is_file():
            (tmp_path / "fresh" / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "fresh" / f.relative_to(src)).write_bytes(f.read_bytes())
    fresh = rep.extend_cell(TINY, "madry-linf", tmp_path / "fresh", tensors, quiet=True, revision="r")
    for key in ("accuracy", "masks", "curves", "diagnostics"):
        assert rec["extended"][key] == fresh["extended"][key], key  # resumed = uninterrupted


def test_a_profile_with_a_start_fine_tunes_that_kept_model(monkeypatch):
    from advlib import kept, models
    torch.manual_seed(5)
    start = models.build("madry")
    asked = []
    monkeypatch.setattr(kept, "load_named", lambda stem, device="cpu": asked.append(stem) or start)
    got = rep.starting_model(replace(QUICK, start="medium-madry-linf"), torch.device("cpu"))
    assert asked == ["medium-madry-linf"] and got is start
    fresh = rep.starting_model(QUICK, torch.device("cpu"))
    again = rep._fresh("madry", QUICK.seed, torch.device("cpu"), init=QUICK.init)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))
