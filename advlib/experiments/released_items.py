"""The seven items of the released-model ablations (``released_ablations``), one function each.

Each takes the open ``Session`` (models "released" and "natural", settings ``released_settings.Settings``)
and returns what the item reports; its attack runs are stored in the session's document as they finish.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from advlib import hessian, landscape, records
from advlib.context import frozen
from advlib.evaluation import predict
from advlib.experiments.measures import disagreement, quantiles
from advlib.experiments.session import Session, attack_run, restarts_run
from advlib.experiments.store import CLAMP_AT_END, mask_of, summary
from advlib.gradients import input_gradient, smoothed_gradient
from advlib.strong import AutoAttackSpec, autoattack

#: ‖∇ₓL‖₂ below which a gradient counts as vanished (issue 10's threshold), and the per-example norm below which
#: the authors' 1e-8 floor on the batch-mean gradient (their batch of 200) would shorten a step.
ZERO_GRADIENT = 1e-6
AUTHORS_FLOOR = 1e-8 * 200


def item_a(ctx: Session) -> dict:
    """PGD-ℓ2 with and without a random start, on N images."""
    s, spec = ctx.settings, ctx.settings.specs()
    rs = attack_run(ctx, "released", spec["pgd"], s.n, traced=True)
    no_rs = attack_run(ctx, "released", spec["pgd, no random start"], s.n)
    both = mask_of(rs) & mask_of(no_rs)
    return {"random start": summary(rs), "no random start": summary(no_rs),
            "worst of both": both.float().mean().item(),
            "comparison": disagreement(mask_of(rs), mask_of(no_rs)), "step_size": spec["pgd"].step_size}


def item_b(ctx: Session) -> dict:
    """PGD-ℓ2 at S-O's gradient budget: restarts, long runs, and PGD with more and more steps."""
    s, spec, n = ctx.settings, ctx.settings.specs(), ctx.settings.n_small
    restarts = restarts_run(ctx, "released", spec["pgd"], n, s.restarts)
    longer = attack_run(ctx, "released", spec["long"], n)
    farther = attack_run(ctx, "released", spec["long, same step"], n)
    farther_fixed = attack_run(ctx, "released", spec["long, same step, no random start"], n)
    so = attack_run(ctx, "released", spec["so"], n, traced=True)
    curve = [summary(attack_run(ctx, "released", s.pgd_steps(k), n)) for k in s.curve_steps]
    step = spec["pgd"].step_size
    return {"steps_curve": [{"steps": k, "step_size": step, **r} for k, r in zip(s.curve_steps, curve)],
            "single start": restarts["accuracy_after_each_restart"][0],
            "restarts": {k: restarts[k] for k in ("accuracy", "accuracy_after_each_restart", "restarts",
                                                   "gradient_evaluations", "seconds", "n")},
            "long": {**summary(longer), "steps": s.long_steps, "step_size": spec["long"].step_size},
            "long_same_step": {**summary(farther), "steps": s.long_steps, "step_size": step},
            "long_same_step_no_random_start": {**summary(farther_fixed), "steps": s.long_steps, "step_size": step},
            "so_authors": summary(so), "n": n,
            "restarts_vs_so": disagreement(mask_of(restarts), mask_of(so)),
            "long_vs_so": disagreement(mask_of(longer), mask_of(so)),
            "long_same_step_vs_so": disagreement(mask_of(farther), mask_of(so))}


def item_c(ctx: Session) -> dict:
    """S-O-ℓ2 on a grid of σ × draws (σ = 0: one run, PGD without a random start)."""
    s, n = ctx.settings, ctx.settings.n_small
    cells = []
    for sigma in s.sigmas:
        for draws in (s.draws[:1] if sigma == 0 else s.draws):  # σ = 0: every draw is the plain gradient
            traced = (sigma, draws) == (s.authors_sigma, s.authors_draws)  # the Figure 1 run of item e
            entry = attack_run(ctx, "released", s.so(sigma, draws), n, traced=traced)
            cells.append({"sigma": sigma, "draws": "any" if sigma == 0 else draws, **summary(entry),
                          "noise_l2": sigma * ctx.x[0].numel() ** 0.5})
    return {"n": n, "cells": cells,
            "note": "sigma = 0 is PGD without a random start (the draws are all the same gradient): one run"}


