"""Protocols as data: every hyper-parameter of every profile, each cited to its source.

Sources are in docs/protocols.md (section numbers below). "REPRO CHOICE" marks a value the
paper does not state; the book lists all of them (``REPRO_CHOICES``).

Profiles: ``quick`` (CPU smoke scale), ``medium`` (CPU, 10k training images), ``large`` (CPU, all 60k images: models
robust in their own norm), ``tour`` (medium's training for the first run's two cells, 500 test images), ``full``
(one GPU, the paper's attacks on the whole test set), ``paper`` (the anchors' original training lengths). What each
costs is measured in its records (``wall_time``). A profile's prose (``description``, ``notes``) is in no record's
identity (``advlib.identity``): editing it never makes a result stale.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from advlib import _checks
from advlib.specs import EPS, SAMPLES, STEPS, AttackSpec

DEFENSES = ("madry", "trades", "ensemble", "atda")
TRAIN_NORMS = ("l2", "linf", "mix")
CELLS = tuple(f"{d}-{n}" for d in DEFENSES for n in TRAIN_NORMS)
#: The order in which ``reproduce`` runs cells: the single-norm cells that carry the paper's central claim
#: first (Madry and TRADES, ℓ∞ then ℓ2), then mix, then ensemble and ATDA, so a run cut short by a time
#: budget has the most informative cells.
CELL_ORDER = ("madry-linf", "trades-linf", "madry-l2", "trades-l2", "madry-mix", "trades-mix",
              "ensemble-linf", "ensemble-l2", "ensemble-mix", "atda-linf", "atda-l2", "atda-mix")
#: Multi-norm adversarial training, beyond the paper's Table 1: MAX and AVG (Tramèr & Boneh 2019) and MSD (Maini,
#: Wong & Kolter 2020; ``advlib.training.multinorm``), each trained against the union of the ℓ2 and ℓ∞ balls. Their
#: cells are never in ``CELLS``/``CELL_ORDER`` (Table 1): they run when named, or with the keyword ``multi``.
MULTI_NORM = ("max", "avg", "msd")
UNION = "union"
MULTI_NORM_CELLS = tuple(f"{d}-{UNION}" for d in MULTI_NORM)
#: Keywords of ``parse_cells``: every Table 1 cell, or every multi-norm cell.
CELL_KEYWORDS = {"all": CELL_ORDER, "multi": MULTI_NORM_CELLS}
ROWS = ("Natural", "PGD-l2", "PGD-linf", "SO-l2", "SO-linf")
#: How the book and the CLI write each training norm.
NORM_LABELS = {"l2": "ℓ2", "linf": "ℓ∞", "mix": "Mix", "l1": "ℓ1"}


#: The labels a training attack may ascend: the true ones, or the model's own predictions (ATDA's official code,
#: ``attack_utils.py:L18-22``: no label leaking, Kurakin et al. 2017).
ATTACK_LABELS = ("true", "predicted")


@dataclass(frozen=True)
class TrainSpec:
    """How one model is trained: optimiser, schedule, batch, and defense-specific knobs."""

    epochs: int
    batch_size: int
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    lr_milestones: tuple[int, ...] = ()  # epochs after which lr is multiplied by 0.1
    beta: float = 6.0  # TRADES 1/λ (REPRO CHOICE β=6, §2.3; β=1 is the code default)
    static_models: tuple[str, ...] = ()  # ensemble sources besides the model itself
    checkpoint_every: int = 200  # optimiser steps between checkpoints (also at every epoch end)
    eps_hold: float = 0.0  # ε warm-up: ε = 0 for this fraction of all steps,
    eps_ramp: float = 0.0  # then linear up to the full ε at this fraction (0, 0: no warm-up)
    mix_period: int = 1  # "mix" cells: optimiser steps per norm before switching (1: alternate batches, §9)
    attack_labels: str = "true"  # ATDA: the labels its training attack ascends, "true" or "predicted" (its code, §4.1)

    def __post_init__(self) -> None:
        _checks.choice("attack_labels", self.attack_labels, ATTACK_LABELS)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    n_train: int | None  # None: the whole training split
    n_test: int | None
    seed: int
    train_attack: dict[str, AttackSpec]  # per norm; "mix" alternates l2 (even steps) and linf (odd steps)
    defenses: dict[str, TrainSpec]
    static: TrainSpec  # natural training of the ensemble's static models
    evaluation: dict[str, AttackSpec]  # keyed by the rows of Table 1
    init: str = "torch"  # MadryCNN init: "torch" (PyTorch default) or "tf" (Madry's TF init)
    notes: tuple[str, ...] = field(default_factory=tuple)
    start: str | None = None  # fine-tune from this kept model (``advlib.kept`` name) instead of a fresh ``init``

    def config(self) -> dict:
        """The whole profile as plain JSON-able data (stored in every record)."""
        out = asdict(self)
        for group in ("train_attack", "evaluation"):
            out[group] = {name: spec.config() for name, spec in getattr(self, group).items()}
        return out


def _evaluation(pgd_steps: int, so_steps: int, samples: int) -> dict[str, AttackSpec]:
    """Table 1's four attack rows at the paper's radii (steps by ``advlib.specs.default_step_size``)."""
    return {
        "PGD-l2": AttackSpec.pgd("l2", steps=pgd_steps),
        "PGD-linf": AttackSpec.pgd("linf", steps=pgd_steps),
        "SO-l2": AttackSpec.so("l2", steps=so_steps, samples=samples),
        "SO-linf": AttackSpec.so("linf", steps=so_steps, samples=samples),
    }


def _training(steps: int) -> dict[str, AttackSpec]:
    """The training PGD per norm: ``steps`` steps at the paper's ε, uniform random start."""
    return {norm: AttackSpec.pgd(norm, steps=steps) for norm in ("l2", "linf")}


