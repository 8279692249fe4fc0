"""The extended evaluation of a trained model, beyond the paper's five rows (issue 10).

* **Strong rows**: AutoAttack (``advlib.strong``) in ℓ∞ (ε 0.3) and ℓ2 (ε 4.0), and at ℓ2 ε = 2.0, the radius of
  the later multi-norm literature, PGD, S-O and AutoAttack; per example, so worst cases exist (``derived_rows``).
* **Robustness curves**: accuracy against ε in each norm, PGD at every radius, S-O at a few.
* **Diagnostics** (Carlini et al. 2019, "On Evaluating Adversarial Robustness", §5 checklist; AutoAttack's flags),
  each with its threshold: ``DIAGNOSTICS``.

The block is stored in the record's side file ``<cell>.extended.json`` (``advlib.records.side_path``), keyed by the
model and by the block's own dependencies (``extended_dependencies``), so the record itself is never rewritten;
``advlib.records.assemble`` attaches it as ``record["extended"]``, and records without it still load (their
extended rows are missing). Each piece (a row, a curve point, a diagnostic) is written to a progress file as soon as
it is computed, so a run of hours that is killed resumes at the next piece (``extend(..., progress=path)``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

from advlib import gradients, identity, records, runtime
from advlib.attacks import run_attack
from advlib.context import frozen
from advlib.evaluation import predict
from advlib.protocols import Profile
from advlib.specs import CURVE_RADII, EPS, L2_LITERATURE_EPS, LARGE_RADII, RESTARTS, STEPS_FACTOR, AttackSpec
from advlib.strong import ATTACKS, AutoAttackSpec, autoattack

#: Thresholds of the diagnostics, in accuracy points or fractions (see ``diagnose``).
ZERO_GRADIENT = 1e-6          # ‖∇ₓL‖₂ below this at a clean point counts as a (near) zero gradient
ZERO_GRADIENT_SHARE = 0.05    # flag if more test points than this have one
LARGE_RADIUS_ACCURACY = 0.10  # flag if more stay correct at LARGE_RADII
MONOTONE_SLACK = 0.01         # flag if a curve rises by more than this as ε grows
MORE_EFFORT_DROP = 0.01       # flag if 4× the steps, or 5 restarts, lower the accuracy by more than this
BLACK_BOX_SHARE = 0.0         # flag if Square breaks more than this share of points the white-box attacks left


@dataclass(frozen=True)
class ExtendedSpec:
    """What the extended evaluation of one profile runs: strong ``rows``, curve ``radii`` and the diagnostics."""

    rows: dict[str, AttackSpec | AutoAttackSpec]
    pgd_steps: int
    so_steps: int
    so_samples: int
    radii: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(CURVE_RADII))
    so_every: int = 2  # S-O curve at every so_every-th radius

    def config(self) -> dict:
        return {"rows": {k: v.config() for k, v in self.rows.items()}, "pgd_steps": self.pgd_steps,
                "so_steps": self.so_steps, "so_samples": self.so_samples,
                "radii": {k: list(v) for k, v in self.radii.items()}, "so_every": self.so_every,
                "large_radii": LARGE_RADII, "steps_factor": STEPS_FACTOR, "restarts": RESTARTS,
                "thresholds": {"zero_gradient": ZERO_GRADIENT, "zero_gradient_share": ZERO_GRADIENT_SHARE,
                               "large_radius_accuracy": LARGE_RADIUS_ACCURACY, "monotone_slack": MONOTONE_SLACK,
                               "more_effort_drop": MORE_EFFORT_DROP, "black_box_share": BLACK_BOX_SHARE}}


#: What the block computes besides its rows (the diagnostics' thresholds are analysis, in no key).
SETTINGS = ("pgd_steps", "so_steps", "so_samples", "radii", "so_every", "large_radii", "steps_factor", "restarts")
#: The record's rows the block builds on (curve points reuse their masks; the diagnostics re-run their PGD).
BASE_ROWS = ("PGD-l2", "PGD-linf", "SO-l2", "SO-linf")


def extended_dependencies(config: dict, evaluation: dict, test_fingerprint: str, seed: int,
                          search: str = "fp32") -> dict:
    """What an extended block depends on (besides its model): its rows' specs and settings (``config``, an
    ``ExtendedSpec.config()`` or one stored in a block; fields at their default left out), the record's rows it
    builds on (``BASE_ROWS`` of ``evaluation``: name → spec; a row added to a profile changes no block), the test
    examples, the seed, and AutoAttack's search precision where it is not fp32 (``runtime.search_precision``)."""
    settings = identity.without_defaults({k: config[k] for k in SETTINGS}, ExtendedSpec)
    return {"rows": {k: identity.spec_config(v) for k, v in config["rows"].items()}, **settings,
            "base": {k: identity.spec_config(evaluation[k]) for k in BASE_ROWS}, "data": test_fingerprint,
            "seed": seed, "version": identity.ATTACK_VERSION, **identity.search_dependency(search)}


