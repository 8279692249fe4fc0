"""ATDA (Song et al., 2019): adversarial training with domain adaptation on the logits.

Exactly as the official code JHL-HUST/ATDA (``tf_utils.py:L64-94``, ``loss.py:L53-105``; docs/protocols.md §4.2-4.3):
loss = CE(x) + CE(x_adv) + ⅓·(CORAL + MMD + margin), where CORAL is the L1-mean difference of the
*unnormalised* scatter matrices, MMD the L1-mean difference of the logit means, and the margin loss uses
non-trainable class centres (zero-initialised, updated centre-loss style at α = 0.1).
REPRO CHOICE (§4.5): x_adv is the model's own PGD in the training norm, on the true labels (ATDA: FGSM ε = 0.1 on
the model's predicted labels, ``attack_labels="predicted"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib import _checks
from advlib.protocols import ATTACK_LABELS
from advlib.specs import AttackSpec
from advlib.training.loop import training_attack, training_norm
from advlib.training.natural import accuracy

LAMBDA = 1.0 / 3.0
ALPHA = 0.1
NUM_CLASSES = 10


def coral(source: Tensor, target: Tensor) -> Tensor:
    """mean_{k,l} |C_S − C_T|, with C = (X − mean X)ᵀ(X − mean X) not divided by m − 1 (loss.py:L87-97)."""
    cs = (source - source.mean(0)).T @ (source - source.mean(0))
    ct = (target - target.mean(0)).T @ (target - target.mean(0))
    return (cs - ct).abs().mean()


def mmd(source: Tensor, target: Tensor) -> Tensor:
    """mean_k |mean_i s_ik − mean_i t_ik|: mean alignment, not a kernel MMD (loss.py:L100-105)."""
    return (source.mean(0) - target.mean(0)).abs().mean()


def margin(features: Tensor, labels: Tensor, centres: Tensor) -> Tensor:
    """Σ_i Σ_{j≠y_i} softplus(‖f_i − c_{y_i}‖₁ − ‖f_i − c_j‖₁) / (n·(K−1)) (loss.py:L53-84)."""
    dist = (features[:, None, :] - centres[None]).abs().sum(-1)  # [n, K] L1 distances
    own = dist.gather(1, labels[:, None])
    others = F.one_hot(labels, centres.shape[0]) == 0
    return F.softplus(own - dist)[others].sum() / (features.shape[0] * (centres.shape[0] - 1))


def update_centres(centres: Tensor, features: Tensor, labels: Tensor, alpha: float = ALPHA) -> Tensor:
    """c_{y_i} −= α (c_{y_i} − f_i) / (1 + n_{y_i}) summed over i, as tf.scatter_sub does (centre loss)."""
    counts = torch.bincount(labels, minlength=centres.shape[0]).to(features.dtype)
    diff = (centres[labels] - features) / (1 + counts[labels])[:, None]
    return centres - alpha * torch.zeros_like(centres).index_add_(0, labels, diff)


def atda_loss(logits: Tensor, logits_adv: Tensor, y: Tensor, centres: Tensor) -> Tensor:
    """CE(x) + CE(x_adv) + ⅓·(CORAL + MMD + margin), all on the logits."""
    both, labels = torch.cat([logits, logits_adv]), torch.cat([y, y])
    domain = coral(logits, logits_adv) + mmd(logits, logits_adv) + margin(both, labels, centres)
    return F.cross_entropy(logits, y) + F.cross_entropy(logits_adv, y) + LAMBDA * domain


class ATDA:
    """ATDA in ``norm`` ∈ {"l2", "linf", "mix"}; keeps the class centres as its state."""

    def __init__(self, norm: str, attacks: dict[str, AttackSpec], device: torch.device | str = "cpu",
                 mix_period: int = 1, attack_labels: str = "true") -> None:
        self.norm, self.attacks, self.mix_period = norm, attacks, mix_period
        self.attack_labels = _checks.choice("attack_labels", attack_labels, ATTACK_LABELS)
        self.centres = torch.zeros(NUM_CLASSES, NUM_CLASSES, device=device)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        spec = self.attacks[training_norm(self.norm, step, self.mix_period)]
        if self.attack_labels == "predicted":  # the official code's FGSM ascends the loss of the model's own labels
            logits = model(x)
            x_adv = training_attack(model, x, logits.detach().argmax(1), spec, eps_scale, generator)
        else:
            x_adv = training_attack(model, x, y, spec, eps_scale, generator)
            logits = model(x)
        logits_adv = model(x_adv)
        loss = atda_loss(logits, logits_adv, y, self.centres)
        self.centres = update_centres(self.centres, torch.cat([logits, logits_adv]).detach(), torch.cat([y, y]))
        return loss, {"acc": accuracy(logits, y), "adv_acc": accuracy(logits_adv, y)}

    def state_dict(self) -> dict[str, Tensor]:
        return {"centres": self.centres}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.centres = state["centres"].to(self.centres.device)
