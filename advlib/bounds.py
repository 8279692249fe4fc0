"""The data's own bound on robust accuracy, and the nearest-real-digit attack; no model involved.

Two test images of different classes at distance ≤ 2ε (ℓ2 or ℓ∞) share a point of both ε-balls, their midpoint,
which lies in the [0,1] box because both images do: no classifier can be robust on both. A matching M of such
conflicting pairs therefore bounds the robust accuracy of *any* classifier on those n images by (n − |M|)/n.
The bound holds for whichever matching is used; the larger M, the tighter it is. ``maximum_matching`` finds a
maximum one (Edmonds' blossom search) and proves it with a Tutte–Berge certificate (``max_matching_upper``).

A training image of another class inside a test image's ε-ball is an adversarial example that needs no
gradient (``nearest_real_digit``): a model that labels that training image correctly is fooled by it.

Pixels that are multiples of 1/255 (MNIST's levels) are compared as the exact fractions k/255 they stand for,
so a pair at exactly 2ε counts as conflicting. Results: ``results/bounds.json`` (``python -m advlib bounds``),
a sealed document of kind "bounds"; ``exceeds`` compares a measured accuracy with its row.
"""
from __future__ import annotations

import functools

import logging
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from torch import Tensor

from advlib import _checks, lp

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("advlib")
KIND = "bounds"
#: Radii: Table 1's (``specs.EPS``), the literature's ℓ2 2.0, points of the robustness curves (``specs.CURVE_RADII``).
EPSILONS: dict[str, tuple[float, ...]] = {"l2": (1.5, 2.0, 3.0, 4.0), "linf": (0.3, 0.4)}
#: The test-set prefix that the medium and large profiles evaluate on; its rows are keyed "<norm>@<eps>@1000".
SUBSET = 1000
#: Relative slack on a radius: absorbs the decimal ε's float rounding, far below one pixel level's effect.
_TOL = 1e-9
_BLOCK = 1 << 23  # distance-matrix entries per chunk (64 MiB of float64)
REQUIRED = ("norm", "eps", "n", "pairs", "vertices", "matching", "max_matching_upper", "exact", "upper_bound",
            "upper_bound_best", "method", "matched", "nearest_real_digit", "nearest_pairs", "seconds",
            "git_revision", "device", "created")