def expected_identity(profile: Profile, record: dict) -> dict:
    """The identity (``key``, ``depends``) the extended block of ``record`` has under ``profile``'s code now."""
    deps = extended_dependencies(extended_spec(profile).config(), profile.config()["evaluation"],
                                 record["data"]["test"]["fingerprint"], profile.seed, runtime.search_precision())
    return {"key": identity.key(deps), "depends": deps}


def extended_spec(profile: Profile) -> ExtendedSpec:
    """The extended evaluation of ``profile``: AutoAttack's standard suite (APGD-CE, APGD-T, FAB-T, Square) in every
    profile but ``quick``, which runs APGD-CE and APGD-T towards one target class (a smoke test)."""
    pgd, so = profile.evaluation["PGD-l2"], profile.evaluation["SO-l2"]
    if profile.name == "quick":
        aa = {"attacks": ("apgd-ce", "apgd-t"), "target_classes": 1}
    else:
        aa = {"attacks": ATTACKS}
    rows: dict[str, AttackSpec | AutoAttackSpec] = {
        "AA-l2": AutoAttackSpec("l2", EPS["l2"], **aa),
        "AA-linf": AutoAttackSpec("linf", EPS["linf"], **aa),
        "PGD-l2@2": AttackSpec.pgd("l2", steps=pgd.steps, eps=L2_LITERATURE_EPS),
        "SO-l2@2": AttackSpec.so("l2", steps=so.steps, samples=so.samples, eps=L2_LITERATURE_EPS),
        "AA-l2@2": AutoAttackSpec("l2", L2_LITERATURE_EPS, **aa),
    }
    return ExtendedSpec(rows=rows, pgd_steps=pgd.steps, so_steps=so.steps, so_samples=so.samples)


def _correct(model: nn.Module, x: Tensor, y: Tensor, spec: AttackSpec, seed: int) -> Tensor:
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return predict(model, run_attack(spec, model, x, y, generator=generator)) == y


#: ``memo(name, compute)``: a piece of the block, computed by ``compute()`` unless a progress file already holds it.
Memo = Callable[[str, Callable[[], object]], object]


def _fresh(name: str, compute: Callable[[], object]) -> object:
    return compute()


class Progress:
    """The pieces of one extended block computed so far, in a sealed file (kind "extended-progress") rewritten
    after each piece: ``memo`` returns a stored piece or computes and stores it. The file belongs to one model key
    and one ``block`` (the block's identity and the digest of the record it extends: a model trained again under
    the same key makes a new record, so its pieces never mix with another's); a file of another is replaced."""

    KIND = "extended-progress"

    def __init__(self, path: Path, model: str, block: str, n: int, device: torch.device) -> None:
        self.path, self.n, self.device = path, n, device
        self.doc = {"model": model, "block": block, "pieces": {}}
        if path.is_file():
            try:
                found = records.read_document(path, self.KIND)
            except records.RecordError:
                found = None
            if found is not None and (found["model"], found["block"]) == (model, block):
                self.doc["pieces"] = found["pieces"]

    def _encode(self, value: object) -> object:
        if isinstance(value, Tensor):
            return {"mask": records.pack_mask(value)}
        if isinstance(value, dict):
            return {"masks": {k: records.pack_mask(v) for k, v in value.items()}}
        return {"value": value}

    def _decode(self, stored: dict) -> object:
        if "mask" in stored:
            return records.unpack_mask(stored["mask"], self.n).to(self.device)
        if "masks" in stored:
            return {k: records.unpack_mask(v, self.n).to(self.device) for k, v in stored["masks"].items()}
        return stored["value"]

    def memo(self, name: str, compute: Callable[[], object]) -> object:
        if name in self.doc["pieces"]:
            return self._decode(self.doc["pieces"][name])
        value = compute()
        self.doc["pieces"][name] = self._encode(value)
        records.write_document(self.path, self.doc, self.KIND)
        return value


