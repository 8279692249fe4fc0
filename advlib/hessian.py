"""Input-space curvature of the loss: Hessian-vector products and power iteration on ∇²ₓL.

``hvp`` is exact (double backprop) or the paper's forward finite difference (its appendix A, after Miyato
et al.'s VAT): H·v ≈ (∇ₓL(x + ξv) − ∇ₓL(x)) / ξ. ``power_iteration`` finds each example's dominant
eigenpair; ``so_alignment`` measures how well the S-O direction points along that eigenvector.
All quantities are per example: each example's own loss L_i(x_i), batch ``[N, ...]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advlib import _checks, lp
from advlib.attacks import input_gradient, smoothed_gradient
from advlib.context import frozen

METHODS = ("exact", "finite_difference")


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a.flatten(1) * b.flatten(1)).sum(1)


def _unit(v: Tensor) -> Tensor:
    return lp.steepest_ascent(v, "l2")


def hvp(model: nn.Module, x: Tensor, y: Tensor, v: Tensor, *, method: str = "exact", xi: float = 1e-3) -> Tensor:
    """Per-example Hessian-vector product ∇²ₓL_i(x_i) · v_i, shape of ``x``.

    ``method="exact"`` differentiates ⟨∇ₓL, v⟩ once more; ``"finite_difference"`` uses step ``xi``
    along ``v`` (appendix A of the paper). ``x`` need not lie in [0,1] here (Taylor probes leave it).
    """
    _checks.choice("method", method, METHODS)
    if v.shape != x.shape:
        raise ValueError(f"v has shape {tuple(v.shape)} but x has {tuple(x.shape)}; they must match")
    _checks.labelled(model, x, y, pixels=False)
    return _hvp(model, x, y, v, method=method, xi=xi)


def _hvp(model: nn.Module, x: Tensor, y: Tensor, v: Tensor, *, method: str, xi: float) -> Tensor:
    """``hvp`` on inputs already checked (power iteration checks once, then calls this ``iters`` times)."""
    with frozen(model):
        if method == "finite_difference":
            xi = _checks.nonnegative("xi", xi)
            if xi == 0:
                raise ValueError("xi must be > 0 for finite differences, got 0")
            return (input_gradient(model, x + xi * v, y)[0] - input_gradient(model, x, y)[0]) / xi
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, x, create_graph=True)
            (hv,) = torch.autograd.grad(_dot(g, v).sum(), x)
    return hv.detach()


@dataclass
class Eigenpair:
    """Dominant eigenvalue ``[N]`` and unit eigenvector ``[N, ...]`` of each example's ∇²ₓL; ``history``
    ``[iters, N]``: the Rayleigh quotient dₜᵀ(H dₜ) of each power iterate, the running estimate of the eigenvalue
    (empty where the pair does not come from ``power_iteration``)."""

    eigenvalue: Tensor
    eigenvector: Tensor
    history: Tensor | None = None


def power_iteration(
    model: nn.Module, x: Tensor, y: Tensor, *, iters: int = 20, method: str = "exact", xi: float = 1e-3,
    generator: torch.Generator | None = None,
) -> Eigenpair:
    """Power iteration d ← H d / ‖H d‖ from a Gaussian start; eigenvalue = Rayleigh quotient dᵀHd.

    Converges to the eigenvalue of largest magnitude (for cross-entropy on a ReLU net, ∇²ₓL = Jᵀ(diag p − ppᵀ)J
    is positive semi-definite, so that is the largest). The returned ``history`` holds the Rayleigh quotient
    dₜᵀ(H dₜ) of the iterate before each update, ``[iters, N]`` (free: it reuses the product the update needs;
    with ``method="finite_difference"`` it uses that product).
    """
    _checks.count("iters", iters, minimum=1)
    _checks.choice("method", method, METHODS)
    _checks.labelled(model, x, y, pixels=False)
    d = _unit(torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))
    history = []
    for _ in range(iters):
        hd = _hvp(model, x, y, d, method=method, xi=xi)
        history.append(_dot(d, hd))
        d = _unit(hd)
    return Eigenpair(_dot(d, _hvp(model, x, y, d, method="exact", xi=xi)), d, torch.stack(history))


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Per-example |cos| between two batches of directions (eigenvectors have no sign)."""
    return (_dot(a, b) / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1)).clamp_min(1e-30)).abs()


def so_alignment(
    model: nn.Module, x: Tensor, y: Tensor, *, sigma: float, samples: int, iters: int = 20,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Eigenpair]:
    """|cos| of the S-O direction (noise-averaged gradient) and of the plain gradient with the top eigenvector.

    Returns ``(cos_so, cos_grad, eigenpair)``, each cosine ``[N]``.
    """
    _checks.nonnegative("sigma", sigma)
    _checks.count("samples", samples, minimum=1)  # samples=0 would average nothing: NaN cosines
    pair = power_iteration(model, x, y, iters=iters, generator=generator)
    with frozen(model):
        g_so = smoothed_gradient(model, x, y, sigma=sigma, samples=samples, generator=generator)
        g = input_gradient(model, x, y)[0]
    return cosine(g_so, pair.eigenvector), cosine(g, pair.eigenvector), pair


def exact_hessians(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Each example's full input Hessian ∇²ₓL_i(x_i), ``[N, D, D]`` with D = x[0].numel() (an oracle for small D).

    Built with ``torch.autograd.functional.hessian`` (D Hessian-vector products per example, vectorised), so it
    is independent of ``hvp``; use float64 models and inputs for reference checks. The vectorisation cannot
    run a model in channels_last memory format: convert it with ``model.to(memory_format=torch.contiguous_format)``.
    """
    _checks.labelled(model, x, y, pixels=False)

    def loss_of(xi: Tensor, yi: Tensor) -> Tensor:
        return nn.functional.cross_entropy(model(xi.view(1, *x.shape[1:])), yi.view(1))

    with frozen(model):
        return torch.stack([torch.autograd.functional.hessian(lambda z: loss_of(z, yi), xi.flatten(), vectorize=True)
                            for xi, yi in zip(x.detach(), y)])


def gauss_newton(model: nn.Module, x: Tensor) -> Tensor:
    """Jᵀ(diag p − ppᵀ)J per example, ``[N, D, D]``: J the ``[K, D]`` Jacobian of the logits, p the softmax.

    The input Hessian of the cross-entropy minus the logits' own curvature, so it is exact for piecewise-linear
    networks (ReLU, max pooling — Madry's CNN) wherever they are differentiable: positive semi-definite, rank
    ≤ K − 1, and the same for every label y. Costs K backward passes instead of D.
    """
    x = _checks.images(x, pixels=False).detach().requires_grad_(True)
    with frozen(model), torch.enable_grad():
        logits = model(x)
        last = logits.shape[1] - 1
        jac = torch.stack([torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k < last)[0].flatten(1)
                           for k in range(logits.shape[1])], 1)  # [N, K, D]: row k is ∇ₓ z_k
    p = logits.detach().softmax(1)
    return jac.transpose(1, 2) @ (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) @ jac
