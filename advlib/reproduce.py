"""Reproduce Table 1 cell by cell: train what is missing (resumably), evaluate, write one record per cell.

``python -m advlib reproduce --profile P [--cells ...] [--out results/P]`` calls ``reproduce``.
A cell whose record is current (``status``: same model and row identities, ``advlib.identity``) is skipped; rows
the profile gained since are added to the record's rows side file; a killed run resumes from the last training
checkpoint (``<out>/checkpoints/``) and ends with the same numbers as an uninterrupted run.
"""
from __future__ import annotations

import logging
import textwrap
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

import advlib
from advlib import _checks, data, extended, identity, models, protocols, records, runtime, strong, table
from advlib.evaluation import evaluate
from advlib.protocols import Profile
from advlib.records import pack_mask
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec
from advlib.training import BUILDERS, Natural, fit
from advlib.training.loop import finished_training

log = logging.getLogger("advlib")


class OutOfTime(RuntimeError):
    """Training stopped at the run's deadline (``--time-budget``); its checkpoint lets the next run resume."""


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def data_identity(profile: Profile) -> dict[str, dict]:
    """Per split: where the profile's data come from (``kind`` and a portable ``path``, ``advlib.data.Source``) and
    the ``fingerprint`` of exactly the examples it uses (``advlib.data.fingerprint``)."""
    limits, out = {"train": profile.n_train, "test": profile.n_test}, {}
    for split in data.SPLITS:  # one read per split gives both the source and the fingerprint
        images, labels, source = data.locate_and_read(split)
        out[split] = {**source.portable(), "fingerprint": data.fingerprint_of(images[:limits[split]],
                                                                             labels[:limits[split]])}
    return out


def fingerprints(sources: dict[str, dict]) -> dict[str, str]:
    """``{"train": ..., "test": ...}`` fingerprints of ``data_identity``'s sources."""
    return {split: source["fingerprint"] for split, source in sources.items()}


def expected_identity(profile: Profile, cell: str, sources: dict[str, dict]) -> dict:
    """The identity (``advlib.identity.record_identity``) a record of ``cell`` made now under ``profile`` has."""
    return identity.record_identity(profile.config(), cell, fingerprints(sources))


def checkpoint_path(out: Path, profile: Profile, cell: str, sources: dict[str, dict]) -> Path:
    """Where the checkpoint of ``cell``'s model (or ``NATURAL``'s) lives: ``<out>/checkpoints/<cell>-<model key>.pt``,
    keyed by what the model depends on (``advlib.identity.model_dependencies``: training data, seed, its defense's
    settings, ...), so a model trained otherwise is never reused while a profile that differs only in its evaluation
    (``tour`` vs ``medium``, a new attack row) or in another defense's settings shares it."""
    deps = identity.model_dependencies(profile.config(), cell, sources["train"]["fingerprint"])
    return out / "checkpoints" / f"{cell}-{identity.key(deps)[:12]}.pt"


def static_checkpoint_path(out: Path, profile: Profile, name: str, sources: dict[str, dict]) -> Path:
    """Where a static ensemble source ``name`` (naturally trained, seed + 1) lives, keyed by its dependencies."""
    deps = {"model": name, "data": sources["train"]["fingerprint"], "seed": profile.seed + 1,
            "train": identity.train_config(profile.static), "version": identity.TRAINING_VERSION}
    return out / "checkpoints" / f"static-{name}-{identity.key(deps)[:12]}.pt"


def load_data(profile: Profile, device: torch.device, sources: dict[str, dict] | None = None) -> dict:
    """The profile's train/test tensors on ``device`` (in ``runtime.memory_format()``), with their sources."""
    x, y = data.load_mnist("train", limit=profile.n_train, device=device)
    xt, yt = data.load_mnist("test", limit=profile.n_test, device=device)
    sources = sources or data_identity(profile)  # a caller that has them already saves a read of each split
    x, xt = (t.contiguous(memory_format=runtime.memory_format()) for t in (x, xt))
    return {"x": x, "y": y, "xt": xt, "yt": yt, "sources": sources}


