"""AutoAttack (Croce & Hein 2020), the field's reference strong evaluation, run as its authors run it.

The attacks are the reference code itself, fra31/auto-attack, as packaged on PyPI (``pyautoattack==0.2.0``;
``docs/autoattack.md`` compares the two). ``autoattack`` runs the chosen attacks one after another, each only
on the points that are still classified correctly (AutoAttack's own cascade, so the cost stays bounded), and
returns the per-example outcome. Defaults are AutoAttack's "standard" version for ℓ∞ and ℓ2 (its
``_set_version``): APGD-CE with one restart, APGD-T over 9 target classes, FAB-T and Square with 5,000
queries; 100 iterations each (fixed: APGD's step-size checkpoints are set when AutoAttack builds it). A spec lists
the attacks that a profile can afford.

ℓ1 runs AutoAttack's ℓ1 mode (norm "L1"): APGD-CE and APGD-T always with its ℓ1 schedule (``use_largereps``:
30 % of the iterations at 3ε, 30 % at 2ε, 40 % at ε, as its "standard" version sets for ℓ1); FAB-T and Square have
ℓ1 modes too. Its standard version also gives APGD-CE 5 restarts and APGD-T 5 target classes for ℓ1
(``AutoAttackSpec.standard``); a plain spec keeps one restart and ``target_classes``, as for ℓ∞ and ℓ2.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from advlib import _checks, lp, runtime
from advlib.attacks import default_batch_size
from advlib.context import frozen
from advlib.evaluation import predict

#: AutoAttack's attack names (pyautoattack.autoattack.AttackName), white-box first, as AutoAttack orders them.
ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
#: AutoAttack's "standard" settings for ℓ∞ and ℓ2 (fra31/auto-attack autoattack.py, ``_set_version``).
STANDARD_TARGET_CLASSES = 9
STANDARD_SQUARE_QUERIES = 5_000
#: … and for ℓ1 (the same ``_set_version``): APGD-CE with 5 restarts, APGD-T over 5 target classes.
STANDARD_L1_RESTARTS = 5
STANDARD_L1_TARGET_CLASSES = 5
_NORMS = {"l1": "L1", "l2": "L2", "linf": "Linf"}


@dataclass(frozen=True)
class AutoAttackSpec:
    """AutoAttack at radius ``eps`` in ``norm`` ("l1", "l2" or "linf"), running ``attacks`` (a sub-sequence of
    ``ATTACKS``) in turn; ``restarts``: APGD-CE's random restarts (the other attacks run once per target class)."""

    norm: str
    eps: float
    attacks: tuple[str, ...] = ("apgd-ce", "apgd-t")
    target_classes: int = STANDARD_TARGET_CLASSES
    square_queries: int = STANDARD_SQUARE_QUERIES
    restarts: int = 1  # last, and at its default in no record's key (advlib.identity.spec_config)

    def __post_init__(self) -> None:
        lp.check_norm(self.norm, lp.ALL_NORMS)
        object.__setattr__(self, "eps", _checks.nonnegative("eps", self.eps))
        object.__setattr__(self, "attacks", tuple(self.attacks))
        if not self.attacks:
            raise ValueError(f"an AutoAttackSpec needs at least one attack of {ATTACKS}")
        for name in self.attacks:
            _checks.choice("AutoAttack attack", name, ATTACKS)
        _checks.count("target_classes", self.target_classes, minimum=1)
        _checks.count("square_queries", self.square_queries, minimum=1)
        _checks.count("restarts", self.restarts, minimum=1)

    @classmethod
    def standard(cls, norm: str, eps: float, attacks: tuple[str, ...] = ATTACKS) -> AutoAttackSpec:
        """AutoAttack's "standard" version in ``norm`` (its ``_set_version``), all four attacks unless given. One
        difference for ℓ1: the spec's one ``target_classes`` (5) serves FAB-T too, which AutoAttack gives 9."""
        if lp.check_norm(norm, lp.ALL_NORMS) == "l1":
            return cls(norm, eps, attacks, target_classes=STANDARD_L1_TARGET_CLASSES, restarts=STANDARD_L1_RESTARTS)
        return cls(norm, eps, attacks)

    @property
    def kind(self) -> str:
        return "autoattack"

    def with_eps(self, eps: float) -> AutoAttackSpec:
        """The same attacks at radius ``eps``."""
        return replace(self, eps=eps)

    def config(self) -> dict:
        """Plain JSON-able data for records."""
        return {"kind": self.kind, **asdict(self), "attacks": list(self.attacks), "package": package_version()}


