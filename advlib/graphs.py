"""CUDA-graph replay of the fixed-shape attack loops that adversarial training runs thousands of times.

A training step's PGD is ``steps`` small forward/backward passes on one batch (128 images on a GPU): far
too little work per kernel to keep a GPU busy, so eager PyTorch spends its time launching kernels. This
module records the whole ascent loop of one (model, batch shape, norm, steps, loss) once as a CUDA graph and
replays it: one launch per attack instead of about 35 per step.

The loop body (``ascent_loop``) is the same function on every device: eager on a CPU, recorded on a GPU.
ε and the step size live in device tensors, so the ε warm-up changes them without re-recording. The start
point (random start or TRADES' x + 0.001·N(0, I)) is drawn eagerly with the caller's generator, outside the
graph, so a graphed run draws exactly the same random numbers as an eager one.
"""
from __future__ import annotations

import os
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from advlib import lp
from advlib.context import frozen
from advlib.gradients import LossFn, input_gradient

#: ``ADVLIB_CUDA_GRAPHS=0`` switches graph replay off (every attack then runs eagerly, as on a CPU).
ENV = "ADVLIB_CUDA_GRAPHS"


def enabled(device: torch.device) -> bool:
    """Whether attacks on ``device`` are replayed from CUDA graphs (CUDA only; on unless ``ADVLIB_CUDA_GRAPHS=0``)."""
    return device.type == "cuda" and os.environ.get(ENV, "1") != "0"


def ascent_loop(model: nn.Module, x: Tensor, target: Tensor, start: Tensor, eps: Tensor | float,
                step_size: Tensor | float, *, norm: str, steps: int, loss: str | LossFn) -> Tensor:
    """``steps`` projected steepest-ascent steps from ``start`` (already feasible); the PGD inner loop."""
    x_adv = start
    for _ in range(steps):
        g = input_gradient(model, x_adv, target, loss)[0]
        x_adv = lp.ascent_step(x_adv, g, x, norm=norm, eps=eps, step_size=step_size)
    return x_adv.detach()


class _Recorded:
    """One recorded ascent: static input buffers, the graph, and its output buffer."""

    def __init__(self, model: nn.Module, x: Tensor, target: Tensor, norm: str, steps: int, loss: str | LossFn) -> None:
        self.x, self.target, self.start = torch.empty_like(x), torch.empty_like(target), torch.empty_like(x)
        self.eps = torch.zeros((), device=x.device, dtype=x.dtype)
        self.step = torch.zeros((), device=x.device, dtype=x.dtype)
        self.x.copy_(x)
        self.target.copy_(target)
        self.start.copy_(x)

        def body() -> Tensor:
            return ascent_loop(model, self.x, self.target, self.start, self.eps, self.step, norm=norm, steps=steps,
                               loss=loss)

        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (cuDNN and autograd set themselves up)
            for _ in range(2):
                body()
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = body()

    def __call__(self, x: Tensor, target: Tensor, start: Tensor, eps: float, step_size: float) -> Tensor:
        self.x.copy_(x)
        self.target.copy_(target)
        self.start.copy_(start)
        self.eps.fill_(eps)
        self.step.fill_(step_size)
        self.graph.replay()
        return self.out.clone()


_GRAPHS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _key(model: nn.Module, x: Tensor, target: Tensor, norm: str, steps: int, loss: str | Callable) -> tuple:
    params = tuple(p.data_ptr() for p in model.parameters())  # a moved or replaced parameter needs a new graph
    return (tuple(x.shape), x.dtype, tuple(target.shape), target.dtype, norm, steps, loss, params)


def replay_ascent(model: nn.Module, x: Tensor, target: Tensor, start: Tensor, *, eps: float, step_size: float,
                  norm: str, steps: int, loss: str | LossFn = "ce") -> Tensor:
    """``ascent_loop`` on one batch: replayed from a CUDA graph where ``enabled``, else run eagerly.

    The model runs frozen (eval mode, no parameter gradients) and is restored, as in every advlib attack.
    """
    if eps == 0:
        return x.detach().clone()
    if not enabled(x.device):
        with frozen(model):
            return ascent_loop(model, x, target, start, eps, step_size, norm=norm, steps=steps, loss=loss)
    graphs = _GRAPHS.setdefault(model, {})
    key = _key(model, x, target, norm, steps, loss)
    with frozen(model):
        if key not in graphs:
            graphs[key] = _Recorded(model, x, target, norm, steps, loss)
        return graphs[key](x, target, start, eps, step_size)
