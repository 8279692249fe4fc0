"""What a result is: keys made from what it depends on, never from prose.

A trained model is identified by its **model dependencies** (``model_dependencies``): the fingerprint of the
training examples, the seed, Madry's CNN's init, its defense's ``TrainSpec``, the training attacks it uses, the
static models an ensemble draws from, and ``TRAINING_VERSION``. An evaluation row is identified by its **row
dependencies** (``row_dependencies``): the attack's spec, the test examples' fingerprint, the seed and
``ATTACK_VERSION``. A profile's name, description, notes and the settings of *other* defenses or rows are in no
key, so editing a sentence, adding a defense, a cell or a row never makes an existing result stale.

Keys leave out every field at its dataclass default (``canonical``), so a new field with a default (a clamp
mode, a norm) changes no existing key. A change to training or attack code that alters results must bump
``TRAINING_VERSION`` or ``ATTACK_VERSION`` instead of going unnoticed.

Everything here works on plain configuration dicts (``Profile.config()``, or the ``config`` stored in a record),
so that a migration re-derives the keys of committed records from their own stored configuration
(``advlib.migrations``) and ``python -m advlib check`` compares them with the keys of the code as it is.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, fields, is_dataclass

from advlib.protocols import MULTI_NORM, Profile, TrainSpec, split_cell
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec

#: Bump when a change to the training code (defenses, loop, models' init) changes what a seed trains.
TRAINING_VERSION = 1
#: Bump when a change to the attack code (PGD, S-O, AutoAttack wrapper, clamping) changes what a spec computes.
ATTACK_VERSION = 1
#: ``TrainSpec`` fields that change how a run is carried out, not what it trains (checkpoints resume exactly).
OPERATIONAL = ("checkpoint_every",)
#: The cell whose model is Madry's CNN trained without attacks (``advlib.reproduce.NATURAL``).
NATURAL = "natural"
#: The clean row every record has.
CLEAN = "Natural"
KEY_LENGTH = 16


def _defaults(cls: type) -> dict[str, object]:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _plain(value: object) -> object:
    """Tuples as lists, recursively: the JSON form a record stores."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def without_defaults(config: dict, cls: type, drop: tuple[str, ...] = ()) -> dict:
    """``config`` (a dataclass's fields as a dict) without the fields at ``cls``'s default and without ``drop``."""
    defaults = {k: _plain(v) for k, v in _defaults(cls).items()}
    floats = {k for k, v in defaults.items() if isinstance(v, float)}
    plain = {k: float(v) if k in floats and isinstance(v, int) and not isinstance(v, bool) else _plain(v)
             for k, v in config.items() if k not in drop}  # lr=1 and lr=1.0 are one setting, one key
    return {k: v for k, v in plain.items() if not (k in defaults and v == defaults[k])}


def spec_config(spec: dict | AttackSpec | AutoAttackSpec) -> dict:
    """An attack spec (object or stored dict) without its default fields: what identifies the attack."""
    if is_dataclass(spec):
        spec = spec.config()  # type: ignore[union-attr]
    if spec.get("kind") == "autoattack":
        return {"kind": "autoattack", **without_defaults({k: v for k, v in spec.items() if k != "kind"}, AutoAttackSpec)}
    return without_defaults(spec, AttackSpec)


def train_config(spec: dict | TrainSpec) -> dict:
    """A ``TrainSpec`` (object or stored dict) without its default and operational fields."""
    if is_dataclass(spec):
        spec = {f.name: getattr(spec, f.name) for f in fields(spec)}  # type: ignore[arg-type]
    return without_defaults(spec, TrainSpec, OPERATIONAL)


def key(dependencies: object) -> str:
    """``KEY_LENGTH`` hex digits of the SHA-256 of ``dependencies`` as sorted JSON."""
    return hashlib.sha256(json.dumps(dependencies, sort_keys=True).encode()).hexdigest()[:KEY_LENGTH]


def _norms(norm: str) -> tuple[str, ...]:
    return ("l2", "linf") if norm in ("mix", "union") else (norm,)


def defense_spec(config: dict, defense: str) -> dict:
    """A defense's stored ``TrainSpec`` from a profile config; the multi-norm defenses fall back to Madry's, which
    they trained with before profiles had their own entries (REPRO CHOICE "multi-norm training settings")."""
    found = config["defenses"].get(defense)
    if found is None and defense in MULTI_NORM:
        found = config["defenses"]["madry"]
    if found is None:
        raise ValueError(f"the profile configuration has no training settings for defense {defense!r}; it has "
                         f"{', '.join(map(repr, config['defenses']))}")
    return found


