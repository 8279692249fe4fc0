"""Ablations on the TRADES authors' released MNIST SmallCNN: what makes the paper's TRADES-ℓ∞ column?

    nice -n 10 python tools/released_ablations.py [--n 1000] [--out results/released/ablations-cpu.json]
                                                  [--items a,b,...] [--seed 0] [--threads 1]

The Table 1 record of this model (``results/released/trades-released.json``, 10,000 test images) has PGD-ℓ2 at
81.7 % and S-O-ℓ2 at 0.3 %; the paper 91.7 % and 3.2 %. These items take the model apart on the first test
images (each item's own n is recorded; ``--n`` is N, the most any item uses):

  a. PGD-ℓ2 (ε 4.0, 40 steps of 0.25) with and without a random start (n = N);
  b. PGD-ℓ2 at S-O's budget of 40 steps × 20 draws = 800 gradients: the worst of 20 random restarts, and one
     run of 800 steps, of the same total length (steps of 0.0125) and of the same step (0.25, with and without
     a random start), and PGD with 40, 100, 200, 400 and 800 steps of 0.25 (n = N_SMALL);
  c. S-O-ℓ2 on a grid of σ × draws (n = N_SMALL; σ = 0 is PGD without a random start, whatever the draws);
  d. the authors' clamp to [0,1] after the last step (``advlib.ablations.so_clamp_at_end``) against advlib's
     clamp after every step, for S-O (authors' settings, n = N_SMALL) and PGD without a random start (n = N);
  e. ‖∇ₓL‖₂ at the clean points (n = N) and along PGD-ℓ2 and S-O-ℓ2 (traces: the paper's Figure 1,
     n = N_SMALL), for the released model and a naturally trained Madry CNN (the quick profile's "natural");
  f. the dominant eigenvalue of ∇²ₓL at the first 20 clean points (power iteration), both models, with the
     alignment of the gradient and of the S-O direction to its eigenvector;
  g. AutoAttack ℓ2 ε = 4.0, APGD-CE then APGD-T (9 target classes) (n = N_AUTOATTACK).

N_SMALL = min(N, 200) (the authors' test batch) keeps the default run within about 45 minutes on 2 CPU cores
shared with another job: measured at N = 1000, one thread, a 2 min, b 11 min, c 8 min, d 3 min, e 7 min, f 5 s,
g 5 min (36 min; g took 2.5 min at n = 500, so N_AUTOATTACK = N). Every attack run is stored (accuracy, packed
correctness mask, seconds) under "runs" and written at once, so a killed run resumes where it stopped; an item
whose settings are already in the file is skipped. Importing this module runs nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

import advlib
from advlib import data, hessian, landscape, lp, models, protocols, records, runtime
from advlib.ablations import gradient_evaluations, so_clamp_at_end, worst_case_restarts
from advlib.attacks import run_attack, traced_attack
from advlib.context import frozen
from advlib.evaluation import predict
from advlib.gradients import input_gradient, smoothed_gradient
from advlib.specs import AttackSpec
from advlib.strong import AutoAttackSpec, autoattack

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "results" / "released" / "ablations-cpu.json"
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
#: ‖∇ₓL‖₂ below which a gradient counts as vanished (issue 10's threshold), and the per-example norm below which
#: the authors' 1e-8 floor on the batch-mean gradient (their batch of 200) would shorten a step.
ZERO_GRADIENT = 1e-6
AUTHORS_FLOOR = 1e-8 * 200
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers. ``tiny()`` is the test-only version (seconds, meaningless)."""

    n: int = 1000                                   # N: items a, d (PGD), e (clean gradients)
    n_small: int = 200                              # b, c, d (S-O), e (traces): the authors' test batch
    n_autoattack: int = 1000                        # g
    n_hessian: int = 20                             # f
    seed: int = 0
    steps: int = 40                                 # the paper's PGD and S-O
    sigmas: tuple[float, ...] = (0.0, 0.05, 0.15, 0.3)
    draws: tuple[int, ...] = (1, 5, 20)
    authors_sigma: float = 0.15                     # Bai-Li/TRADES pgd_attack_mnist_l2.py:L62
    authors_draws: int = 20                         # ibid. L68
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


