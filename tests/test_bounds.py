"""The data's own bound (``advlib.bounds``): conflict graphs and matchings known by hand, the closed 2ε boundary,
the nearest-real-digit attack, ``exceeds``, the resumable command, and the committed ``results/bounds.json``."""
from __future__ import annotations

import itertools
import math

import networkx as nx  # a dependency of torch; here an independent oracle for maximum matchings
import numpy as np
import pytest
import torch

from advlib import bounds, data, records, specs
from advlib.__main__ import main
from conftest import REPO

COMMITTED = REPO / "results" / "bounds.json"


def images(*pixels: list[float]) -> torch.Tensor:
    """Tiny images ``[N,1,1,D]`` from rows of pixel values."""
    return torch.tensor(pixels, dtype=torch.float32).reshape(len(pixels), 1, 1, -1)


def labels(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def edges(pairs: bounds.Pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.i.tolist(), pairs.j.tolist()))


def brute_force(a: np.ndarray, ya: np.ndarray, b: np.ndarray, yb: np.ndarray, norm: str, radius: float,
                same: bool) -> set[tuple[int, int]]:
    """Independent oracle on integer pixel levels k (images k/255): every difference, exact integer arithmetic."""
    diff = a[:, None, :].astype(np.int64) - b[None, :, :].astype(np.int64)
    limit = 255 * radius * (1 + 1e-9)
    near = ((diff ** 2).sum(-1) <= limit ** 2) if norm == "l2" else (np.abs(diff).max(-1) <= limit)
    near &= ya[:, None] != yb[None, :]
    if same:
        near &= np.triu(np.ones_like(near), 1)
    return set(zip(*map(np.ndarray.tolist, np.nonzero(near))))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_path_triangle_star_and_their_maximum_matchings(norm):
    eps = 0.125  # 2ε = 0.25: exactly representable, so the path's neighbours sit exactly at 2ε
    path = [[0.25 * k, 0.0] for k in range(5)]  # labels alternate: a path of 4 edges, maximum matching 2
    graph = bounds.conflict_graph(images(*path), labels(0, 1, 0, 1, 0), norm, eps)
    assert edges(graph) == {(0, 1), (1, 2), (2, 3), (3, 4)}
    assert np.allclose(graph.distance, 0.25)
    matching = bounds.maximum_matching(5, graph.i, graph.j)
    assert len(matching.pairs) == matching.upper == 2 and matching.exact

    triangle = [[0.5, 0.5], [0.6, 0.5], [0.55, 0.6]]  # three classes, all pairs within 2ε
    graph = bounds.conflict_graph(images(*triangle), labels(0, 1, 2), norm, eps)
    assert edges(graph) == {(0, 1), (0, 2), (1, 2)}
    assert len(bounds.maximum_matching(3, graph.i, graph.j).pairs) == 1

    star = [[0.5, 0.5], [0.7, 0.5], [0.3, 0.5], [0.5, 0.7], [0.5, 0.3]]  # leaves 0.2 from the centre, one class
    graph = bounds.conflict_graph(images(*star), labels(0, 1, 1, 1, 1), norm, eps)
    assert edges(graph) == {(0, 1), (0, 2), (0, 3), (0, 4)}
    matching = bounds.maximum_matching(5, graph.i, graph.j)
    assert len(matching.pairs) == 1 and matching.exact  # robust accuracy ≤ 4/5 whatever the classifier


def test_same_class_pairs_are_ignored_and_different_classes_conflict_at_distance_zero():
    x = images([0.2, 0.4], [0.2, 0.4], [0.2, 0.4])
    for norm in ("l2", "linf"):
        assert edges(bounds.conflict_graph(x, labels(3, 3, 3), norm, 0.0)) == set()
        assert edges(bounds.conflict_graph(x, labels(3, 3, 5), norm, 0.0)) == {(0, 2), (1, 2)}