def strong_rows(model: nn.Module, x: Tensor, y: Tensor, spec: ExtendedSpec, seed: int, memo: Memo = _fresh
                ) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]], dict[str, float]]:
    """Per row: correctness masks; for AutoAttack rows also the mask after each attack of its cascade; seconds
    (0 for a row a progress file already held)."""
    masks, cascades, seconds = {}, {}, {}
    for name, row in spec.rows.items():
        start = time.perf_counter()
        if isinstance(row, AutoAttackSpec):
            cascades[name] = memo(name, lambda row=row: autoattack(model, x, y, row, seed=seed))
            masks[name] = cascades[name][row.attacks[-1]]
        else:
            masks[name] = memo(name, lambda row=row: _correct(model, x, y, row, seed))
        seconds[name] = time.perf_counter() - start
    return masks, cascades, seconds


def curves(model: nn.Module, x: Tensor, y: Tensor, spec: ExtendedSpec, known: dict[str, Tensor], seed: int,
           memo: Memo = _fresh) -> dict[str, dict[str, list[float]]]:
    """Accuracy against ε: "PGD-<norm>" at every radius, "SO-<norm>" at every ``so_every``-th; a point whose spec
    equals a row already computed (``known``: name → (spec, mask)) reuses that row's mask."""
    out = {}
    for norm, radii in spec.radii.items():
        for kind, chosen in (("PGD", radii), ("SO", radii[spec.so_every - 1::spec.so_every])):
            accuracy = []
            for eps in chosen:
                attack = (AttackSpec.pgd(norm, steps=spec.pgd_steps, eps=eps) if kind == "PGD" else
                          AttackSpec.so(norm, steps=spec.so_steps, samples=spec.so_samples, eps=eps))
                mask = next((m for s, m in known.values() if s == attack), None)
                if mask is None:
                    mask = memo(f"curve {kind}-{norm} {eps:g}", lambda attack=attack: _correct(model, x, y, attack, seed))
                accuracy.append(float(mask.float().mean()))
            out[f"{kind}-{norm}"] = {"eps": list(chosen), "accuracy": accuracy}
    return out


def _flag(value: float, threshold: float, above: bool, n: int, what: str) -> dict:
    return {"value": value, "threshold": threshold, "flag": value > threshold if above else value < threshold,
            "n": n, "what": what}


def _zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with frozen(model):
        g = torch.cat([gradients.input_gradient(model, x[i:i + 1000], y[i:i + 1000], "ce")[0].flatten(1).norm(dim=1)
                       for i in range(0, x.shape[0], 1000)])
    return float((g < ZERO_GRADIENT).float().mean())


def _so_without_noise_gap(model: nn.Module, x: Tensor, y: Tensor, spec: ExtendedSpec, pgd: AttackSpec,
                          seed: int) -> float:
    so = AttackSpec.so(pgd.norm, steps=spec.so_steps, samples=1, sigma=0.0)
    plain = replace(pgd, steps=so.steps, step_size=so.step_size, random_start=False)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    a = run_attack(so, model, x, y, generator=generator)
    b = run_attack(plain, model, x, y, generator=generator)
    return float((a - b).abs().max())