@dataclass
class Context:
    """The models and images of one run, and the open results document."""

    settings: Settings
    out: Path
    device: torch.device
    x: Tensor
    y: Tensor
    models: dict[str, nn.Module]
    identity: dict[str, dict]
    doc: dict
    log: Callable[[str], None] = print


def natural_model(profile: str, device: torch.device) -> nn.Module:
    """The naturally trained Madry CNN of ``profile`` (trained on first use and cached; about a minute for quick)."""
    from advlib.reproduce import trained_model
    return trained_model(profile, "natural", device=device)


def model_identity(profile: str) -> dict[str, dict]:
    """What the two models are, for the record."""
    from advlib.reproduce import config_hash
    from advlib.released import SOURCE
    prof = protocols.get_profile(profile)
    return {"released": {"architecture": "smallcnn", "source": SOURCE, "md5": models.TRADES_SMALLCNN_MD5},
            "natural": {"architecture": "madry-cnn", "cell": "natural", "profile": prof.name,
                        "config_hash": config_hash(prof), "n_train": prof.n_train,
                        "description": prof.description}}


# ----------------------------------------------------------------------------------------- the results file

def new_document(settings: Settings) -> dict:
    return {"what": "ablations of the TRADES authors' released MNIST SmallCNN (tools/released_ablations.py)",
            "settings": _jsonable(asdict(settings)), "runs": {}, "items": {}}


def load_document(path: Path, settings: Settings) -> dict:
    """The results file at ``path`` if it is readable JSON (its runs are reused), else a new document."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return new_document(settings)
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), dict) or not isinstance(doc.get("items"), dict):
        return new_document(settings)
    return doc


def save(ctx: Context) -> None:
    """Write the document atomically, with the provenance of this run."""
    ctx.doc["settings"] = _jsonable(asdict(ctx.settings))
    ctx.doc["provenance"] = provenance(ctx.device)
    ctx.doc["models"] = ctx.identity
    ctx.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = ctx.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ctx.doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, ctx.out)


def provenance(device: torch.device) -> dict:
    return {"git_revision": records.git_revision(), "advlib_version": advlib.__version__,
            "torch_version": torch.__version__, "device": runtime.device_name(device),
            "threads": torch.get_num_threads(), "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -------------------------------------------------------------------------------------------- attack runs

def run_key(model: str, variant: str, spec: AttackSpec, n: int, seed: int) -> str:
    """The name of one attack run: model, variant, the spec's settings, n and seed."""
    s = spec.config()
    body = ",".join(f"{k}={s[k]}" for k in sorted(s))
    return f"{model}|{variant}|{body}|n={n}|seed={seed}"


def attack_run(ctx: Context, model: str, spec: AttackSpec, n: int, *, variant: str = "advlib",
               traced: bool = False) -> dict:
    """One attack of ``spec`` on the first ``n`` images of ``model`` (stored under "runs"; reused if there).

    ``variant``: "advlib" (``run_attack``; ``traced_attack`` if ``traced``) or "clamp-at-end"
    (``so_clamp_at_end``). Returns the stored entry: accuracy, packed mask, mean ‖x_adv − x‖₂, seconds, trace.
    """
    key = run_key(model, variant, spec, n, ctx.settings.seed)
    have = ctx.doc["runs"].get(key)
    if have is not None and (have.get("trace") is not None or not traced):
        return have
    net, x, y = ctx.models[model], ctx.x[:n], ctx.y[:n]
    generator = torch.Generator(device=ctx.device).manual_seed(ctx.settings.seed)
    start, trace = time.perf_counter(), None
    if variant == "clamp-at-end":
        x_adv = so_clamp_at_end(spec, net, x, y, generator=generator)
    elif traced:
        result = traced_attack(spec, net, x, y, generator=generator)
        x_adv, trace = result.x_adv, {"grad_norm": result.trace.grad_norm, "loss": result.trace.loss}
    else:
        x_adv = run_attack(spec, net, x, y, generator=generator)
    correct = predict(net, x_adv) == y
    entry = {"model": model, "variant": variant, "spec": spec.config(), "n": n, "seed": ctx.settings.seed,
             "gradient_evaluations": gradient_evaluations(spec), "accuracy": correct.float().mean().item(),
             "mask": records.pack_mask(correct), "mean_l2_perturbation": lp.norm_of(x_adv - x, "l2").mean().item(),
             "seconds": time.perf_counter() - start, "trace": trace, "git_revision": records.git_revision()}
    ctx.doc["runs"][key] = entry
    save(ctx)
    ctx.log(f"  run {key}: {100 * entry['accuracy']:.1f} % in {entry['seconds']:.0f} s")
    return entry


