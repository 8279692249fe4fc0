"""First- and second-order ℓp attacks as plain functions over one projected-ascent loop.

* ``pgd``: projected gradient ascent (Madry et al. 2018; MadryLab/mnist_challenge ``pgd_attack.py``).
* ``fgsm``: one PGD step of size ε with no random start (FGSM for ℓ∞, the fast gradient method for ℓ2).
* ``second_order``: the S-O attack of Li et al. 2019 (paper eq. 4), whose ascent direction is the
  gradient averaged over Gaussian draws around the iterate (authors' code: Bai-Li/TRADES
  ``pgd_attack_mnist_{l2,linf}.py``; see docs/protocols.md §6).

Threat model: white box, untargeted, x ∈ [0,1]^{N×1×28×28}, perturbation ‖δ‖ ≤ ε in ℓ2 or ℓ∞.
Every attack returns a detached ``x_adv`` inside the ε-ball and [0,1], leaves its inputs untouched,
runs the model frozen (eval mode, no parameter gradients) and restores it, and is deterministic given a
``torch.Generator`` on the inputs' device. Inputs are processed in chunks of ``batch_size`` examples.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib import _checks, lp
from advlib.context import frozen

LossFn = Callable[[Tensor, Tensor], Tensor]
LOSSES = ("ce", "cw")
LINF_STEPS = ("sign", "l2")

#: PGD settings per norm: ℓ∞ from Madry's config.json (docs/protocols.md §1.2-1.3); ℓ2 ε from the paper,
#: step 2.5·ε/steps as in Bai-Li/TRADES pgd_attack_mnist_l2.py:L65 (docs/protocols.md §2.3, §7.1).
PGD_DEFAULTS = {
    "linf": {"eps": 0.3, "steps": 40, "step_size": 0.01},
    "l2": {"eps": 4.0, "steps": 40, "step_size": 0.25},
}
#: S-O settings per norm, from the authors' PyTorch code (docs/protocols.md §6.1, §6.3).
SO_DEFAULTS = {
    "linf": {"eps": 0.3, "steps": 40, "step_size": 0.01, "sigma": 0.1, "samples": 20},
    "l2": {"eps": 4.0, "steps": 40, "step_size": 0.25, "sigma": 0.15, "samples": 20},
}
#: ℓ∞ S-O with the paper's g/‖g‖₂ step: 0.01·√784 = 0.28 has the ℓ2 length of a 0.01 sign step (REPRO CHOICE, §6.3).
SO_LINF_L2_STEP = 0.28


@dataclass
class Trace:
    """Per iterate t = 0..steps: batch-mean ‖∇ₓL(x_t)‖₂ and mean loss L(x_t) (the paper's Figure 1)."""

    grad_norm: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


def default_batch_size(device: torch.device) -> int:
    """Chunk size for attacks: the whole 10k test set on a GPU, 500 examples on a CPU."""
    return 10_000 if device.type == "cuda" else 500


def per_example_loss(logits: Tensor, target: Tensor, loss: str | LossFn = "ce") -> Tensor:
    """Loss per example, ``[N]``: cross-entropy, Madry's CW margin loss, or a callable ``(logits, target)``."""
    if callable(loss):
        return loss(logits, target)
    if loss == "ce":
        return F.cross_entropy(logits, target, reduction="none")
    if loss == "cw":  # -relu(z_y - max_{j≠y} z_j + 50)  (mnist_challenge pgd_attack.py:L25-39)
        correct = logits.gather(1, target[:, None]).squeeze(1)
        wrong = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), float("-inf")).amax(1)
        return -F.relu(correct - wrong + 50.0)
    raise ValueError(f"unknown loss {loss!r}; valid choices: 'ce', 'cw' or a callable")


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, loss: str | LossFn = "ce") -> tuple[Tensor, Tensor]:
    """∇ₓ of each example's own loss (not the batch mean), and the losses ``[N]``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        values = per_example_loss(model(x), target, loss)
        (grad,) = torch.autograd.grad(values.sum(), x)
    return grad, values.detach()


def smoothed_gradient(
    model: nn.Module, x: Tensor, target: Tensor, *, sigma: float, samples: int,
    loss: str | LossFn = "ce", generator: torch.Generator | None = None,
) -> Tensor:
    """E_ξ[∇ₓL(x + σξ)], ξ ~ N(0, I), estimated with ``samples`` fresh draws per example (paper eq. 4).

    The noisy points are not clipped to [0,1], as in the authors' code. σ = 0 gives the plain gradient.
    """
    if sigma == 0:
        return input_gradient(model, x, target, loss)[0]
    noisy = x.repeat(samples, *([1] * (x.ndim - 1)))
    noisy = noisy + sigma * torch.randn(noisy.shape, generator=generator, device=x.device, dtype=x.dtype)
    grad = input_gradient(model, noisy, target.repeat(samples, *([1] * (target.ndim - 1))), loss)[0]
    return grad.view(samples, *x.shape).mean(0)


def start_point(x: Tensor, norm: str, eps: float, *, random_start: bool, x_init: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Where an ascent starts: ``x_init`` projected, else uniform in the ball if ``random_start``, else ``x``."""
    if x_init is not None:
        return lp.project_feasible(x_init, x, norm, eps)
    if random_start:
        return lp.project_feasible(x + lp.random_start(x, norm, eps, generator), x, norm, eps)
    return x.clone()