def diagnose(model: nn.Module, x: Tensor, y: Tensor, spec: ExtendedSpec, base: dict[str, AttackSpec],
             masks: dict[str, Tensor], cascades: dict[str, dict[str, Tensor]], curve: dict, seed: int,
             memo: Memo = _fresh) -> dict:
    """The gradient-masking checklist, each entry ``{value, threshold, flag, n, what}`` (flag True = suspicious)."""
    n = x.shape[0]
    share = memo("zero gradient", lambda: _zero_gradient_share(model, x, y))
    out = {"zero gradient": _flag(share, ZERO_GRADIENT_SHARE, True, n,
                                  f"share of test points with ‖∇ₓL‖₂ < {ZERO_GRADIENT:g} at the clean image")}
    for norm, eps in LARGE_RADII.items():
        attack = AttackSpec.pgd(norm, steps=spec.pgd_steps, eps=eps)
        acc = float(memo(f"large radius {norm}", lambda attack=attack: _correct(model, x, y, attack, seed)).float().mean())
        out[f"large radius {norm}"] = _flag(acc, LARGE_RADIUS_ACCURACY, True, n,
                                            f"PGD accuracy at {norm} ε = {eps:g} (should be ~0)")
    rises = max((b - a for c in curve.values() for a, b in zip(c["accuracy"], c["accuracy"][1:])), default=0.0)
    out["monotone in ε"] = _flag(rises, MONOTONE_SLACK, True, n, "largest rise of any curve as ε grows")
    for norm in ("l2", "linf"):
        pgd = base[f"PGD-{norm}"]
        before = masks[f"PGD-{norm}"]
        longer = memo(f"{STEPS_FACTOR}x steps {norm}",
                      lambda pgd=pgd: _correct(model, x, y, replace(pgd, steps=pgd.steps * STEPS_FACTOR), seed))
        out[f"{STEPS_FACTOR}x steps {norm}"] = _flag(float((before.float().mean() - longer.float().mean())),
                                                      MORE_EFFORT_DROP, True, n,
                                                      f"PGD accuracy drop with {STEPS_FACTOR}× the steps")
        worst = before.clone()
        for r in range(1, RESTARTS):
            worst &= memo(f"restart {r} {norm}", lambda pgd=pgd, r=r: _correct(model, x, y, pgd, seed + r))
        out[f"{RESTARTS} restarts {norm}"] = _flag(float(before.float().mean() - worst.float().mean()),
                                                   MORE_EFFORT_DROP, True, n,
                                                   f"PGD accuracy drop, worst of {RESTARTS} random starts")
        cascade = cascades.get(f"AA-{norm}", {})
        if "square" in cascade:
            row = spec.rows.get(f"AA-{norm}")  # the cascade's own order (a dict read back from a file may be sorted)
            names = list(row.attacks) if isinstance(row, AutoAttackSpec) else list(cascade)
            before_square = cascade[names[names.index("square") - 1]] if names.index("square") else masks["Natural"]
            white = before_square & masks[f"PGD-{norm}"] & masks[f"SO-{norm}"]
            share = float((white & ~cascade["square"]).float().sum() / white.float().sum().clamp(min=1))
            out[f"black box {norm}"] = _flag(share, BLACK_BOX_SHARE, True, int(white.sum()),
                                             "share of white-box-robust points that Square breaks")
        gap = memo(f"S-O σ=0 = PGD {norm}", lambda pgd=pgd: _so_without_noise_gap(model, x, y, spec, pgd, seed))
        out[f"S-O σ=0 = PGD {norm}"] = _flag(gap, 0.0, True, n,
                                             "largest pixel difference between S-O with σ = 0 and PGD without a "
                                             "random start")
    return out


def derived_rows(record: dict) -> dict[str, Tensor]:
    """Per-example worst cases from a record's masks (``record["extended"]`` if present): "Worst-l2" (clean ∧
    PGD ∧ S-O ∧ AutoAttack in ℓ2), "Worst-linf", "Union" (all of them: the norm-agnostic accuracy with AutoAttack),
    and the same at ℓ2 ε = 2.0 ("Worst-l2@2", "Union@2"); only those whose masks all exist."""
    masks = records.all_masks(record)
    groups = {"Worst-l2": ("Natural", "PGD-l2", "SO-l2", "AA-l2"),
              "Worst-linf": ("Natural", "PGD-linf", "SO-linf", "AA-linf"),
              "Worst-l2@2": ("Natural", "PGD-l2@2", "SO-l2@2", "AA-l2@2")}
    groups["Union"] = groups["Worst-l2"] + groups["Worst-linf"]
    groups["Union@2"] = groups["Worst-l2@2"] + groups["Worst-linf"]
    return {name: torch.stack([masks[m] for m in parts]).all(0) for name, parts in groups.items()
            if all(m in masks for m in parts)}


def row_accuracies(record: dict) -> dict[str, float]:
    """Every extended row of ``record`` as a fraction: the block's own rows, then ``derived_rows``' worst cases
    (empty for a record without the block)."""
    return {**record.get("extended", {}).get("accuracy", {}),
            **{k: v.float().mean().item() for k, v in derived_rows(record).items()}}


#: The label ``strengthened`` adds to a record's profile, so that every verdict quoting it says what "PGD" means.
STRONG_LABEL = "PGD = PGD ∪ AutoAttack"