def mask_of(entry: dict) -> Tensor:
    """The correctness mask of a stored run."""
    return records.unpack_mask(entry["mask"], entry["n"])


def summary(entry: dict) -> dict:
    """A run as an item reports it (no mask, no trace)."""
    return {k: entry[k] for k in ("accuracy", "n", "gradient_evaluations", "mean_l2_perturbation", "seconds")}


def disagreement(a: Tensor, b: Tensor) -> dict:
    """Per-example comparison of two correctness masks on the same images."""
    return {"differ": int((a != b).sum()), "only_first_fooled": int((~a & b).sum()),
            "only_second_fooled": int((a & ~b).sum()), "n": int(a.numel())}


# ------------------------------------------------------------------------------------------------- items

def item_settings(s: Settings, name: str) -> dict:
    """The settings an item's numbers depend on (an item is recomputed when they change)."""
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


def item_a(ctx: Context) -> dict:
    s = ctx.settings
    rs = attack_run(ctx, "released", s.pgd(), s.n, traced=True)
    no_rs = attack_run(ctx, "released", s.pgd(random_start=False), s.n)
    both = mask_of(rs) & mask_of(no_rs)
    return {"random start": summary(rs), "no random start": summary(no_rs),
            "worst of both": both.float().mean().item(),
            "comparison": disagreement(mask_of(rs), mask_of(no_rs)), "step_size": s.pgd().step_size}


def item_b(ctx: Context) -> dict:
    s, n = ctx.settings, ctx.settings.n_small
    key = run_key("released", f"worst of {s.restarts} restarts", s.pgd(), n, s.seed)
    if key not in ctx.doc["runs"]:
        start = time.perf_counter()
        res = worst_case_restarts(s.pgd(), ctx.models["released"], ctx.x[:n], ctx.y[:n], restarts=s.restarts,
                                  seed=s.seed)
        ctx.doc["runs"][key] = {"model": "released", "variant": f"worst of {s.restarts} restarts",
                                "spec": s.pgd().config(), "n": n, "seed": s.seed, "restarts": s.restarts,
                                "gradient_evaluations": s.restarts * s.steps, "accuracy": res.accuracy[-1],
                                "accuracy_after_each_restart": res.accuracy, "mask": records.pack_mask(res.correct),
                                "seconds": time.perf_counter() - start, "git_revision": records.git_revision()}
        save(ctx)
        ctx.log(f"  run {key}: {100 * res.accuracy[-1]:.1f} %")
    restarts = ctx.doc["runs"][key]
    longer = attack_run(ctx, "released", s.pgd().with_steps(s.long_steps), n)
    farther = attack_run(ctx, "released", replace(s.pgd(), steps=s.long_steps), n)
    farther_fixed = attack_run(ctx, "released", replace(s.pgd(random_start=False), steps=s.long_steps), n)
    so = attack_run(ctx, "released", s.so(), n, traced=True)
    curve = [summary(attack_run(ctx, "released", replace(s.pgd(), steps=k), n)) for k in s.curve_steps]
    return {"steps_curve": [{"steps": k, "step_size": s.pgd().step_size, **r} for k, r in zip(s.curve_steps, curve)],
            "single start": restarts["accuracy_after_each_restart"][0],
            "restarts": {k: restarts[k] for k in ("accuracy", "accuracy_after_each_restart", "restarts",
                                                   "gradient_evaluations", "seconds", "n")},
            "long": {**summary(longer), "steps": s.long_steps, "step_size": s.pgd().with_steps(s.long_steps).step_size},
            "long_same_step": {**summary(farther), "steps": s.long_steps, "step_size": s.pgd().step_size},
            "long_same_step_no_random_start": {**summary(farther_fixed), "steps": s.long_steps,
                                               "step_size": s.pgd().step_size},
            "so_authors": summary(so), "n": n,
            "restarts_vs_so": disagreement(mask_of(restarts), mask_of(so)),
            "long_vs_so": disagreement(mask_of(longer), mask_of(so)),
            "long_same_step_vs_so": disagreement(mask_of(farther), mask_of(so))}


