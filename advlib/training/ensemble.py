"""Ensemble adversarial training (Tramèr et al., 2018): adversarial examples from a randomly drawn source.

Anchor: ftramer/ensemble-adv-training ``tf_utils.py:L59-127`` (docs/protocols.md §3.3): per batch, one source
is drawn uniformly from {static models…, the model being trained}; loss 0.5·CE(x) + 0.5·CE(x_adv).
REPRO CHOICE (§3.5): each source crafts PGD in the training norm with true labels (Tramèr: FGSM).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib.specs import AttackSpec
from advlib.training.loop import training_attack, training_norm
from advlib.training.natural import accuracy


def draw_source(n_static: int, generator: torch.Generator) -> int:
    """Index of this batch's source: uniform over 0..n_static, where ``n_static`` means the model itself."""
    return int(torch.randint(n_static + 1, (1,), generator=generator, device=generator.device))


class EnsembleAT:
    """``static`` are pre-trained, never-updated models; the model itself is the last source."""

    def __init__(self, norm: str, attacks: dict[str, AttackSpec], static: Sequence[nn.Module],
                 mix_period: int = 1) -> None:
        self.norm, self.attacks, self.static, self.mix_period = norm, attacks, list(static), mix_period
        for m in self.static:
            m.eval().requires_grad_(False)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        k = draw_source(len(self.static), generator)
        source = self.static[k] if k < len(self.static) else model
        x_adv = training_attack(source, x, y, self.attacks[training_norm(self.norm, step, self.mix_period)], eps_scale, generator)
        logits, logits_adv = model(x), model(x_adv)
        loss = 0.5 * F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(logits_adv, y)
        own = torch.tensor(float(k == len(self.static)), device=x.device)
        return loss, {"acc": accuracy(logits, y), "adv_acc": accuracy(logits_adv, y), "self_source": own}
