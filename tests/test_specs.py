"""``advlib.specs``: the documented default attack settings, the spec's helpers and validation, and that no other
module of advlib writes those defaults itself (issue 8: one home for attack settings)."""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

import advlib
from advlib import specs
from advlib.specs import AttackSpec

# The defaults as documented in docs/protocols.md and the README, written out here by hand (not read from specs).
PAPER_EPS = {"l2": 4.0, "linf": 0.3}


def fields_of(spec: AttackSpec) -> dict:
    return dataclasses.asdict(spec)


# ---------------------------------------------------------------------------------------------- the defaults


def test_the_constants_are_the_documented_values():
    assert specs.EPS == PAPER_EPS
    assert specs.SIGMA == {"l2": 0.15, "linf": 0.1}
    assert (specs.STEPS, specs.SAMPLES) == (40, 20)
    assert (specs.RELATIVE_STEP, specs.MADRY_LINF_STEP, specs.SO_LINF_L2_STEP) == (2.5, 0.01, 0.28)
    assert specs.SO_LINF_L2_STEP == pytest.approx(0.01 * math.sqrt(784))  # the ℓ2 length of a 0.01 sign step
    assert (specs.KINDS, specs.LOSSES, specs.LINF_STEPS) == (("pgd", "so"), ("ce", "cw"), ("sign", "l2"))
    assert specs.CLAMPS == ("step", "end")


def test_linf_pgd_is_madrys_40_steps_of_0_01():
    assert fields_of(AttackSpec.pgd("linf")) == {
        "kind": "pgd", "norm": "linf", "eps": 0.3, "steps": 40, "step_size": 0.01, "random_start": True,
        "sigma": 0.0, "samples": 1, "linf_step": "sign", "loss": "ce", "clamp": "step"}


def test_l2_pgd_is_40_steps_of_0_25():
    assert fields_of(AttackSpec.pgd("l2")) == {
        "kind": "pgd", "norm": "l2", "eps": 4.0, "steps": 40, "step_size": 0.25, "random_start": True,
        "sigma": 0.0, "samples": 1, "linf_step": "sign", "loss": "ce", "clamp": "step"}


@pytest.mark.parametrize("norm, sigma, step", [("l2", 0.15, 0.25), ("linf", 0.1, 0.01)])
def test_second_order_has_the_authors_sigma_20_draws_and_no_random_start(norm, sigma, step):
    assert fields_of(AttackSpec.so(norm)) == {
        "kind": "so", "norm": norm, "eps": PAPER_EPS[norm], "steps": 40, "step_size": step, "random_start": False,
        "sigma": sigma, "samples": 20, "linf_step": "sign", "loss": "ce", "clamp": "step"}


@pytest.mark.parametrize("factory, norm, kwargs, step", [
    (AttackSpec.pgd, "linf", {"steps": 5}, 2.5 * 0.3 / 5),
    (AttackSpec.pgd, "l2", {"steps": 10}, 2.5 * 4.0 / 10),
    (AttackSpec.pgd, "l2", {"steps": 40}, 2.5 * 4.0 / 40),
    (AttackSpec.so, "linf", {"steps": 20}, 2.5 * 0.3 / 20),
    (AttackSpec.so, "l2", {"steps": 3, "samples": 2}, 2.5 * 4.0 / 3),
    (AttackSpec.pgd, "linf", {"eps": 0.1}, 2.5 * 0.1 / 40),  # Madry's 0.01 only at his own (ε, steps) = (0.3, 40)
    (AttackSpec.pgd, "l2", {"eps": 2.0, "steps": 4}, 2.5 * 2.0 / 4),
])
def test_the_reduced_step_rule_is_2_5_eps_over_steps(factory, norm, kwargs, step):
    spec = factory(norm, **kwargs)
    assert spec.step_size == pytest.approx(step, rel=1e-12)
    assert specs.default_step_size(norm, spec.eps, spec.steps) == pytest.approx(step, rel=1e-12)


