"""Adversarial training against the union of the ℓ2 and ℓ∞ balls: MAX, AVG (Tramèr & Boneh 2019) and MSD
(Maini, Wong & Kolter 2020). Not part of the paper's Table 1: these are the ``max-union``, ``avg-union`` and
``msd-union`` cells that ``python -m advlib reproduce --cells multi`` runs.

* ``MaxAT`` (Tramèr & Boneh, "Adversarial training and robustness for multiple perturbations", NeurIPS 2019):
  craft PGD in each norm, train per example on the candidate with the higher loss. Anchor: ftramer/MultiRobustness
  ``train.py:L250-265`` (read in its stored fork CausalLearning/MultiRobustness@ad41b63): per-example losses of
  each attack's output in inference mode (``is_training: False``, L260), ``best_idx = np.argmax(losses, axis=0)``
  (L262; ties go to the first attack), then one update on the chosen examples.
* ``AvgAT`` (same paper, its default mode): train on both adversarial batches; ``train.py:L267-269, L282``
  concatenates them into one batch, so the loss is the mean of the two per-norm mean cross-entropies.
* ``MSD`` (Maini, Wong & Kolter, "Adversarial robustness against the union of multiple perturbation models",
  ICML 2020): one projected ascent whose every step computes ∇ₓL once, takes the steepest-ascent step of every
  norm, projects each candidate onto its own ε-ball and [0,1], and keeps per example the candidate of higher loss.
  Anchor: locuslab/robust_union@0cbe65f ``MNIST/mnist_funcs.py`` ``msd_v0`` (L79-166): one gradient per step
  (L106-107), the ℓ2 candidate δ + α₂·g/‖g‖₂ (L117-119) and the ℓ∞ candidate δ + α∞·sign g (L122-123), each
  clipped and projected, then per-example selection by cross-entropy (L144-152).

Threat model: x ∈ [0,1]^{N×1×28×28}; a training example is attacked in the ℓ2 ball of the profile's ℓ2 ε *or* the
ℓ∞ ball of its ℓ∞ ε. Every setting comes from the profile's two training attacks (``profile.train_attack``)
and Madry's ``TrainSpec`` (``protocols.train_spec``), so the profiles' configurations, and their hashes, are
unchanged.

REPRO CHOICES (also in ``advlib.protocols.REPRO_CHOICES``):

* MAX/AVG attacks: each norm's candidate is exactly the profile's training PGD in that norm (its ε, steps, step
  size and uniform random start), through ``training_attack`` like every other defense; Tramèr also starts
  every attack at random (``config.json:L26-28``, ``"random_start": true``). Tramèr's ``start_small``
  (ε/3 in the first epoch, ``train.py:L150-159``) is replaced by the profile's ε warm-up (both norms' ε scaled).
* MSD steps and start: ``max(steps)`` of the two training specs, each norm at its own spec's ε and step size; the
  ascent starts at x itself, as the reference does with its defaults (``msd_v0`` starts from δ = 0 when
  ``randomize`` = 0, L86-93; ``train.py`` passes ``-randomize``, default 0, L161) — the specs' random start
  does not apply to MSD.
* MSD projection: advlib's one projection (``lp.ascent_step``: ball, then [0,1]); the reference clips ℓ2 to
  [0,1] before scaling into the ball (L118-119). Both give feasible points; they differ only when both bind.
* MSD output: the last iterate, as every advlib PGD returns; ``msd_v0`` returns the highest-loss iterate seen
  over all steps (L153-154). So MSD restricted to one norm is exactly that norm's PGD without random start.
* Ties (equal losses, e.g. at ε = 0): the first norm of ``UNION_NORMS`` (ℓ2), as ``np.argmax``/``torch.argmax``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib import _checks, lp
from advlib.context import frozen
from advlib.gradients import input_gradient, per_example_loss
from advlib.specs import AttackSpec
from advlib.training.loop import training_attack
from advlib.training.natural import accuracy

#: The norms whose union the multi-norm defenses train against, in tie-breaking order.
UNION_NORMS = lp.NORMS
_LINF = UNION_NORMS.index("linf")  # the "linf_chosen" statistic: the share of choices that went to ℓ∞


def union_specs(attacks: Mapping[str, AttackSpec]) -> list[AttackSpec]:
    """The training spec of each norm of ``UNION_NORMS``, in that order (a missing one raises ``ValueError``)."""
    missing = [n for n in UNION_NORMS if n not in attacks]
    if missing:
        raise ValueError(f"multi-norm training needs a training attack for each of {', '.join(UNION_NORMS)}; "
                         f"missing: {', '.join(missing)}")
    return [attacks[n] for n in UNION_NORMS]


def worst_per_example(candidates: Sequence[Tensor], losses: Tensor) -> tuple[Tensor, Tensor]:
    """Per row, the candidate of highest loss: ``candidates`` K tensors ``[N, ...]``, ``losses`` ``[K, N]``.

    Returns the chosen rows ``[N, ...]`` and their candidate index ``[N]`` (ties: the lowest index, as argmax).
    """
    choice = losses.argmax(0)
    stacked = torch.stack(list(candidates))
    return stacked[choice, torch.arange(choice.shape[0], device=choice.device)], choice


def candidate_losses(model: nn.Module, candidates: Sequence[Tensor], target: Tensor, loss: str = "ce") -> Tensor:
    """Per-example losses ``[K, N]`` of each candidate, the model frozen (eval mode) and no graph kept."""
    with frozen(model), torch.no_grad():
        return torch.stack([per_example_loss(model(c), target, loss) for c in candidates])


def _msd_specs(specs: Sequence[AttackSpec]) -> str:
    """Validate MSD's specs (PGD, distinct norms, one loss); return their common loss."""
    if not specs:
        raise ValueError("msd_attack needs at least one AttackSpec")
    for spec in specs:
        if not isinstance(spec, AttackSpec) or spec.kind != "pgd":
            raise ValueError(f"msd_attack takes 'pgd' AttackSpecs (plain gradient steps), got {spec!r}")
    norms = [s.norm for s in specs]
    if len(set(norms)) != len(norms):
        raise ValueError(f"msd_attack takes one spec per norm, got norms {norms}")
    losses = {s.loss for s in specs}
    if len(losses) != 1:
        raise ValueError(f"msd_attack ascends one loss; the specs name {sorted(losses)}")
    return specs[0].loss


