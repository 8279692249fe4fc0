"""Chapter 10's measurements on the large profile's ℓ∞-trained models: is S-O better than more PGD?

    python -m advlib large-linf-ablations [--n 1000] [--out results/beyond/large-linf-ablations.json]
                                          [--items a,b,c] [--models-from results/large]

Models: the large profile's madry-linf and trades-linf (their finished checkpoints under ``--models-from``;
nothing is trained here: a missing checkpoint is an error). On the first N test images (default 1,000), each model:

  a. ℓ2 ε = 2.0 at an equal gradient budget: PGD (40 steps of 2.5·ε/40, random start), PGD without a random start
     (= S-O with σ = 0), S-O (the profile's σ, 20 draws per step: 800 gradients), PGD with 800 steps, the worst
     of 20 random restarts of PGD-40, and PGD-40 on the Carlini–Wagner margin loss (κ = 50, Madry's ``cw``);
  b. ‖∇ₓL‖₂ at the PGD points of the images PGD-40 leaves correct (are survivors gradient-masked?);
  c. S-O ℓ∞ (ε 0.3, the profile's settings) with the sign step (the authors' code, Table 1) against the paper's
     equation 4 read literally (step along g/‖g‖₂, of the sign step's ℓ2 length).

Runs are stored as they finish (accuracy, packed correctness mask, seconds) in a sealed document of kind
``store.LARGE_LINF_ABLATIONS``; a killed run resumes, a run already in the file is not repeated, and an item
already there under the same settings is skipped (items made under other settings are dropped, runs kept).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from advlib import data, landscape, protocols, runtime
from advlib.attacks import run_attack
from advlib.evaluation import predict
from advlib.experiments import store
from advlib.experiments.measures import disagreement, quantiles
from advlib.experiments.session import Session, attack_run, jsonable, restarts_run, trained_identity
from advlib.specs import L2_LITERATURE_EPS, SAMPLES, STEPS, AttackSpec

PROFILE = "large"
CELLS = ("madry-linf", "trades-linf")
ITEMS = ("a", "b", "c")
WHAT = "chapter 7's ablations on the large profile's l-inf-trained models (advlib.experiments.large_linf)"


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers; ``tiny`` (tests only) shrinks steps, draws and restarts."""

    n: int = 1000
    seed: int = 0
    eps_l2: float = L2_LITERATURE_EPS
    steps: int = STEPS
    draws: int = SAMPLES
    restarts: int = 20
    tiny: bool = False

    @classmethod
    def tiny_for(cls, n: int) -> Settings:
        """Test-only: 3 steps, 2 draws, 2 restarts; seconds, meaningless numbers."""
        return cls(n=n, steps=3, draws=2, restarts=2, tiny=True)

    def pgd(self, **changes: object) -> AttackSpec:
        """PGD-ℓ2 at ``eps_l2`` with the step rule."""
        return AttackSpec.pgd("l2", steps=self.steps, eps=self.eps_l2, **changes)

    def so(self) -> AttackSpec:
        """S-O-ℓ2 at ``eps_l2`` with the large profile's σ."""
        return AttackSpec.so("l2", steps=self.steps, samples=self.draws, eps=self.eps_l2,
                             sigma=protocols.get_profile(PROFILE).evaluation["SO-l2"].sigma)

    def so_linf(self, rule: str) -> AttackSpec:
        """The large profile's S-O-ℓ∞ with ``steps`` × ``draws`` and the ℓ∞ step rule ``rule`` ("sign" or "l2")."""
        spec = protocols.get_profile(PROFILE).evaluation["SO-linf"]
        return AttackSpec.so("linf", steps=self.steps, samples=self.draws, eps=spec.eps, sigma=spec.sigma,
                             linf_step=rule)


def item_a(ctx: Session, cell: str) -> dict:
    """ℓ2 at an equal gradient budget: PGD variants against S-O."""
    s = ctx.settings
    budget = s.steps * s.draws
    runs = {"PGD, random start": attack_run(ctx, cell, s.pgd(), s.n),
            "PGD, no random start": attack_run(ctx, cell, s.pgd(random_start=False), s.n),
            "S-O": attack_run(ctx, cell, s.so(), s.n),
            f"PGD, {budget} steps": attack_run(ctx, cell, s.pgd().with_steps(budget), s.n),
            "PGD, CW margin loss": attack_run(ctx, cell, s.pgd(loss="cw"), s.n),
            f"PGD, worst of {s.restarts} restarts": restarts_run(ctx, cell, s.pgd(), s.n, s.restarts)}
    return {"eps": s.eps_l2, "n": s.n, "runs": {name: store.summary(r) for name, r in runs.items()},
            "union_accuracy": store.worst_case(list(runs.values())).float().mean().item(),
            "so_vs_restarts": disagreement(store.mask_of(runs["S-O"]),
                                           store.mask_of(runs[f"PGD, worst of {s.restarts} restarts"])),
            "so_vs_cw": disagreement(store.mask_of(runs["S-O"]), store.mask_of(runs["PGD, CW margin loss"]))}