def test_default_step_size_is_madrys_only_at_his_radius_and_step_count():
    assert specs.default_step_size("linf", 0.3, 40) == 0.01
    assert specs.default_step_size("linf", 0.3, 39) == pytest.approx(2.5 * 0.3 / 39)
    assert specs.default_step_size("l2", 4.0, 40) == pytest.approx(0.25)
    assert specs.default_step_size("l1", 12.0, 40) == pytest.approx(0.75)  # the same rule for ℓ1
    with pytest.raises(ValueError, match="unknown norm 'l0'"):
        specs.default_step_size("l0", 0.3, 40)


@pytest.mark.parametrize("factory", [AttackSpec.pgd, AttackSpec.so])
def test_zero_steps_get_a_default_step_instead_of_dividing_by_zero(factory):
    spec = factory("linf", eps=1, steps=0)  # tests/test_errors.py: "0 steps" is a valid value
    assert spec.steps == 0 and spec.step_size >= 0


def test_second_order_with_a_bad_norm_raises_value_error_even_with_eps_and_step_given():
    with pytest.raises(ValueError, match="unknown norm 'l0'; valid choices: 'l1', 'l2', 'linf'"):
        AttackSpec.so("l0", eps=1.0, step_size=0.1)


# ---------------------------------------------------------------------------------------------- ℓ1


def test_l1_radius_is_the_literatures_and_stays_out_of_table_1s():
    assert specs.L1_LITERATURE_EPS == 10.0  # Maini et al.'s current MNIST table (resources/multinorm_literature.csv)
    assert specs.EPS == PAPER_EPS and specs.DEFAULT_EPS == {**PAPER_EPS, "l1": 10.0}


def test_l1_pgd_is_40_sparse_steps_of_0_625_at_eps_10():
    assert fields_of(AttackSpec.pgd("l1")) == {
        "kind": "pgd", "norm": "l1", "eps": 10.0, "steps": 40, "step_size": 0.625, "random_start": True,
        "sigma": 0.0, "samples": 1, "linf_step": "sign", "loss": "ce", "clamp": "step"}
    assert AttackSpec.pgd("l1", eps=10.0, steps=100).step_size == pytest.approx(0.25)
    assert AttackSpec.pgd("l1").step_norm == "l1"
    one = AttackSpec.fgsm("l1")
    assert (one.eps, one.steps, one.step_size, one.random_start) == (10.0, 1, 10.0, False)


def test_l1_second_order_needs_a_sigma():
    with pytest.raises(ValueError, match=r"S-O's default σ is the authors' for 'l2', 'linf' only; give sigma= for "
                                         r"norm 'l1'"):
        AttackSpec.so("l1")
    spec = AttackSpec.so("l1", sigma=0.1, samples=2)
    assert (spec.eps, spec.sigma, spec.step_size, spec.random_start) == (10.0, 0.1, 0.625, False)


def test_l1_added_no_field_to_attack_spec():
    """ℓ1 is a value of ``norm``, not a new field: the configs (so the record keys) of ℓ2/ℓ∞ specs are unchanged."""
    assert list(fields_of(AttackSpec.pgd("l2"))) == ["kind", "norm", "eps", "steps", "step_size", "random_start",
                                                     "sigma", "samples", "linf_step", "loss", "clamp"]


def test_linf_second_order_along_l2_steps_0_28():
    spec = AttackSpec.so("linf", linf_step="l2")
    assert (spec.step_size, spec.linf_step, spec.step_norm) == (pytest.approx(0.28), "l2", "l2")
    # fewer steps: the ℓ2 length (√784 = 28 times) of the step rule's sign step 2.5·ε/steps
    assert AttackSpec.so("linf", steps=10, linf_step="l2").step_size == pytest.approx(28 * 2.5 * 0.3 / 10)
    assert AttackSpec.so("linf").step_norm == "linf"
    assert AttackSpec.so("linf", linf_step="l2", step_size=0.1).step_size == 0.1  # a given step wins
    assert AttackSpec.pgd("linf").step_norm == "linf" and AttackSpec.pgd("l2").step_norm == "l2"


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_fgsm_is_one_step_of_eps_from_x_itself(norm):
    assert fields_of(AttackSpec.fgsm(norm)) == {
        "kind": "pgd", "norm": norm, "eps": PAPER_EPS[norm], "steps": 1, "step_size": PAPER_EPS[norm],
        "random_start": False, "sigma": 0.0, "samples": 1, "linf_step": "sign", "loss": "ce", "clamp": "step"}
    small = AttackSpec.fgsm(norm, eps=0.05, loss="cw")
    assert (small.eps, small.steps, small.step_size, small.random_start, small.loss) == (0.05, 1, 0.05, False, "cw")


