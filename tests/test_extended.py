"""``advlib.extended``: the block beyond the paper's rows — per-example worst cases, the identity that says whether
a block is current, and one tiny end-to-end ``extend`` of a record on the quick profile's spec."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from advlib import extended, protocols, records, runtime, table
from advlib import reproduce as rep
from advlib.evaluation import evaluate, predict
from advlib.records import pack_mask, unpack_mask
from advlib.specs import AttackSpec, CURVE_RADII, L2_LITERATURE_EPS
from advlib.strong import ATTACKS, AutoAttackSpec
from conftest import acc, linear_model, make_record

QUICK = protocols.get_profile("quick")
N = 32
BLOCK_KEYS = {"config", "identity", "accuracy", "masks", "cascades", "curves", "diagnostics", "wall_time", "device",
              "autoattack_search", "git_revision", "created"}


def bits(text: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in text])


def hand_record(base: dict[str, str], ext: dict[str, str] | None) -> dict:
    n = len(next(iter(base.values())))
    rec = {"n_test": n, "masks": {k: pack_mask(bits(v)) for k, v in base.items()}}
    if ext is not None:
        rec["extended"] = {"masks": {k: pack_mask(bits(v)) for k, v in ext.items()}}
    return rec


# 11 examples: not a multiple of 8, so the packed masks are padded
BASE = {"Natural": "11111111110", "PGD-l2": "11110111110", "PGD-linf": "11111101111", "SO-l2": "11011111111",
        "SO-linf": "10111111111"}
EXT = {"AA-l2": "01111111111", "AA-linf": "11111110111", "PGD-l2@2": "11111111011", "SO-l2@2": "11111111101",
       "AA-l2@2": "11111011111"}


def _and(*names: str, masks: dict[str, str]) -> torch.Tensor:
    """Independent oracle: a per-example Python loop."""
    n = len(masks[names[0]])
    return torch.tensor([all(masks[m][i] == "1" for m in names) for i in range(n)])


# ---------------------------------------------------------------------------------------------- derived rows


def test_derived_rows_are_per_example_ands_of_their_parts():
    rows = extended.derived_rows(hand_record(BASE, EXT))
    every = {**BASE, **EXT}
    assert set(rows) == {"Worst-l2", "Worst-linf", "Worst-l2@2", "Union", "Union@2"}
    expected = {
        "Worst-l2": _and("Natural", "PGD-l2", "SO-l2", "AA-l2", masks=every),
        "Worst-linf": _and("Natural", "PGD-linf", "SO-linf", "AA-linf", masks=every),
        "Worst-l2@2": _and("Natural", "PGD-l2@2", "SO-l2@2", "AA-l2@2", masks=every),
        "Union": _and("Natural", "PGD-l2", "SO-l2", "AA-l2", "PGD-linf", "SO-linf", "AA-linf", masks=every),
        "Union@2": _and("Natural", "PGD-l2@2", "SO-l2@2", "AA-l2@2", "PGD-linf", "SO-linf", "AA-linf",
                        masks=every),
    }
    for name, mask in expected.items():
        assert rows[name].dtype == torch.bool and rows[name].shape == (11,), name
        assert torch.equal(rows[name], mask), name
    assert rows["Worst-l2"].tolist() == [False, True, False, True, False, True, True, True, True, True, False]
    assert rows["Union"].nonzero().flatten().tolist() == [3, 5, 8, 9]  # counted by hand from the masks above
    assert torch.equal(rows["Union"], rows["Worst-l2"] & rows["Worst-linf"])


def test_derived_rows_missing_where_a_part_is_missing():
    no_aa2 = {k: v for k, v in EXT.items() if k != "AA-l2@2"}
    assert set(extended.derived_rows(hand_record(BASE, no_aa2))) == {"Worst-l2", "Worst-linf", "Union"}
    no_aa_linf = {k: v for k, v in EXT.items() if k != "AA-linf"}
    assert set(extended.derived_rows(hand_record(BASE, no_aa_linf))) == {"Worst-l2", "Worst-l2@2"}
    no_so_linf = {k: v for k, v in BASE.items() if k != "SO-linf"}
    assert set(extended.derived_rows(hand_record(no_so_linf, EXT))) == {"Worst-l2", "Worst-l2@2"}


def test_a_legacy_record_without_the_block_has_no_derived_rows():
    assert extended.derived_rows(hand_record(BASE, None)) == {}
    assert extended.derived_rows(make_record("madry-linf", acc(50, 90, 1, 88))) == {}


def test_strengthened_record_takes_pgd_and_autoattack_per_example():
    rec = {**hand_record(BASE, EXT), "cell": "madry-linf", "profile": "medium", "norm_agnostic": 0.5,
           "accuracy": {k: bits(v).float().mean().item() for k, v in BASE.items()}}
    strong = extended.strengthened(rec)
    for norm in ("l2", "linf"):
        both = _and(f"PGD-{norm}", f"AA-{norm}", masks={**BASE, **EXT})
        assert torch.equal(unpack_mask(strong["masks"][f"PGD-{norm}"], 11), both), norm
        assert strong["accuracy"][f"PGD-{norm}"] == pytest.approx(both.float().mean().item())
    for row in ("Natural", "SO-l2", "SO-linf"):
        assert strong["masks"][row] == rec["masks"][row] and strong["accuracy"][row] == rec["accuracy"][row]
    assert strong["norm_agnostic"] == pytest.approx(4 / 11)  # the Union row: examples 3, 5, 8, 9
    assert strong["profile"] == f"medium, {extended.STRONG_LABEL}"
    assert rec["profile"] == "medium" and rec["masks"]["PGD-l2"] == pack_mask(bits(BASE["PGD-l2"]))  # untouched


def test_strengthened_also_takes_pgd_and_autoattack_at_the_other_l2_radius():
    rec = {**hand_record(BASE, EXT), "cell": "trades-linf", "profile": "large", "norm_agnostic": 0.5,
           "accuracy": {k: bits(v).float().mean().item() for k, v in BASE.items()}}
    rec["extended"]["accuracy"] = {k: bits(v).float().mean().item() for k, v in EXT.items()}
    strong = extended.strengthened(rec)
    both = _and("PGD-l2@2", "AA-l2@2", masks=EXT)
    assert torch.equal(unpack_mask(strong["extended"]["masks"]["PGD-l2@2"], 11), both)
    assert strong["extended"]["accuracy"]["PGD-l2@2"] == pytest.approx(9 / 11)
    assert strong["extended"]["masks"]["SO-l2@2"] == rec["extended"]["masks"]["SO-l2@2"]
    assert rec["extended"]["masks"]["PGD-l2@2"] == pack_mask(bits(EXT["PGD-l2@2"]))  # untouched


def test_strengthened_needs_the_block():
    with pytest.raises(ValueError, match="no extended block"):
        extended.strengthened({**hand_record(BASE, None), "cell": "madry-linf", "profile": "medium"})


# ---------------------------------------------------------------------------------------------- the spec


def test_extended_spec_of_the_quick_profile_and_of_the_others():
    quick, medium = extended.extended_spec(QUICK), extended.extended_spec(protocols.get_profile("medium"))
    assert list(quick.rows) == ["AA-l2", "AA-linf", "PGD-l2@2", "SO-l2@2", "AA-l2@2"]
    assert quick.rows["AA-linf"] == AutoAttackSpec("linf", 0.3, attacks=("apgd-ce", "apgd-t"), target_classes=1)
    assert medium.rows["AA-l2"] == AutoAttackSpec("l2", 4.0, attacks=ATTACKS)  # AutoAttack's standard suite
    assert quick.rows["PGD-l2@2"] == AttackSpec.pgd("l2", steps=QUICK.evaluation["PGD-l2"].steps,
                                                    eps=L2_LITERATURE_EPS)
    so = QUICK.evaluation["SO-l2"]
    assert quick.rows["SO-l2@2"] == AttackSpec.so("l2", steps=so.steps, samples=so.samples, eps=2.0)
    assert (quick.pgd_steps, quick.so_steps, quick.so_samples) == (20, 10, 4)
    assert quick.radii == CURVE_RADII
    json.dumps(quick.config())  # plain data


def test_a_bf16_search_is_in_the_block_s_identity_and_fp32_in_none(monkeypatch):
    rec = {"data": {"test": {"fingerprint": "0" * 16}}}
    monkeypatch.delenv(runtime.SEARCH_PRECISION_ENV, raising=False)
    fp32 = extended.expected_identity(QUICK, rec)
    assert "autoattack_search" not in fp32["depends"]
    monkeypatch.setenv(runtime.SEARCH_PRECISION_ENV, "bf16")
    bf16 = extended.expected_identity(QUICK, rec)
    assert bf16["depends"]["autoattack_search"] == "bf16" and bf16["key"] != fp32["key"]


def test_the_block_s_identity_depends_on_what_it_computes_not_on_its_thresholds_or_prose():
    rec = {"data": {"test": {"fingerprint": "0" * 16}}}
    quick = extended.expected_identity(QUICK, rec)
    assert quick == extended.expected_identity(replace(QUICK, description="other words", notes=()), rec)
    assert quick["key"] != extended.expected_identity(protocols.get_profile("medium"), rec)["key"]
    assert quick["key"] != extended.expected_identity(QUICK, {"data": {"test": {"fingerprint": "1" * 16}}})["key"]
    assert quick["key"] != extended.expected_identity(replace(QUICK, seed=3), rec)["key"]
    config = extended.extended_spec(QUICK).config()
    relaxed = {**config, "thresholds": {**config["thresholds"], "monotone_slack": 0.5}}
    deps = extended.extended_dependencies(relaxed, QUICK.config()["evaluation"], "0" * 16, QUICK.seed)
    assert deps == quick["depends"]  # thresholds judge the values; they do not change them
    assert "radii" not in deps and "so_every" not in deps  # at their defaults: left out


# ---------------------------------------------------------------------------------------------- extend, end to end


@pytest.fixture(scope="module")
def base(natural_linear, load_quiet, tmp_path_factory):
    """A full record (quick profile's attacks) of ``natural_linear`` on 32 test images, written and read back."""
    x, y = load_quiet("test", N)
    result = evaluate(natural_linear, x, y, QUICK.evaluation, seed=QUICK.seed)
    tensors = {"xt": x, "sources": {"test": {"kind": "test", "path": "-", "fingerprint": "0" * 16},
                                    "train": {"kind": "test", "path": "-", "fingerprint": "1" * 16}}}
    rec = rep.evaluation_record(QUICK, "madry-linf", tensors, result, "base-rev")
    path = tmp_path_factory.mktemp("ext") / "madry-linf.json"
    return x, y, records.write_record(path, rec), path


@pytest.fixture(scope="module")
def extended_record(natural_linear, base):
    """``extend`` on the quick profile's own extended spec (cheap on a linear model), every ``_correct`` call
    (spec, seed) recorded."""
    x, y, rec, _ = base
    calls = []
    real = extended._correct
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extended, "_correct", lambda m, xx, yy, spec, seed: calls.append((spec, seed)) or
                   real(m, xx, yy, spec, seed))
        out = extended.extend(natural_linear, x, y, QUICK, rec, "ext-rev")
    return out, calls


