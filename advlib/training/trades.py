"""TRADES (Zhang et al., 2019): CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)), x_adv maximising that KL.

Anchor: yaodongyu/TRADES ``trades.py`` (docs/protocols.md §2.1-2.2): the inner maximisation runs in eval mode
from x + 0.001·N(0, I), with sign steps (ℓ∞) or g/‖g‖₂ steps and ℓ2 projection (ℓ2, the paper-era
version, vectorised); the outer loss is CE_mean + β·KL_sum/B with gradients through both f(x) terms.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib.context import frozen
from advlib.specs import AttackSpec
from advlib.training.loop import training_attack, training_norm
from advlib.training.natural import accuracy

INIT_STD = 0.001  # trades.py: x_adv = x + 0.001 * randn


def kl_per_example(logits_adv: Tensor, p_clean: Tensor) -> Tensor:
    """KL(p_clean ‖ softmax(logits_adv)) per example, ``[N]`` (nn.KLDivLoss summed per row)."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), p_clean, reduction="none").sum(1)


def trades_adversary(model: nn.Module, x: Tensor, spec: AttackSpec, generator: torch.Generator,
                     eps_scale: float = 1.0) -> Tensor:
    """The inner maximisation: x_adv in the ball around x maximising KL(f(x) ‖ f(x_adv)), by ``spec``'s steps.

    It starts where trades.py does, at x + 0.001·N(0, I), which replaces the spec's own start (``random_start``
    does not apply to TRADES: REPRO CHOICE "TRADES inner start"). Runs on one batch that ``fit`` validated.
    """
    with frozen(model), torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    start = x + INIT_STD * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return training_attack(model, x, p_clean, spec, eps_scale, generator, loss=kl_per_example, start=start)


def trades_loss(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """The outer TRADES objective and its two logits: CE_mean(f(x), y) + β·mean_i KL(f(x_i) ‖ f(x_adv,i))."""
    logits, logits_adv = model(x), model(x_adv)
    kl = kl_per_example(logits_adv, F.softmax(logits, dim=1)).mean()
    return F.cross_entropy(logits, y) + beta * kl, logits, logits_adv


class Trades:
    """TRADES in ``norm`` ∈ {"l2", "linf", "mix"} with trade-off ``beta``."""

    def __init__(self, norm: str, attacks: dict[str, AttackSpec], beta: float, mix_period: int = 1) -> None:
        self.norm, self.attacks, self.beta, self.mix_period = norm, attacks, beta, mix_period

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        x_adv = trades_adversary(model, x, self.attacks[training_norm(self.norm, step, self.mix_period)], generator, eps_scale)
        loss, logits, logits_adv = trades_loss(model, x, y, x_adv, self.beta)
        return loss, {"acc": accuracy(logits, y), "adv_acc": accuracy(logits_adv, y)}
