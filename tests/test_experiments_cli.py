"""``advlib.experiments.cli``: ``python -m advlib released-ablations`` and ``large-linf-ablations`` parse their
options, refuse bad ones with exit code 2, and hand what they parsed to the experiments."""
from __future__ import annotations

import pytest

from advlib.__main__ import main
from advlib.discovery import results_root
from advlib.experiments import cli, large_linf, released_ablations, released_settings


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, tuple, dict]]:
    """The experiments' ``run`` replaced by a recorder (and the summary by nothing)."""
    seen: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(released_ablations, "run", lambda *a, **k: seen.append(("released", a, k)) or {"items": {}})
    monkeypatch.setattr(released_ablations, "print_summary", lambda doc: None)
    monkeypatch.setattr(large_linf, "run", lambda *a, **k: seen.append(("large", a, k)) or {})
    return seen


def test_released_ablations_passes_its_options_on(calls, tmp_path):
    out = tmp_path / "abl.json"
    assert main(["released-ablations", "--n", "50", "--items", "a,c", "--n-small", "20", "--seed", "3",
                 "--out", str(out), "--tiny"]) == 0
    (name, args, kwargs), = calls
    assert name == "released" and args == (out,)
    assert kwargs["items"] == ("a", "c") and (kwargs["n"], kwargs["n_small"], kwargs["seed"]) == (50, 20, 3)
    assert kwargs["n_autoattack"] == released_settings.Settings.n_autoattack and kwargs["tiny"] is True


def test_defaults_are_the_tools_defaults(calls):
    assert main(["released-ablations"]) == 0 and main(["large-linf-ablations"]) == 0
    (_, rel_args, rel), (_, big_args, big) = calls
    assert rel_args == (results_root() / "released" / "ablations-cpu.json",)
    assert rel["items"] == released_settings.ITEMS and (rel["n"], rel["n_small"], rel["seed"]) == (1000, 200, 0)
    assert big_args == (results_root() / "beyond" / "large-linf-ablations.json",)
    assert big["models_from"] == results_root() / "large" and big["items"] == large_linf.ITEMS and big["n"] == 1000


@pytest.mark.parametrize("argv,message", [
    (["released-ablations", "--items", "a,z"], "unknown items ['z']; valid: a, b, c, d, e, f, g"),
    (["released-ablations", "--n", "0"], "must be at least 1, got 0"),
    (["released-ablations", "--n-small", "many"], "expected an integer, got 'many'"),
    (["large-linf-ablations", "--items", "d"], "unknown items ['d']; valid: a, b, c"),
])
def test_bad_options_exit_2_naming_the_valid_ones(calls, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err and not calls


def test_an_experiments_value_error_is_reported(monkeypatch, capsys, tmp_path):
    def refuse(*args, **kwargs):
        raise ValueError("no checkpoint for ['madry-linf']")
    monkeypatch.setattr(large_linf, "run", refuse)
    assert main(["large-linf-ablations", "--models-from", str(tmp_path)]) == 2
    assert "no checkpoint for" in capsys.readouterr().err


def test_the_parsers_items_are_the_experiments_items():
    assert cli.RELEASED_ITEMS == released_settings.ITEMS and cli.LARGE_LINF_ITEMS == large_linf.ITEMS
    assert cli.positive_int("7") == 7 and cli.item_list(("a", "b"))(" b, a") == ("b", "a")
