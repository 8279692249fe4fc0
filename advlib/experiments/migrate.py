"""The one-off conversion of the experiments' results files written before they were sealed documents.

The ablation scripts that preceded this package (``tools/released_ablations.py``, ``tools/beyond_ablations.py``)
wrote plain JSON with the same ``settings``, ``runs`` and ``items``. ``migrate`` seals such a file in place as a
document of its kind (``advlib.records.write_document``: schema, kind, digest), recomputing nothing: every
field is kept as it was, except ``what``, which now names the package module, and a ``migrated`` note with the
sha256 of the file as it was. A file that is already a sealed document of its kind is left alone.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from advlib import records
from advlib.experiments import store

#: The committed experiment documents (relative to the repository root) and their kinds.
COMMITTED = {
    "results/released/ablations-cpu.json": store.RELEASED_ABLATIONS,
    "results/released/ablations-h100.json": store.RELEASED_ABLATIONS,
    "results/beyond/large-linf-ablations.json": store.LARGE_LINF_ABLATIONS,
}
#: What each kind's document holds, and the script that wrote the unsealed files.
WHAT = {
    store.RELEASED_ABLATIONS: ("ablations of the TRADES authors' released MNIST SmallCNN "
                               "(advlib.experiments.released_ablations)", "tools/released_ablations.py"),
    store.LARGE_LINF_ABLATIONS: ("chapter 7's ablations on the large profile's l-inf-trained models "
                                 "(advlib.experiments.large_linf)", "tools/beyond_ablations.py"),
}


def is_sealed(doc: dict) -> bool:
    """Whether ``doc`` carries a document's seal (schema, kind, digest); whether it is valid is checked on read."""
    return all(k in doc for k in ("schema", "kind", "digest"))


def migrate(path: str | Path, kind: str) -> dict:
    """Seal the unsealed results file at ``path`` as a document of ``kind``, in place; returns the document.

    Already sealed: returned as read (``store.read`` checks it). Raises ``RecordError`` for a file that is
    neither an experiment document nor readable JSON.
    """
    store.check_kind(kind)
    raw = Path(path).read_bytes()
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise records.RecordError(f"{path}: unreadable results file ({err})") from err
    if not isinstance(doc, dict):
        raise records.RecordError(f"{path}: a results file must be a JSON object, got {type(doc).__name__}")
    if is_sealed(doc):
        return store.read(path, kind)
    store.check_layout(doc, path)
    what, writer = WHAT[kind]
    doc = {**doc, "what": what,
           "migrated": {"from": f"unsealed JSON written by {writer}", "legacy_sha256": hashlib.sha256(raw).hexdigest(),
                        "recomputed": False}}
    return store.save(path, doc, kind)


def migrate_committed(root: str | Path) -> dict[str, str]:
    """``migrate`` every file of ``COMMITTED`` under the repository ``root``; returns path → digest."""
    return {rel: migrate(Path(root) / rel, kind)["digest"] for rel, kind in COMMITTED.items()}
