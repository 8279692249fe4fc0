"""Evaluation: natural and robust accuracy with per-example masks, so worst cases over any attack set exist.

The norm-agnostic robust accuracy is the fraction of test examples classified correctly on the clean image
and under every ℓ2 and every ℓ∞ attack (per-example worst case, as AutoAttack counts; not an average).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlib import _checks
from advlib.attacks import Trace, default_batch_size, traced_attack
from advlib.context import frozen
from advlib.specs import AttackSpec


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int | None = None) -> Tensor:
    """Argmax predictions ``[N]``, the model frozen (eval mode) and restored, in chunks."""
    _checks.images(x, pixels=False)
    size = batch_size or default_batch_size(x.device)
    with frozen(model):
        return torch.cat([model(x[i:i + size]).argmax(1) for i in range(0, x.shape[0], size)])


@dataclass
class Evaluation:
    """Per-example correctness (``correct[name]``, bool ``[N]``), attack traces and seconds per attack."""

    correct: dict[str, Tensor]
    traces: dict[str, Trace] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def accuracy(self) -> dict[str, float]:
        """Fraction correct per entry ("Natural" and each attack)."""
        return {k: v.float().mean().item() for k, v in self.correct.items()}

    def worst_case(self, names: Iterable[str] | None = None) -> float:
        """Fraction correct under every listed entry (default: all, i.e. the norm-agnostic accuracy)."""
        names = list(self.correct) if names is None else list(names)
        for name in names:
            _checks.choice("evaluation entry", name, self.correct)
        return torch.stack([self.correct[n] for n in names]).all(0).float().mean().item()


def evaluate(model: nn.Module, x: Tensor, y: Tensor, attacks: dict[str, AttackSpec], *, seed: int = 0,
             batch_size: int | None = None, quiet: bool = True) -> Evaluation:
    """Natural accuracy and every attack in ``attacks`` (name → spec) on ``(x, y)``, each seeded by ``seed``."""
    _checks.labelled(model, x, y)
    result = Evaluation(correct={"Natural": predict(model, x, batch_size) == y})
    for name, spec in tqdm(attacks.items(), desc="evaluate", disable=quiet, leave=False):
        start = time.perf_counter()
        generator = torch.Generator(device=x.device).manual_seed(seed)
        attacked = traced_attack(spec, model, x, y, generator=generator, batch_size=batch_size,
                                 validate=False)  # checked once above
        result.correct[name] = predict(model, attacked.x_adv, batch_size) == y
        result.traces[name] = attacked.trace
        result.seconds[name] = time.perf_counter() - start
    return result