class Pairs(NamedTuple):
    """Pairs ``(i[k], j[k])`` of examples with different labels at distance ``distance[k]`` ≤ the radius."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray


class Matching(NamedTuple):
    """A matching (``pairs`` ``[k,2]``, disjoint) and ``upper``, a proven upper bound on the maximum matching."""

    pairs: np.ndarray
    upper: int
    method: str

    @property
    def exact(self) -> bool:
        """Whether the matching is provably maximum (its size reaches the certificate)."""
        return len(self.pairs) == self.upper


class NearestDigits(NamedTuple):
    """Per test image: ``mask`` (a training image of another class lies in its ε-ball), ``index`` of the nearest
    such training image (-1 where none), and its ``distance`` (inf where none)."""

    mask: Tensor
    index: Tensor
    distance: Tensor


def key(norm: str, eps: float, n: int | None = None) -> str:
    """Row key: "l2@4.0" for the whole test set, "l2@4.0@1000" for its first 1,000 images."""
    return f"{lp.check_norm(norm)}@{float(eps)}" + ("" if n is None else f"@{n}")


def _flat(x: Tensor, name: str) -> np.ndarray:
    """``[N, ...]`` images → float64 ``[N, D]``; pixels within 1e-4 of a level k/255 become exactly k/255."""
    flat = _checks.images(x, name).detach().cpu().reshape(len(x), -1).double().numpy()
    levels = np.round(flat * 255)
    return levels / 255 if np.abs(flat * 255 - levels).max() < 1e-4 else flat


def _labels(y: Tensor, n: int, name: str) -> np.ndarray:
    return _checks.labels(y, n, name).detach().cpu().numpy()


def _close_l2(a: np.ndarray, ya: np.ndarray, b: np.ndarray, yb: np.ndarray, radius: float, same: bool) -> Pairs:
    """Chunked ‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b in float64; entries within round-off of the radius are recomputed
    directly from the pixel differences, so the identity's cancellation cannot move a pair across it."""
    limit = (radius * (1 + _TOL)) ** 2
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    na, nb = (ta * ta).sum(1), (tb * tb).sum(1)
    la, lb = torch.from_numpy(ya), torch.from_numpy(yb)
    rows = max(1, _BLOCK // len(b))
    found: list[tuple[Tensor, Tensor, Tensor]] = []
    for start in range(0, len(a), rows):
        stop = min(start + rows, len(a))
        first = start if same else 0  # within one set, only columns j > i
        d2 = na[start:stop, None] + nb[None, first:] - 2 * ta[start:stop] @ tb[first:].T
        slack = 1e-9 * (na[start:stop, None] + nb[None, first:] + 1)  # ≫ float64 round-off of the identity
        near = (d2 <= limit + slack) & (la[start:stop, None] != lb[None, first:])
        if same:
            near &= torch.ones_like(near).triu(1)
        ii, jj = near.nonzero(as_tuple=True)
        value, edge = d2[ii, jj], d2[ii, jj] > limit - slack[ii, jj]
        gi, gj = ii + start, jj + first
        if edge.any():  # exact recheck near the threshold
            value[edge] = ((ta[gi[edge]] - tb[gj[edge]]) ** 2).sum(1)
        keep = value <= limit
        found.append((gi[keep], gj[keep], value[keep].clamp_min(0).sqrt()))
    i, j, d = (torch.cat(parts).numpy() for parts in zip(*found))
    return Pairs(i.astype(np.int64), j.astype(np.int64), d.astype(np.float64))


def _within(tree: cKDTree, points: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """All (point row, tree row) pairs at ℓ∞ distance ≤ ``limit``: k-nearest queries bounded by ``limit`` (20×
    faster than ``query_ball_point`` in 784 dimensions), k growing for the points whose k slots all filled."""
    rows, found_i, found_j, k = np.arange(len(points)), [], [], 8
    while rows.size:
        k = min(k, tree.n)
        dist, idx = tree.query(points[rows], k=k, p=np.inf, distance_upper_bound=limit)
        dist, idx = dist.reshape(len(rows), k), idx.reshape(len(rows), k)
        more = np.isfinite(dist[:, -1]) & (k < tree.n)
        r, c = np.nonzero(np.isfinite(dist) & ~more[:, None])
        found_i.append(rows[r])
        found_j.append(idx[r, c])
        rows, k = rows[more], 4 * k
    return np.concatenate(found_i), np.concatenate(found_j)


def _close_linf(a: np.ndarray, ya: np.ndarray, b: np.ndarray, yb: np.ndarray, radius: float, same: bool) -> Pairs:
    """One k-d tree per class of ``b`` (scipy's ``cKDTree``, Minkowski p = ∞) queried with the images of the other
    classes: a box-bounded search prunes whole subtrees, far cheaper than every max-abs difference; the hits are
    then measured directly (max |Δpixel| in float64, exact for k/255 levels)."""
    limit = radius * (1 + _TOL)
    found = []
    for c in np.unique(yb):
        rows_b = np.flatnonzero(yb == c)
        rows_a = np.flatnonzero((ya < c) if same else (ya != c))  # within one set, each class pair once
        if rows_a.size:
            hit_a, hit_b = _within(cKDTree(b[rows_b]), a[rows_a], limit + _TOL * (1 + limit))  # scipy's bound is strict
            i, j = rows_a[hit_a], rows_b[hit_b]
            d = np.abs(a[i] - b[j]).max(1) if i.size else np.zeros(0)
            found.append((i[d <= limit], j[d <= limit], d[d <= limit]))
    i, j, d = (np.concatenate(parts) for parts in zip(*found)) if found else (np.zeros(0),) * 3
    if same:  # orient i < j
        i, j = np.minimum(i, j), np.maximum(i, j)
    return Pairs(i.astype(np.int64), j.astype(np.int64), d.astype(np.float64))


def close_pairs(x: Tensor, y: Tensor, norm: str, radius: float, *, other: tuple[Tensor, Tensor] | None = None) -> Pairs:
    """All pairs of differently labelled images at ``norm`` distance ≤ ``radius`` (closed ball).

    Within ``x`` (pairs i < j) or, with ``other=(x2, y2)``, between ``x`` (i) and ``x2`` (j). ``x`` is
    ``[N,1,28,28]`` in [0,1], ``y`` int64 ``[N]``. ℓ2: chunked float64 matmul with an exact recheck near the
    radius; ℓ∞: per-class k-d trees.
    """
    lp.check_norm(norm)
    radius = _checks.nonnegative("radius", radius)
    a, ya = _flat(x, "x"), _labels(y, len(x), "y")
    if other is None:
        b, yb = a, ya
    else:
        b, yb = _flat(other[0], "other x"), _labels(other[1], len(other[0]), "other y")
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"other images have {b.shape[1]} pixels, x has {a.shape[1]}; they must match")
    return (_close_l2 if norm == "l2" else _close_linf)(a, ya, b, yb, radius, other is None)


def conflict_graph(x: Tensor, y: Tensor, norm: str, eps: float) -> Pairs:
    """The edges of the conflict graph: pairs i < j of different labels at ``norm`` distance ≤ 2·``eps``."""
    return close_pairs(x, y, norm, 2 * _checks.nonnegative("eps", eps))


def _adjacency(n: int, i: np.ndarray, j: np.ndarray) -> sparse.csr_matrix:
    """Symmetric CSR adjacency of the edges ``(i, j)`` (duplicates merged, column indices sorted)."""
    ones = np.ones(2 * len(i), dtype=np.int8)
    adj = sparse.csr_matrix((ones, (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    adj.sum_duplicates()
    return adj


def _greedy(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Mate array (-1 = free): vertices by increasing degree, each matched to its free neighbour of least degree."""
    degree, mate = np.diff(indptr), np.full(len(indptr) - 1, -1, dtype=np.int64)
    for u in np.argsort(degree, kind="stable").tolist():
        if mate[u] >= 0 or degree[u] == 0:
            continue
        nbrs = indices[indptr[u]:indptr[u + 1]]
        free = nbrs[mate[nbrs] < 0]
        if free.size:
            v = free[np.argmin(degree[free])]
            mate[u], mate[v] = v, u
    return mate


def _blossom_search(indptr: np.ndarray, indices: np.ndarray, mate: np.ndarray,
                    root: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Edmonds' search for an augmenting path from the free vertex ``root`` (alternating tree, odd cycles
    contracted to their base; Edmonds 1965, in the classic O(V³) formulation taught on e-maxx.ru).

    Returns ``(end, parent, even)``: ``end`` is the free vertex the path reaches (-1 if none), ``parent`` lets
    ``_flip`` walk the path back, ``even`` marks the vertices reached by an even alternating path from ``root``.
    """
    n = len(mate)
    parent, base = np.full(n, -1, dtype=np.int64), np.arange(n)
    even = np.zeros(n, dtype=bool)
    even[root] = True
    queue = deque([root])

    def is_even(w: int) -> bool:
        return w == root or (mate[w] >= 0 and parent[mate[w]] >= 0)

    def lowest_common_base(a: int, b: int) -> int:
        on_path = np.zeros(n, dtype=bool)
        while True:
            a = int(base[a])
            on_path[a] = True
            if mate[a] < 0:
                break
            a = int(parent[mate[a]])
        while not on_path[base[b]]:
            b = int(parent[mate[base[b]]])
        return int(base[b])

    def mark_path(v: int, b: int, child: int, blossom: np.ndarray) -> None:
        while base[v] != b:
            blossom[base[v]] = blossom[base[mate[v]]] = True
            parent[v], child = child, int(mate[v])
            v = int(parent[mate[v]])

    while queue:
        v = queue.popleft()
        nbrs = indices[indptr[v]:indptr[v + 1]]
        nbrs = nbrs[(base[nbrs] != base[v]) & (nbrs != mate[v])]
        for to in nbrs.tolist():
            if base[v] == base[to] or mate[v] == to:  # bases change while the loop runs
                continue
            if is_even(to):  # an odd cycle: contract it
                b = lowest_common_base(v, to)
                blossom = np.zeros(n, dtype=bool)
                mark_path(v, b, to, blossom)
                mark_path(to, b, v, blossom)
                inside = blossom[base]
                base[inside] = b
                fresh = np.flatnonzero(inside & ~even)
                even[fresh] = True
                queue.extend(fresh.tolist())
            elif parent[to] < 0:
                parent[to] = v
                if mate[to] < 0:
                    return to, parent, even
                even[mate[to]] = True
                queue.append(int(mate[to]))
    return -1, parent, even


def _flip(mate: np.ndarray, parent: np.ndarray, end: int) -> None:
    """Augment ``mate`` along the path ``_blossom_search`` found, from its free ``end`` back to the root."""
    while end >= 0:
        before = int(parent[end])
        after = int(mate[before])
        mate[end], mate[before] = before, end
        end = after


def tutte_berge_bound(n: int, i: np.ndarray, j: np.ndarray, removed: np.ndarray) -> int:
    """⌊(n + |U| − odd(G − U)) / 2⌋ for the vertex set ``U`` (bool mask ``removed``): by the Tutte–Berge formula an
    upper bound on every matching of the graph (n vertices, edges ``(i, j)``), equal to the maximum for the right U."""
    keep = ~removed[i] & ~removed[j]
    _, component = csgraph.connected_components(_adjacency(n, i[keep], j[keep]), directed=False)
    sizes = np.bincount(component[~removed])
    return (n + int(removed.sum()) - int((sizes % 2 == 1).sum())) // 2


def maximum_matching(n: int, i: np.ndarray, j: np.ndarray) -> Matching:
    """A maximum matching of the graph on ``n`` vertices with edges ``(i[k], j[k])``, and a certificate.

    Greedy by lowest degree first, then Edmonds' blossom search from every free vertex (one search per vertex
    suffices: a vertex with no augmenting path never gets one later). ``upper`` is the Tutte–Berge bound for
    U = the Gallai–Edmonds set A (neighbours of the vertices that some maximum matching misses), the smaller of
    it and U = ∅; it holds for any U, so ``len(pairs) == upper`` proves the matching maximum independently.
    """
    _checks.count("n", n)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    if i.shape != j.shape or i.ndim != 1 or (i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n)):
        raise ValueError(f"edges must be two equal-length 1-d arrays of vertices in [0, {n}); got shapes "
                         f"{i.shape}, {j.shape}")
    if np.any(i == j):
        raise ValueError(f"self-loop at vertex {int(i[i == j][0])}; a conflict graph joins distinct images")
    adj = _adjacency(n, i, j)
    indptr, indices = adj.indptr, adj.indices.astype(np.int64)
    mate = _greedy(indptr, indices)
    degree = np.diff(indptr)
    for root in np.flatnonzero((mate < 0) & (degree > 0)).tolist():
        if mate[root] < 0:  # not matched meanwhile by an earlier augmentation
            end, parent, _ = _blossom_search(indptr, indices, mate, root)
            if end >= 0:
                _flip(mate, parent, end)
    deficient = np.zeros(n, dtype=bool)  # D: vertices reached by an even alternating path from a free vertex
    for root in np.flatnonzero(mate < 0).tolist():
        if degree[root]:
            deficient |= _blossom_search(indptr, indices, mate, root)[2]
        deficient[root] = True
    tutte_set = np.zeros(n, dtype=bool)  # A = N(D) \ D
    tutte_set[indices[np.repeat(deficient, degree)]] = True
    tutte_set &= ~deficient
    upper = min(tutte_berge_bound(n, i, j, tutte_set), tutte_berge_bound(n, i, j, np.zeros(n, dtype=bool)))
    u = np.flatnonzero(mate > np.arange(n))
    pairs = np.stack([u, mate[u]], axis=1)
    method = ("greedy by lowest degree, then Edmonds' blossom search from every free vertex; certificate: Tutte–Berge "
              "bound with U = the Gallai–Edmonds set A (maximum matching ≤ (n + |U| − odd components of G − U)/2)")
    return Matching(pairs, upper, method)


def nearest_real_digit(x: Tensor, y: Tensor, x_train: Tensor, y_train: Tensor, norm: str,
                       eps: float) -> NearestDigits:
    """For each test image, the nearest training image of another class within ``norm`` distance ``eps``.

    Such an image is a genuine adversarial example found without a gradient. Returns ``NearestDigits``
    (``mask`` bool ``[N]``, ``index`` int64 ``[N]`` into ``x_train`` or -1, ``distance`` float64 ``[N]``).
    """
    pairs = close_pairs(x, y, norm, _checks.nonnegative("eps", eps), other=(x_train, y_train))
    distance = np.full(len(x), np.inf)
    index = np.full(len(x), -1, dtype=np.int64)
    order = np.lexsort((pairs.j, pairs.distance, pairs.i))  # by test image, then distance, then training index
    tests, first = np.unique(pairs.i[order], return_index=True)
    distance[tests], index[tests] = pairs.distance[order][first], pairs.j[order][first]
    return NearestDigits(torch.from_numpy(index >= 0), torch.from_numpy(index), torch.from_numpy(distance))


def _hex(values: np.ndarray) -> str:
    """Indices (< 2³²) as the hex of little-endian uint32: compact in JSON, read back by ``unhex``."""
    return np.asarray(values, dtype="<u4").tobytes().hex()


def unhex(text: str) -> np.ndarray:
    """Inverse of the rows' packed index lists (``matched``, ``nearest_pairs``): int64 ``[k, 2]``."""
    return np.frombuffer(bytes.fromhex(text), dtype="<u4").astype(np.int64).reshape(-1, 2)


def bound_row(x: Tensor, y: Tensor, x_train: Tensor, y_train: Tensor, norm: str, eps: float) -> dict:
    """One row of ``results/bounds.json`` for the test images ``x``: the conflict graph, its matching and bound,
    and the nearest-real-digit count (indices packed by ``_hex``; ``unhex`` reads them)."""
    from advlib import records, runtime
    clock = [time.perf_counter()]
    n = len(x)
    graph = conflict_graph(x, y, norm, eps)
    clock.append(time.perf_counter())
    matching = maximum_matching(n, graph.i, graph.j)
    clock.append(time.perf_counter())
    near = nearest_real_digit(x, y, x_train, y_train, norm, eps)
    clock.append(time.perf_counter())
    hit = near.mask.numpy()
    return {
        "norm": norm, "eps": float(eps), "n": n, "pairs": len(graph.i),
        "vertices": int(np.unique(np.r_[graph.i, graph.j]).size), "matching": len(matching.pairs),
        "max_matching_upper": matching.upper, "exact": matching.exact,
        "upper_bound": (n - len(matching.pairs)) / n, "upper_bound_best": (n - matching.upper) / n,
        "method": matching.method, "matched": _hex(matching.pairs.ravel()),
        "closest_conflict": float(graph.distance.min()) if len(graph.distance) else None,
        "nearest_real_digit": int(hit.sum()), "nearest_real_digit_fraction": float(hit.mean()),
        "nearest_pairs": _hex(np.stack([np.flatnonzero(hit), near.index.numpy()[hit]], axis=1).ravel()),
        "seconds": round(clock[-1] - clock[0], 2),
        "seconds_parts": dict(zip(("graph", "matching", "nearest_real_digit"), np.diff(clock).round(2).tolist())),
        "git_revision": records.git_revision(),
        "device": runtime.device_name(torch.device("cpu")),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def default_path() -> Path:
    """``results/bounds.json`` in the results folder (``discovery.results_root``)."""
    from advlib import discovery
    return discovery.results_root() / "bounds.json"


def compute(out: str | Path | None = None, norms: tuple[str, ...] = lp.NORMS, *, subset: int = SUBSET,
            quiet: bool = False) -> dict:
    """Compute every missing row of ``EPSILONS`` for ``norms`` on the whole MNIST test set and its first
    ``subset`` images (nearest real digits from the 60k training set), writing the sealed document after each row
    (resumable: rows present are kept unless the data's fingerprints changed). Returns the document."""
    from advlib import data, records
    norms = tuple(lp.check_norm(nm) for nm in norms)
    path = Path(out) if out is not None else default_path()
    fingerprints = {"test": data.fingerprint("test"), "train": data.fingerprint("train")}
    doc: dict = {"rows": {}}
    if path.exists():
        try:
            doc = records.read_document(path, KIND)
        except records.RecordError as err:
            log.warning("recomputing every row: %s", err)
        if doc.get("data") != fingerprints:
            log.warning("%s was computed on other MNIST files (%s); recomputing every row", path, doc.get("data"))
            doc = {"rows": {}}
    x, y = data.load_mnist("test")
    x_train, y_train = data.load_mnist("train")
    for norm in norms:
        for eps in EPSILONS[norm]:
            for n in (None, subset):
                name = key(norm, eps, n)
                if name in doc["rows"]:
                    continue
                row = bound_row(x[:n], y[:n], x_train, y_train, norm, eps)
                doc = {**doc, "rows": {**doc["rows"], name: row}, "data": fingerprints,
                       "created": row["created"], "git_revision": row["git_revision"],
                       "epsilons": {k: list(v) for k, v in EPSILONS.items()}, "subset": subset}
                doc = records.write_document(path, doc, KIND)
                if not quiet:
                    print(f"{name}: {row['pairs']} conflicting pairs, matching {row['matching']} "
                          f"(maximum ≤ {row['max_matching_upper']}), robust accuracy ≤ "
                          f"{100 * row['upper_bound']:.2f}%, nearest real digit {row['nearest_real_digit']} "
                          f"({row['seconds']:.0f} s)", flush=True)
    return doc


def load(path: str | Path | None = None) -> dict:
    """The rows of the sealed bounds document (``records.RecordError`` if it is missing, edited or corrupt); read
    and checked once per version of the file, however many cells ask for their bound."""
    path = Path(path if path is not None else default_path())
    return _rows(path, path.stat().st_mtime_ns if path.exists() else None)


@functools.lru_cache(maxsize=8)
def _rows(path: Path, mtime: int | None) -> dict:
    from advlib import records
    return records.read_document(path, KIND)["rows"]


def upper_bound(norm: str, eps: float, n: int, path: str | Path | None = None) -> float:
    """The data's bound on the robust accuracy of any classifier on the first ``n`` test images at ``eps``."""
    lp.check_norm(norm)
    rows = load(path)
    for row in rows.values():
        if row["norm"] == norm and row["n"] == n and abs(row["eps"] - eps) <= _TOL * max(eps, 1):
            return row["upper_bound"]
    raise ValueError(f"no bound row for norm {norm!r}, eps {eps!r}, n {n!r}; rows: {', '.join(sorted(rows))}")


def exceeds(accuracy: float, norm: str, eps: float, n: int, path: str | Path | None = None) -> bool:
    """Whether a robust ``accuracy`` (a fraction) measured on the first ``n`` test images lies above the data's
    bound: then the attack that measured it provably failed on some image (a masking diagnostic, no attack)."""
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy!r}")
    return accuracy > upper_bound(norm, eps, n, path) + 0.5 / n  # half an example: float noise, never a real gap


def summary(rows: dict[str, dict]) -> "pd.DataFrame":
    """One line per row of the bounds document: pairs, matching, bound (%), whether exact, nearest real digits."""
    import pandas as pd
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["bound %"] = 100 * table["upper_bound"]
    return table[["n", "pairs", "matching", "max_matching_upper", "exact", "bound %", "nearest_real_digit",
                  "seconds"]].sort_index()


def command(out: str | Path | None, norms: list[str] | tuple[str, ...]) -> None:
    """``python -m advlib bounds``: compute the missing rows, then print the whole table."""
    doc = compute(out, tuple(norms))
    print(f"\nRobust accuracy of any classifier ≤ bound % (n test images); written to {out or default_path()}")
    print(summary(doc["rows"]).round(2).to_string())
