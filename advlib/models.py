"""Madry's MNIST CNN, Tramèr's static MNIST models A-D (for ensemble adversarial training), and TRADES' SmallCNN
with the TRADES authors' released MNIST weights.

Architectures per docs/protocols.md §1.1 (MadryLab/mnist_challenge ``model.py``) and §3.1
(ftramer/ensemble-adv-training ``mnist.py``); SmallCNN per ``advlib/resources/trades_smallcnn/README.md``.
Inputs ``[N,1,28,28]`` in [0,1]; outputs logits ``[N,10]``.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
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


class SmallCNN(nn.Module):
    """TRADES' MNIST "SmallCNN" (Zhang et al. 2019): four 3×3 convs (32, 32, 64, 64; max-pool after the 2nd and
    4th), fc 1024→200, dropout 0.5, fc 200→200, fc 200→10. Child names reproduce the released state-dict keys
    (``feature_extractor.conv1.weight`` ... ``classifier.fc3.bias``); PyTorch's default init."""

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 32, 3)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", nn.ReLU()), ("maxpool1", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", nn.ReLU()), ("maxpool2", nn.MaxPool2d(2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", nn.ReLU()), ("drop", nn.Dropout(dropout)),
            ("fc2", nn.Linear(200, 200)), ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(200, 10)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature_extractor(x).flatten(1))


#: The TRADES authors' released MNIST SmallCNN (see the README beside it): its file and md5.
TRADES_SMALLCNN = "resources/trades_smallcnn/model_mnist_smallcnn.pt"
TRADES_SMALLCNN_MD5 = "becffe24a6e918e186de07a2b61d4e08"


def _md5(path: Path) -> str | None:
    """The file's md5 hex digest, or None if it cannot be read."""
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except OSError:
        return None


def load_trades_smallcnn(device: str | torch.device = "cpu", *, path: str | Path | None = None,
                         md5: str = TRADES_SMALLCNN_MD5) -> nn.Module:
    """The TRADES authors' ℓ∞ (ε = 0.3) MNIST SmallCNN, in eval mode on ``device``.

    Reads the checkpoint packaged with advlib (or ``path``), checks its md5 against ``md5`` (``ValueError``
    naming the file, the expected and the found digest if it is missing or differs), then loads it strictly
    with ``weights_only=True``. The authors report 99.48 % natural accuracy on the 10k MNIST test images.
    """
    with resources.as_file(resources.files("advlib").joinpath(TRADES_SMALLCNN)) as packaged:
        file = Path(path) if path is not None else packaged
        found = _md5(file)
        if found != md5:
            state = "missing or unreadable" if found is None else "corrupt or a different file"
            raise ValueError(f"checkpoint {file} is {state}: expected md5 {md5}, found {found}")
        state_dict = torch.load(file, map_location=device, weights_only=True)
    model = SmallCNN()
    model.load_state_dict(state_dict, strict=True)
    return model.to(device).eval()


MODELS: dict[str, Callable[[], nn.Module]] = {
    "madry": MadryCNN, "tramer_a": tramer_a, "tramer_b": tramer_b, "tramer_c": tramer_c, "tramer_d": tramer_d,
    "smallcnn": SmallCNN,
}


def build(name: str, **kwargs) -> nn.Module:
    """A freshly initialised model by name (one of ``MODELS``); seed torch first for reproducibility."""
    return MODELS[_checks.choice("model", name, MODELS)](**kwargs)
