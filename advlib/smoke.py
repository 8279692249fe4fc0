"""A seconds-long end-to-end check of every code path on one device: ``python -m advlib smoke --device cuda``.

Run it first on a newly lent GPU, before any long job: it trains every requested Table 1 cell on tiny data
(256 images, one epoch, PGD-3) through the same ``reproduce.run_cell`` as the real profiles, writes and
re-reads each record, and checks on that device what differs from a CPU run: device-side generators give
the same result for the same seed, a killed and resumed training run ends with the same weights, attacks
stay in the ε-ball and [0,1], the device's PGD agrees with the CPU's on the same model and start, and the
CUDA-graph replay of training attacks (``advlib.graphs``) agrees with eager execution.
The test suite runs the same function on the CPU (``tests/test_smoke.py``).
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from advlib import data, graphs, lp, models, protocols, records, runtime
from advlib.attacks import run_attack
from advlib.protocols import QUICK, Profile, TrainSpec
from advlib.reproduce import load_data, run_cell
from advlib.specs import EPS, AttackSpec
from advlib.training import MadryAT, fit
from advlib.training.loop import training_attack
from advlib.training.trades import trades_adversary

#: The tiny profile: the quick profile's settings at a size that runs all 12 cells in seconds on a GPU.
SMOKE = replace(
    QUICK, name="smoke", description="seconds-long end-to-end check of every code path on one device",
    n_train=256, n_test=64,
    train_attack={n: AttackSpec.pgd(n, steps=3) for n in EPS},
    defenses={d: replace(spec, epochs=1, batch_size=64, checkpoint_every=2) for d, spec in QUICK.defenses.items()},
    static=TrainSpec(epochs=1, batch_size=64),
    evaluation={**{f"PGD-{n}": AttackSpec.pgd(n, steps=5) for n in EPS},
                **{f"SO-{n}": AttackSpec.so(n, steps=3, samples=2) for n in EPS}},
)


class SmokeFailure(AssertionError):
    """A smoke check that did not hold (the message says which and by how much)."""


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise SmokeFailure(what)


def check_cells(device: torch.device, cells: list[str], profile: Profile = SMOKE) -> dict[str, float]:
    """Train, evaluate, write and re-read every cell on tiny data; returns seconds per cell."""
    tensors = load_data(profile, device)
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in cells:
            start = time.perf_counter()
            rec = run_cell(profile, cell, Path(tmp), tensors, quiet=True, revision="smoke")
            seconds[cell] = time.perf_counter() - start
            back = records.read_record(Path(tmp) / f"{cell}.json")
            _require(back["device"] == runtime.device_name(device), f"{cell}: record names device {back['device']!r}")
            _require(set(back["accuracy"]) == {"Natural", *profile.evaluation}, f"{cell}: rows {sorted(back['accuracy'])}")
            _require(all(0 <= v <= 1 for v in rec["accuracy"].values()), f"{cell}: accuracies {rec['accuracy']}")
    return seconds


def check_determinism_and_resume(device: torch.device, profile: Profile = SMOKE) -> dict[str, float]:
    """Same seed → same training on the device; a run killed after 3 steps and resumed → same weights.

    GPU kernels may sum in a different order from run to run, so "same" means: the resumed run differs
    from the uninterrupted one by no more than 10× the run-to-run difference (exactly 0 on a CPU), or 1e-5.
    Returns both largest weight differences.
    """
    x, y = data.load_mnist("train", limit=profile.n_train, device=device)
    spec = replace(profile.defenses["madry"], checkpoint_every=1000)

    def train(checkpoint: Path | None = None, stop: int | None = None) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = models.build("madry", init="torch").to(device)
        fit(model, x, y, MadryAT("linf", profile.train_attack), spec, seed=0, checkpoint=checkpoint, quiet=True,
            stop_after_steps=stop)
        return model.state_dict()

    def gap(a: dict, b: dict) -> float:
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    with tempfile.TemporaryDirectory() as tmp:
        once, again = train(), train()
        path = Path(tmp) / "resume.pt"
        train(path, stop=3)
        resumed = train(path)
    noise, resume = gap(once, again), gap(once, resumed)
    _require(resume <= max(10 * noise, 1e-5),
             f"a resumed run differs from an uninterrupted one on {device} by {resume:.3g} (run-to-run {noise:.3g})")
    return {"run_to_run": noise, "resumed_vs_uninterrupted": resume}


def check_attacks(device: torch.device, n: int = 256) -> float:
    """ε-ball and [0,1] on the device, and agreement with the CPU for the same model and start.

    Returns the fraction of examples whose PGD outcome (fooled or not) agrees between device and CPU. The
    two runs differ only by floating-point (cuDNN may use TF32 convolutions), so a few examples near the
    decision boundary may flip; at least 90 % must agree.
    """
    x, y = data.load_mnist("test", limit=n)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = models.build("madry", init="torch").eval()
    fit(model, *data.load_mnist("train", limit=512), MadryAT("linf", SMOKE.train_attack),
        replace(SMOKE.defenses["madry"], epochs=1), seed=0, quiet=True)
    outcome = {}
    for dev in (torch.device("cpu"), device):
        m = copy.deepcopy(model).to(dev)
        xd, yd = x.to(dev), y.to(dev)
        for norm, eps in EPS.items():
            adv = run_attack(AttackSpec.pgd(norm, steps=10, random_start=False), m, xd, yd)
            _require(bool((lp.norm_of(adv - xd, norm) <= eps * (1 + 1e-5) + 1e-6).all()), f"{norm} PGD left the ball on {dev}")
            _require(bool(((adv >= 0) & (adv <= 1)).all()), f"{norm} PGD left [0,1] on {dev}")
            with torch.no_grad():
                outcome[(dev.type, norm)] = (m(adv).argmax(1) == yd).cpu()
    agree = min(float((outcome[("cpu", nm)] == outcome[(device.type, nm)]).float().mean()) for nm in EPS)
    _require(agree >= 0.9, f"PGD outcomes agree between cpu and {device} on only {100 * agree:.1f} % of examples")
    return agree


def check_graphs(device: torch.device, n: int = 128) -> dict[str, float]:
    """A training PGD replayed from a CUDA graph equals the eager one (on a CPU both are eager: trivially).

    Both run the same kernels; PGD's sign steps can still turn a last-bit difference into a different pixel,
    so the check is on outcomes: the model's predictions on both x_adv agree on ≥ 97 % of examples, for
    Madry's and TRADES' inner maximisation, ℓ2 and ℓ∞, at full ε and mid warm-up.
    """
    x, y = data.load_mnist("test", limit=n, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = models.build("madry", init="torch").to(device)
    worst = {"max_abs_difference": 0.0, "prediction_agreement": 1.0}
    for norm in EPS:
        for scale in (0.5, 1.0):
            outs = []
            for setting in ("1", "0"):
                saved = os.environ.get(graphs.ENV)
                os.environ[graphs.ENV] = setting
                try:
                    gen = torch.Generator(device=device).manual_seed(0)
                    outs.append((training_attack(model, x, y, SMOKE.train_attack[norm], scale, gen),
                                 trades_adversary(model, x, SMOKE.train_attack[norm], gen, scale)))
                finally:
                    os.environ.pop(graphs.ENV) if saved is None else os.environ.__setitem__(graphs.ENV, saved)
            for graphed, eager in zip(*outs):
                with torch.no_grad():
                    agree = float((model(graphed).argmax(1) == model(eager).argmax(1)).float().mean())
                worst["max_abs_difference"] = max(worst["max_abs_difference"], float((graphed - eager).abs().max()))
                worst["prediction_agreement"] = min(worst["prediction_agreement"], agree)
    _require(worst["prediction_agreement"] >= 0.97, f"graphed and eager training attacks disagree on {device}: {worst}")
    return worst


def run(device: str | torch.device | None = None, cells: list[str] | None = None) -> dict:
    """All smoke checks on ``device`` (default: CUDA if available); raises ``SmokeFailure`` on the first failure."""
    dev = torch.device(device) if device is not None else runtime.default_device()
    start = time.perf_counter()
    report = {"device": runtime.device_name(dev), "torch": torch.__version__}
    report["attack_agreement_with_cpu"] = check_attacks(dev)
    report["graphed_vs_eager"] = check_graphs(dev)
    report["max_weight_difference"] = check_determinism_and_resume(dev)
    report["cell_seconds"] = check_cells(dev, cells or list(protocols.CELL_ORDER))
    report["seconds"] = time.perf_counter() - start
    return report