def item_c(ctx: Context) -> dict:
    s, n = ctx.settings, ctx.settings.n_small
    cells = []
    for sigma in s.sigmas:
        for draws in (s.draws[:1] if sigma == 0 else s.draws):  # σ = 0: every draw is the plain gradient
            spec = s.so(sigma, draws)
            traced = (sigma, draws) == (s.authors_sigma, s.authors_draws)  # the Figure 1 run of item e
            entry = attack_run(ctx, "released", spec, n, traced=traced)
            cells.append({"sigma": sigma, "draws": "any" if sigma == 0 else draws, **summary(entry),
                          "noise_l2": sigma * ctx.x[0].numel() ** 0.5})
    return {"n": n, "cells": cells,
            "note": "sigma = 0 is PGD without a random start (the draws are all the same gradient): one run"}


def item_d(ctx: Context) -> dict:
    s = ctx.settings
    out = {}
    for name, spec, n in (("so", s.so(), s.n_small), ("pgd_no_random_start", s.pgd(random_start=False), s.n)):
        ours = attack_run(ctx, "released", spec, n, traced=name == "so")
        theirs = attack_run(ctx, "released", spec, n, variant="clamp-at-end")
        out[name] = {"advlib": summary(ours), "clamp_at_end": summary(theirs),
                     "comparison": disagreement(mask_of(ours), mask_of(theirs))}
    return out


def _quantiles(v: Tensor) -> dict:
    q = torch.quantile(v.detach().cpu().double(), torch.tensor(QUANTILES, dtype=torch.float64))
    return {f"q{int(100 * p)}": float(x) for p, x in zip(QUANTILES, q)}


def item_e(ctx: Context) -> dict:
    s = ctx.settings
    out: dict = {"clean": {}, "traces": {}}
    for model in ("released", "natural"):
        net, x, y = ctx.models[model], ctx.x[:s.n], ctx.y[:s.n]
        g = landscape.gradient_norms(net, x, y)
        out["clean"][model] = {"n": s.n, "mean": g.mean().item(), **_quantiles(g),
                               "share_below_1e-6": (g < ZERO_GRADIENT).float().mean().item(),
                               "share_below_authors_floor": (g < AUTHORS_FLOOR).float().mean().item(),
                               "exactly_zero": int((g == 0).sum()),
                               "natural_accuracy": (predict(net, x) == y).float().mean().item()}
        for name, spec in (("PGD-l2", s.pgd()), ("PGD-l2 no random start", s.pgd(random_start=False)),
                           ("SO-l2", s.so())):
            entry = attack_run(ctx, model, spec, s.n_small, traced=True)
            out["traces"][f"{model} {name}"] = {**entry["trace"], "accuracy": entry["accuracy"], "n": entry["n"]}
    out["authors_floor"] = AUTHORS_FLOOR
    return out