def package_version() -> str:
    """The pyautoattack version in use (the pin in pyproject.toml is 0.2.0)."""
    from importlib.metadata import version
    return version("pyautoattack")


def _configured(model: nn.Module, spec: AutoAttackSpec, device: torch.device, seed: int):
    from pyautoattack import AutoAttack  # imported here: importing advlib stays light

    attack = AutoAttack(model, norm=_NORMS[spec.norm], eps=spec.eps, version="custom", attacks=list(spec.attacks),
                        seed=seed, device=device)
    attack.verbose = False
    attack.apgd.n_restarts = spec.restarts  # the standard version's 1 by default (the custom default is 5)
    attack.apgd_targeted.n_restarts = 1
    if spec.norm == "l1":  # APGD's ℓ1 schedule over 3ε, 2ε, ε, as AutoAttack's standard ℓ1 version
        attack.apgd.use_largereps = True
        attack.apgd_targeted.use_largereps = True
    attack.fab.n_restarts = 1
    attack.apgd_targeted.n_target_classes = spec.target_classes
    attack.fab.n_target_classes = spec.target_classes
    attack.square.n_queries = spec.square_queries
    return attack


def autoattack(model: nn.Module, x: Tensor, y: Tensor, spec: AutoAttackSpec, *, seed: int = 0,
               batch_size: int | None = None, precision: str | None = None) -> dict[str, Tensor]:
    """Per-example correctness (bool ``[N]``) of ``model`` after each attack of AutoAttack's cascade, by name.

    As AutoAttack does, each attack runs only on the points still classified correctly after the ones before
    it, so the last entry is AutoAttack's robust accuracy and each entry shows what that attack added. Every
    adversarial point is re-checked here to lie in the ε-ball and [0,1].

    ``precision``: what AutoAttack's own model calls run in, "fp32" or "bf16" (default
    ``runtime.search_precision()``: fp32 unless ``ADVLIB_SEARCH_PRECISION`` says otherwise). The verdict is always
    ``model``'s fp32 prediction on the points AutoAttack returns, so a bf16 search may miss an adversarial example
    (measured against fp32 by benchmarks/aa_speed.py) but never counts one that fp32 does not confirm.
    """
    _checks.labelled(model, x, y)
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    size = batch_size or default_batch_size(x.device)
    precision = precision or runtime.search_precision()
    out: dict[str, Tensor] = {}
    devices = [x.device] if x.device.type == "cuda" else []
    with frozen(model), torch.random.fork_rng(devices=devices):  # AutoAttack seeds torch's global generator
        searcher = runtime.search_model(model, precision)
        robust = predict(model, x, size) == y
        for name in spec.attacks:
            idx = robust.nonzero().flatten()
            if idx.numel():
                robust = robust.clone()
                robust[idx] = _survives(searcher, model, name, spec, x[idx], y[idx], size, seed)
            out[name] = robust
    return out


def _survives(searcher: nn.Module, model: nn.Module, name: str, spec: AutoAttackSpec, x: Tensor, y: Tensor,
              size: int, seed: int) -> Tensor:
    """Whether each point stays correct under AutoAttack's attack ``name`` searched with ``searcher`` and judged by
    ``model``. AutoAttack leaves alone the points its model misclassifies clean; where the searcher is not ``model``
    and ``model`` still classifies such a point correctly, ``model`` itself searches it."""
    attack = _configured(searcher, replace(spec, attacks=(name,)), x.device, seed)
    x_adv, y_adv = attack.run_standard_evaluation(x, y, batch_size=size)
    _check_feasible(x_adv, x, spec)
    if searcher is model:
        return y_adv == y
    correct = predict(model, x_adv, size) == y  # the fp32 verdict on the points found
    skipped = correct & (predict(searcher, x, size) != y)
    if skipped.any():
        correct[skipped] = _survives(model, model, name, spec, x[skipped], y[skipped], size, seed)
    return correct


def _check_feasible(x_adv: Tensor, x: Tensor, spec: AutoAttackSpec) -> None:
    distance = lp.norm_of(x_adv - x, spec.norm)
    slack = 1e-5 * max(spec.eps, 1.0)
    if not bool((distance <= spec.eps + slack).all()) or not bool(((x_adv >= 0) & (x_adv <= 1)).all()):  # NaN fails
        raise RuntimeError(f"AutoAttack returned points outside the {spec.norm} ball of radius {spec.eps} or [0,1] "
                           f"(largest distance {distance.max().item():.6g})")