def item_b(ctx: Session, cell: str) -> dict:
    """‖∇ₓL‖₂ at the final PGD point of every image PGD-40 leaves correct."""
    s, net = ctx.settings, ctx.models[cell]
    x, y = ctx.x[:s.n], ctx.y[:s.n]
    x_adv = run_attack(s.pgd(), net, x, y, generator=ctx.generator())
    survivors = predict(net, x_adv) == y
    if not survivors.any():  # nothing survived: no gradient to measure
        return {"n": s.n, "survivors": 0, "grad_norm_quantiles": {}, "below_1e-3": 0}
    grad = landscape.gradient_norms(net, x_adv[survivors], y[survivors]).cpu()
    return {"n": s.n, "survivors": int(survivors.sum()), "grad_norm_quantiles": quantiles(grad),
            "below_1e-3": int((grad < 1e-3).sum())}


def item_c(ctx: Session, cell: str) -> dict:
    """S-O-ℓ∞ with the sign step against the ℓ2-normalised step of the paper's equation 4."""
    s = ctx.settings
    sign, l2 = s.so_linf("sign"), s.so_linf("l2")
    a, b = attack_run(ctx, cell, sign, s.n), attack_run(ctx, cell, l2, s.n)
    return {"n": s.n, "sign": {**store.summary(a), "step_size": sign.step_size},
            "l2_normalised": {**store.summary(b), "step_size": l2.step_size},
            "comparison": disagreement(store.mask_of(a), store.mask_of(b))}


ITEM_FUNCTIONS: dict[str, Callable[[Session, str], dict]] = {"a": item_a, "b": item_b, "c": item_c}


def run(out: str | Path, *, n: int = Settings.n, items: tuple[str, ...] = ITEMS, models_from: str | Path,
        tiny: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run ``items`` on both models (resuming the document at ``out``) and return the document; ``tiny``: tests only.

    ``models_from``: the results folder whose ``checkpoints/`` hold the large models; ValueError if one is missing.
    """
    from advlib.reproduce import checkpoint_path, data_identity, trained_model
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        raise ValueError(f"unknown items {unknown}; valid: {', '.join(ITEMS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    settings = Settings.tiny_for(n) if tiny else Settings(n=n)
    prof = protocols.get_profile(PROFILE)
    sources = data_identity(prof)
    missing = [c for c in CELLS if not checkpoint_path(Path(models_from), prof, c, sources).is_file()]
    if missing:  # trained_model would train them: hours on a CPU
        raise ValueError(f"no checkpoint for {missing} in {Path(models_from) / 'checkpoints'}: train the large "
                         "models first (python -m advlib reproduce --profile large)")
    runtime.tune_allocator()
    device = runtime.default_device()
    nets = {c: trained_model(prof, c, out=models_from, device=device).eval() for c in CELLS}
    x, y = data.load_mnist("test", limit=settings.n, device=device)
    identity = {c: trained_identity(PROFILE, c) for c in CELLS}
    wanted = jsonable(asdict(settings))
    doc = store.load(out, store.LARGE_LINF_ABLATIONS, WHAT, wanted)
    if doc["settings"] != wanted:  # items describe the document's settings; runs carry their own keys
        doc["items"] = {}
    doc["what"] = WHAT
    ctx = Session(settings, store.LARGE_LINF_ABLATIONS, Path(out), device, x, y, nets, identity, doc, log)
    ctx.doc["data"] = {"split": "test", "first": settings.n, "fingerprint": data.fingerprint("test", limit=settings.n)}
    log(f"large l-inf ablations: N = {settings.n}, {runtime.device_name(device)}, out {out}")
    for item in items:
        if item in ctx.doc["items"]:
            log(f"item {item}: already done, skipped")
            continue
        ctx.doc["items"][item] = {c: ITEM_FUNCTIONS[item](ctx, c) for c in CELLS}
        ctx.save()
        log(f"item {item}: " + ", ".join(f"{c} {ctx.doc['items'][item][c].get('union_accuracy', '')}" for c in CELLS))
    return ctx.doc