def item_f(ctx: Context) -> dict:
    s = ctx.settings
    x, y = ctx.x[:s.n_hessian], ctx.y[:s.n_hessian]
    out = {}
    for model in ("released", "natural"):
        net = ctx.models[model]
        pair = hessian.power_iteration(net, x, y, iters=s.hessian_iters,
                                       generator=torch.Generator(device=ctx.device).manual_seed(s.seed))
        with frozen(net):
            g = landscape.gradient_norms(net, x, y)
            grad = input_gradient(net, x, y)[0]
            g_so = smoothed_gradient(net, x, y, sigma=s.authors_sigma, samples=s.authors_draws,
                                     generator=torch.Generator(device=ctx.device).manual_seed(s.seed))
        last, before = pair.history[-1], pair.history[-2] if len(pair.history) > 1 else pair.history[-1]
        eps = s.pgd().eps
        out[model] = {"n": s.n_hessian, "iters": s.hessian_iters, "eigenvalue": pair.eigenvalue.tolist(),
                      "grad_norm": g.tolist(),
                      "cos_grad_eigvec": hessian.cosine(grad, pair.eigenvector).tolist(),
                      "cos_so_eigvec": hessian.cosine(g_so, pair.eigenvector).tolist(),
                      "last_relative_change": ((last - before).abs() / last.abs().clamp_min(1e-30)).tolist(),
                      "second_over_first_order": (0.5 * pair.eigenvalue * eps / g.clamp_min(1e-30)).tolist(),
                      "median_eigenvalue": pair.eigenvalue.median().item(), "median_grad_norm": g.median().item()}
    return out


def item_g(ctx: Context) -> dict:
    s, n = ctx.settings, ctx.settings.n_autoattack
    spec = AutoAttackSpec("l2", 4.0, s.autoattack)
    start = time.perf_counter()
    cascade = autoattack(ctx.models["released"], ctx.x[:n], ctx.y[:n], spec, seed=s.seed)
    return {"n": n, "spec": spec.config(), "seconds": time.perf_counter() - start,
            "accuracy": {k: v.float().mean().item() for k, v in cascade.items()},
            "masks": {k: records.pack_mask(v) for k, v in cascade.items()}}


RUNNERS: dict[str, Callable[[Context], dict]] = {"a": item_a, "b": item_b, "c": item_c, "d": item_d, "e": item_e,
                                                 "f": item_f, "g": item_g}


def run_item(ctx: Context, name: str) -> dict:
    """Item ``name``: skipped if the document has it with the same settings, else computed and saved."""
    wanted = item_settings(ctx.settings, name)
    have = ctx.doc["items"].get(name)
    if have is not None and have.get("settings") == wanted:
        ctx.log(f"item {name} ({TITLES[name]}): already done, skipped")
        return have
    ctx.log(f"item {name} ({TITLES[name]}) …")
    start = time.perf_counter()
    results = RUNNERS[name](ctx)
    item = {"title": TITLES[name], "settings": wanted, "results": results, "seconds": time.perf_counter() - start,
            **{k: v for k, v in provenance(ctx.device).items() if k != "written"}}
    ctx.doc["items"][name] = item
    save(ctx)
    ctx.log(f"item {name} done in {item['seconds']:.0f} s")
    return item


# ---------------------------------------------------------------------------------------------- summary