def test_extend_adds_the_block_and_leaves_the_paper_rows_alone(extended_record, base):
    out, _ = extended_record
    rec = base[2]
    assert {k: v for k, v in out.items() if k != "extended"} == rec
    block = out["extended"]
    assert set(block) == BLOCK_KEYS
    spec = extended.extended_spec(QUICK)
    assert block["identity"] == extended.expected_identity(QUICK, rec)
    assert json.loads(json.dumps(block["config"])) == json.loads(json.dumps(spec.config()))
    assert set(block["accuracy"]) == set(block["masks"]) == set(spec.rows)
    for name, text in block["masks"].items():
        assert block["accuracy"][name] == pytest.approx(unpack_mask(text, N).float().mean().item()), name
    assert set(block["cascades"]) == {"AA-l2", "AA-linf", "AA-l2@2"}
    for name, cascade in block["cascades"].items():
        assert list(cascade) == ["apgd-ce", "apgd-t"]
        assert cascade["apgd-t"] <= cascade["apgd-ce"] <= rec["accuracy"]["Natural"]
        assert cascade["apgd-t"] == block["accuracy"][name]
    assert set(block["curves"]) == {"PGD-l2", "SO-l2", "PGD-linf", "SO-linf"}
    assert block["curves"]["PGD-l2"]["eps"] == list(CURVE_RADII["l2"])
    assert block["curves"]["SO-linf"]["eps"] == list(CURVE_RADII["linf"][1::2])
    assert set(block["wall_time"]) == {*spec.rows, "curves", "diagnostics", "total"}
    assert block["device"].startswith("cpu") and block["git_revision"] == "ext-rev"
    json.dumps(block)  # plain data


