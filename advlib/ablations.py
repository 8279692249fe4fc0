"""Primitives for ablating the paper's attacks that the rest of advlib does not have.

* ``so_clamp_at_end``: the authors' own handling of the pixel range in their ℓ2 S-O code — iterates and their
  noisy copies may leave [0,1], which is enforced once, after the last step — where advlib's attacks
  (``advlib.lp.ascent_step``) clamp after every step (docs/protocols.md §6.3, a REPRO CHOICE).
* ``worst_case_restarts``: robust accuracy under the per-example worst case of several random restarts, each
  restart attacking only the examples that every earlier one left standing (AutoAttack's cascade, applied to
  restarts).
* ``gradient_evaluations``: what an attack spends per example, to compare attacks at an equal budget.

Threat model and shapes as in ``advlib.attacks``: white box, untargeted, x ``[N,1,28,28]`` in [0,1], labels
int64 ``[N]``; results are detached, lie in the ε-ball and [0,1], and the model runs frozen and is restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advlib import _checks, lp
from advlib.attacks import default_batch_size, run_attack
from advlib.context import frozen
from advlib.evaluation import predict
from advlib.gradients import smoothed_gradient
from advlib.specs import AttackSpec

__all__ = ["Restarts", "gradient_evaluations", "so_clamp_at_end", "worst_case_restarts"]


def gradient_evaluations(spec: AttackSpec) -> int:
    """Input-gradient evaluations one example costs under ``spec``: steps × draws (S-O), steps (PGD)."""
    return spec.steps * (spec.samples if spec.kind == "so" else 1)


def so_clamp_at_end(spec: AttackSpec, model: nn.Module, x: Tensor, y: Tensor, *,
                    generator: torch.Generator | None = None, batch_size: int | None = None) -> Tensor:
    """ℓ2 S-O (or, with σ = 0, PGD without a random start) as the authors' code handles the pixel range.

    Bai-Li/TRADES ``pgd_attack_mnist_l2.py`` (``_pgd_whitebox``) starts at x (L64), and at each of its steps
    (L66-89) averages the gradient over noisy copies of the iterate that are not clipped (L70), steps along the
    normalised average (L81-84) and rescales the perturbation onto the ℓ2 ball (L85-89) — with no clamp to
    [0,1] — and clamps once, after the loop (L90). ``advlib.attacks.run_attack`` clamps every iterate instead.
    This function is that loop built from advlib's pieces (``smoothed_gradient``, ``lp.steepest_ascent``,
    ``lp.project``): the same noise as ``run_attack(spec, ..., generator=g, batch_size=b)`` for the same ``g``
    and ``b`` (same chunks, same draws in the same order), so the two agree exactly whenever no iterate
    leaves [0,1]. One difference is kept: the authors floor the norm of the gradient of the *batch-mean* loss at
    1e-8 (L81), i.e. a per-example norm of 2e-6 at their batch of 200, below which their step shrinks; advlib
    floors the per-example norm at 1e-12 (``lp.steepest_ascent``).

    ``spec``: an ℓ2 spec without a random start (``AttackSpec.so("l2")``, or a PGD spec with
    ``random_start=False``); its loss, ε, steps, step size, σ and draws are used. Returns x_adv like ``x``.
    """
    if not isinstance(spec, AttackSpec):
        raise ValueError(f"spec must be an advlib.specs.AttackSpec, got {type(spec).__name__}")
    if spec.norm != "l2":
        raise ValueError(f"so_clamp_at_end is the authors' ℓ2 loop; got norm {spec.norm!r} (their ℓ∞ code "
                         "clamps every step, as advlib does: use run_attack)")
    if spec.random_start:
        raise ValueError("the authors' loop starts at x itself: pass a spec with random_start=False")
    _checks.labels(y, _checks.images(x).shape[0])
    chunk = batch_size or default_batch_size(x.device)
    chunk = max(1, chunk // spec.samples) if spec.sigma > 0 else chunk  # run_attack's chunks: the same noise
    outputs = []
    with frozen(model):
        for i in range(0, x.shape[0], chunk):
            xs, ys = x[i:i + chunk].detach(), y[i:i + chunk]
            x_adv = xs.clone()
            for _ in range(spec.steps):
                g = smoothed_gradient(model, x_adv, ys, sigma=spec.sigma, samples=spec.samples, loss=spec.loss,
                                      generator=generator)
                stepped = x_adv + spec.step_size * lp.steepest_ascent(g, "l2")
                x_adv = xs + lp.project(stepped - xs, "l2", spec.eps)  # no [0,1] clamp inside the loop
            outputs.append(lp.clamp_unit(x_adv))  # the one clamp, after the last step
    return torch.cat(outputs).detach()


@dataclass(frozen=True)
class Restarts:
    """What ``worst_case_restarts`` returns: ``correct`` bool ``[N]`` (right on the clean image and after every
    restart) and ``accuracy[r]``, the fraction still correct after restarts 0..r."""

    correct: Tensor
    accuracy: list[float]


def worst_case_restarts(spec: AttackSpec, model: nn.Module, x: Tensor, y: Tensor, *, restarts: int, seed: int = 0,
                        batch_size: int | None = None) -> Restarts:
    """The per-example worst case of ``restarts`` runs of ``spec`` (random starts differ; restart r draws from a
    generator seeded ``seed + r``). An example counts as robust only if it is classified correctly on the clean
    image and after every restart; each restart attacks only the examples still robust (a fooled example stays
    fooled), so the cost falls as examples fall. Restart 0 is ``run_attack(spec, ..., seed)`` on all clean-correct
    examples. x ``[N,1,28,28]`` in [0,1], y int64 ``[N]``.
    """
    _checks.count("restarts", restarts, minimum=1)
    _checks.labels(y, _checks.images(x).shape[0])
    size = batch_size or default_batch_size(x.device)
    robust = predict(model, x, size) == y
    accuracy = []
    for r in range(restarts):
        idx = robust.nonzero().flatten()
        if idx.numel():
            generator = torch.Generator(device=x.device).manual_seed(seed + r)
            x_adv = run_attack(spec, model, x[idx], y[idx], generator=generator, batch_size=size)
            robust = robust.clone()
            robust[idx] = predict(model, x_adv, size) == y[idx]
        accuracy.append(robust.float().mean().item())
    return Restarts(robust, accuracy)
