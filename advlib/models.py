"""Madry's MNIST CNN and Tramèr's static MNIST models A-D (for ensemble adversarial training).

Architectures per docs/protocols.md §1.1 (MadryLab/mnist_challenge ``model.py``) and §3.1
(ftramer/ensemble-adv-training ``mnist.py``). Inputs ``[N,1,28,28]`` in [0,1]; outputs logits ``[N,10]``.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from advlib import _checks


class MadryCNN(nn.Sequential):
    """conv5x5·32 SAME–ReLU–pool2, conv5x5·64 SAME–ReLU–pool2, fc 3136→1024–ReLU, fc 1024→10.

    ``init="tf"``: TensorFlow's, as Madry's code: weights truncated normal (σ=0.1, cut at 2σ), biases 0.1
    (docs/protocols.md §1.1). ``init="torch"``: PyTorch's default layer init, which trains far more reliably with
    short schedules and Adam 1e-3 (the TF init collapsed to chance under ε=0.3 PGD training in our runs).
    """

    INITS = ("tf", "torch")

    def __init__(self, init: str = "tf") -> None:
        super().__init__(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10),
        )
        if _checks.choice("init", init, self.INITS) == "torch":
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.1, a=-0.2, b=0.2)
                nn.init.constant_(m.bias, 0.1)


def _keras_init(model: nn.Module) -> nn.Module:
    """Keras 1 defaults: Glorot-uniform weights, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def tramer_a() -> nn.Module:
    """Model A: conv5x5·64, conv5x5·64, dropout .25, dense 128, dropout .5, dense 10 (mnist.py:L62-82)."""
    return _keras_init(nn.Sequential(
        nn.Conv2d(1, 64, 5), nn.ReLU(), nn.Conv2d(64, 64, 5), nn.ReLU(), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(20 * 20 * 64, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    ))


def tramer_b() -> nn.Module:
    """Model B: dropout .2, conv8x8·64/2 SAME, conv6x6·128/2, conv5x5·128, dropout .5, dense 10 (L85-108)."""
    return _keras_init(nn.Sequential(
        nn.Dropout(0.2), nn.Conv2d(1, 64, 8, stride=2, padding=3), nn.ReLU(),
        nn.Conv2d(64, 128, 6, stride=2), nn.ReLU(), nn.Conv2d(128, 128, 5), nn.ReLU(), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(128, 10),
    ))


def tramer_c() -> nn.Module:
    """Model C: conv3x3·128, conv3x3·64, dropout .25, dense 128, dropout .5, dense 10 (L111-131)."""
    return _keras_init(nn.Sequential(
        nn.Conv2d(1, 128, 3), nn.ReLU(), nn.Conv2d(128, 64, 3), nn.ReLU(), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(24 * 24 * 64, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    ))


def tramer_d() -> nn.Module:
    """Model D: 4 × [dense 300 (He-normal), ReLU, dropout .5], dense 10 (L134-151)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in in (784, 300, 300, 300):
        layers += [nn.Linear(fan_in, 300), nn.ReLU(), nn.Dropout(0.5)]
    model = _keras_init(nn.Sequential(*layers, nn.Linear(300, 10)))
    for m in list(model)[1:-1:3]:
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


MODELS: dict[str, Callable[[], nn.Module]] = {
    "madry": MadryCNN, "tramer_a": tramer_a, "tramer_b": tramer_b, "tramer_c": tramer_c, "tramer_d": tramer_d,
}


def build(name: str, **kwargs) -> nn.Module:
    """A freshly initialised model by name (one of ``MODELS``); seed torch first for reproducibility."""
    return MODELS[_checks.choice("model", name, MODELS)](**kwargs)