def test_curve_points_reuse_the_rows_already_computed(extended_record):
    out, calls = extended_record
    block, spec = out["extended"], extended.extended_spec(QUICK)
    curves = block["curves"]
    at = lambda curve, eps: curves[curve]["accuracy"][curves[curve]["eps"].index(eps)]
    assert at("PGD-l2", 4.0) == out["accuracy"]["PGD-l2"]
    assert at("PGD-linf", 0.3) == out["accuracy"]["PGD-linf"]
    assert at("SO-l2", 4.0) == out["accuracy"]["SO-l2"]
    assert at("SO-linf", 0.3) == out["accuracy"]["SO-linf"]
    assert at("PGD-l2", 2.0) == block["accuracy"]["PGD-l2@2"]
    assert at("SO-l2", 2.0) == block["accuracy"]["SO-l2@2"]
    seed = QUICK.seed
    for name in ("PGD-l2", "PGD-linf", "SO-l2", "SO-linf"):  # the profile's rows: never recomputed
        assert (QUICK.evaluation[name], seed) not in calls, name
    for name in ("PGD-l2@2", "SO-l2@2"):  # the extended rows: computed once, as rows
        assert calls.count((spec.rows[name], seed)) == 1, name


def test_curve_points_come_from_the_records_masks(natural_linear, base):
    """A record whose PGD-l2 mask is not what PGD gives: the curve shows the record's value (and the monotonicity
    diagnostic flags the jump)."""
    x, y, rec, _ = base
    fake = {**rec, "masks": {**rec["masks"], "PGD-l2": rec["masks"]["Natural"]}}
    out = extended.extend(natural_linear, x, y, QUICK, fake, "r")
    curve = out["extended"]["curves"]["PGD-l2"]
    assert curve["accuracy"][-1] == pytest.approx(rec["accuracy"]["Natural"]) and curve["eps"][-1] == 4.0
    assert curve["accuracy"][-2] < curve["accuracy"][-1]
    assert out["extended"]["diagnostics"]["monotone in ε"]["flag"]