def _defenses(epochs: int, batch: int, hold: float, ramp: float, ens_epochs: int | None = None) -> dict[str, TrainSpec]:
    base = TrainSpec(epochs=epochs, batch_size=batch, eps_hold=hold, eps_ramp=ramp)
    return {
        "madry": base,
        "trades": base,
        "ensemble": replace(base, epochs=ens_epochs or epochs, static_models=STATIC_MODELS),
        "atda": base,
        **{defense: base for defense in MULTI_NORM},  # REPRO CHOICE "multi-norm training settings"
    }


#: Static sources for ensemble training: Tramèr's README recipe uses models A, C, D (docs/protocols.md §3.3).
STATIC_MODELS = ("tramer_a", "tramer_c", "tramer_d")

_SHORT = ("REPRO CHOICE: Adam 1e-3 for every defense (short schedules; anchors: Adam 1e-4 Madry, SGD 0.01 "
          "TRADES, Adam 1e-3 Tramèr and ATDA), PyTorch's default init, and an ε warm-up (ε = 0, then a linear "
          "ramp): with Madry's TF init or without warm-up, ε=0.3 PGD training collapsed to chance in our runs.",)

QUICK = Profile(
    name="quick",
    description="CPU smoke-scale run: 2k training images, 2 epochs of PGD-5 training, 200 test images, "
                "PGD-20 and S-O (10 steps × 4 draws). Shows the pipeline, not the science.",
    n_train=2_000, n_test=200, seed=0,
    train_attack=_training(5),
    defenses=_defenses(epochs=2, batch=50, hold=0.1, ramp=0.5),
    static=TrainSpec(epochs=1, batch_size=50),
    evaluation=_evaluation(pgd_steps=20, so_steps=10, samples=4),
    notes=_SHORT,
)

MEDIUM = Profile(
    name="medium",
    description="CPU, minutes a cell: 10k training images, 5 epochs of PGD-5 training, 1k test images, "
                "PGD-40 with the paper's step sizes and S-O (20 steps × 5 draws).",
    n_train=10_000, n_test=1_000, seed=0,
    train_attack=_training(5),
    defenses=_defenses(epochs=5, batch=50, hold=0.05, ramp=0.3),
    static=TrainSpec(epochs=2, batch_size=50),
    evaluation=_evaluation(pgd_steps=STEPS, so_steps=20, samples=5),
    notes=_SHORT,
)

TOUR = replace(
    MEDIUM,
    name="tour",
    description="The newcomer's first run (python -m advlib tour), its two cells in "
                "about 12 minutes on 2 CPU cores: the medium profile's training (10k images, 5 epochs of PGD-5) "
                "evaluated on 500 test images.",
    n_test=500,
)

FULL = Profile(
    name="full",
    description="One GPU: all 60k training images, 10 epochs of PGD-40 training (12 for ensemble), the whole "
                "10k test set, PGD-40 and S-O with the authors' settings (40 steps × 20 draws).",
    n_train=None, n_test=None, seed=0,
    train_attack=_training(STEPS),
    defenses=_defenses(epochs=10, batch=128, hold=0.02, ramp=0.2, ens_epochs=12),
    static=TrainSpec(epochs=6, batch_size=128),
    evaluation=_evaluation(pgd_steps=STEPS, so_steps=STEPS, samples=SAMPLES),
    notes=_SHORT + ("REPRO CHOICE: 10 epochs (ensemble 12, Tramèr's default) at batch 128 so that all 12 cells "
                    "fit in ~25 min on one H100; the anchors train far longer (see the paper profile).",),
)

