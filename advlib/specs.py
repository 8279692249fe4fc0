"""``AttackSpec``: the one description of an attack, and the one home of every default attack setting.

Each default below is written once, with its source (section numbers refer to docs/protocols.md). Profiles,
training, evaluation, the functional attacks (``advlib.pgd`` …) and the book all build their attacks from
these; ``advlib.attacks.run_attack`` turns a spec into adversarial examples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from advlib import _checks, lp

#: The radii of Table 1: ℓ2 ≤ 4.0, ℓ∞ ≤ 0.3 (the paper's §5; docs/protocols.md §9).
EPS = {"l2": 4.0, "linf": 0.3}
#: The ℓ2 radius of the later multi-norm MNIST literature (Tramèr & Boneh 2019; Maini, Wong & Kolter 2020): 2.0.
L2_LITERATURE_EPS = 2.0
#: ATDA's own FGSM radius (ℓ∞): the official code's ``--eps`` default (JHL-HUST/ATDA ``train_atda.py``;
#: protocols §4.1). Table 1's ATDA rows train with PGD at ``EPS`` instead (REPRO CHOICE, ``protocols``).
ATDA_FGSM_EPS = 0.1
#: FGSM-RS's step, a multiple of ε, from a uniform random start in the ε-ball (Wong, Rice & Kolter 2020, "Fast is
#: better than free", α = 1.25 ε): single-step training that PGD breaks less often than FGSM from x.
FGSM_RS_STEP = 1.25
#: The ℓ1 radius of the multi-norm MNIST literature: 10, in Maini, Wong & Kolter 2020's MNIST table as their
#: repository's current README states it (with ℓ2 2.0; version "final" of ``resources/multinorm_literature.csv``),
#: their later attack code's default (MNIST/mnist_funcs.py @0cbe65f) and Tramèr & Boneh's MNIST config.json. Their
#: earlier README and code (arXiv v1, version "v1") used 12, with ℓ2 1.5.
L1_LITERATURE_EPS = 10.0
#: The radius an attack gets when none is given: Table 1's for ℓ2 and ℓ∞ (``EPS``), the literature's for ℓ1.
#: ℓ1 is kept out of ``EPS`` itself, which lists the paper's radii (profiles and the smoke run iterate over it).
DEFAULT_EPS = {**EPS, "l1": L1_LITERATURE_EPS}
#: Radii of the robustness curves (issue 10: ℓ2 0.5 … 4.0, ℓ∞ 0.05 … 0.4; ``advlib.extended``).
CURVE_RADII = {"l2": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0), "linf": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)}
#: Radii at which a sound attack leaves (almost) nothing standing: at ℓ∞ 0.5 every image reaches the uniform grey
#: image, and ℓ2 10 exceeds the distance between most pairs of MNIST digits (Carlini et al. 2019, §5.2).
LARGE_RADII = {"l2": 10.0, "linf": 0.5}
#: More effort that should not change a converged attack's result: this many times the steps, and this many
#: random restarts (Carlini et al. 2019, §4.8-4.9).
STEPS_FACTOR = 4
RESTARTS = 5
#: S-O's Gaussian noise scale, from the authors' attack code: 0.15 (ℓ2), 0.1 (ℓ∞) (§6.1).
SIGMA = {"l2": 0.15, "linf": 0.1}
#: Iterations of PGD and S-O in the paper's evaluation: Madry's config.json k = 40 (§1.2); the authors' S-O (§6.1).
STEPS = 40
#: Gaussian draws per S-O step in the authors' code (§6.1).
SAMPLES = 20
#: The step rule: a step of ``RELATIVE_STEP · ε / steps`` (Madry et al. 2018; Bai-Li/TRADES
#: pgd_attack_mnist_l2.py:L65 gives 0.25 = 2.5·4.0/40 for ℓ2) (§2.3, §7.1); for ℓ1 the ℓ1 length of the sparse step
#: (``advlib.lp.steepest_ascent``): 0.625 = 2.5·10/40, near Maini et al.'s 1.0 per step (0.05 on each of 20 pixels,
#: robust_union MNIST ``pgd_l1_topk``) and Tramèr & Boneh's ℓ1 default 1.0 (their ℓ∞/ℓ2 default is this rule) …
RELATIVE_STEP = 2.5
#: … except ℓ∞ at the paper's own radius and step count, where Madry's config.json a = 0.01 is used (§1.2).
MADRY_LINF_STEP = 0.01
#: ℓ∞ S-O stepping along g/‖g‖₂ (the paper's text) takes the ℓ2 length of the sign step it replaces: √784 = 28
#: times the sign step on a 28×28 MNIST image (REPRO CHOICE, §6.3) …
SIGN_STEP_L2_LENGTH = 28.0
#: … which is 0.01·28 = 0.28 at the paper's settings.
SO_LINF_L2_STEP = MADRY_LINF_STEP * SIGN_STEP_L2_LENGTH

KINDS = ("pgd", "so")
LOSSES = ("ce", "cw")
LINF_STEPS = ("sign", "l2")
#: Where an attack enforces the pixel range [0,1]: "step", on every iterate (advlib's attacks; REPRO CHOICE, §6.3),
#: or "end", once after the last step, as the authors' ℓ2 code does (Bai-Li/TRADES pgd_attack_mnist_l2.py: starts at
#: x, L64; rescales onto the ℓ2 ball without a clamp, L85-89; clamps after the loop, L90; §6.1). Their ℓ∞ code
#: clamps every step, so "end" is defined for ℓ2 without a random start only.
CLAMPS = ("step", "end")


def default_step_size(norm: str, eps: float, steps: int) -> float:
    """The step rule: Madry's 0.01 for ℓ∞ at the paper's (ε, steps) = (0.3, 40), else 2.5·ε/steps (ℓ1 too)."""
    if lp.check_norm(norm, lp.ALL_NORMS) == "linf" and (eps, steps) == (EPS["linf"], STEPS):
        return MADRY_LINF_STEP
    return RELATIVE_STEP * eps / max(steps, 1)  # 0 steps: nothing moves, any step will do


@dataclass(frozen=True)
class AttackSpec:
    """One attack, completely: ``kind`` "pgd" (projected gradient ascent) or "so" (second order: the gradient
    averaged over ``samples`` draws of N(0, σ²I)), the norm, ε, ``steps`` of ``step_size``, whether it starts
    uniformly inside the ball, ``linf_step`` (ℓ∞ S-O: "sign", the authors' code, or "l2", the paper's text),
    the loss it ascends ("ce" or Madry's "cw" margin loss) and ``clamp``, where it enforces [0,1] (``CLAMPS``:
    "step", every iterate; "end", once after the last step, the authors' ℓ2 loop: ℓ2 without a random start only).
    Build one with ``AttackSpec.pgd``/``.so``/``.fgsm``.
    """

    kind: str
    norm: str
    eps: float
    steps: int
    step_size: float
    random_start: bool = True
    sigma: float = 0.0
    samples: int = 1
    linf_step: str = "sign"
    loss: str = "ce"
    clamp: str = "step"  # last, and at its default in no record's key (advlib.identity.spec_config)

    def __post_init__(self) -> None:
        _checks.choice("attack kind", self.kind, KINDS)
        lp.check_norm(self.norm, lp.ALL_NORMS)
        for name in ("eps", "step_size", "sigma"):  # stored as floats: an int ε would change the config's hash
            object.__setattr__(self, name, _checks.nonnegative(name, getattr(self, name)))
        _checks.count("steps", self.steps)
        _checks.count("samples", self.samples, minimum=1)
        _checks.choice("linf_step", self.linf_step, LINF_STEPS)
        _checks.choice("loss", self.loss, LOSSES)
        _checks.choice("clamp", self.clamp, CLAMPS)
        if self.clamp == "end" and (self.norm, self.random_start) != ("l2", False):
            raise ValueError(f"clamp='end' (the authors' single clamp after the last step) is defined for ℓ2 without "
                             f"a random start (norm 'l2', random_start=False); got norm {self.norm!r}, random_start="
                             f"{self.random_start} (the authors' ℓ∞ code clamps every step: use clamp='step')")
        if self.kind == "pgd" and (self.sigma, self.samples, self.linf_step) != (0.0, 1, "sign"):
            raise ValueError(f"a 'pgd' spec takes no sigma, samples or linf_step (got sigma={self.sigma}, "
                             f"samples={self.samples}, linf_step={self.linf_step!r}); use kind 'so' for S-O")

    @classmethod
    def pgd(cls, norm: str, *, steps: int = STEPS, eps: float | None = None, step_size: float | None = None,
            random_start: bool = True, loss: str = "ce", clamp: str = "step") -> AttackSpec:
        """PGD (Madry et al. 2018): the paper's ε (ℓ1: ``L1_LITERATURE_EPS``) and 40 steps unless given; step by
        ``default_step_size``. ℓ1 steps are sparse (``advlib.lp.steepest_ascent``)."""
        eps = DEFAULT_EPS[lp.check_norm(norm, lp.ALL_NORMS)] if eps is None else eps
        step_size = default_step_size(norm, eps, steps) if step_size is None else step_size
        return cls("pgd", norm, eps, steps, step_size, random_start=random_start, loss=loss, clamp=clamp)

    @classmethod
    def so(cls, norm: str, *, steps: int = STEPS, samples: int = SAMPLES, eps: float | None = None,
           sigma: float | None = None, step_size: float | None = None, linf_step: str = "sign",
           loss: str = "ce", clamp: str = "step") -> AttackSpec:
        """S-O (Li et al. 2019, eq. 4): the authors' σ and 40 steps × 20 draws unless given; never a random start.

        ``linf_step="l2"`` (ℓ∞ only; the paper's text) steps along g/‖g‖₂ by ``SIGN_STEP_L2_LENGTH`` times the
        sign step of the step rule (``SO_LINF_L2_STEP`` = 0.28 at the paper's ε and 40 steps). ``clamp="end"`` (ℓ2):
        the authors' loop, which clamps to [0,1] once, after the last step (``CLAMPS``).
        """
        lp.check_norm(norm, lp.ALL_NORMS)
        if sigma is None and norm not in SIGMA:
            raise ValueError(f"S-O's default σ is the authors' for {', '.join(map(repr, SIGMA))} only; "
                             f"give sigma= for norm {norm!r}")
        eps = DEFAULT_EPS[norm] if eps is None else eps
        if step_size is None:
            step_size = default_step_size(norm, eps, steps)
            if (norm, linf_step) == ("linf", "l2"):
                step_size *= SIGN_STEP_L2_LENGTH
        return cls("so", norm, eps, steps, step_size, random_start=False,
                   sigma=SIGMA[norm] if sigma is None else sigma, samples=samples, linf_step=linf_step, loss=loss,
                   clamp=clamp)

    @classmethod
    def fgsm(cls, norm: str, *, eps: float | None = None, loss: str = "ce") -> AttackSpec:
        """FGSM (ℓ∞), the fast gradient method (ℓ2) or one sparse ℓ1 step: one step of size ε from x itself."""
        eps = DEFAULT_EPS[lp.check_norm(norm, lp.ALL_NORMS)] if eps is None else eps
        return cls("pgd", norm, eps, 1, eps, random_start=False, loss=loss)

    @property
    def step_norm(self) -> str:
        """The norm whose steepest-ascent direction each step takes (ℓ2 for ℓ∞ S-O with ``linf_step="l2"``)."""
        return "l2" if (self.kind, self.linf_step) == ("so", "l2") else self.norm

    def scaled(self, factor: float) -> AttackSpec:
        """ε and the step size times ``factor`` (the ε warm-up of training)."""
        factor = _checks.nonnegative("factor", factor)
        return replace(self, eps=self.eps * factor, step_size=self.step_size * factor)

    def with_eps(self, eps: float) -> AttackSpec:
        """The same attack at radius exactly ``eps``, its step keeping its ratio to ε."""
        eps = _checks.nonnegative("eps", eps)
        if self.eps == 0:
            raise ValueError("with_eps needs a spec with eps > 0 to keep the step's ratio to eps; build a new spec")
        return replace(self, eps=eps, step_size=self.step_size * eps / self.eps)

    def with_steps(self, steps: int) -> AttackSpec:
        """The same attack with ``steps`` steps of the same total length (step · steps unchanged)."""
        _checks.count("steps", steps, minimum=1)
        if self.steps == 0:
            raise ValueError("with_steps needs a spec with steps > 0 to keep its total length; build a new spec")
        return replace(self, steps=steps, step_size=self.step_size * self.steps / steps)

    def config(self) -> dict:
        """Plain JSON-able data for records (every field; ``advlib.identity.spec_config`` leaves the defaults out)."""
        return asdict(self)