def model_dependencies(config: dict, cell: str, train_fingerprint: str) -> dict:
    """What the model of ``cell`` under the profile configuration ``config`` depends on (see the module doc)."""
    deps: dict[str, object] = {"data": train_fingerprint, "seed": config["seed"], "version": TRAINING_VERSION}
    deps.update(without_defaults({"init": config.get("init")}, Profile) if "init" in config else {})
    if cell == NATURAL:
        return {**deps, "defense": NATURAL, "train": train_config(config["defenses"]["madry"])}
    defense, norm = split_cell(cell)
    spec = defense_spec(config, defense)
    deps.update(defense=defense, norm=norm, train=train_config(spec),
                attacks={n: spec_config(config["train_attack"][n]) for n in _norms(norm)})
    if config.get("start"):  # fine-tuned from a kept model, by name (advlib.kept checks its file's sha256)
        deps["start"] = config["start"]
    if spec.get("static_models"):
        deps["static"] = train_config(config["static"])
    return deps


def search_dependency(search: str) -> dict:
    """AutoAttack's search precision (``runtime.search_precision``) as a dependency of a row or block: none for
    "fp32", the default, so it is in no key; ``{"autoattack_search": search}`` otherwise."""
    return {"autoattack_search": search} if search != "fp32" else {}


def row_dependencies(spec: dict | AttackSpec | AutoAttackSpec | str, test_fingerprint: str, seed: int) -> dict:
    """What one evaluation row depends on: its attack (``CLEAN`` for clean accuracy), the test examples and the
    seed (the model is the file's)."""
    if spec == CLEAN:
        return {"row": CLEAN, "data": test_fingerprint}
    return {"attack": spec_config(spec), "data": test_fingerprint, "seed": seed, "version": ATTACK_VERSION}


def record_identity(config: dict, cell: str, fingerprints: dict[str, str], model: dict | None = None) -> dict:
    """The ``identity`` block of a Table 1 record: ``model`` (key and dependencies; ``model`` overrides them, e.g.
    for a released model that was not trained here) and per row of ``config["evaluation"]`` (plus the clean row)
    its key and dependencies."""
    model = model if model is not None else model_dependencies(config, cell, fingerprints["train"])
    rows = {CLEAN: row_dependencies(CLEAN, fingerprints["test"], config["seed"])}
    rows.update({name: row_dependencies(spec, fingerprints["test"], config["seed"])
                 for name, spec in config["evaluation"].items()})
    return {"model": {"key": key(model), "depends": model},
            "rows": {name: {"key": key(deps), "depends": deps} for name, deps in rows.items()}}


def differences(made: object, now: object, path: str = "") -> list[str]:
    """Where two dependency trees differ, as ``"train.epochs: 5 → 10"`` lines (empty when equal)."""
    if isinstance(made, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(made) | set(now)):
            where = f"{path}.{k}" if path else str(k)
            if k not in made:
                out.append(f"{where}: (absent) → {now[k]!r}")
            elif k not in now:
                out.append(f"{where}: {made[k]!r} → (absent)")
            else:
                out.extend(differences(made[k], now[k], where))
        return out
    return [] if made == now else [f"{path or 'value'}: {made!r} → {now!r}"]


def compare(made: dict, expected: dict) -> tuple[str, list[str], list[str]]:
    """A record's ``identity`` against the one the code gives now: ``("current" | "stale", reasons, missing rows)``.

    Stale when the model's key differs, or a row both have differs (the reasons say which dependency changed);
    a row the code has and the record lacks is *missing* (computed later into the record's rows side file), not
    stale; a row the record has and the code no longer names is ignored.
    """
    reasons = []
    if made["model"]["key"] != expected["model"]["key"]:
        lines = differences(made["model"]["depends"], expected["model"]["depends"]) or ["key differs"]
        reasons += [f"model {line}" for line in lines]
    for name, row in expected["rows"].items():
        if name in made["rows"] and made["rows"][name]["key"] != row["key"]:
            lines = differences(made["rows"][name]["depends"], row["depends"]) or ["key differs"]
            reasons += [f"row {name}: {line}" for line in lines]
    missing = [name for name in expected["rows"] if name not in made["rows"]]
    return ("stale" if reasons else "current"), reasons, missing
