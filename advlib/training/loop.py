"""The one training loop every defense shares: device-resident tensors, seeded shuffles, resumable checkpoints.

A defense is any object with ``loss(model, x, y, step, generator, eps_scale) -> (loss, stats)`` where
``stats`` maps names to per-batch scalar tensors (averaged per epoch) and ``eps_scale`` ∈ [0,1] is the ε
warm-up factor of this step; plus optional ``state_dict``/``load_state_dict`` for state that is not a model
parameter (ATDA's class centres).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlib import _checks
from advlib.attacks import run_attack
from advlib.protocols import TrainSpec
from advlib.specs import AttackSpec


class Defense(Protocol):
    def loss(self, model: nn.Module, x: Tensor, y: Tensor, step: int, generator: torch.Generator,
             eps_scale: float) -> tuple[Tensor, dict[str, Tensor]]: ...


def steps_per_epoch(n: int, spec: TrainSpec) -> int:
    """Optimiser steps in one epoch over ``n`` examples (the last batch may be smaller)."""
    return (n + spec.batch_size - 1) // spec.batch_size


def training_norm(norm: str, step: int, period: int = 1) -> str:
    """The norm of optimiser step ``step``: "mix" alternates ℓ2 and ℓ∞ every ``period`` steps, ℓ2 first (paper §5;
    ``period`` 1: even steps ℓ2, odd steps ℓ∞)."""
    _checks.choice("training norm", norm, ("l2", "linf", "mix"))
    if norm != "mix":
        return norm
    return "l2" if (step // _checks.count("mix period", period, minimum=1)) % 2 == 0 else "linf"


def training_attack(source: nn.Module, x: Tensor, target: Tensor, spec: AttackSpec, eps_scale: float,
                    generator: torch.Generator, **kwargs) -> Tensor:
    """``spec`` at the warm-up factor ``eps_scale`` on one batch that ``fit`` validated: ``run_attack`` without
    its per-call pixel check (a host read-back) and replayed from a CUDA graph on a GPU (``advlib.graphs``)."""
    return run_attack(spec.scaled(eps_scale), source, x, target, generator=generator, validate=False, replay=True,
                      batch_size=x.shape[0] * spec.samples, **kwargs)  # one chunk: one random draw, one graph shape


def eps_scale(spec: TrainSpec, step: int, total_steps: int) -> float:
    """ε warm-up: 0 for the first ``eps_hold`` fraction of steps, then linear up to 1 at ``eps_ramp``."""
    progress = step / max(total_steps, 1)
    if progress >= spec.eps_ramp:
        return 1.0
    if progress < spec.eps_hold:
        return 0.0
    return (progress - spec.eps_hold) / (spec.eps_ramp - spec.eps_hold)


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) from a ``TrainSpec``."""
    _checks.choice("optimizer", spec.optimizer, ("adam", "sgd"))
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr)
    return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum)


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill leaves the previous checkpoint intact


def _lr_at(spec: TrainSpec, epoch: int) -> float:
    return spec.lr * 0.1 ** sum(epoch >= m for m in spec.lr_milestones)


