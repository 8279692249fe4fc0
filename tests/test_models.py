"""Models (advlib.models): the TRADES SmallCNN architecture and the authors' released MNIST checkpoint."""
from __future__ import annotations

from importlib import resources

import pytest
import torch
from torch import nn

from advlib import models
from advlib.attacks import run_attack
from advlib.data import load_mnist
from advlib.specs import AttackSpec

CHECKPOINT_KEYS = [f"feature_extractor.conv{i}.{p}" for i in range(1, 5) for p in ("weight", "bias")] + \
                  [f"classifier.fc{i}.{p}" for i in range(1, 4) for p in ("weight", "bias")]


@pytest.fixture(scope="module")
def released() -> nn.Module:
    return models.load_trades_smallcnn("cpu")


@pytest.fixture(scope="module")
def real_test_split(mnist_root):
    """The first 1,000 images of the real MNIST test split (skips, saying why, when only the subset exists)."""
    if mnist_root is None:
        pytest.skip("full MNIST test split not found (set $ADVLIB_DATA or install advlib with its IDX files)")
    return load_mnist("test", root=mnist_root, limit=1000, download=False)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _packaged():
    """The packaged checkpoint (an importlib.resources Traversable)."""
    return resources.files("advlib").joinpath(models.TRADES_SMALLCNN)


def test_smallcnn_keys_match_the_released_checkpoint():
    with resources.as_file(_packaged()) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    fresh = models.SmallCNN().state_dict()
    assert list(fresh) == list(state) == CHECKPOINT_KEYS
    assert {k: tuple(v.shape) for k, v in fresh.items()} == {k: tuple(v.shape) for k, v in state.items()}


def test_smallcnn_shapes_and_build():
    model = models.build("smallcnn").eval()
    assert isinstance(model, models.SmallCNN)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_dropout_is_inactive_in_eval_mode():
    torch.manual_seed(0)
    model, x = models.SmallCNN().eval(), torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))  # the 0.5 dropout draws in train mode


def test_released_model_is_in_eval_mode_on_the_device(released):
    assert not released.training
    assert all(p.device.type == "cpu" for p in released.parameters())


def test_released_model_natural_accuracy(released, real_test_split):
    """The authors report 99.48 % on all 10k test images; the first 1,000 give 99.40 % (994/1000)."""
    x, y = real_test_split
    assert accuracy(released, x, y) >= 0.99


def test_corrupt_checkpoint_raises_naming_file_and_digests(tmp_path):
    raw = bytearray(_packaged().read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "model_mnist_smallcnn.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{bad.name}.*expected md5 {models.TRADES_SMALLCNN_MD5}, found [0-9a-f]{{32}}"):
        models.load_trades_smallcnn(path=bad)


def test_missing_checkpoint_raises(tmp_path):
    with pytest.raises(ValueError, match=r"missing or unreadable: expected md5 [0-9a-f]{32}, found None"):
        models.load_trades_smallcnn(path=tmp_path / "absent.pt")


def test_released_model_resists_short_linf_pgd(released, real_test_split):
    """ℓ∞ ε = 0.3 PGD-10 on 200 images: TRADES reports 95-96 % under 40-1000 steps, so >= 85 % is a loose floor."""
    x, y = (t[:200] for t in real_test_split)
    x_adv = run_attack(AttackSpec.pgd("linf", steps=10), released, x, y, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().amax() <= 0.3 + 1e-6
    assert accuracy(released, x_adv, y) >= 0.85
