"""``advlib.experiments.released_settings``: the released-model ablations' settings, attacks and item settings."""
from __future__ import annotations

import json

import pytest
import torch

from advlib.attacks import run_attack
from advlib.experiments.released_settings import ITEMS, TITLES, Settings, item_settings, settings_of
from advlib.experiments.session import jsonable
from advlib.models import MadryCNN


def test_defaults_are_the_papers_and_the_authors_settings():
    s = Settings()
    assert (s.pgd().eps, s.pgd().steps, s.pgd().step_size, s.pgd().random_start) == (4.0, 40, 0.25, True)
    so = s.so()
    assert (so.kind, so.sigma, so.samples, so.random_start) == ("so", 0.15, 20, False)
    assert (s.n, s.n_small, s.n_autoattack, s.n_hessian, s.seed) == (1000, 200, 1000, 20, 0)
    assert set(TITLES) == set(ITEMS) == set("abcdefg")


def test_every_size_is_capped_at_n():
    s = Settings.for_n(50, n_small=500, n_autoattack=80)
    assert (s.n, s.n_small, s.n_autoattack, s.n_hessian) == (50, 50, 50, 20)
    t = Settings.tiny_for(8)
    assert t.tiny and t.n_hessian == 4 and t.autoattack == ("apgd-ce",) and t.steps == 3


def test_the_named_attacks_spend_what_they_say():
    s = Settings()
    specs = s.specs()
    assert specs["pgd"] == s.pgd() and specs["so"] == s.so()
    long, same = specs["long"], specs["long, same step"]
    assert long.steps == same.steps == s.long_steps
    assert long.step_size * long.steps == pytest.approx(s.pgd().step_size * s.pgd().steps)  # same total length
    assert same.step_size == s.pgd().step_size and same.random_start
    fixed = specs["long, same step, no random start"]
    assert fixed.steps == s.long_steps and fixed.step_size == s.pgd().step_size and not fixed.random_start
    assert [s.pgd_steps(k).step_size for k in s.curve_steps] == [s.pgd().step_size] * len(s.curve_steps)


def test_so_without_noise_and_one_draw_is_pgd_without_random_start(batch, make_generator):
    """The grid's σ = 0 row is PGD without a random start, as the settings build the two."""
    torch.manual_seed(0)
    cnn = MadryCNN().eval()
    s = Settings.tiny_for(8)
    x, y = batch
    so = run_attack(s.so(0.0, 1), cnn, x, y, generator=make_generator(2))
    pgd = run_attack(s.pgd(random_start=False), cnn, x, y, generator=make_generator(9))
    assert s.so(0.0, 1).step_size == s.pgd().step_size
    assert torch.equal(so, pgd)


def test_settings_come_back_from_a_document():
    s = Settings.tiny_for(8, seed=3)
    doc = {"settings": json.loads(json.dumps(jsonable(s.__dict__)))}
    assert settings_of(doc) == s
    with pytest.raises(ValueError, match=r"\['colour'\].*authors_draws"):
        settings_of({"settings": {**doc["settings"], "colour": "red"}})


def test_item_settings_change_with_what_the_item_depends_on():
    base, bigger = Settings(), Settings.for_n(1000, n_small=1000)
    changed = {name for name in ITEMS if item_settings(base, name) != item_settings(bigger, name)}
    assert changed == {"b", "c", "d", "e"}  # the items that run on n_small images
    assert item_settings(base, "g")["attacks"] == ["apgd-ce", "apgd-t"]
    with pytest.raises(ValueError, match="'z'.*a, b, c"):
        item_settings(base, "z")