def _fresh(name: str, seed: int, device: torch.device, **kwargs) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.build(name, **kwargs)
    return model.to(device).to(memory_format=runtime.memory_format())


def starting_model(profile: Profile, device: torch.device) -> nn.Module:
    """A fresh Madry CNN (``profile.init``), or the kept model ``profile.start`` to fine-tune."""
    if profile.start is None:
        return _fresh("madry", profile.seed, device, init=profile.init)
    from advlib import kept
    return kept.load_named(profile.start, device=device).to(memory_format=runtime.memory_format())


def _fit_or_stop(model: nn.Module, x: Tensor, y: Tensor, defense, spec, *, seed: int, checkpoint: Path,
                 quiet: bool, desc: str, deadline: float | None) -> list[dict]:
    history = fit(model, x, y, defense, spec, seed=seed, checkpoint=checkpoint, quiet=quiet, desc=desc,
                  deadline=deadline)
    if not finished_training(history, spec):
        raise OutOfTime(f"{desc}: stopped at the time budget after {len(history)} of {spec.epochs} epochs; "
                        f"the checkpoint {checkpoint} resumes it")
    return history


def train_static(profile: Profile, name: str, tensors: dict, out: Path, quiet: bool = True,
                 deadline: float | None = None) -> nn.Module:
    """A naturally trained static model for ensemble training (its checkpoint under ``out``)."""
    x, y = tensors["x"], tensors["y"]
    model = _fresh(name, profile.seed + 1, x.device)
    checkpoint = static_checkpoint_path(out, profile, name, tensors["sources"])
    _mkdir(checkpoint.parent)
    _fit_or_stop(model, x, y, Natural(), profile.static, seed=profile.seed + 1, checkpoint=checkpoint, quiet=quiet,
                 desc=name, deadline=deadline)
    return model.eval()


def make_defense(defense: str, norm: str, profile: Profile, static: list[nn.Module], device: torch.device):
    """The defense object for one cell (``advlib.training.BUILDERS``; unknown defenses raise ``ValueError`` listing
    the valid ones; the multi-norm defenses ``protocols.MULTI_NORM`` take the norm ``protocols.UNION`` only)."""
    if _checks.choice("defense", defense, BUILDERS) in protocols.MULTI_NORM and norm != protocols.UNION:
        raise ValueError(f"unknown training norm {norm!r} for the multi-norm defense {defense!r}; valid choices: "
                         f"{protocols.UNION!r}")
    return BUILDERS[defense](norm, profile, static, device)


NATURAL = identity.NATURAL  # pseudo-cell: Madry's CNN trained naturally with the profile's Madry schedule


def train_cell(profile: Profile, cell: str, tensors: dict, out: Path, quiet: bool = True,
               deadline: float | None = None) -> tuple[nn.Module, dict]:
    """Train (or resume, or load) one cell's model (or ``"natural"``), its checkpoint at ``checkpoint_path(out, ...)``;
    returns it with history and wall times.

    Raises ``OutOfTime`` if training passes ``deadline`` (``time.monotonic()``); it then resumes next call.
    """
    checkpoint = checkpoint_path(out, profile, cell, tensors["sources"])
    _mkdir(checkpoint.parent)
    if cell == NATURAL:
        model = _fresh("madry", profile.seed, tensors["x"].device, init=profile.init)
        spec = profile.defenses["madry"]
        history = _fit_or_stop(model, tensors["x"], tensors["y"], Natural(), spec, seed=profile.seed,
                               checkpoint=checkpoint, quiet=quiet, desc=NATURAL, deadline=deadline)
        return model, {"history": history, "static_seconds": 0.0, "train_seconds": sum(r["seconds"] for r in history)}
    defense, norm = protocols.split_cell(cell)
    spec = protocols.train_spec(profile, defense)
    start = time.perf_counter()
    static = [train_static(profile, name, tensors, out, quiet, deadline) for name in spec.static_models]
    static_seconds = time.perf_counter() - start
    model = starting_model(profile, tensors["x"].device)
    impl = make_defense(defense, norm, profile, static, tensors["x"].device)
    history = _fit_or_stop(model, tensors["x"], tensors["y"], impl, spec, seed=profile.seed,
                           checkpoint=checkpoint, quiet=quiet, desc=cell, deadline=deadline)
    return model, {"history": history, "static_seconds": static_seconds,
                   "train_seconds": sum(row["seconds"] for row in history)}