LARGE = Profile(
    name="large",
    description="2-core CPU, 1-3 hours a cell on a shared machine (the records' wall_time): all 60k training images, 5 "
                "epochs of PGD-10 training at batch 128, 1k test images, PGD-40 and S-O with the authors' settings "
                "(40 steps × 20 draws).",
    n_train=None, n_test=1_000, seed=0,
    train_attack=_training(10),
    defenses=_defenses(epochs=5, batch=128, hold=0.02, ramp=0.2, ens_epochs=6),
    static=TrainSpec(epochs=2, batch_size=128),
    evaluation=_evaluation(pgd_steps=STEPS, so_steps=STEPS, samples=SAMPLES),
    notes=_SHORT + ("REPRO CHOICE: 5 epochs (ensemble 6) of PGD-10 training (step 2.5·ε/10) at batch 128 on all 60k "
                    "images (batch 128 was the fastest per example of 50/128/256 on 2 cores); fp32 training. The "
                    "records' wall_time gives the cost: 1-3 hours a cell on a shared 2-core CPU.",),
)

PAPER = replace(
    FULL,
    name="paper",
    description="The anchors' own training lengths: Madry 100k iterations at batch 50 with Adam 1e-4 (§1.2), "
                "TRADES 100 epochs SGD 0.01/0.9 at batch 128 with decay at 55/75/90 (§2.3), ensemble 12 epochs "
                "Adam 1e-3 at batch 64 (§3.3), ATDA 50 epochs Adam 1e-3 at batch 32 (§4.1-4.2).",
    defenses={
        "madry": TrainSpec(epochs=84, batch_size=50, lr=1e-4, checkpoint_every=2000),
        "trades": TrainSpec(epochs=100, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9,
                            lr_milestones=(55, 75, 90), checkpoint_every=2000),
        "ensemble": TrainSpec(epochs=12, batch_size=64, static_models=STATIC_MODELS, checkpoint_every=2000),
        "atda": TrainSpec(epochs=50, batch_size=32, checkpoint_every=2000),
        **{defense: TrainSpec(epochs=84, batch_size=50, lr=1e-4, checkpoint_every=2000) for defense in MULTI_NORM},
    },
    static=TrainSpec(epochs=6, batch_size=64),
    init="tf",
    notes=("Madry: 100k iterations × 50 / 60k images ≈ 84 epochs; Madry's TF init; no ε warm-up.",),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, MEDIUM, TOUR, LARGE, FULL, PAPER)}

#: The paper's own PGD-ℓ2 protocol on our models (issue 22, item 2): the authors' ℓ2 attack (Bai-Li/TRADES
#: pgd_attack_mnist_l2.py, §6.1) starts at x itself (L64), where Table 1's PGD-l2 starts uniformly in the ball (§9),
#: and clamps to [0,1] once, after its last step (L90), where advlib clamps every step (§6.3). "PGD-l2 x0" is the
#: profile's PGD-l2 started at x with advlib's per-step clamp; "PGD-l2 x0 end-clamp" the same with the authors'
#: single clamp (``AttackSpec.clamp = "end"``). Rows beside a record (its rows side file), never in
#: ``Profile.evaluation``: Table 1's norm-agnostic accuracy stays the worst case over the paper's four attacks.
PROTOCOL_ROWS = ("PGD-l2 x0", "PGD-l2 x0 end-clamp")


def protocol_rows(profile: Profile) -> dict[str, AttackSpec]:
    """``PROTOCOL_ROWS`` of ``profile`` (name → spec): its PGD-l2 without a random start, clamped every step and at
    the end."""
    at_x = replace(profile.evaluation["PGD-l2"], random_start=False)
    return {PROTOCOL_ROWS[0]: at_x, PROTOCOL_ROWS[1]: replace(at_x, clamp="end")}