def msd_step(model: nn.Module, x_adv: Tensor, x: Tensor, target: Tensor, specs: Sequence[AttackSpec],
             loss: str = "ce") -> tuple[Tensor, Tensor]:
    """One MSD step from ``x_adv``: ∇ₓL once, one projected steepest-ascent candidate per spec (its norm, ε and
    step size, ``lp.ascent_step``), and per example the candidate of higher loss. Returns the next iterate and
    the index of the chosen spec per example ``[N]``. Call it with ``model`` frozen (``msd_attack`` does)."""
    g, _ = input_gradient(model, x_adv, target, loss)
    candidates = [lp.ascent_step(x_adv, g, x, norm=s.norm, eps=s.eps, step_size=s.step_size) for s in specs]
    if len(candidates) == 1:  # one norm: plain PGD, nothing to compare
        return candidates[0], torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with torch.no_grad():
        losses = torch.stack([per_example_loss(model(c), target, loss) for c in candidates])
    return worst_per_example(candidates, losses)


def msd_attack(model: nn.Module, x: Tensor, y: Tensor, specs: Sequence[AttackSpec], *, eps_scale: float = 1.0,
               validate: bool = True) -> tuple[Tensor, Tensor]:
    """Multi steepest descent (Maini, Wong & Kolter 2020) over the union of the specs' balls.

    ``max(steps)`` steps of ``msd_step`` from x itself (each spec's ``random_start`` is not used), every spec's ε
    and step size times ``eps_scale`` (the ε warm-up). x: ``[N,1,28,28]`` in [0,1]; y: int64 ``[N]``.
    Returns ``x_adv`` (detached; in the ball of the norm chosen at the last step, and in [0,1]) and the fraction of
    (example, step) choices that went to each spec ``[K]`` (zeros when nothing can move: ε = 0 or no steps).
    ``validate=False`` skips the pixel check (training). The model runs frozen (eval mode, no parameter gradients)
    and is restored; no random numbers are drawn.
    """
    loss = _msd_specs(specs)
    if validate:
        _checks.labels(y, _checks.images(x).shape[0])
    scaled = [s.scaled(eps_scale) for s in specs]
    steps = max(s.steps for s in scaled)
    counts = torch.zeros(len(scaled), device=x.device)
    x = x.detach()
    x_adv = x.clone()
    if steps == 0 or all(s.eps == 0 for s in scaled):  # nothing can move
        return x_adv, counts
    with frozen(model):
        for _ in range(steps):
            x_adv, choice = msd_step(model, x_adv, x, y, scaled, loss)
            counts += (choice[None] == torch.arange(len(scaled), device=x.device)[:, None]).sum(1)  # no host sync
    return x_adv.detach(), counts / (steps * x.shape[0])


class _UnionAT:
    """Shared by MAX and AVG: the profile's ℓ2 and ℓ∞ training attacks, and one training PGD example per norm."""

    def __init__(self, attacks: dict[str, AttackSpec]) -> None:
        self.attacks = attacks
        self.specs = union_specs(attacks)

    def candidates(self, model: nn.Module, x: Tensor, y: Tensor, eps_scale: float, generator: torch.Generator
                   ) -> list[Tensor]:
        return [training_attack(model, x, y, spec, eps_scale, generator) for spec in self.specs]


class MaxAT(_UnionAT):
    """MAX (Tramèr & Boneh 2019): per example, train on the higher-loss of the ℓ2 and ℓ∞ training PGD examples."""

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        candidates = self.candidates(model, x, y, eps_scale, generator)
        x_adv, choice = worst_per_example(candidates, candidate_losses(model, candidates, y))
        logits = model(x_adv)
        linf_chosen = (choice == _LINF).float().mean()
        return F.cross_entropy(logits, y), {"adv_acc": accuracy(logits, y), "linf_chosen": linf_chosen}


class AvgAT(_UnionAT):
    """AVG (Tramèr & Boneh 2019): train on both the ℓ2 and the ℓ∞ training PGD examples, one concatenated batch,
    i.e. the mean of the two per-norm mean cross-entropies."""

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        candidates = self.candidates(model, x, y, eps_scale, generator)
        logits, labels = model(torch.cat(candidates)), y.repeat(len(candidates))
        stats = {f"adv_acc_{s.norm}": accuracy(part, y) for s, part in zip(self.specs, logits.chunk(len(candidates)))}
        return F.cross_entropy(logits, labels), {"adv_acc": accuracy(logits, labels), **stats}


class MSD(_UnionAT):
    """MSD (Maini, Wong & Kolter 2020): train on the output of one multi-norm steepest ascent (``msd_attack``)."""

    def __init__(self, attacks: dict[str, AttackSpec]) -> None:
        super().__init__(attacks)
        _msd_specs(self.specs)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        x_adv, share = msd_attack(model, x, y, self.specs, eps_scale=eps_scale, validate=False)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), {"adv_acc": accuracy(logits, y), "linf_chosen": share[_LINF]}