def trained_model(profile: str | Profile, cell: str, *, out: str | Path | None = None,
                  device: str | torch.device | None = None, quiet: bool = True) -> nn.Module:
    """A cell's (or ``"natural"``'s) trained model, trained now unless a finished checkpoint exists.

    Checkpoints go to ``<out>/checkpoints/`` or the per-user cache's (``advlib.data.cache_dir()/models``).
    """
    profile = protocols.get_profile(profile) if isinstance(profile, str) else profile
    device = torch.device(device) if device is not None else runtime.default_device()
    runtime.tune_allocator()
    folder = Path(out) if out is not None else data.cache_dir() / "models"
    tensors = load_data(profile, device)
    return train_cell(profile, cell, tensors, folder, quiet)[0]


#: Profile fields that are prose: a record's stored configuration leaves them out (they are in no identity).
PROSE = ("description", "notes")


def evaluation_record(profile: Profile, cell: str, tensors: dict, result, revision: str | None,
                      model: dict | None = None) -> dict:
    """The record of ``result`` (an ``advlib.evaluation.Evaluation`` of ``cell``'s model on ``tensors``' test
    split under ``profile``): identity, provenance, accuracies, masks and traces; training fields empty for the
    caller. ``model``: the model's dependencies when it was not trained here (a released model)."""
    device = tensors["xt"].device
    config = {k: v for k, v in profile.config().items() if k not in PROSE}
    made = identity.record_identity(config, cell, fingerprints(tensors["sources"]), model)
    return {
        "profile": profile.name, "cell": cell, "config": config, "identity": made,
        "seed": profile.seed, "advlib_version": advlib.__version__, "git_revision": revision or records.git_revision(),
        "torch_version": torch.__version__, "device": runtime.device_name(device),
        "runtime": runtime.settings(device),
        "data": {"test": tensors["sources"]["test"], "n_test": int(tensors["xt"].shape[0])},
        "wall_time": {"static_models": 0.0, "train": 0.0, "evaluate": result.seconds},
        "accuracy": result.accuracy(), "norm_agnostic": result.worst_case(), "n_test": int(tensors["xt"].shape[0]),
        "masks": {k: pack_mask(v) for k, v in result.correct.items()},
        "traces": {k: {"grad_norm": t.grad_norm, "loss": t.loss} for k, t in result.traces.items()},
        "training": [],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_cell(profile: Profile, cell: str, out: Path, tensors: dict, quiet: bool = True,
             revision: str | None = None, deadline: float | None = None) -> dict:
    """Train, evaluate and record one cell; returns the written record (``revision``: code version to record).

    ``deadline`` bounds training only (``OutOfTime``); the caller keeps time for the evaluation.
    """
    start = time.perf_counter()
    model, train_info = train_cell(profile, cell, tensors, out, quiet, deadline)
    result = evaluate(model, tensors["xt"], tensors["yt"], profile.evaluation, seed=profile.seed, quiet=quiet)
    record = evaluation_record(profile, cell, tensors, result, revision)
    record["data"]["train"], record["data"]["n_train"] = tensors["sources"]["train"], int(tensors["x"].shape[0])
    record["wall_time"].update(static_models=train_info["static_seconds"], train=train_info["train_seconds"],
                               this_run=time.perf_counter() - start)
    record["training"] = train_info["history"]
    for kind in records.SIDE_KINDS:  # side files of the model this record replaces belong to no record any more
        records.side_path(out / f"{cell}.json", kind).unlink(missing_ok=True)
    progress_path(out, cell).unlink(missing_ok=True)
    return records.write_record(out / f"{cell}.json", record)


def progress_path(out: Path, cell: str) -> Path:
    """Where the pieces of ``cell``'s extended evaluation are kept while it runs (``advlib.extended.Progress``)."""
    return out / "progress" / f"{cell}.extended.json"


def _added_row(model: nn.Module, x: Tensor, y: Tensor, name: str, spec: AttackSpec | AutoAttackSpec, seed: int,
               quiet: bool) -> tuple[Tensor, float, dict]:
    """One added row's mask, seconds and what it depends on besides its spec: an AutoAttack row runs the whole
    cascade (``strong.autoattack``; its search precision in the key where it is not fp32), any other row
    ``evaluate``."""
    if isinstance(spec, AutoAttackSpec):
        start, search = time.perf_counter(), runtime.search_precision()
        mask = strong.autoattack(model, x, y, spec, seed=seed, precision=search)[spec.attacks[-1]]
        return mask, time.perf_counter() - start, identity.search_dependency(search)
    result = evaluate(model, x, y, {name: spec}, seed=seed, quiet=quiet)
    return result.correct[name], result.seconds[name], {}


def add_rows(profile: Profile, cell: str, out: Path, tensors: dict, rows: dict[str, AttackSpec | AutoAttackSpec],
             quiet: bool = True, revision: str | None = None, model: nn.Module | None = None,
             deadline: float | None = None) -> dict:
    """Evaluate ``rows`` (name → spec: rows a profile gained after the record was made, or any other row, AutoAttack
    included) on the model that made ``cell``'s record (``model``, else its checkpoint, else trained again: training
    is deterministic on one processor, and the model must reproduce the record's clean predictions, else
    ``ValueError``) and add them to the record's rows side file, written after each row; the record itself is not
    rewritten. Each row is keyed by its dependencies (``advlib.identity.row_dependencies``). ``deadline`` bounds a
    training (``OutOfTime``). Returns the record assembled with its side files."""
    path = out / f"{cell}.json"
    rec = records.read_record(path)
    if model is None:
        model = train_cell(profile, cell, tensors, out, quiet, deadline)[0]
    extended.check_same_model(model, tensors["xt"], tensors["yt"], rec)
    side_file = records.side_path(path, "rows")
    side = records.read_side(path, "rows", rec) or {"model": records.model_key(rec), "profile": rec["profile"],
                                                     "cell": cell, "rows": {}}
    test = tensors["sources"]["test"]["fingerprint"]
    for name, spec in rows.items():
        mask, seconds, search = _added_row(model, tensors["xt"], tensors["yt"], name, spec, profile.seed, quiet)
        deps = {**identity.row_dependencies(spec, test, profile.seed), **search}
        side["rows"][name] = {"key": identity.key(deps), "depends": deps, "spec": spec.config(),
                              "accuracy": float(mask.float().mean()), "mask": pack_mask(mask),
                              "seconds": seconds, "device": runtime.device_name(tensors["xt"].device),
                              "git_revision": revision or records.git_revision(),
                              "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        side = {k: v for k, v in side.items() if k not in ("schema", "kind", "digest")}
        records.write_document(side_file, side, "rows")
    return records.assemble(path)


def extend_cell(profile: Profile, cell: str, out: Path, tensors: dict, quiet: bool = True,
                revision: str | None = None) -> dict:
    """Add the extended evaluation (``advlib.extended``: AutoAttack, ℓ2 ε = 2, curves, diagnostics) of ``cell``'s
    model (its finished checkpoint) in the record's side file ``<cell>.extended.json``; each piece is kept in
    ``<out>/progress/`` as it finishes, so a killed run resumes at the next piece. A record whose side file is
    current is returned as it is (assembled with its side files)."""
    path = out / f"{cell}.json"
    rec = records.assemble(path)
    if extended.current(rec, profile):
        return rec
    model, _ = train_cell(profile, cell, tensors, out, quiet)
    progress = progress_path(out, cell)
    _mkdir(progress.parent)
    rec = extended.extend(model, tensors["xt"], tensors["yt"], profile, rec, revision or records.git_revision(),
                          progress=progress)
    records.write_extended(path, rec)
    progress.unlink(missing_ok=True)
    return records.assemble(path)


def status(path: Path, profile: Profile, sources: dict[str, dict],
           expected: dict | None = None) -> tuple[str, list[str], list[str]]:
    """Whether ``path`` holds a record of ``path``'s cell as ``profile`` makes it now on this data:
    ``("absent" | "invalid" | "stale" | "current", reasons, rows missing)`` (``advlib.identity.compare``; a row
    is missing when neither the record nor its rows side file holds it as the code computes it now).
    ``expected``: the identity to compare with, when the model was not trained here (``advlib.released``)."""
    if not path.exists():
        return "absent", [], []
    try:
        rec = records.read_record(path)
    except records.RecordError as err:
        return "invalid", [str(err)], []
    expected = expected if expected is not None else expected_identity(profile, rec["cell"], sources)
    state, reasons, missing = identity.compare(rec["identity"], expected)
    added = (records.read_side(path, "rows", rec) or {"rows": {}})["rows"]  # rows computed later, if still current
    return state, reasons, [r for r in missing if added.get(r, {}).get("key") != expected["rows"][r]["key"]]


def estimated_seconds(cell: str, out: Path, device: str, extend: bool = False) -> dict[str, float] | None:
    """Training and evaluation seconds that ``cell`` is expected to take on ``device``, from the records in
    ``out`` made on the same device (the same cell's own record first, else the same defense's, else the mean
    of all; ``extend``: the evaluation includes the extended block's, where records have one); None when no
    such record exists."""
    same = [r for r in records.load_records(out).values() if r["device"] == device] if out.is_dir() else []
    defense = protocols.split_cell(cell)[0]
    for pool in ([r for r in same if r["cell"] == cell], [r for r in same if r["cell"].startswith(defense + "-")], same):
        if pool:
            train = [r["wall_time"]["train"] + r["wall_time"]["static_models"] for r in pool]
            evaluate_s = [sum(r["wall_time"]["evaluate"].values())
                          + (r.get("extended", {}).get("wall_time", {}).get("total", 0.0) if extend else 0.0)
                          for r in pool]
            return {"train": sum(train) / len(train), "evaluate": sum(evaluate_s) / len(evaluate_s)}
    return None


def _print_extended(profile: str, cell: str, rec: dict) -> None:
    block = rec["extended"]
    rows = {k: 100 * v for k, v in extended.row_accuracies(rec).items()}
    flags = [k for k, d in block["diagnostics"].items() if d["flag"]]
    print(textwrap.fill(f"[{profile}] {cell} extended: " + ", ".join(f"{k} {v:.1f}%" for k, v in rows.items())
                        + f"; flags: {', '.join(flags) or 'none'} ({block['wall_time']['total']:.0f} s)",
                        width=110, subsequent_indent="    "), flush=True)


def reproduce(profile: str, cells: str | list[str] | None = None, out: str | Path | None = None,
              device: str | None = None, quiet: bool = False, time_budget: float | None = None,
              extend: bool = False) -> dict[str, dict]:
    """Run every requested cell of ``profile`` that has no valid record in ``out`` (default results/<profile>).

    ``time_budget`` (seconds): stop cleanly before it runs out. A cell starts only if its expected cost (from
    records made on this device, see ``estimated_seconds``; unknown: started anyway) fits in what is left;
    training stops at the budget minus the expected evaluation time and leaves a checkpoint that the next call
    resumes from. ``extend``: also add the extended evaluation (``extend_cell``) to every requested cell's record
    that lacks it, after its own evaluation, within the same time budget. Returns the records that exist for the
    requested cells.
    """
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    begin = time.monotonic()
    prof = protocols.get_profile(profile)
    cells = protocols.parse_cells(cells if cells is None or isinstance(cells, str) else ",".join(cells))
    out = Path(out) if out is not None else Path("results") / prof.name
    dev = torch.device(device) if device else runtime.default_device()
    runtime.tune_allocator()
    runtime.configure(dev)
    sources = data_identity(prof)
    states = {c: status(out / f"{c}.json", prof, sources) for c in cells}
    for c, (state, reasons, _) in states.items():
        if state in ("invalid", "stale"):
            warnings.warn(f"{out / f'{c}.json'} is {state} ({'; '.join(reasons)}); recomputing", stacklevel=2)
    todo = [c for c, (state, _, missing) in states.items() if state != "current" or missing]
    log.info("advlib: %s profile, %d of %d cells to run", prof.name, len(todo), len(cells))
    if extend:  # current cells whose record lacks the current extended block are work too, if their model is kept
        for c in cells:
            if c in todo or extended.current(records.assemble(out / f"{c}.json"), prof):
                continue
            if checkpoint_path(out, prof, c, sources).is_file():
                todo.append(c)
            else:
                print(f"[{prof.name}] {c}: the record has no current extended evaluation and the model that made it "
                      f"is not in {out / 'checkpoints'}; delete {out / f'{c}.json'} to train, evaluate and extend it "
                      "anew", flush=True)
    tensors = load_data(prof, dev, sources) if todo else None
    revision = records.git_revision()  # the code that this process imported, not later edits
    name = runtime.device_name(dev)
    for cell in todo:
        start = time.perf_counter()
        deadline = None
        if time_budget is not None:
            left = time_budget - (time.monotonic() - begin)
            expected = estimated_seconds(cell, out, name, extend)
            if expected is not None and expected["train"] + expected["evaluate"] > left:
                print(f"[{prof.name}] {cell}: expected {expected['train'] + expected['evaluate']:.0f} s, "
                      f"{left:.0f} s left in the time budget; stopping here", flush=True)
                break
            deadline = begin + time_budget - (expected["evaluate"] if expected else 0.0)
        try:
            state, _, missing = status(out / f"{cell}.json", prof, sources)
            if state != "current":
                rec = run_cell(prof, cell, out, tensors, quiet, revision, deadline)
            elif missing:
                try:
                    add_rows(prof, cell, out, tensors, {name: prof.evaluation[name] for name in missing}, quiet,
                             revision, deadline=deadline)
                except ValueError as err:  # a model trained again that is not the record's (not a CPU, or other code)
                    print(f"[{prof.name}] {cell}: rows {', '.join(missing)} not added: {err}", flush=True)
            if extend:
                rec = extend_cell(prof, cell, out, tensors, quiet, revision)
                _print_extended(prof.name, cell, rec)
            rec = records.assemble(out / f"{cell}.json")
        except OutOfTime as err:
            print(f"[{prof.name}] {err}", flush=True)
            break
        print(textwrap.fill(f"[{prof.name}] {cell}: " + ", ".join(f"{table.LABELS.get(k, k)} {100 * v:.1f}%"
                                                                   for k, v in rec["accuracy"].items())
                            + f", norm-agnostic {100 * rec['norm_agnostic']:.1f}% ({time.perf_counter() - start:.0f} s)",
                            width=110, subsequent_indent="    "), flush=True)
    folder = out / "checkpoints"
    if folder.is_dir():
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"[{prof.name}] checkpoints ({size / 2 ** 20:.0f} MB; they resume runs and serve trained models; "
              f"safe to delete):\n    {folder}", flush=True)
    return {c: records.assemble(out / f"{c}.json") for c in cells if (out / f"{c}.json").exists()}
