"""Chapter 7's measurements on the large profile's ℓ∞-trained models: is S-O better than more PGD?

    python tools/beyond_ablations.py [--n 1000] [--out results/beyond/large-linf-ablations.json] [--items a,b,c] [--tiny]

Models: the large profile's madry-linf and trades-linf (their finished checkpoints in results/large/checkpoints;
nothing is trained here: a missing checkpoint is an error). On the first N test images (default 1,000), each model:

  a. ℓ2 ε = 2.0 at an equal gradient budget: PGD (40 steps of 2.5·ε/40, random start), PGD without a random start
     (= S-O with σ = 0), S-O (the profile's σ, 20 draws per step: 800 gradients), PGD with 800 steps, the worst
     of 20 random restarts of PGD-40, and PGD-40 on the Carlini–Wagner margin loss (κ = 50, Madry's ``cw``);
  b. ‖∇ₓL‖₂ at the PGD points of the images PGD-40 leaves correct (are survivors gradient-masked?);
  c. S-O ℓ∞ (ε 0.3, the profile's settings) with the sign step (the authors' code, Table 1) against the paper's
     equation 4 read literally (step along g/‖g‖₂, of the sign step's ℓ2 length).

Runs are stored as they finish (accuracy, packed correctness mask, seconds), with the store of
``tools/released_ablations.py``; a killed run resumes, and a run already in the file is not repeated.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from released_ablations import (Context, _quantiles, attack_run, disagreement, load_document, mask_of,  # noqa: E402
                                run_key, save, summary)

from advlib import data, landscape, protocols, records, runtime  # noqa: E402
from advlib.ablations import worst_case_restarts  # noqa: E402
from advlib.reproduce import checkpoint_dir, config_hash, data_identity, trained_model  # noqa: E402
from advlib.attacks import run_attack  # noqa: E402
from advlib.evaluation import predict  # noqa: E402
from advlib.specs import L2_LITERATURE_EPS, SAMPLES, STEPS, AttackSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "results" / "beyond" / "large-linf-ablations.json"
PROFILE = "large"
CELLS = ("madry-linf", "trades-linf")
ITEMS = ("a", "b", "c")


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

    def pgd(self, **changes: object) -> AttackSpec:
        return AttackSpec.pgd("l2", steps=self.steps, eps=self.eps_l2, **changes)

    def so(self, profile: protocols.Profile) -> AttackSpec:
        return AttackSpec.so("l2", steps=self.steps, samples=self.draws, eps=self.eps_l2,
                             sigma=profile.evaluation["SO-l2"].sigma)

    def so_linf(self, profile: protocols.Profile, rule: str) -> AttackSpec:
        spec = profile.evaluation["SO-linf"]
        return AttackSpec.so("linf", steps=self.steps, samples=self.draws, eps=spec.eps, sigma=spec.sigma,
                             linf_step=rule)


def tiny(n: int) -> Settings:
    return Settings(n=n, steps=3, draws=2, restarts=2, tiny=True)


def item_a(ctx: Context, cell: str) -> dict:
    s, prof = ctx.settings, protocols.get_profile(PROFILE)
    budget = s.steps * s.draws
    runs = {"PGD, random start": attack_run(ctx, cell, s.pgd(), s.n),
            "PGD, no random start": attack_run(ctx, cell, s.pgd(random_start=False), s.n),
            "S-O": attack_run(ctx, cell, s.so(prof), s.n),
            f"PGD, {budget} steps": attack_run(ctx, cell, s.pgd().with_steps(budget), s.n),
            "PGD, CW margin loss": attack_run(ctx, cell, s.pgd(loss="cw"), s.n)}
    key = run_key(cell, f"worst of {s.restarts} restarts", s.pgd(), s.n, s.seed)
    if key not in ctx.doc["runs"]:
        start = time.perf_counter()
        res = worst_case_restarts(s.pgd(), ctx.models[cell], ctx.x[:s.n], ctx.y[:s.n], restarts=s.restarts,
                                  seed=s.seed)
        ctx.doc["runs"][key] = {"model": cell, "variant": f"worst of {s.restarts} restarts", "spec": s.pgd().config(),
                                "n": s.n, "seed": s.seed, "gradient_evaluations": s.restarts * s.steps,
                                "accuracy": res.accuracy[-1], "accuracy_after_each_restart": res.accuracy,
                                "mask": records.pack_mask(res.correct), "mean_l2_perturbation": float("nan"),
                                "seconds": time.perf_counter() - start,
                                "git_revision": records.git_revision()}
        save(ctx)
    runs[f"PGD, worst of {s.restarts} restarts"] = ctx.doc["runs"][key]
    union = torch.stack([mask_of(r) for r in runs.values()]).all(0)
    return {"eps": s.eps_l2, "n": s.n, "runs": {name: summary(r) for name, r in runs.items()},
            "union_accuracy": union.float().mean().item(),
            "so_vs_restarts": disagreement(mask_of(runs["S-O"]), mask_of(runs[f"PGD, worst of {s.restarts} restarts"])),
            "so_vs_cw": disagreement(mask_of(runs["S-O"]), mask_of(runs["PGD, CW margin loss"]))}


def item_b(ctx: Context, cell: str) -> dict:
    s = ctx.settings
    spec = s.pgd()
    generator = torch.Generator(device=ctx.device).manual_seed(s.seed)
    x, y, net = ctx.x[:s.n], ctx.y[:s.n], ctx.models[cell]
    x_adv = run_attack(spec, net, x, y, generator=generator)
    survivors = predict(net, x_adv) == y
    grad = landscape.gradient_norms(net, x_adv[survivors], y[survivors]).cpu()
    return {"n": s.n, "survivors": int(survivors.sum()), "grad_norm_quantiles": _quantiles(grad) if grad.numel() else {},
            "below_1e-3": int((grad < 1e-3).sum())}


def item_c(ctx: Context, cell: str) -> dict:
    s, prof = ctx.settings, protocols.get_profile(PROFILE)
    sign, l2 = s.so_linf(prof, "sign"), s.so_linf(prof, "l2")
    a, b = attack_run(ctx, cell, sign, s.n), attack_run(ctx, cell, l2, s.n)
    return {"n": s.n, "sign": {**summary(a), "step_size": sign.step_size},
            "l2_normalised": {**summary(b), "step_size": l2.step_size}, "comparison": disagreement(mask_of(a), mask_of(b))}


ITEM_FUNCTIONS = {"a": item_a, "b": item_b, "c": item_c}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="test images (default 1000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--items", default=",".join(ITEMS), help="comma-separated items (default all)")
    parser.add_argument("--models-from", type=Path, default=REPO / "results" / PROFILE,
                        help="folder whose checkpoints/ hold the large models (default results/large)")
    parser.add_argument("--tiny", action="store_true", help="test only: tiny settings, meaningless numbers")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    unknown = [i for i in args.items.split(",") if i not in ITEMS]
    if unknown:
        parser.error(f"unknown items {unknown}; valid: {', '.join(ITEMS)}")
    runtime.tune_allocator()
    settings = tiny(args.n) if args.tiny else Settings(n=args.n)
    device = runtime.default_device()
    prof = protocols.get_profile(PROFILE)
    folder = checkpoint_dir(Path(args.models_from), prof, data_identity(prof))
    missing = [c for c in CELLS if not (folder / f"{c}.pt").exists()]
    if missing:  # trained_model would train them: hours on a CPU
        raise ValueError(f"no checkpoint for {missing} in {folder}: train the large models first "
                         "(python -m advlib reproduce --profile large)")
    nets = {c: trained_model(prof, c, out=args.models_from, device=device).eval() for c in CELLS}
    x, y = data.load_mnist("test", limit=settings.n, device=device)
    identity = {c: {"architecture": "madry-cnn", "cell": c, "profile": prof.name, "config_hash": config_hash(prof)}
                for c in CELLS}
    doc = load_document(args.out, settings)
    doc["what"] = "chapter 7's ablations on the large profile's l-inf-trained models (tools/beyond_ablations.py)"
    ctx = Context(settings, args.out, device, x, y, nets, identity, doc)
    ctx.doc["data"] = {"split": "test", "first": settings.n, "fingerprint": data.fingerprint("test", limit=settings.n)}
    print(f"beyond ablations: N = {settings.n}, {runtime.device_name(device)}, out {args.out}", flush=True)
    for item in args.items.split(","):
        ctx.doc["items"][item] = {c: ITEM_FUNCTIONS[item](ctx, c) for c in CELLS}
        save(ctx)
        print(item, {c: ctx.doc["items"][item][c].get("union_accuracy", "") for c in CELLS}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
