"""Madry et al. (2018) PGD adversarial training: minimise CE on PGD examples only.

Anchor: MadryLab/mnist_challenge ``train.py:L83,L117`` (the update uses adversarial examples only) with
Adam (docs/protocols.md §1.2). The mean CE replaces TF's summed CE; Adam is nearly invariant to that scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib.specs import AttackSpec
from advlib.training.loop import training_attack, training_norm
from advlib.training.natural import accuracy


class MadryAT:
    """``norm`` ∈ {"l2", "linf", "mix"}; ``attacks`` maps "l2"/"linf" to the training PGD spec."""

    def __init__(self, norm: str, attacks: dict[str, AttackSpec], mix_period: int = 1) -> None:
        self.norm, self.attacks, self.mix_period = norm, attacks, mix_period

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        spec = self.attacks[training_norm(self.norm, step, self.mix_period)]
        x_adv = training_attack(model, x, y, spec, eps_scale, generator)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), {"adv_acc": accuracy(logits, y)}