def strengthened(record: dict) -> dict:
    """A copy of ``record`` judged by the strongest first-order attacks it holds: each "PGD-<norm>" row (and each PGD
    row of the block at another radius, "PGD-l2@2") becomes the per-example worst case of PGD and AutoAttack in that
    norm and radius, ``norm_agnostic`` the "Union" row (PGD, S-O and
    AutoAttack in both norms); S-O rows stay; the profile gains ``STRONG_LABEL``. The paper's claims can then be
    re-checked unchanged (``advlib.claims``). ValueError for a record without the extended block."""
    if "extended" not in record:
        raise ValueError(f"record {record.get('cell')!r} ({record.get('profile')}) has no extended block: "
                         "add it with `python -m advlib reproduce --extended`")
    n = record["n_test"]
    masks, accuracy = dict(record["masks"]), dict(record["accuracy"])
    for norm in ("l2", "linf"):
        both = (records.unpack_mask(record["masks"][f"PGD-{norm}"], n)
                & records.unpack_mask(record["extended"]["masks"][f"AA-{norm}"], n))
        masks[f"PGD-{norm}"], accuracy[f"PGD-{norm}"] = records.pack_mask(both), both.float().mean().item()
    block = {**record["extended"], "masks": dict(record["extended"]["masks"]),
             "accuracy": dict(record["extended"].get("accuracy", {}))}
    for row in [r for r in block["masks"] if r.startswith("PGD-") and "@" in r]:  # PGD at other radii (ℓ2 ε = 2)
        partner = "AA-" + row.removeprefix("PGD-")
        if partner in block["masks"]:
            both = records.unpack_mask(block["masks"][row], n) & records.unpack_mask(block["masks"][partner], n)
            block["masks"][row], block["accuracy"][row] = records.pack_mask(both), both.float().mean().item()
    return {**record, "masks": masks, "accuracy": accuracy, "extended": block,
            "profile": f"{record['profile']}, {STRONG_LABEL}",
            "norm_agnostic": derived_rows(record)["Union"].float().mean().item()}


def check_same_model(model: nn.Module, x: Tensor, y: Tensor, record: dict) -> None:
    """``ValueError`` unless ``model``'s clean predictions on ``(x, y)`` reproduce ``record``'s "Natural" mask: a
    block or row added to a record must come from the model that made it."""
    natural = predict(model, x) == y
    if not torch.equal(natural.cpu(), records.unpack_mask(record["masks"]["Natural"], record["n_test"])):
        raise ValueError(f"{record['profile']}/{record['cell']}: this model's clean predictions differ from the "
                         "record's; it is not the model the record was made with")


def extend(model: nn.Module, x: Tensor, y: Tensor, profile: Profile, record: dict, revision: str,
           progress: Path | None = None) -> dict:
    """``record`` with its extended block computed on ``model`` (the model that made it: its clean predictions must
    reproduce the record's "Natural" mask, else ``ValueError``) under ``record["extended"]``. ``progress``: a file
    that keeps each piece as it is computed (``Progress``), so that a killed run resumes at the next piece."""
    n = record["n_test"]
    check_same_model(model, x, y, record)
    spec, seed, start = extended_spec(profile), profile.seed, time.perf_counter()
    block_identity = expected_identity(profile, record)
    block = f"{block_identity['key']}-{record['digest'][:16]}"  # the block, on this very record's model
    memo = Progress(progress, records.model_key(record), block, n, x.device).memo if progress is not None else _fresh
    masks, cascades, seconds = strong_rows(model, x, y, spec, seed, memo)
    base_masks = {k: records.unpack_mask(v, n).to(x.device) for k, v in record["masks"].items()}
    known = {**{k: (profile.evaluation[k], base_masks[k]) for k in profile.evaluation if k in base_masks},
             **{k: (v, masks[k]) for k, v in spec.rows.items() if isinstance(v, AttackSpec)}}
    t = time.perf_counter()
    curve = curves(model, x, y, spec, known, seed, memo)
    seconds["curves"] = time.perf_counter() - t
    t = time.perf_counter()
    diagnostics = diagnose(model, x, y, spec, profile.evaluation, {**base_masks, **masks}, cascades, curve, seed, memo)
    seconds["diagnostics"] = time.perf_counter() - t
    block = {
        "config": spec.config(), "identity": block_identity,
        "accuracy": {k: float(v.float().mean()) for k, v in masks.items()},
        "masks": {k: records.pack_mask(v) for k, v in masks.items()},
        "cascades": {k: {a: float(m.float().mean()) for a, m in c.items()} for k, c in cascades.items()},
        "curves": curve, "diagnostics": diagnostics,
        "wall_time": {**seconds, "total": time.perf_counter() - start},
        "device": runtime.device_name(x.device), "autoattack_search": runtime.search_precision(),
        "git_revision": revision, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {**record, "extended": block}


def current(record: dict, profile: Profile) -> bool:
    """Whether ``record`` (assembled with its side files) carries the extended block that ``profile``'s code computes
    now (same identity key: same model, rows, settings, test data and seed)."""
    found = record.get("extended", {}).get("identity", {}).get("key")
    return found is not None and found == expected_identity(profile, record)["key"]