@pytest.mark.parametrize("norm, eps, apart, beyond", [
    ("linf", 0.3, [153, 0], [154, 0]),    # 153/255 = 0.6 = 2ε exactly; one level more is outside
    ("l2", 0.5, [153, 204], [154, 204]),  # (153, 204, 255) is Pythagorean: ℓ2 distance 255/255 = 1 = 2ε exactly
])
def test_pixel_levels_at_exactly_two_eps_conflict_one_level_more_does_not(norm, eps, apart, beyond):
    # float32 rounds k/255 (0.6 → 0.6000000238…), so without the exact k/255 levels these pairs would drift apart
    for shift, conflicting in ((apart, True), (beyond, False)):
        x = images([0.0, 0.0], [s / 255 for s in shift])
        assert (len(bounds.conflict_graph(x, labels(0, 1), norm, eps).i) == 1) is conflicting


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_close_pairs_agree_with_brute_force_within_a_set_and_across_sets(norm):
    gen = torch.Generator().manual_seed(0)
    # pixel levels near 255 (large norms): the matmul identity's worst cancellation; few levels: many exact ties
    ka, kb = torch.randint(235, 256, (60, 16), generator=gen), torch.randint(235, 256, (80, 16), generator=gen)
    a, b = (k.reshape(-1, 1, 4, 4) / 255 for k in (ka, kb))
    ya, yb = torch.randint(0, 3, (60,), generator=gen), torch.randint(0, 3, (80,), generator=gen)
    diff = (ka[:, None] - kb[None]).double()
    distances = ((diff.norm(dim=-1) if norm == "l2" else diff.abs().amax(-1)) / 255).flatten()
    for q in (0.05, 0.3, 0.7):
        radius = float(distances.sort().values[int(q * len(distances))])  # an actual distance: ties at the radius
        within = bounds.close_pairs(a, ya, norm, radius)
        assert edges(within) == brute_force(ka.numpy(), ya.numpy(), ka.numpy(), ya.numpy(), norm, radius, same=True)
        across = bounds.close_pairs(a, ya, norm, radius, other=(b, yb))
        assert edges(across) == brute_force(ka.numpy(), ya.numpy(), kb.numpy(), yb.numpy(), norm, radius, same=False)
        assert 0 < len(across.i) < len(a) * len(b)  # the radius cuts through the distances
        assert np.any(np.isclose(across.distance, radius, rtol=1e-12))  # pairs exactly at the radius are kept
        assert np.all(within.distance <= radius * (1 + 1e-9))


def test_maximum_matching_equals_networkx_and_its_certificate_is_tight():
    rng = np.random.default_rng(1)
    for _ in range(150):  # random graphs full of odd cycles, where greedy and blossom-free search fall short
        n, p = int(rng.integers(2, 30)), rng.uniform(0.05, 0.5)
        i, j = np.nonzero(np.triu(rng.random((n, n)) < p, 1))
        matching = bounds.maximum_matching(n, i, j)
        graph = nx.Graph(zip(i.tolist(), j.tolist()))
        assert len(matching.pairs) == matching.upper == len(nx.max_weight_matching(graph, maxcardinality=True))
        assert all(graph.has_edge(u, v) for u, v in matching.pairs.tolist())
        assert len(np.unique(matching.pairs)) == 2 * len(matching.pairs)  # disjoint


def test_tutte_berge_bound_is_an_upper_bound_for_any_vertex_set():
    # two triangles joined through vertex 6: removing it leaves two odd components, so ν ≤ (7 + 1 − 2)/2 = 3
    i, j = np.array([0, 0, 1, 3, 3, 4, 6, 6]), np.array([1, 2, 2, 4, 5, 5, 0, 3])
    removed = np.zeros(7, dtype=bool)
    removed[6] = True
    assert bounds.tutte_berge_bound(7, i, j, removed) == 3 == len(bounds.maximum_matching(7, i, j).pairs)
    assert bounds.tutte_berge_bound(7, i, j, np.zeros(7, dtype=bool)) == 3  # U = ∅: one component of 7