def summary_rows(doc: dict) -> list[tuple[str, str, str]]:
    """(item, what, value with its n) for the printed table; items not in ``doc`` are left out."""
    items, rows = doc["items"], []

    def pct(v: float) -> str:
        return f"{100 * v:5.1f} %"
    if "a" in items:
        r = items["a"]["results"]
        rows += [("a", "PGD-l2, random start", f"{pct(r['random start']['accuracy'])}  n={r['random start']['n']}"),
                 ("a", "PGD-l2, no random start",
                  f"{pct(r['no random start']['accuracy'])}  n={r['no random start']['n']}")]
    if "b" in items:
        r = items["b"]["results"]
        rows += [("b", f"PGD-l2, worst of {r['restarts']['restarts']} restarts",
                  f"{pct(r['restarts']['accuracy'])}  n={r['n']}"),
                 ("b", f"PGD-l2, {r['long']['steps']} steps of {r['long']['step_size']:g}",
                  f"{pct(r['long']['accuracy'])}  n={r['n']}"),
                 ("b", f"PGD-l2, {r['long']['steps']} steps of {r['long_same_step']['step_size']:g}",
                  f"{pct(r['long_same_step']['accuracy'])}  n={r['n']}"),
                 ("b", f"PGD-l2, {r['long']['steps']} steps of {r['long_same_step']['step_size']:g}, no random start",
                  f"{pct(r['long_same_step_no_random_start']['accuracy'])}  n={r['n']}"),
                 ("b", "S-O-l2, authors' settings", f"{pct(r['so_authors']['accuracy'])}  n={r['n']}")]
    if "c" in items:
        r = items["c"]["results"]
        rows += [("c", f"S-O-l2 sigma={c['sigma']} draws={c['draws']}", f"{pct(c['accuracy'])}  n={c['n']}")
                 for c in r["cells"]]
    if "d" in items:
        for name, r in items["d"]["results"].items():
            rows.append(("d", f"{name}: advlib / clamp at end",
                         f"{pct(r['advlib']['accuracy'])} / {pct(r['clamp_at_end']['accuracy'])}, "
                         f"{r['comparison']['differ']} differ  n={r['comparison']['n']}"))
    if "e" in items:
        r = items["e"]["results"]
        for model, c in r["clean"].items():
            rows.append(("e", f"{model}: clean ||grad||_2 median, share < 1e-6",
                         f"{c['q50']:.3g}, {100 * c['share_below_1e-6']:.1f} %  n={c['n']}"))
        for name, t in r["traces"].items():
            rows.append(("e", f"{name}: mean ||grad||_2 first -> last",
                         f"{t['grad_norm'][0]:.3g} -> {t['grad_norm'][-1]:.3g}  n={t['n']}"))
    if "f" in items:
        for model, r in items["f"]["results"].items():
            rows.append(("f", f"{model}: median top Hessian eigenvalue", f"{r['median_eigenvalue']:.3g}  n={r['n']}"))
    if "g" in items:
        r = items["g"]["results"]
        rows += [("g", f"AutoAttack l2 after {k}", f"{pct(v)}  n={r['n']}") for k, v in r["accuracy"].items()]
    return rows


def print_summary(doc: dict) -> None:
    rows = summary_rows(doc)
    width = max((len(w) for _, w, _ in rows), default=10)
    print(f"\n{'item':4s}  {'what':{width}s}  value")
    for item, what, value in rows:
        print(f"{item:4s}  {what:{width}s}  {value}")
    seconds = {k: round(v["seconds"]) for k, v in doc["items"].items()}
    print(f"seconds per item: {seconds}")


# ------------------------------------------------------------------------------------------------- main

def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="N, the most test images any item uses (default 1000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--items", default=",".join(ITEMS), help="comma-separated items to run (default all)")
    parser.add_argument("--n-small", type=int, default=Settings.n_small,
                        help=f"n of items b, c, d (S-O) and e (traces), capped at N (default {Settings.n_small})")
    parser.add_argument("--n-autoattack", type=int, default=Settings.n_autoattack,
                        help=f"n of item g, capped at N (default {Settings.n_autoattack})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on 2 cores shared with another job, measured "
                             "0.95 ms per image-gradient with 1 thread against 1.8 ms with 2)")
    parser.add_argument("--tiny", action="store_true", help="test only: tiny settings, meaningless numbers")
    args = parser.parse_args(argv)
    for name in ("n", "n_small", "n_autoattack"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    unknown = [i for i in args.items.split(",") if i not in ITEMS]
    if unknown:
        parser.error(f"unknown items {unknown}; valid: {', '.join(ITEMS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    runtime.tune_allocator()
    settings = (Settings.tiny_for if args.tiny else Settings.for_n)(args.n, seed=args.seed, n_small=args.n_small,
                                                                   n_autoattack=args.n_autoattack)
    device = runtime.default_device()
    x, y = data.load_mnist("test", limit=settings.n, device=device)
    nets = {"released": models.load_trades_smallcnn(device),
            "natural": natural_model(settings.natural_profile, device)}
    ctx = Context(settings, args.out, device, x, y, nets, model_identity(settings.natural_profile),
                  load_document(args.out, settings))
    ctx.doc["data"] = {"split": "test", "first": settings.n, "fingerprint": data.fingerprint("test", limit=settings.n)}
    print(f"released-model ablations: N = {settings.n}, {runtime.device_name(device)}, out {args.out}", flush=True)
    for name in args.items.split(","):
        run_item(ctx, name)
    save(ctx)
    print_summary(ctx.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
