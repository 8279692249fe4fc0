"""Models kept in the repository as fp16 state dicts, so that later work attacks them without training them again.

``keep`` stores a recorded model (a record in a results folder whose checkpoint is still there) as
``results/models/<profile>-<cell>.pt`` (half precision: about 6.5 MB for Madry's CNN) and re-evaluates every row of
its record — the paper's rows and the rows added later — on the weights as stored: those rows (accuracy and
per-example masks) are the kept model's own, computed from exactly its weights, and go beside it in ``<name>.json``
(sealed, kind ``KIND``) with, per row, the images whose outcome differs from the fp32 record (rounding the weights
to fp16 moves a few attacked images), the file's sha256 and the record's model key. ``load`` returns the model by
name after checking the file against that document.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from advlib import models, protocols, records, reproduce, runtime
from advlib.evaluation import evaluate
from advlib.specs import AttackSpec

KIND = "kept-model"
FOLDER = "models"
#: The most the kept models may weigh in all (the tree travels to GPU machines).
BUDGET_BYTES = 40 * 2 ** 20


def name(profile: str, cell: str) -> str:
    return f"{profile}-{cell}"


def folder(root: str | Path | None = None) -> Path:
    from advlib.discovery import results_root
    return Path(root if root is not None else results_root()) / FOLDER


def sha256(path: Path) -> str:
    """The file's sha256 (a kept model's document records it)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _restore(state: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    model = models.build("madry")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval()


def keep(record_path: str | Path, root: str | Path | None = None, *, quiet: bool = True) -> dict:
    """Keep the model of the record at ``record_path`` (its checkpoint must exist beside it, under
    ``checkpoints/``; ``ValueError`` otherwise) and return the comparison document."""
    record_path = Path(record_path)
    rec = records.assemble(record_path)
    profile = protocols.get_profile(rec["profile"])
    sources = reproduce.data_identity(profile)
    checkpoint = reproduce.checkpoint_path(record_path.parent, profile, rec["cell"], sources)
    if not checkpoint.is_file():
        raise ValueError(f"no checkpoint {checkpoint} for {record_path}: only a model whose checkpoint is kept can be "
                         "stored (train it again with python -m advlib reproduce)")
    device = runtime.default_device()
    tensors = reproduce.load_data(profile, device, sources)
    trained = reproduce.train_cell(profile, rec["cell"], tensors, record_path.parent, quiet)[0]  # loads it
    state = {k: v.detach().half().cpu() for k, v in trained.state_dict().items()}
    out = folder(root) / f"{name(rec['profile'], rec['cell'])}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    model = _restore(state, device)
    rows = {k: profile.evaluation[k] for k in rec["accuracy"] if k in profile.evaluation}
    rows.update({k: AttackSpec(**v["spec"]) for k, v in rec.get("added_rows", {}).items()})
    result = evaluate(model, tensors["xt"], tensors["yt"], rows, seed=profile.seed, quiet=quiet)
    stored = {k: records.unpack_mask(v, rec["n_test"]) for k, v in rec["masks"].items()}
    stored.update({k: records.unpack_mask(v["mask"], rec["n_test"]) for k, v in rec.get("added_rows", {}).items()})
    differing = {k: int((mask.cpu() != stored[k]).sum()) for k, mask in result.correct.items()}
    record_name = record_path.resolve().relative_to(folder(root).parent.resolve()).as_posix()  # in the results root
    doc = {"profile": rec["profile"], "cell": rec["cell"], "record": record_name,
           "model_key": records.model_key(rec), "file": out.name, "sha256": sha256(out), "bytes": out.stat().st_size,
           "dtype": "float16", "n": rec["n_test"], "differing": differing,
           "accuracy": result.accuracy(), "masks": {k: records.pack_mask(v) for k, v in result.correct.items()},
           "device": runtime.device_name(device),
           "git_revision": records.git_revision(),
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return records.write_document(out.with_suffix(".json"), doc, KIND)


def load(profile: str, cell: str, root: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """The kept model ``<profile>-<cell>``, checked against its document (``ValueError`` if missing or altered)."""
    return load_named(name(profile, cell), root, device)


def load_named(stem: str, root: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """The kept model named ``stem`` (e.g. ``"medium-madry-linf"``), checked against its document."""
    path = folder(root) / f"{stem}.pt"
    if not path.is_file():
        found = sorted(p.stem for p in folder(root).glob("*.pt")) if folder(root).is_dir() else []
        raise ValueError(f"no kept model {stem!r}; kept: {', '.join(found) or 'none'}")
    doc = records.read_document(path.with_suffix(".json"), KIND)
    if sha256(path) != doc["sha256"]:
        raise ValueError(f"{path} does not match its document {path.with_suffix('.json')} (sha256)")
    return _restore(torch.load(path, map_location="cpu", weights_only=True), torch.device(device))


def total_bytes(root: str | Path | None = None) -> int:
    """What the kept models weigh in all."""
    return sum(p.stat().st_size for p in folder(root).glob("*.pt")) if folder(root).is_dir() else 0
