"""Primitives for ablating the paper's attacks that the rest of advlib does not have.

* ``so_clamp_at_end``: a spec run with the authors' own handling of the pixel range in their ℓ2 S-O code
  (``AttackSpec.clamp = "end"``: iterates and their noisy copies may leave [0,1], which is enforced once, after
  the last step), where advlib's attacks clamp after every step (docs/protocols.md §6.3, a REPRO CHOICE).
* ``worst_case_restarts``: robust accuracy under the per-example worst case of several random restarts, each
  restart attacking only the examples that every earlier one left standing (AutoAttack's cascade, applied to
  restarts).
* ``gradient_evaluations``: what an attack spends per example, to compare attacks at an equal budget.

Threat model and shapes as in ``advlib.attacks``: white box, untargeted, x ``[N,1,28,28]`` in [0,1], labels
int64 ``[N]``; results are detached, lie in the ε-ball and [0,1], and the model runs frozen and is restored.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from advlib import _checks
from advlib.attacks import default_batch_size, run_attack
from advlib.evaluation import predict
from advlib.specs import AttackSpec

__all__ = ["Restarts", "gradient_evaluations", "so_clamp_at_end", "worst_case_restarts"]


def gradient_evaluations(spec: AttackSpec) -> int:
    """Input-gradient evaluations one example costs under ``spec``: steps × draws (S-O), steps (PGD)."""
    return spec.steps * (spec.samples if spec.kind == "so" else 1)


def so_clamp_at_end(spec: AttackSpec, model: nn.Module, x: Tensor, y: Tensor, *,
                    generator: torch.Generator | None = None, batch_size: int | None = None) -> Tensor:
    """``spec`` run as the authors' ℓ2 code handles the pixel range: ``run_attack`` of ``spec`` with
    ``clamp="end"`` (``advlib.specs.CLAMPS``; the loop is ``advlib.attacks.ascend``'s). The released-model
    ablations store these runs under their own variant (``advlib.experiments.store.CLAMP_AT_END``) with ``spec``
    as given, so their keys do not change.

    ``spec``: an ℓ2 spec without a random start (``AttackSpec.so("l2")``, or a PGD spec with
    ``random_start=False``), else ``ValueError``. Same noise as ``run_attack(spec, ..., generator=g,
    batch_size=b)`` for the same ``g`` and ``b``. Returns x_adv like ``x``.
    """
    if not isinstance(spec, AttackSpec):
        raise ValueError(f"spec must be an advlib.specs.AttackSpec, got {type(spec).__name__}")
    return run_attack(replace(spec, clamp="end"), model, x, y, generator=generator, batch_size=batch_size)


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