def item_d(ctx: Session) -> dict:
    """The authors' clamp to [0,1] after the last step against advlib's clamp after every step."""
    s, spec = ctx.settings, ctx.settings.specs()
    out = {}
    for name, attack, n in (("so", spec["so"], s.n_small), ("pgd_no_random_start", spec["pgd, no random start"], s.n)):
        ours = attack_run(ctx, "released", attack, n, traced=name == "so")
        theirs = attack_run(ctx, "released", attack, n, variant=CLAMP_AT_END)
        out[name] = {"advlib": summary(ours), "clamp_at_end": summary(theirs),
                     "comparison": disagreement(mask_of(ours), mask_of(theirs))}
    return out


def item_e(ctx: Session) -> dict:
    """‖∇ₓL‖₂ at the clean points and along PGD and S-O (the paper's Figure 1), both models."""
    s, spec = ctx.settings, ctx.settings.specs()
    out: dict = {"clean": {}, "traces": {}}
    for model in ("released", "natural"):
        net, x, y = ctx.models[model], ctx.x[:s.n], ctx.y[:s.n]
        g = landscape.gradient_norms(net, x, y)
        out["clean"][model] = {"n": s.n, "mean": g.mean().item(), **quantiles(g),
                               "share_below_1e-6": (g < ZERO_GRADIENT).float().mean().item(),
                               "share_below_authors_floor": (g < AUTHORS_FLOOR).float().mean().item(),
                               "exactly_zero": int((g == 0).sum()),
                               "natural_accuracy": (predict(net, x) == y).float().mean().item()}
        for name, attack in (("PGD-l2", spec["pgd"]), ("PGD-l2 no random start", spec["pgd, no random start"]),
                             ("SO-l2", spec["so"])):
            entry = attack_run(ctx, model, attack, s.n_small, traced=True)
            out["traces"][f"{model} {name}"] = {**entry["trace"], "accuracy": entry["accuracy"], "n": entry["n"]}
    out["authors_floor"] = AUTHORS_FLOOR
    return out


def item_f(ctx: Session) -> dict:
    """The dominant eigenvalue of ∇²ₓL at clean points (power iteration), and its alignment with ∇L and S-O."""
    s = ctx.settings
    x, y = ctx.x[:s.n_hessian], ctx.y[:s.n_hessian]
    out = {}
    for model in ("released", "natural"):
        net = ctx.models[model]
        pair = hessian.power_iteration(net, x, y, iters=s.hessian_iters, generator=ctx.generator())
        with frozen(net):
            g = landscape.gradient_norms(net, x, y)
            grad = input_gradient(net, x, y)[0]
            g_so = smoothed_gradient(net, x, y, sigma=s.authors_sigma, samples=s.authors_draws,
                                     generator=ctx.generator())
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


def item_g(ctx: Session) -> dict:
    """AutoAttack ℓ2 at ε = 4.0 (the settings' attacks of its cascade) on the released model."""
    s, n = ctx.settings, ctx.settings.n_autoattack
    spec = AutoAttackSpec("l2", 4.0, s.autoattack)
    start = time.perf_counter()
    cascade = autoattack(ctx.models["released"], ctx.x[:n], ctx.y[:n], spec, seed=s.seed)
    return {"n": n, "spec": spec.config(), "seconds": time.perf_counter() - start,
            "accuracy": {k: v.float().mean().item() for k, v in cascade.items()},
            "masks": {k: records.pack_mask(v) for k, v in cascade.items()}}


RUNNERS: dict[str, Callable[[Session], dict]] = {"a": item_a, "b": item_b, "c": item_c, "d": item_d, "e": item_e,
                                                 "f": item_f, "g": item_g}