def test_given_values_override_the_defaults():
    spec = AttackSpec.so("l2", steps=7, samples=3, eps=1.0, sigma=0.5, step_size=0.2, loss="cw")
    assert (spec.steps, spec.samples, spec.eps, spec.sigma, spec.step_size, spec.loss) == (7, 3, 1.0, 0.5, 0.2, "cw")
    pgd = AttackSpec.pgd("linf", steps=3, eps=0.2, step_size=0.05, random_start=False)
    assert (pgd.steps, pgd.eps, pgd.step_size, pgd.random_start) == (3, 0.2, 0.05, False)
    assert AttackSpec.so("l2", sigma=0.0).sigma == 0.0  # an explicit 0 is not "unset"


# ---------------------------------------------------------------------------------------------- helpers


def test_scaled_multiplies_eps_and_step_only():
    spec = AttackSpec("pgd", "l2", 4.0, 7, 0.5, random_start=False)
    assert spec.scaled(0.25) == AttackSpec("pgd", "l2", 1.0, 7, 0.125, random_start=False)
    assert spec.scaled(1.0) == spec
    so = AttackSpec.so("linf", steps=4, samples=3, loss="cw")
    half = so.scaled(0.5)
    assert (half.eps, half.step_size) == (pytest.approx(0.15), pytest.approx(so.step_size / 2))
    assert {k: v for k, v in fields_of(half).items() if k not in ("eps", "step_size")} == \
        {k: v for k, v in fields_of(so).items() if k not in ("eps", "step_size")}
    zero = spec.scaled(0.0)
    assert (zero.eps, zero.step_size) == (0.0, 0.0)
    assert spec == AttackSpec("pgd", "l2", 4.0, 7, 0.5, random_start=False)  # specs are values: nothing mutated


def test_with_eps_keeps_the_step_to_eps_ratio():
    spec = AttackSpec.pgd("linf")
    small = spec.with_eps(0.1)
    assert small.eps == pytest.approx(0.1) and small.steps == 40
    assert small.step_size / small.eps == pytest.approx(0.01 / 0.3)
    assert AttackSpec.pgd("l2", steps=10).with_eps(2.0).step_size == pytest.approx(0.5)
    with pytest.raises(ValueError, match="eps > 0"):
        AttackSpec.pgd("l2", eps=0.0).with_eps(1.0)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got -1"):
        spec.with_eps(-1)