def _ascend(
    model: nn.Module, x: Tensor, target: Tensor, *, eps: float, norm: str, steps: int, step_size: float,
    loss: str | LossFn, step_norm: str, sigma: float, samples: int, x_init: Tensor | None,
    random_start: bool, generator: torch.Generator | None, tracing: bool,
) -> tuple[Tensor, Tensor | None]:
    """The one loop behind every attack, on one chunk. Returns x_adv and, if tracing, [steps+1, 2] sums."""
    x_adv = start_point(x, norm, eps, random_start=random_start, x_init=x_init, generator=generator)
    sums = []
    for t in range(steps + 1):
        if tracing:
            g_here, values = input_gradient(model, x_adv, target, loss)
            sums.append(torch.stack([lp.norm_of(g_here, "l2").sum(), values.sum()]))
        if t == steps:
            break
        if tracing and sigma == 0:
            g = g_here
        else:
            g = smoothed_gradient(model, x_adv, target, sigma=sigma, samples=samples, loss=loss, generator=generator)
        x_adv = lp.project_feasible(x_adv + step_size * lp.steepest_ascent(g, step_norm), x, norm, eps)
    return x_adv.detach(), (torch.stack(sums) if tracing else None)


def projected_ascent(
    model: nn.Module, x: Tensor, target: Tensor, *, eps: float, norm: str, steps: int, step_size: float,
    loss: str | LossFn = "ce", step_norm: str | None = None, sigma: float = 0.0, samples: int = 1,
    random_start: bool = False, x_init: Tensor | None = None, generator: torch.Generator | None = None,
    trace: Trace | None = None, batch_size: int | None = None, validate: bool = True,
) -> Tensor:
    """Maximise ``loss`` over the ε-ball by projected steepest ascent (the functional core of all attacks).

    ``target`` is anything the loss takes per example (labels ``[N]``, or soft targets for TRADES);
    ``step_norm`` (default ``norm``) picks the ascent direction; ``sigma``/``samples`` switch on the
    Gaussian-averaged gradient of S-O; ``x_init`` overrides the start (it is projected first).
    ``validate=False`` skips the pixel-range check, which reads the data back to the host: for callers
    such as the training loop that checked their data once, so that a GPU never waits on the host.
    """
    if validate:
        _checks.images(x)
    if target.shape[0] != x.shape[0]:
        raise ValueError(f"target has {target.shape[0]} rows but x has {x.shape[0]}; they must match")
    lp.check_norm(norm)
    step_norm = lp.check_norm(step_norm or norm)
    eps = _checks.nonnegative("eps", eps)
    step_size = _checks.nonnegative("step_size", step_size)
    sigma = _checks.nonnegative("sigma", sigma)
    _checks.count("steps", steps)
    _checks.count("samples", samples, minimum=1)
    if not callable(loss):
        _checks.choice("loss", loss, LOSSES)
    if eps == 0 and trace is None:  # nothing can move; with a trace, run the loop so it is filled
        return x.detach().clone()
    chunk = batch_size or default_batch_size(x.device)
    chunk = max(1, chunk // samples) if sigma > 0 else chunk
    outputs, sums = [], []
    with frozen(model):
        for i in range(0, x.shape[0], chunk):
            part = slice(i, i + chunk)
            out, s = _ascend(
                model, x[part].detach(), target[part], eps=eps, norm=norm, steps=steps, step_size=step_size,
                loss=loss, step_norm=step_norm, sigma=sigma, samples=samples,
                x_init=None if x_init is None else x_init[part].detach(), random_start=random_start,
                generator=generator, tracing=trace is not None,
            )
            outputs.append(out)
            sums.append(s)
    if trace is not None:
        mean = (torch.stack(sums).sum(0) / x.shape[0]).tolist()
        trace.grad_norm[:] = [row[0] for row in mean]
        trace.loss[:] = [row[1] for row in mean]
    return torch.cat(outputs)


def _defaults(table: dict, norm: str, given: dict) -> dict:
    out = dict(table[lp.check_norm(norm)])
    out.update({k: v for k, v in given.items() if v is not None})
    return out


def pgd(
    model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | None = None, steps: int | None = None,
    step_size: float | None = None, random_start: bool = True, loss: str | LossFn = "ce",
    generator: torch.Generator | None = None, trace: Trace | None = None, batch_size: int | None = None,
) -> Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018).

    Starts uniformly inside the ball if ``random_start``, then ``steps`` times: step ``step_size`` along
    the steepest-ascent direction of ∇ₓL (sign for ℓ∞, g/‖g‖₂ for ℓ2), project onto the ball and [0,1].
    Defaults per norm (``PGD_DEFAULTS``): ℓ∞ ε=0.3, 40 steps of 0.01; ℓ2 ε=4.0, 40 steps of 0.25.
    x: ``[N,1,28,28]`` in [0,1]; y: int64 ``[N]``. Returns x_adv of the same shape.
    """
    _checks.labels(y, _checks.images(x).shape[0])
    cfg = _defaults(PGD_DEFAULTS, norm, {"eps": eps, "steps": steps, "step_size": step_size})
    return projected_ascent(
        model, x, y, norm=norm, **cfg, loss=loss, random_start=random_start, generator=generator,
        trace=trace, batch_size=batch_size,
    )


def fgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str, loss: str | LossFn = "ce",
         batch_size: int | None = None) -> Tensor:
    """FGSM (ℓ∞: x + ε·sign g) or the fast gradient method (ℓ2: x + ε·g/‖g‖₂), clipped to [0,1]."""
    _checks.labels(y, _checks.images(x).shape[0])
    return projected_ascent(model, x, y, eps=eps, norm=norm, steps=1, step_size=eps, loss=loss,
                            batch_size=batch_size)


def second_order(
    model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | None = None, steps: int | None = None,
    step_size: float | None = None, sigma: float | None = None, samples: int | None = None,
    linf_step: str = "sign", loss: str | LossFn = "ce", generator: torch.Generator | None = None,
    trace: Trace | None = None, batch_size: int | None = None,
) -> Tensor:
    """The S-O attack (Li, Chen, Wang, Carin 2019, eq. 4): PGD on the Gaussian-averaged gradient.

    At each iterate, average ∇ₓL over ``samples`` draws of N(0, σ²I) around it, step along the
    steepest-ascent direction of that average, project onto the ball and [0,1]. No random start.
    ``linf_step="sign"`` is the authors' ℓ∞ code; ``"l2"`` is the paper's text (step along g/‖g‖₂,
    default size ``SO_LINF_L2_STEP``). Defaults per norm in ``SO_DEFAULTS`` (authors' code).
    """
    _checks.labels(y, _checks.images(x).shape[0])
    _checks.choice("linf_step", linf_step, LINF_STEPS)
    cfg = _defaults(SO_DEFAULTS, norm, {"eps": eps, "steps": steps, "step_size": step_size,
                                        "sigma": sigma, "samples": samples})
    step_norm = norm
    if norm == "linf" and linf_step == "l2":
        step_norm = "l2"
        cfg["step_size"] = SO_LINF_L2_STEP if step_size is None else step_size
    return projected_ascent(model, x, y, norm=norm, **cfg, loss=loss, step_norm=step_norm, generator=generator,
                            trace=trace, batch_size=batch_size)