def test_diagnostics_have_their_fields_and_s_o_at_sigma_0_is_pgd(extended_record):
    out, _ = extended_record
    diagnostics = out["extended"]["diagnostics"]
    assert {"zero gradient", "large radius l2", "large radius linf", "monotone in ε", "4x steps l2", "5 restarts l2",
            "S-O σ=0 = PGD l2", "4x steps linf", "5 restarts linf", "S-O σ=0 = PGD linf"} == set(diagnostics)
    for name, entry in diagnostics.items():
        assert set(entry) == {"value", "threshold", "flag", "n", "what"}, name
        assert isinstance(entry["flag"], bool) and entry["n"] == N, name
    for norm in ("l2", "linf"):
        entry = diagnostics[f"S-O σ=0 = PGD {norm}"]
        assert entry["value"] == 0.0 and entry["threshold"] == 0.0 and not entry["flag"]
    assert diagnostics["zero gradient"]["value"] == 0.0  # a linear model has a gradient everywhere
    assert diagnostics["large radius linf"]["value"] == 0.0  # ε = 0.5 reaches the grey image


def test_extend_refuses_a_model_that_did_not_make_the_record(base):
    x, y, rec, _ = base
    with pytest.raises(ValueError, match="clean predictions differ"):
        extended.extend(linear_model(5), x, y, QUICK, rec, "r")


def test_current_is_false_for_a_legacy_record_and_true_after_extend(extended_record, base):
    out, _ = extended_record
    assert not extended.current(base[2], QUICK)
    assert not extended.current(make_record("madry-linf", acc(1, 2, 3, 4)), QUICK)
    assert extended.current(out, QUICK)
    assert not extended.current(out, protocols.get_profile("medium"))  # another extended configuration
    stale = {**out, "extended": {**out["extended"], "identity": {**out["extended"]["identity"], "key": "0" * 16}}}
    assert not extended.current(stale, QUICK)


def test_a_record_with_the_block_is_valid_and_a_legacy_one_still_loads(extended_record, base, tmp_path):
    out, _ = extended_record
    legacy_path = base[3]
    written = records.write_record(tmp_path / "madry-linf.json", out)
    read = records.assemble(tmp_path / "madry-linf.json")
    assert read == json.loads(json.dumps(written)) and read["extended"] == json.loads(json.dumps(out["extended"]))
    side = records.side_path(tmp_path / "madry-linf.json", "extended")
    tampered = json.loads(side.read_text())
    tampered["accuracy"]["AA-l2"] = 0.5 if tampered["accuracy"]["AA-l2"] != 0.5 else 0.25
    side.write_text(json.dumps(tampered))
    with pytest.warns(UserWarning, match="digest"):  # the side file's digest covers the block
        assert "extended" not in records.assemble(tmp_path / "madry-linf.json")
    legacy = records.read_record(legacy_path)
    assert "extended" not in legacy and not extended.current(legacy, QUICK)
    frame = table.extended_rows({"madry-linf": read, "trades-l2": legacy})
    assert list(frame.index) == list(table.EXTENDED_LABELS.values())
    assert frame["trades-l2"].isna().all()
    assert frame["madry-linf"].notna().all()
    derived = extended.derived_rows(read)
    assert frame.loc["AutoAttack (ℓ2)", "madry-linf"] == pytest.approx(100 * read["extended"]["accuracy"]["AA-l2"])
    assert frame.loc["norm-agnostic, all attacks", "madry-linf"] == pytest.approx(
        100 * derived["Union"].float().mean().item())
    assert table.extended_rows({"x": make_record("madry-l2", acc(1, 2, 3, 4))}).isna().all().all()