def fit(
    model: nn.Module, x: Tensor, y: Tensor, defense: Defense, spec: TrainSpec, *, seed: int,
    checkpoint: str | Path | None = None, quiet: bool = False, desc: str = "train",
    stop_after_steps: int | None = None, deadline: float | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place with ``defense`` for ``spec.epochs`` epochs; return per-epoch metrics.

    With ``checkpoint``, state (model, optimiser, RNGs, defense state, position in the epoch, history) is
    saved every ``spec.checkpoint_every`` steps and at each epoch end, and a later call resumes from it,
    ending with the same weights as an uninterrupted run. ``stop_after_steps`` simulates a kill (tests);
    ``deadline`` (a ``time.monotonic()`` value) stops cleanly at the first step past it, after a checkpoint
    save; either way the returned history is then shorter than ``spec.epochs`` (see ``finished_training``).
    The global torch RNG (which dropout draws from) is seeded with ``seed`` inside a forked RNG scope, so
    training is a function of ``seed`` and the caller's RNG state is left untouched.
    """
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _fit(model, x, y, defense, spec, seed=seed, checkpoint=checkpoint, quiet=quiet, desc=desc,
                    stop_after_steps=stop_after_steps, deadline=deadline)


def finished_training(history: list[dict[str, float]], spec: TrainSpec) -> bool:
    """Whether a history returned by ``fit`` covers every epoch (False after a deadline or simulated kill)."""
    return len(history) >= spec.epochs


def _restore_rngs(saved: dict, generator: torch.Generator, device: torch.device, path: Path) -> None:
    """Put the data-order generator and the global RNGs back where the checkpoint left them."""
    if saved["generator"].numel() != generator.get_state().numel():
        raise ValueError(f"checkpoint {path} was written on another kind of device than {device.type!r}: "
                         "an unfinished run resumes only on the kind of device it started on")
    generator.set_state(saved["generator"].cpu())
    if "torch_rng" in saved:  # checkpoints written before the global RNG was saved lack it
        torch.set_rng_state(saved["torch_rng"].cpu())
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), device)


def _fit(
    model: nn.Module, x: Tensor, y: Tensor, defense: Defense, spec: TrainSpec, *, seed: int,
    checkpoint: str | Path | None, quiet: bool, desc: str, stop_after_steps: int | None, deadline: float | None,
) -> list[dict[str, float]]:
    _checks.labelled(model, x, y)
    _checks.count("epochs", spec.epochs)
    _checks.count("batch_size", spec.batch_size, minimum=1)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = make_optimizer(model, spec)
    path = Path(checkpoint) if checkpoint is not None else None
    state = {"epoch": 0, "position": 0, "perm": None, "history": [], "sums": {}, "elapsed": 0.0}
    if path is not None and path.exists():
        saved = torch.load(path, map_location=x.device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if hasattr(defense, "load_state_dict"):
            defense.load_state_dict(saved["defense"])
        state = saved["loop"]
        if state["epoch"] < spec.epochs:  # a finished run draws nothing more: its RNG states matter only to resume
            _restore_rngs(saved, generator, x.device, path)

    def save() -> None:
        if path is not None:
            _save(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                         "cuda_rng": torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None,
                         "defense": defense.state_dict() if hasattr(defense, "state_dict") else None,
                         "loop": state})

    n, bs = x.shape[0], spec.batch_size
    per_epoch = steps_per_epoch(n, spec)
    done = 0
    model.train()
    while state["epoch"] < spec.epochs:
        epoch = state["epoch"]
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(spec, epoch)
        if state["perm"] is None:
            state["perm"] = torch.randperm(n, generator=generator, device=x.device)
            state["sums"], state["position"] = {}, 0
        start = time.perf_counter()
        bar = tqdm(range(state["position"], per_epoch), desc=f"{desc} epoch {epoch + 1}/{spec.epochs}",
                   disable=quiet, leave=False, initial=state["position"], total=per_epoch)
        for b in bar:
            idx = state["perm"][b * bs:(b + 1) * bs]
            step = epoch * per_epoch + b
            scale = eps_scale(spec, step, per_epoch * spec.epochs)
            loss, stats = defense.loss(model, x[idx], y[idx], step, generator, scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in {"loss": loss.detach(), **stats}.items():
                state["sums"][k] = state["sums"].get(k, 0.0) + v.detach() * len(idx)
            state["position"] = b + 1
            done += 1
            if (stop_after_steps is not None and done >= stop_after_steps) or (
                    deadline is not None and time.monotonic() > deadline):
                state["elapsed"] += time.perf_counter() - start
                save()
                return state["history"]
            if state["position"] % spec.checkpoint_every == 0 and state["position"] < per_epoch:
                state["elapsed"] += time.perf_counter() - start
                start = time.perf_counter()
                save()
        state["elapsed"] += time.perf_counter() - start
        row = {k: float(v) / n for k, v in state["sums"].items()}
        row.update(epoch=epoch + 1, seconds=state["elapsed"], lr=_lr_at(spec, epoch))
        state["history"].append(row)
        state.update(epoch=epoch + 1, perm=None, position=0, sums={}, elapsed=0.0)
        if not quiet:
            tqdm.write(f"{desc} epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                                   if k not in ("epoch",)))
        save()
    model.eval()
    return state["history"]