def test_maximum_matching_rejects_bad_graphs():
    with pytest.raises(ValueError, match="self-loop at vertex 2"):
        bounds.maximum_matching(3, np.array([2]), np.array([2]))
    with pytest.raises(ValueError, match=r"vertices in \[0, 3\)"):
        bounds.maximum_matching(3, np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        bounds.maximum_matching(-1, np.array([]), np.array([]))
    assert len(bounds.maximum_matching(4, np.array([]), np.array([])).pairs) == 0


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_nearest_real_digit_finds_the_nearest_training_image_of_another_class(norm):
    eps = 0.25  # binary fractions below: distances are exact in float32
    test = images([0.5, 0.5], [0.125, 0.125], [0.875, 0.875])
    train = images([0.5, 0.5625],   # 0: class 0 like test 0, 0.0625 from it: ignored
                   [0.5, 0.625],    # 1: class 1, 0.125 from test 0
                   [0.5, 0.4375],   # 2: class 2, 0.0625 from test 0: its nearest real digit
                   [0.125, 0.25],   # 3: class 1 like test 1, the only image within ε of it
                   [0.875, 0.625])  # 4: class 0, exactly ε from test 2: counts (closed ball)
    y_train = labels(0, 1, 2, 1, 0)
    found = bounds.nearest_real_digit(test, labels(0, 1, 2), train, y_train, norm, eps)
    assert found.mask.tolist() == [True, False, True]
    assert found.index.tolist() == [2, -1, 4]
    assert found.distance[0].item() == 0.0625 and found.distance[2].item() == eps
    assert math.isinf(found.distance[1].item())
    assert not bounds.nearest_real_digit(test, labels(0, 1, 2), train, y_train, norm, 0.06).mask.any()


def test_invalid_inputs_name_the_bad_value():
    x, y = images([0.0], [1.0]), labels(0, 1)
    with pytest.raises(ValueError, match="unknown norm 'l1'; valid choices: 'l2', 'linf'"):
        bounds.conflict_graph(x, y, "l1", 0.3)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got -0.1"):
        bounds.conflict_graph(x, y, "l2", -0.1)
    with pytest.raises(ValueError, match=r"valid range is \[0,1\]"):
        bounds.conflict_graph(images([0.0], [2.0]), y, "l2", 0.3)
    with pytest.raises(ValueError, match="other images have 2 pixels, x has 1"):
        bounds.nearest_real_digit(x, y, images([0.0, 0.0]), labels(0), "l2", 0.3)
    assert bounds.key("l2", 4) == "l2@4.0" and bounds.key("linf", 0.3, 1000) == "linf@0.3@1000"


def sealed_rows(tmp_path, upper: float = 0.6):
    row = {"norm": "l2", "eps": 4.0, "n": 10, "upper_bound": upper}
    path = tmp_path / "bounds.json"
    records.write_document(path, {"rows": {"l2@4.0": row, "l2@4.0@5": {**row, "n": 5, "upper_bound": 0.2}}},
                           bounds.KIND)
    return path


def test_exceeds_compares_an_accuracy_with_its_row(tmp_path):
    path = sealed_rows(tmp_path)
    assert bounds.exceeds(0.7, "l2", 4.0, 10, path)
    assert not bounds.exceeds(0.6, "l2", 4.0, 10, path)  # at the bound: no proof of failure
    assert bounds.exceeds(0.4, "l2", 4.0, 5, path) and not bounds.exceeds(0.2, "l2", 4.0, 5, path)
    with pytest.raises(ValueError, match="accuracy must be a fraction in \\[0, 1\\], got 97.0"):
        bounds.exceeds(97.0, "l2", 4.0, 10, path)
    with pytest.raises(ValueError, match="no bound row for norm 'linf', eps 0.3, n 10; rows: l2@4.0, l2@4.0@5"):
        bounds.exceeds(0.5, "linf", 0.3, 10, path)
    path.write_text(path.read_text().replace("0.6", "0.9"))
    with pytest.raises(records.RecordError, match="digest"):
        bounds.exceeds(0.7, "l2", 4.0, 10, path)


def test_the_command_computes_missing_rows_only_and_resumes(tmp_path, monkeypatch, capsys):
    real = data.load_mnist
    monkeypatch.setattr(data, "load_mnist", lambda split: real(split, limit=300 if split == "test" else 3000))
    monkeypatch.setattr(bounds, "EPSILONS", {"l2": (4.0,), "linf": (0.3,)})
    out = tmp_path / "bounds.json"
    assert main(["bounds", "--out", str(out), "--norms", "l2"]) == 0
    first = records.read_document(out, bounds.KIND)
    assert sorted(first["rows"]) == ["l2@4.0", "l2@4.0@1000"]
    assert first["rows"]["l2@4.0"]["n"] == 300 and first["rows"]["l2@4.0"]["pairs"] > 0
    assert "l2@4.0@1000" in capsys.readouterr().out

    def refuse(*args, **kwargs):
        raise AssertionError("a row already in the file was computed again")

    monkeypatch.setattr(bounds, "bound_row", refuse)
    assert bounds.compute(out, ("l2",), quiet=True)["rows"] == first["rows"]
    with pytest.raises(AssertionError, match="computed again"):
        bounds.compute(out, ("linf",), quiet=True)


def test_radii_cover_table_1_and_lie_on_the_robustness_curves():
    for norm, radii in bounds.EPSILONS.items():
        assert specs.EPS[norm] in radii
        assert set(radii) <= set(specs.CURVE_RADII[norm])


@pytest.fixture(scope="module")
def committed() -> dict:
    return records.read_document(COMMITTED, bounds.KIND)  # sealed: schema, kind and digest checked


@pytest.fixture(scope="module")
def mnist() -> tuple[torch.Tensor, ...]:
    return (*data.load_mnist("test"), *data.load_mnist("train"))


def test_committed_bounds_have_every_row_and_field(committed, mnist):
    assert committed["data"] == {"test": data.fingerprint("test"), "train": data.fingerprint("train")}
    expected = {bounds.key(norm, eps, n) for norm, radii in bounds.EPSILONS.items()
                for eps, n in itertools.product(radii, (None, bounds.SUBSET))}
    assert expected <= set(committed["rows"])
    for name, row in committed["rows"].items():
        assert set(bounds.REQUIRED) <= set(row), name
        assert row["n"] == (bounds.SUBSET if name.endswith(f"@{bounds.SUBSET}") else len(mnist[0]))
        assert row["upper_bound"] == pytest.approx((row["n"] - row["matching"]) / row["n"])
        assert row["matching"] <= row["max_matching_upper"] <= row["vertices"] // 2
        assert row["exact"] == (row["matching"] == row["max_matching_upper"])
        assert len(bounds.unhex(row["matched"])) == row["matching"]
        assert len(bounds.unhex(row["nearest_pairs"])) == row["nearest_real_digit"]
    # a prefix of the test set has at most the whole set's conflicts
    for norm, radii in bounds.EPSILONS.items():
        for eps in radii:
            whole, part = committed["rows"][bounds.key(norm, eps)], committed["rows"][bounds.key(norm, eps, 1000)]
            assert part["pairs"] <= whole["pairs"] and part["nearest_real_digit"] <= whole["nearest_real_digit"]


def test_committed_matchings_and_nearest_digits_hold_on_the_real_images(committed, mnist):
    """Re-checks each row's evidence directly: matched pairs disjoint, of different classes, ≤ 2ε apart;
    each nearest real digit of another class and within ε (pixel levels k/255, compared exactly)."""
    x, y, x_train, y_train = mnist
    levels, train_levels = (torch.round(t.flatten(1).double() * 255) for t in (x, x_train))
    for name, row in committed["rows"].items():
        limit = 255 * row["eps"] * (1 + 1e-9)
        pairs = torch.from_numpy(bounds.unhex(row["matched"]))
        if len(pairs):
            assert len(torch.unique(pairs)) == 2 * len(pairs) and int(pairs.max()) < row["n"], name
            assert torch.all(y[pairs[:, 0]] != y[pairs[:, 1]]), name
            delta = levels[pairs[:, 0]] - levels[pairs[:, 1]]
            dist = delta.norm(dim=1) if row["norm"] == "l2" else delta.abs().amax(1)
            assert torch.all(dist <= 2 * limit), name
        near = torch.from_numpy(bounds.unhex(row["nearest_pairs"]))
        if len(near):
            assert torch.all(y[near[:, 0]] != y_train[near[:, 1]]), name
            delta = levels[near[:, 0]] - train_levels[near[:, 1]]
            dist = delta.norm(dim=1) if row["norm"] == "l2" else delta.abs().amax(1)
            assert torch.all(dist <= limit), name