def test_block_masks_agree_with_the_model(natural_linear, extended_record, base):
    """The block's masks are the model's: PGD at ℓ2 ε = 2 rerun here gives the stored mask."""
    out, _ = extended_record
    x, y, _, _ = base
    from advlib.attacks import run_attack
    spec = extended.extended_spec(QUICK).rows["PGD-l2@2"]
    x_adv = run_attack(spec, natural_linear, x, y, generator=torch.Generator().manual_seed(QUICK.seed))
    assert torch.equal(unpack_mask(out["extended"]["masks"]["PGD-l2@2"], N), predict(natural_linear, x_adv) == y)
    assert not math.isnan(out["extended"]["wall_time"]["total"])


def test_diagnose_black_box_and_monotonicity_from_hand_made_masks(natural_linear, base):
    """``diagnose`` on given masks: the share of white-box-robust points that Square breaks (Square after APGD-CE
    in ℓ2, Square alone in ℓ∞: then the clean mask is what it starts from), and the largest rise of a curve."""
    x, y, _, _ = base
    spec = extended.ExtendedSpec(rows={}, pgd_steps=2, so_steps=2, so_samples=1)
    evaluation = {name: AttackSpec.pgd(name[4:], steps=2) for name in ("PGD-l2", "PGD-linf")}
    g = torch.Generator().manual_seed(0)
    masks = {k: torch.rand(N, generator=g) < 0.8 for k in ("Natural", "PGD-l2", "SO-l2", "PGD-linf", "SO-linf")}
    ce = masks["Natural"] & (torch.rand(N, generator=g) < 0.9)
    cascades = {"AA-l2": {"apgd-ce": ce, "square": ce & (torch.rand(N, generator=g) < 0.7)},
                "AA-linf": {"square": masks["Natural"] & (torch.rand(N, generator=g) < 0.7)}}
    curve = {"PGD-l2": {"eps": [1.0, 2.0, 3.0], "accuracy": [0.5, 0.3, 0.45]},
             "PGD-linf": {"eps": [0.1, 0.2], "accuracy": [0.4, 0.42]}}
    out = extended.diagnose(natural_linear, x, y, spec, evaluation, masks, cascades, curve, seed=0)
    for norm, before in (("l2", ce), ("linf", masks["Natural"])):
        white = [i for i in range(N) if before[i] and masks[f"PGD-{norm}"][i] and masks[f"SO-{norm}"][i]]
        broken = [i for i in white if not cascades[f"AA-{norm}"]["square"][i]]
        entry = out[f"black box {norm}"]
        assert entry["n"] == len(white) > 0 and len(broken) > 0
        assert entry["value"] == pytest.approx(len(broken) / len(white)) and entry["flag"]
    assert out["monotone in ε"]["value"] == pytest.approx(0.15) and out["monotone in ε"]["flag"]


def test_s_o_without_noise_is_pgd_exactly_on_a_real_robust_model_on_a_cpu():
    """The "S-O σ=0 = PGD" diagnostic flagged 10 of the 12 large records and the released model, all extended on an
    H100 (largest pixel gaps 0.02-1.0). On a CPU the two attacks agree to the last bit on the released TRADES model
    at the large profile's settings (40 steps in both norms), the model the H100 flagged most: the gap is GPU
    arithmetic (kernels chosen per batch shape, amplified over 40 steps), not a difference between the attacks."""
    from advlib import models
    model = models.load_trades_smallcnn("cpu").eval()
    from advlib.data import load_mnist
    x, y = load_mnist("test", limit=32)
    spec = extended.extended_spec(protocols.get_profile("large"))
    for norm in ("l2", "linf"):
        gap = extended._so_without_noise_gap(model, x, y, spec, protocols.get_profile("large").evaluation[f"PGD-{norm}"],
                                            seed=0)
        assert gap == 0.0, norm
