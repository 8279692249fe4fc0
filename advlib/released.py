"""The TRADES authors' released MNIST model (SmallCNN, ℓ∞-trained at ε = 0.3), evaluated like a Table 1 cell.

The paper's TRADES-ℓ∞ column was most likely measured on this very file: the first author's S-O scripts attack it
by default (``advlib/resources/trades_smallcnn/README.md``). ``evaluate_released`` runs a profile's Table 1 attacks
(and, optionally, the extended evaluation) on it, with no training, into ``<out>/trades-released.json``.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from advlib import data, extended, identity, models, protocols, records, runtime
from advlib.evaluation import evaluate
from advlib.reproduce import add_rows, data_identity, evaluation_record, fingerprints, status

CELL = "trades-released"
#: Where the checkpoint comes from (advlib/resources/trades_smallcnn/README.md).
SOURCE = "Bai-Li/TRADES@d9c1eb9c9c59759775cfbf300ffbaa835c0a2486 checkpoints/model_mnist_smallcnn.pt"


#: What the released model is, for its records' identity: the architecture and the checksum of its weights.
MODEL = {"architecture": "smallcnn", "md5": models.TRADES_SMALLCNN_MD5}


def expected_identity(profile: protocols.Profile, sources: dict[str, dict]) -> dict:
    """The identity a record of the released model under ``profile``'s evaluation has now."""
    return identity.record_identity(profile.config(), CELL, fingerprints(sources), MODEL)


def evaluate_released(profile: str = "full", out: str | Path | None = None, device: str | None = None, *,
                      extend: bool = False, quiet: bool = True) -> dict:
    """The record of the released model under ``profile``'s evaluation (its test images and attacks); reuses a
    valid record in ``out`` (default ``results/released``) and adds the extended block if ``extend``."""
    prof = protocols.get_profile(profile)
    dev = torch.device(device) if device else runtime.default_device()
    runtime.configure(dev)
    path = Path(out if out is not None else Path("results") / "released") / f"{CELL}.json"
    revision = records.git_revision()
    xt, yt = data.load_mnist("test", limit=prof.n_test, device=dev)
    model = models.load_trades_smallcnn(dev)
    sources = data_identity(prof)
    state, _, missing = status(path, prof, sources, expected_identity(prof, sources))
    rec = records.assemble(path) if state == "current" else None
    if rec is not None and missing:  # rows the profile gained: beside the record, on the model in hand
        rec = add_rows(prof, CELL, path.parent, {"xt": xt, "yt": yt, "sources": sources},
                       {name: prof.evaluation[name] for name in missing}, quiet, revision, model=model)
    if rec is None:
        start = time.perf_counter()
        result = evaluate(model, xt, yt, prof.evaluation, seed=prof.seed, quiet=quiet)
        rec = evaluation_record(prof, CELL, {"xt": xt, "sources": sources}, result, revision, MODEL)
        rec["wall_time"]["this_run"] = time.perf_counter() - start
        rec["model"] = {**MODEL, "source": SOURCE}
        for kind in records.SIDE_KINDS:  # side files of a record this one replaces
            records.side_path(path, kind).unlink(missing_ok=True)
        rec = records.write_record(path, rec)
    if extend and not extended.current(rec, prof):
        records.write_extended(path, extended.extend(model, xt, yt, prof, rec, revision))
        rec = records.assemble(path)
    return rec