def test_with_steps_keeps_the_total_length():
    spec = AttackSpec.pgd("linf")
    short = spec.with_steps(20)
    assert (short.steps, short.step_size, short.eps) == (20, pytest.approx(0.02), 0.3)
    assert short.steps * short.step_size == pytest.approx(40 * 0.01)
    assert spec.with_steps(40) == spec
    assert AttackSpec.so("l2").with_steps(10).step_size == pytest.approx(1.0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        spec.with_steps(0)


def test_specs_are_frozen_and_hashable():
    spec = AttackSpec.pgd("l2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.eps = 1.0  # type: ignore[misc]
    assert len({spec, AttackSpec.pgd("l2"), AttackSpec.pgd("linf")}) == 2


def test_clamp_end_is_the_authors_l2_loop_without_a_random_start():
    assert AttackSpec.pgd("l2").clamp == AttackSpec.so("l2").clamp == AttackSpec.fgsm("linf").clamp == "step"
    pgd = AttackSpec.pgd("l2", random_start=False, clamp="end")
    assert (pgd.clamp, pgd.random_start, pgd.norm) == ("end", False, "l2")
    so = AttackSpec.so("l2", clamp="end")
    assert so.clamp == "end" and fields_of(so) == {**fields_of(AttackSpec.so("l2")), "clamp": "end"}
    assert dataclasses.replace(AttackSpec.pgd("l2", random_start=False), clamp="end") == pgd
    assert pgd.scaled(0.5).clamp == pgd.with_eps(2.0).clamp == pgd.with_steps(10).clamp == "end"


def test_clamp_is_last_so_positional_specs_keep_their_meaning():
    names = [f.name for f in dataclasses.fields(AttackSpec)]
    assert names[-1] == "clamp" and AttackSpec("pgd", "l2", 1.0, 2, 0.5, False).clamp == "step"


def test_the_clamp_field_at_its_default_is_in_no_key_and_every_committed_record_stays_current():
    from advlib import identity, verify
    from conftest import REPO
    assert "clamp" not in identity.spec_config(AttackSpec.pgd("l2"))
    assert identity.spec_config(AttackSpec.so("l2", clamp="end"))["clamp"] == "end"
    findings = verify.verify(REPO / "results")
    assert any(f.state == "current" and f.path.name == "madry-linf.json" for f in findings)
    assert not verify.failed(findings), verify.report([f for f in findings if verify.failed([f])], REPO / "results")


def test_config_holds_every_field():
    ce = AttackSpec.pgd("linf", steps=5).config()
    assert ce == {"kind": "pgd", "norm": "linf", "eps": 0.3, "steps": 5, "step_size": pytest.approx(0.15),
                  "random_start": True, "sigma": 0.0, "samples": 1, "linf_step": "sign", "loss": "ce", "clamp": "step"}
    cw = AttackSpec.pgd("linf", steps=5, loss="cw").config()
    assert cw["loss"] == "cw" and {k: v for k, v in cw.items() if k != "loss"} == \
        {k: v for k, v in ce.items() if k != "loss"}
    assert json.loads(json.dumps(AttackSpec.so("l2").config())) == AttackSpec.so("l2").config()


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("build, message", [
    (lambda: AttackSpec("cw", "l2", 1.0, 1, 1.0), r"unknown attack kind 'cw'; valid choices: 'pgd', 'so'"),
    (lambda: AttackSpec("pgd", "l0", 1.0, 1, 1.0), r"unknown norm 'l0'; valid choices: 'l1', 'l2', 'linf'"),
    (lambda: AttackSpec("pgd", "l2", 1.0, 1, 1.0, loss="mse"), r"unknown loss 'mse'; valid choices: 'ce', 'cw'"),
    (lambda: AttackSpec("so", "linf", 0.3, 1, 0.1, linf_step="l1"),
     r"unknown linf_step 'l1'; valid choices: 'sign', 'l2'"),
    (lambda: AttackSpec("pgd", "l2", -0.5, 1, 1.0), r"eps must be a finite number >= 0, got -0\.5"),
    (lambda: AttackSpec("pgd", "l2", float("nan"), 1, 1.0), r"eps must be a finite number >= 0, got nan"),
    (lambda: AttackSpec("pgd", "l2", float("inf"), 1, 1.0), r"eps must be a finite number >= 0, got inf"),
    (lambda: AttackSpec("pgd", "l2", 1.0, -1, 1.0), r"steps must be an integer >= 0, got -1"),
    (lambda: AttackSpec("pgd", "l2", 1.0, 2.5, 1.0), r"steps must be an integer >= 0, got 2\.5"),
    (lambda: AttackSpec("pgd", "l2", 1.0, 1, -0.1), r"step_size must be a finite number >= 0, got -0\.1"),
    (lambda: AttackSpec("so", "l2", 1.0, 1, 1.0, sigma=-0.1), r"sigma must be a finite number >= 0, got -0\.1"),
    (lambda: AttackSpec("so", "l2", 1.0, 1, 1.0, samples=0), r"samples must be an integer >= 1, got 0"),
    (lambda: AttackSpec.pgd("linf", eps=-0.1), r"eps must be a finite number >= 0, got -0\.1"),
    (lambda: AttackSpec.pgd("L1"), r"unknown norm 'L1'; valid choices: 'l1', 'l2', 'linf'"),
    (lambda: AttackSpec.pgd("l1", eps=-12.0), r"eps must be a finite number >= 0, got -12\.0"),
    (lambda: AttackSpec.so("l2", samples=0), r"samples must be an integer >= 1, got 0"),
    (lambda: AttackSpec.so("linf", linf_step="l1"), r"unknown linf_step 'l1'"),
    (lambda: AttackSpec.fgsm("linf", eps=float("nan")), r"eps must be a finite number >= 0, got nan"),
    (lambda: AttackSpec.fgsm("l2", loss="hinge"), r"unknown loss 'hinge'"),
    (lambda: AttackSpec.pgd("l2", clamp="never"), r"unknown clamp 'never'; valid choices: 'step', 'end'"),
    (lambda: AttackSpec.pgd("l2", clamp="end"),
     r"clamp='end' .* ℓ2 without a random start .*got norm 'l2', random_start=True"),
    (lambda: AttackSpec.so("linf", clamp="end"), r"clamp='end' .*got norm 'linf', random_start=False"),
    (lambda: AttackSpec("pgd", "linf", 0.3, 1, 0.3, False, clamp="end"), r"use clamp='step'"),
])
def test_a_bad_value_raises_value_error_naming_it(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ---------------------------------------------------------------------------------------------- one home


ADVLIB = Path(advlib.__file__).resolve().parent
#: The default attack settings' values (ε, σ, the step sizes, 0.25 = the ℓ2 step at 40 steps, 28 = √784): flagged
#: where code binds them to an attack setting. Step and sample counts are left out: every profile chooses its own.
SETTING_VALUES = {4.0, 0.3, 0.15, 0.1, 0.01, 0.25, 0.28, 2.5, 28.0}
SETTING_NAME = re.compile(r"eps|sigma|step", re.IGNORECASE)  # eps, sigma, step_size, RELATIVE_STEP, …


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    return None


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _names(t)]
    return []


def _step_rule(product: ast.BinOp) -> bool:
    """``2.5 * (something with ε in it)``, either way round."""
    for number, other in ((product.left, product.right), (product.right, product.left)):
        if _number(number) == 2.5 and any(re.search("eps", n, re.IGNORECASE)
                                          for sub in ast.walk(other) for n in _names(sub)):
            return True
    return False


def default_literals(source: str) -> list[str]:
    """Places in Python ``source`` (its code: strings, docstrings and comments are prose) that write a default
    attack setting themselves: a per-norm table of numbers (``{"l2": …, "linf": …}``, as EPS and SIGMA), the
    step rule's ``2.5 *``, or one of the default values bound to an ε/σ/step name (assignment, keyword argument,
    parameter default)."""
    found = []

    def setting(name: str | None, value: ast.AST | None, line: int) -> None:
        number = _number(value) if value is not None else None
        if name and SETTING_NAME.search(name) and number in SETTING_VALUES:
            found.append(f"line {line}: {name} = {number}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if {"l2", "linf"} <= keys and any(_number(v) is not None for v in node.values):
                found.append(f"line {node.lineno}: per-norm numbers {ast.unparse(node)}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and _step_rule(node):
            found.append(f"line {node.lineno}: step rule {ast.unparse(node)}")
        elif isinstance(node, ast.keyword):
            setting(node.arg, node.value, node.value.lineno)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in _names(target):
                    setting(name, node.value, node.lineno)
        elif isinstance(node, ast.AnnAssign):
            for name in _names(node.target):
                setting(name, node.value, node.lineno)
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            for arg, default in zip(positional[len(positional) - len(node.defaults):], node.defaults):
                setting(arg.arg, default, default.lineno)
            for arg, default in zip(node.kwonlyargs, node.kw_defaults):
                setting(arg.arg, default, arg.lineno)
    return found


def test_the_literal_finder_finds_each_kind_of_duplicate_and_ignores_prose():
    duplicates = {
        'sigma = {"l2": 0.15, "linf": 0.1}': "per-norm numbers",
        'EPS = {"linf": 0.3, "l2": 4}': "per-norm numbers",
        "step = 2.5 * eps / steps": "step rule",
        "step = eps / steps * 2.5": "step rule",
        "step = 2.5 * EPS[norm] / steps": "step rule",
        "x = pgd(m, x, y, norm='linf', eps=0.3)": "eps = 0.3",
        "s = AttackSpec.so('l2', sigma=0.15)": "sigma = 0.15",
        "def attack(x, *, step_size=0.01): ...": "step_size = 0.01",
        "def attack(x, eps=4.0): ...": "eps = 4.0",
        "SO_LINF_L2_STEP = 0.28": "SO_LINF_L2_STEP = 0.28",
        "self.step_size: float = 0.25": "step_size = 0.25",
    }
    for code, what in duplicates.items():
        found = default_literals(code)
        assert len(found) == 1 and what in found[0], (code, found)
    legitimate = [
        '"""ε = 0.3, σ = 0.15, a step of 2.5·ε/steps (0.25 for 40 steps), eps=0.3"""',
        "# sigma = 0.15, step = 2.5 * eps / steps",
        "TrainSpec(epochs=100, batch_size=128, optimizer='sgd', lr=0.01, momentum=0.9)",
        "nn.Dropout(0.25); ALPHA = 0.1; ramp = 0.3; figsize = (2.5, 4.0); x = 0.15 + eps",
        "fig, ax = plt.subplots(figsize=(2.5 * n, 3.5))",
        "spec = AttackSpec.pgd(norm, steps=40); so = AttackSpec.so(norm, steps=40, samples=20)",
        "eps = EPS[norm]; step = RELATIVE_STEP * eps / steps; sigma = SIGMA['l2']",
        "hold = 0.02; eps_scale = 1.0; NORM_LABELS = {'l2': 'ℓ2', 'linf': 'ℓ∞'}",
        "def power_iteration(model, x, y, *, iters=20, xi=1e-3): ...",
    ]
    for code in legitimate:
        assert default_literals(code) == [], code


def advlib_modules() -> list[Path]:
    return sorted(p for p in ADVLIB.rglob("*.py") if "resources" not in p.parts)


def test_the_defaults_are_written_in_specs_and_found_there():
    """Guards the scan below against passing vacuously: in specs.py itself it finds every default."""
    found = "\n".join(default_literals((ADVLIB / "specs.py").read_text(encoding="utf-8")))
    for what in ("per-norm numbers {'l2': 4.0, 'linf': 0.3}", "per-norm numbers {'l2': 0.15, 'linf': 0.1}",
                 "RELATIVE_STEP = 2.5", "MADRY_LINF_STEP = 0.01", "SIGN_STEP_L2_LENGTH = 28.0"):
        assert what in found, (what, found)


def test_no_other_module_writes_a_default_attack_setting():
    modules = [p for p in advlib_modules() if p.name != "specs.py" or p.parent != ADVLIB]
    names = {p.relative_to(ADVLIB).as_posix() for p in modules}
    assert {"attacks.py", "protocols.py", "evaluation.py", "reproduce.py", "smoke.py", "notebook.py", "tour.py",
            "training/loop.py", "training/trades.py", "training/madry.py", "training/ensemble.py",
            "training/atda.py"} <= names, sorted(names)
    hits = {p.relative_to(ADVLIB).as_posix(): default_literals(p.read_text(encoding="utf-8")) for p in modules}
    hits = {k: v for k, v in hits.items() if v}
    assert not hits, f"default attack settings written outside advlib/specs.py (use advlib.specs): {hits}"
