"""What decides the numbers of the released-model ablations (``released_ablations``): sizes, seeds, the attacks.

The item letters and titles, the ``Settings`` dataclass (defaults: the paper's and the authors' settings; see
``released_ablations`` for what each item measures), the attacks the items run by name (``Settings.specs``),
and the settings each item's numbers depend on (``item_settings``: an item is recomputed when they change).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from advlib.specs import SAMPLES, SIGMA, STEPS, AttackSpec

ITEMS = ("a", "b", "c", "d", "e", "f", "g")
TITLES = {
    "a": "PGD-l2 with and without a random start",
    "b": "PGD-l2 at S-O's gradient budget (restarts, steps)",
    "c": "S-O-l2: sigma x draws",
    "d": "clamp to [0,1] at the end (authors) vs every step (advlib)",
    "e": "gradient norms: clean points and along the attacks (Figure 1)",
    "f": "dominant Hessian eigenvalue at clean points",
    "g": "AutoAttack l2 (APGD-CE, APGD-T)",
}


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers. ``tiny_for`` is the test-only version (seconds, meaningless)."""

    n: int = 1000                                   # N: items a, d (PGD), e (clean gradients)
    n_small: int = 200                              # b, c, d (S-O), e (traces): the authors' test batch
    n_autoattack: int = 1000                        # g
    n_hessian: int = 20                             # f
    seed: int = 0
    steps: int = STEPS                              # the paper's PGD and S-O
    sigmas: tuple[float, ...] = (0.0, 0.05, 0.15, 0.3)
    draws: tuple[int, ...] = (1, 5, 20)
    authors_sigma: float = SIGMA["l2"]              # Bai-Li/TRADES pgd_attack_mnist_l2.py:L62
    authors_draws: int = SAMPLES                    # ibid. L68
    restarts: int = 20
    long_steps: int = 800
    curve_steps: tuple[int, ...] = (40, 100, 200, 400, 800)   # PGD at the paper's step 0.25, longer and longer
    hessian_iters: int = 20
    autoattack: tuple[str, ...] = ("apgd-ce", "apgd-t")
    natural_profile: str = "quick"
    tiny: bool = False

    @classmethod
    def for_n(cls, n: int, **changes: object) -> Settings:
        """The default settings for N = ``n``: every item's n capped at N."""
        base = cls(**changes)
        return replace(base, n=n, n_small=min(n, base.n_small), n_autoattack=min(n, base.n_autoattack),
                       n_hessian=min(n, base.n_hessian))

    @classmethod
    def tiny_for(cls, n: int, **changes: object) -> Settings:
        """Test-only: a few steps, draws and restarts, one AutoAttack attack; runs in seconds."""
        return replace(cls.for_n(n, **changes), steps=3, sigmas=(0.0, 0.15), draws=(1, 2), authors_draws=2,
                       restarts=2, long_steps=6, curve_steps=(3, 6), hessian_iters=3, n_hessian=min(n, 4),
                       autoattack=("apgd-ce",), tiny=True)

    def pgd(self, **changes: object) -> AttackSpec:
        """PGD-ℓ2 at the paper's ε = 4.0 and step rule 2.5·ε/steps (0.25 at 40 steps)."""
        return AttackSpec.pgd("l2", steps=self.steps, **changes)

    def so(self, sigma: float | None = None, draws: int | None = None) -> AttackSpec:
        """S-O-ℓ2 at the paper's ε and step; the authors' σ and draws unless given."""
        return AttackSpec.so("l2", steps=self.steps, sigma=self.authors_sigma if sigma is None else sigma,
                             samples=self.authors_draws if draws is None else draws)

    def pgd_steps(self, steps: int) -> AttackSpec:
        """PGD-ℓ2 with ``steps`` steps of the paper's step size (that of ``pgd()``): a longer path."""
        return replace(self.pgd(), steps=steps)

    def specs(self) -> dict[str, AttackSpec]:
        """The attacks the items run, by name (the names chapters look stored runs up with).

        "long": ``long_steps`` steps of the same total length as PGD's; "long, same step": ``long_steps`` steps
        of PGD's step size (with and without a random start).
        """
        return {"pgd": self.pgd(), "pgd, no random start": self.pgd(random_start=False),
                "long": self.pgd().with_steps(self.long_steps),
                "long, same step": self.pgd_steps(self.long_steps),
                "long, same step, no random start": replace(self.pgd(random_start=False), steps=self.long_steps),
                "so": self.so()}


def settings_of(doc: dict) -> Settings:
    """The ``Settings`` a results document was written with (its ``"settings"``, lists back to tuples)."""
    stored, names = doc["settings"], {f.name for f in fields(Settings)}
    unknown = sorted(set(stored) - names)
    if unknown:
        raise ValueError(f"settings {unknown} are not fields of Settings; valid: {', '.join(sorted(names))}")
    return Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def item_settings(s: Settings, name: str) -> dict:
    """The settings item ``name``'s numbers depend on (the item is recomputed when they change)."""
    if name not in ITEMS:
        raise ValueError(f"unknown item {name!r}; valid: {', '.join(ITEMS)}")
    common = {"seed": s.seed, "eps": 4.0, "steps": s.steps, "tiny": s.tiny}
    per_item = {
        "a": {"n": s.n},
        "b": {"n": s.n_small, "restarts": s.restarts, "long_steps": s.long_steps,
              "long_step_sizes": ["same total length", "same step", "same step, no random start"],
              "curve_steps": list(s.curve_steps)},
        "c": {"n": s.n_small, "sigmas": list(s.sigmas), "draws": list(s.draws)},
        "d": {"n_so": s.n_small, "n_pgd": s.n, "sigma": s.authors_sigma, "draws": s.authors_draws},
        "e": {"n_clean": s.n, "n_traces": s.n_small, "natural_profile": s.natural_profile,
              "sigma": s.authors_sigma, "draws": s.authors_draws},
        "f": {"n": s.n_hessian, "iters": s.hessian_iters, "natural_profile": s.natural_profile,
              "sigma": s.authors_sigma, "draws": s.authors_draws},
        "g": {"n": s.n_autoattack, "attacks": list(s.autoattack)},
    }
    return {**common, **per_item[name]}
