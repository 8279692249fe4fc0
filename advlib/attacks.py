"""First- and second-order ℓp attacks: one projected-ascent loop, one runner, and the functional entry points.

* ``run_attack(spec, model, x, target)``: the one runner. Every caller (training, TRADES' inner step,
  ensemble sources, evaluation, the book) describes its attack by an ``advlib.specs.AttackSpec`` and calls it.
* ``pgd``: projected gradient ascent (Madry et al. 2018; MadryLab/mnist_challenge ``pgd_attack.py``).
* ``fgsm``: one step of size ε with no random start (FGSM for ℓ∞, the fast gradient method for ℓ2).
* ``second_order``: the S-O attack of Li et al. 2019 (paper eq. 4), whose ascent direction is the
  gradient averaged over Gaussian draws around the iterate (authors' code: Bai-Li/TRADES
  ``pgd_attack_mnist_{l2,linf}.py``; see docs/protocols.md §6).

Threat model: white box, untargeted, x ∈ [0,1]^{N×1×28×28}, perturbation ‖δ‖ ≤ ε in ℓ2 or ℓ∞.
Every attack returns a detached ``x_adv`` inside the ε-ball and [0,1], leaves its inputs untouched,
runs the model frozen (eval mode, no parameter gradients) and restores it, and is deterministic given a
``torch.Generator`` on the inputs' device. Inputs are processed in chunks of ``batch_size`` examples (S-O: of
``batch_size // samples``), S-O's Gaussian draws in passes of ``draws_per_pass``; on a CPU the first attack also
applies ``runtime.tune_allocator`` to the process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from advlib import _checks, graphs, lp, runtime
from advlib.context import frozen
from advlib.gradients import LossFn, input_gradient, per_example_loss, smoothed_gradient
from advlib.specs import LOSSES, AttackSpec

__all__ = ["CPU_PASS_IMAGES", "LossFn", "Trace", "Traced", "ascend", "default_batch_size", "draws_per_pass", "fgsm",
           "input_gradient", "per_example_loss", "pgd", "run_attack", "second_order", "smoothed_gradient",
           "start_point", "traced_attack"]


@dataclass
class Trace:
    """Per iterate t = 0..steps: batch-mean ‖∇ₓL(x_t)‖₂ and mean loss L(x_t) (the paper's Figure 1)."""

    grad_norm: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Traced:
    """What ``traced_attack`` returns: the adversarial examples and the trace of the ascent."""

    x_adv: Tensor
    trace: Trace


def default_batch_size(device: torch.device) -> int:
    """Chunk size for attacks: the whole 10k test set on a GPU, 500 examples on a CPU."""
    return 10_000 if device.type == "cuda" else 500


#: The most images S-O puts through the model in one forward/backward on a CPU (the authors' own batch is 200).
#: Bigger batches gain nothing on a CPU and allocate activation buffers of tens of MB per call (SmallCNN: ~87 kB
#: per image for its first conv's output alone).
CPU_PASS_IMAGES = 256


def draws_per_pass(device: torch.device, examples: int, samples: int) -> int:
    """How many of S-O's ``samples`` Gaussian draws of a chunk of ``examples`` images one forward/backward takes.

    On a GPU all of them (one big batch); on a CPU the fewest passes that keep each within ``CPU_PASS_IMAGES``
    images (at least one draw per pass), with the draws spread evenly over them. It changes only how the draws are
    batched, not which draws are made (``smoothed_gradient``'s ``draws``).
    """
    if device.type != "cpu":
        return samples
    most = min(samples, max(1, CPU_PASS_IMAGES // examples))
    passes = -(-samples // most)
    return -(-samples // passes)  # ≤ most


def start_point(x: Tensor, norm: str, eps: float, *, random_start: bool, x_init: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Where an ascent starts: ``x_init`` projected, else uniform in the ball if ``random_start``, else ``x``."""
    if x_init is not None:
        return lp.project_feasible(x_init, x, norm, eps)
    if random_start:
        return lp.project_feasible(x + lp.random_start(x, norm, eps, generator), x, norm, eps)
    return x.clone()


def ascend(model: nn.Module, x: Tensor, target: Tensor, spec: AttackSpec, *, loss: str | LossFn,
           start: Tensor, generator: torch.Generator | None, tracing: bool) -> tuple[Tensor, Tensor | None]:
    """The loop behind every attack, on one chunk from a feasible ``start``: ``spec.steps`` projected steps
    along the steepest-ascent direction of the (Gaussian-averaged, if σ > 0) input gradient.

    ``spec.clamp``: "step" projects every iterate onto the ball and [0,1] (``lp.ascent_step``); "end" is the
    authors' ℓ2 loop (Bai-Li/TRADES pgd_attack_mnist_l2.py L64-90): every iterate is rescaled onto the ball
    only, so iterates (and S-O's noisy copies of them) may leave [0,1], which is enforced once, after the last
    step; clamping only moves coordinates towards x, so the result stays in the ball. One difference is kept: the
    authors floor the norm of the gradient of their *batch-mean* loss at 1e-8 (L81), advlib each example's at
    1e-12 (``lp.steepest_ascent``).
    Returns x_adv and, if ``tracing``, the ``[steps+1, 2]`` sums of ‖∇ₓL‖₂ and L over the chunk per iterate (the
    last one at the returned point)."""
    x_adv, sums = start, []
    draws = draws_per_pass(x.device, x.shape[0], spec.samples)
    for t in range(spec.steps + 1):
        if t == spec.steps and spec.clamp == "end":
            x_adv = lp.clamp_unit(x_adv)  # the authors' one clamp, after the last step (L90)
        if tracing:
            g_here, values = input_gradient(model, x_adv, target, loss)
            sums.append(torch.stack([lp.norm_of(g_here, "l2").sum(), values.sum()]))
        if t == spec.steps:
            break
        if tracing and spec.sigma == 0:
            g = g_here
        else:
            g = smoothed_gradient(model, x_adv, target, sigma=spec.sigma, samples=spec.samples, loss=loss,
                                  generator=generator, draws=draws)
        if spec.clamp == "end":  # back onto the ball only, no [0,1] clamp (L81-89)
            stepped = x_adv + spec.step_size * lp.steepest_ascent(g, spec.step_norm)
            x_adv = x + lp.project(stepped - x, spec.norm, spec.eps)
        else:
            x_adv = lp.ascent_step(x_adv, g, x, norm=spec.norm, eps=spec.eps, step_size=spec.step_size,
                                   step_norm=spec.step_norm)
    return x_adv.detach(), (torch.stack(sums) if tracing else None)


def _run(spec: AttackSpec, model: nn.Module, x: Tensor, target: Tensor, *, generator: torch.Generator | None,
         loss: LossFn | None, start: Tensor | None, batch_size: int | None, validate: bool, replay: bool,
         tracing: bool) -> tuple[Tensor, Trace | None]:
    if not isinstance(spec, AttackSpec):
        raise ValueError(f"spec must be an advlib.specs.AttackSpec, got {type(spec).__name__}")
    if loss is not None and not callable(loss):
        raise ValueError(f"loss must be a callable (logits, target) -> [N] replacing the spec's; got {loss!r} "
                         f"(a named loss, one of {', '.join(LOSSES)}, goes into the spec)")
    if validate:
        _checks.images(x)
    if target.shape[0] != x.shape[0]:
        raise ValueError(f"target has {target.shape[0]} rows but x has {x.shape[0]}; they must match")
    if start is not None and spec.clamp == "end":
        raise ValueError("clamp='end' runs the authors' loop, which starts at x itself; a given start is not "
                         "supported with it (use clamp='step', or no start)")
    if start is not None and start.shape != x.shape:
        raise ValueError(f"start has shape {tuple(start.shape)} but x has {tuple(x.shape)}; they must match")
    if validate and loss is None:  # the spec's named loss takes class labels
        _checks.labels(target, x.shape[0], "target", classes=_checks.num_classes(model, x))
    loss = spec.loss if loss is None else loss
    if spec.eps == 0 and not tracing:  # nothing can move (and no random numbers are drawn)
        return x.detach().clone(), None
    chunk = batch_size or default_batch_size(x.device)
    chunk = max(1, chunk // spec.samples) if spec.sigma > 0 else chunk
    graphed = (replay and spec.sigma == 0 and spec.step_norm == spec.norm and spec.clamp == "step" and not tracing
               and graphs.enabled(x.device))
    if x.device.type == "cpu":
        runtime.tune_allocator()  # once per process: a user's own script gets the fast path too
    outputs, sums = [], []
    with frozen(model):
        for i in range(0, x.shape[0], chunk):
            part = slice(i, i + chunk)
            xs = x[part].detach()
            begin = start_point(xs, spec.norm, spec.eps, random_start=spec.random_start, generator=generator,
                                x_init=None if start is None else start[part].detach())
            if graphed:  # one recorded CUDA graph per (model, batch shape, …): training's fixed-shape batches
                outputs.append(graphs.replay_ascent(model, xs, target[part], begin, eps=spec.eps,
                                                    step_size=spec.step_size, norm=spec.norm, steps=spec.steps,
                                                    loss=loss))
                continue
            out, s = ascend(model, xs, target[part], spec, loss=loss, start=begin, generator=generator,
                            tracing=tracing)
            outputs.append(out)
            sums.append(s)
    trace = None
    if tracing:
        mean = (torch.stack(sums).sum(0) / x.shape[0]).tolist()
        trace = Trace(grad_norm=[row[0] for row in mean], loss=[row[1] for row in mean])
    return torch.cat(outputs), trace


def run_attack(spec: AttackSpec, model: nn.Module, x: Tensor, target: Tensor, *,
               generator: torch.Generator | None = None, loss: LossFn | None = None, start: Tensor | None = None,
               batch_size: int | None = None, validate: bool = True, replay: bool = False) -> Tensor:
    """The attack ``spec`` describes, on ``x`` (``[N,1,28,28]`` in [0,1]): returns ``x_adv``.

    ``target`` is whatever the loss takes per example: labels ``[N]`` for the spec's "ce"/"cw" loss, or soft
    targets for a callable ``loss`` (TRADES' KL), which then replaces the spec's. ``start`` replaces the spec's
    start (x itself, or uniform in the ball if ``random_start``) by a given point, projected first (TRADES
    starts from x + 0.001·N(0, I); not with ``clamp="end"``, whose loop starts at x). ``validate=False`` skips
    the checks that read data back to the host (pixel range; labels in the model's classes, found by running it
    on one example): for callers that checked their data once (the training loop, ``pgd``). ``replay`` replays
    fixed-shape PGD (σ = 0) from a recorded CUDA graph on a GPU (``advlib.graphs``; same numbers as eager up to
    summation order; PGD steps clamped every step only: other specs run eagerly); it changes nothing on a CPU.
    Whatever ``spec.clamp``, x_adv lies in the ε-ball and [0,1]. On a CPU the first call tunes glibc's allocator for
    the whole process (``runtime.tune_allocator``).
    """
    return _run(spec, model, x, target, generator=generator, loss=loss, start=start, batch_size=batch_size,
                validate=validate, replay=replay, tracing=False)[0]


def traced_attack(spec: AttackSpec, model: nn.Module, x: Tensor, target: Tensor, *,
                  generator: torch.Generator | None = None, loss: LossFn | None = None, start: Tensor | None = None,
                  batch_size: int | None = None, validate: bool = True) -> Traced:
    """``run_attack``, also recording the batch-mean ‖∇ₓL‖₂ and loss at every iterate (a ``Trace``);
    ``validate=False`` skips the input checks (a caller that made them already)."""
    x_adv, trace = _run(spec, model, x, target, generator=generator, loss=loss, start=start,
                        batch_size=batch_size, validate=validate, replay=False, tracing=True)
    return Traced(x_adv, trace)


def pgd(
    model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | None = None, steps: int | None = None,
    step_size: float | None = None, random_start: bool = True, loss: str | LossFn = "ce",
    generator: torch.Generator | None = None, batch_size: int | None = None,
) -> Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018): ``run_attack(AttackSpec.pgd(...))``.

    Starts uniformly inside the ball if ``random_start``, then ``steps`` times: step ``step_size`` along
    the steepest-ascent direction of ∇ₓL (sign for ℓ∞, g/‖g‖₂ for ℓ2), project onto the ball and [0,1].
    Unset values come from ``advlib.specs`` (the paper's ε, 40 steps, its step rule).
    x: ``[N,1,28,28]`` in [0,1]; y: int64 ``[N]``. Returns x_adv of the same shape.
    """
    _checks.labelled(model, x, y)
    named, fn = _loss(loss)
    spec = AttackSpec.pgd(norm, **_given(eps=eps, steps=steps, step_size=step_size), random_start=random_start,
                          loss=named)
    return run_attack(spec, model, x, y, generator=generator, loss=fn, batch_size=batch_size, validate=False)


def fgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str, loss: str | LossFn = "ce",
         batch_size: int | None = None) -> Tensor:
    """FGSM (ℓ∞: x + ε·sign g) or the fast gradient method (ℓ2: x + ε·g/‖g‖₂), clipped to [0,1]."""
    _checks.labelled(model, x, y)
    named, fn = _loss(loss)
    return run_attack(AttackSpec.fgsm(norm, eps=eps, loss=named), model, x, y, loss=fn, batch_size=batch_size,
                      validate=False)


def second_order(
    model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | None = None, steps: int | None = None,
    step_size: float | None = None, sigma: float | None = None, samples: int | None = None,
    linf_step: str = "sign", loss: str | LossFn = "ce", generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> Tensor:
    """The S-O attack (Li, Chen, Wang, Carin 2019, eq. 4): ``run_attack(AttackSpec.so(...))``.

    At each iterate, average ∇ₓL over ``samples`` draws of N(0, σ²I) around it, step along the
    steepest-ascent direction of that average, project onto the ball and [0,1]. No random start.
    ``linf_step="sign"`` is the authors' ℓ∞ code; ``"l2"`` is the paper's text (step along g/‖g‖₂).
    Unset values come from ``advlib.specs`` (the authors' σ, 40 steps × 20 draws).
    """
    _checks.labelled(model, x, y)
    named, fn = _loss(loss)
    spec = AttackSpec.so(norm, **_given(eps=eps, steps=steps, step_size=step_size, sigma=sigma, samples=samples),
                         linf_step=linf_step, loss=named)
    return run_attack(spec, model, x, y, generator=generator, loss=fn, batch_size=batch_size, validate=False)


def _loss(loss: str | LossFn) -> tuple[str, LossFn | None]:
    """A functional call's ``loss``: a name goes into the spec, a callable replaces the spec's loss."""
    return ("ce", loss) if callable(loss) else (loss, None)


def _given(**values: object) -> dict:
    return {k: v for k, v in values.items() if v is not None}
