"""Losses and input gradients: the per-example loss an attack ascends, ∇ₓ of it, and S-O's Gaussian-averaged
gradient (the paper's eq. 4)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlib import _checks

LossFn = Callable[[Tensor, Tensor], Tensor]


def per_example_loss(logits: Tensor, target: Tensor, loss: str | LossFn = "ce") -> Tensor:
    """Loss per example, ``[N]``: cross-entropy, Madry's CW margin loss, or a callable ``(logits, target)``."""
    if callable(loss):
        return loss(logits, target)
    if loss not in ("ce", "cw"):
        raise ValueError(f"unknown loss {loss!r}; valid choices: 'ce', 'cw' or a callable")
    try:
        if loss == "ce":
            return F.cross_entropy(logits, target, reduction="none")
        # -relu(z_y - max_{j≠y} z_j + 50)  (mnist_challenge pgd_attack.py:L25-39)
        correct = logits.gather(1, target[:, None]).squeeze(1)
        wrong = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), float("-inf")).amax(1)
        return -F.relu(correct - wrong + 50.0)
    except (IndexError, RuntimeError):  # bad labels are diagnosed only on failure: no host read-back per step
        _checks.labels(target, logits.shape[0], "target", classes=logits.shape[1])
        raise


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, loss: str | LossFn = "ce") -> tuple[Tensor, Tensor]:
    """∇ₓ of each example's own loss (not the batch mean), and the losses ``[N]``; x: ``[N,C,H,W]``."""
    x = _checks.images(x, pixels=False).detach().requires_grad_(True)
    with torch.enable_grad():
        values = per_example_loss(model(x), target, loss)
        (grad,) = torch.autograd.grad(values.sum(), x)
    return grad, values.detach()


def smoothed_gradient(
    model: nn.Module, x: Tensor, target: Tensor, *, sigma: float, samples: int,
    loss: str | LossFn = "ce", generator: torch.Generator | None = None, draws: int | None = None,
) -> Tensor:
    """E_ξ[∇ₓL(x + σξ)], ξ ~ N(0, I), estimated with ``samples`` fresh draws per example (paper eq. 4).

    The noisy points are not clipped to [0,1], as in the authors' code. σ = 0 gives the plain gradient.
    ``draws``: how many draws (of all N examples) go through the model per forward/backward, default all of them
    at once. The noise is one ``randn`` over all draws whatever ``draws`` is, so a generator gives the same noisy
    points and the same average up to floating-point summation order.
    """
    _checks.images(x, pixels=False)
    if sigma == 0:
        return input_gradient(model, x, target, loss)[0]
    draws = samples if draws is None else _checks.count("draws", draws, minimum=1)
    noise = torch.randn((samples * x.shape[0], *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
    noise = noise.view(samples, *x.shape)
    if draws >= samples:
        return _draw_gradients(model, x, target, sigma * noise, loss).mean(0)
    grads = torch.empty_like(noise)
    for k in range(0, samples, draws):
        grads[k:k + draws] = _draw_gradients(model, x, target, sigma * noise[k:k + draws], loss)
    return grads.mean(0)


def _draw_gradients(model: nn.Module, x: Tensor, target: Tensor, scaled_noise: Tensor, loss: str | LossFn) -> Tensor:
    """∇ₓL at x + each draw of ``scaled_noise`` (``[d, *x.shape]``), in one forward/backward: ``[d, *x.shape]``."""
    d = scaled_noise.shape[0]
    noisy = (x + scaled_noise).flatten(0, 1)
    grad = input_gradient(model, noisy, target.repeat(d, *([1] * (target.ndim - 1))), loss)[0]
    return grad.reshape(d, *x.shape)