#: Every choice the paper leaves open, with what advlib does. The book prints this list.
REPRO_CHOICES = {
    "model init": "PyTorch's default init in quick/medium/full (Madry's TF init, truncated normal σ=0.1 and "
                  "biases 0.1, collapsed to chance under short ε=0.3 PGD training); TF init in the paper profile (§1.1).",
    "ε warm-up": "quick/medium/large/full: ε = 0 for the first 10/5/2/2 % of steps, then linear to full ε at 50/30/20/20 %; "
                 "none in the paper profile (Madry trains at full ε from step 0).",
    "data split": "torchvision's 60k/10k MNIST split (Madry's TF reader trained on 55k) (§0).",
    "PGD-ℓ2 training/eval": "ε=4.0, step 2.5·ε/steps (0.25 for 40 steps), uniform random start in the ℓ2 ball (§9).",
    "mix": "alternate batches: even optimiser steps ℓ2, odd steps ℓ∞ (§9).",
    "TRADES β": "β=6 (β=1, the MNIST script default, is available as a protocol field) (§2.3).",
    "TRADES inner start": "x + 0.001·N(0, I), as trades.py, for every TRADES training attack (the spec's "
                          "uniform random start does not apply to TRADES) (§2.2).",
    "TRADES ℓ2 inner step": "vectorised paper-era version: g/‖g‖₂ steps, ℓ2 projection, [0,1] clamp every step (§2.2a).",
    "TRADES model/optimiser": "Madry's CNN, and the profile's optimiser instead of SmallCNN with SGD (§2.3).",
    "ensemble sources": "static Tramèr models A, C, D trained naturally; each batch draws its source uniformly "
                        "from {A, C, D, the model itself} (§3.3).",
    "ensemble attack": "every source crafts PGD in the training norm with true labels, not Tramèr's single-step "
                       "FGSM on predicted labels, because the paper's whole table is PGD-trained (§3.5).",
    "ATDA attack": "the model's own PGD in the training norm instead of ATDA's FGSM ε=0.1 (§4.5).",
    "ATDA loss": "official code: CE(x)+CE(x_adv)+⅓(CORAL+MMD+margin) on logits, centres updated at α=0.1 (§4.2-4.3).",
    "batch size": "one batch size per profile for all defenses (50 in quick/medium, 128 in large and full); the paper profile keeps "
                  "each anchor's own (§1.2, §2.3, §3.2, §4.1).",
    "optimiser": "Adam 1e-3 in the quick, medium, large and full profiles (short schedules); anchors' own in paper.",
    "S-O ℓ∞ step": "the authors' code steps by sign(g); the paper's text by g/‖g‖₂ (linf_step='l2', step 0.28) (§6.3).",
    "S-O clamp": "iterates are clamped to [0,1] at every step (the authors clamp ℓ2 only at the end; an AttackSpec "
                 "with clamp='end' runs their loop, e.g. the protocol row 'PGD-l2 x0 end-clamp') (§6.3).",
    "S-O noise": "fresh Gaussian draws per sample and step, noisy points not clipped (§6.1-6.2).",
    "reduced step counts": "with fewer steps than 40, PGD and S-O steps are 2.5·ε/steps (quick, medium, large training); "
                           "training PGD uses 5 steps in quick and medium, 10 in large, 40 in full and paper.",
    "robust accuracy": "accuracy on x_adv of every test example (clean mistakes are attacked too); the "
                       "norm-agnostic accuracy is the fraction correct on the clean image and under every attack.",
    "multi-norm training settings": "the max/avg/msd-union cells (beyond Table 1) train with the profile's ℓ2 and ℓ∞ "
                                    "training attacks and the same schedule, batch and ε warm-up (for both norms) as "
                                    "Madry's cells, so that they compare with them directly.",
    "MAX/AVG attacks": "each norm's example is the profile's training PGD in that norm, with its uniform random start "
                       "(Tramèr's config.json also starts at random); MAX keeps per example the higher-CE one (argmax, "
                       "ties to ℓ2), AVG trains on both as one batch (Tramèr & Boneh 2019, MultiRobustness train.py).",
    "MSD steps and start": "max(steps) of the two training specs, each norm at its own ε and step size, starting at x "
                           "itself (robust_union msd_v0 with its default randomize=0), so the specs' random start "
                           "does not apply; the last iterate is trained on (msd_v0 returns the highest-loss iterate).",
}


def get_profile(name: str) -> Profile:
    """A profile by name, or a variant's (``advlib.variants``); unknown names raise ``ValueError`` listing the
    valid ones."""
    from advlib.variants import VARIANTS  # variants derive from the profiles above
    if name in VARIANTS:
        return VARIANTS[name].profile
    return PROFILES[_checks.choice("profile", name, (*PROFILES, *VARIANTS))]


def parse_cells(spec: str | None) -> list[str]:
    """``"madry-linf,trades-l2"`` → list of cells in that order, each once (None or "all": the 12 Table 1 cells, in
    ``CELL_ORDER``; "multi": the multi-norm cells ``MULTI_NORM_CELLS``; keywords mix with cells, "all,multi");
    unknown cells raise."""
    if spec is None:
        return list(CELL_ORDER)
    valid = CELLS + MULTI_NORM_CELLS + tuple(CELL_KEYWORDS)
    cells: list[str] = []
    for name in (c.strip() for c in spec.split(",") if c.strip()):
        for cell in CELL_KEYWORDS.get(_checks.choice("cell", name, valid), (name,)):
            if cell not in cells:
                cells.append(cell)
    return cells


def split_cell(cell: str) -> tuple[str, str]:
    """``"trades-mix"`` → ``("trades", "mix")``; ``"max-union"`` → ``("max", "union")``."""
    defense, norm = _checks.choice("cell", cell, CELLS + MULTI_NORM_CELLS).split("-")
    return defense, norm


def train_spec(profile: Profile, defense: str) -> TrainSpec:
    """How ``defense`` trains under ``profile`` (unknown defenses raise ``ValueError`` listing the profile's)."""
    return profile.defenses[_checks.choice("defense", defense, profile.defenses)]
