"""Ablations on the TRADES authors' released MNIST SmallCNN: what makes the paper's TRADES-ℓ∞ column?

    nice -n 10 python -m advlib released-ablations [--n 1000] [--out results/released/ablations-cpu.json]
                                                   [--items a,b,...] [--n-small 200] [--seed 0] [--threads 1]

The Table 1 record of this model (``results/released/trades-released.json``, 10,000 test images) has PGD-ℓ2 far
above S-O-ℓ2, as the paper has. These items take the model apart on the first test images (each item's own n
is recorded; ``--n`` is N, the most any item uses):

  a. PGD-ℓ2 (ε 4.0, 40 steps of 0.25) with and without a random start (n = N);
  b. PGD-ℓ2 at S-O's budget of 40 steps × 20 draws = 800 gradients: the worst of 20 random restarts, and one
     run of 800 steps, of the same total length (steps of 0.0125) and of the same step (0.25, with and without
     a random start), and PGD with 40, 100, 200, 400 and 800 steps of 0.25 (n = N_SMALL);
  c. S-O-ℓ2 on a grid of σ × draws (n = N_SMALL; σ = 0 is PGD without a random start, whatever the draws);
  d. the authors' clamp to [0,1] after the last step (``advlib.ablations.so_clamp_at_end``) against advlib's
     clamp after every step, for S-O (authors' settings, n = N_SMALL) and PGD without a random start (n = N);
  e. ‖∇ₓL‖₂ at the clean points (n = N) and along PGD-ℓ2 and S-O-ℓ2 (traces: the paper's Figure 1,
     n = N_SMALL), for the released model and a naturally trained Madry CNN (the quick profile's "natural");
  f. the dominant eigenvalue of ∇²ₓL at the first 20 clean points (power iteration), both models, with the
     alignment of the gradient and of the S-O direction to its eigenvector;
  g. AutoAttack ℓ2 ε = 4.0, APGD-CE then APGD-T (9 target classes) (n = N_AUTOATTACK).

N_SMALL = min(N, 200) (the authors' test batch) keeps the default run within about 45 minutes on 2 CPU cores
shared with another job (measured at N = 1000, one thread: a 2 min, b 11 min, c 8 min, d 3 min, e 7 min, f 5 s,
g 5 min). Every attack run is stored (accuracy, packed correctness mask, seconds) in a sealed document of kind
``store.RELEASED_ABLATIONS`` and written at once, so a killed run resumes where it stopped; an item whose
settings (``released_settings.item_settings``) are already in the file is skipped.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from advlib import data, models, runtime
from advlib.experiments import store
from advlib.experiments.released_items import RUNNERS
from advlib.experiments.released_settings import ITEMS, TITLES, Settings, item_settings
from advlib.experiments.session import Session, jsonable, provenance, trained_identity

WHAT = "ablations of the TRADES authors' released MNIST SmallCNN (advlib.experiments.released_ablations)"


def natural_model(profile: str, device: torch.device) -> nn.Module:
    """The naturally trained Madry CNN of ``profile`` (trained on first use and cached; about a minute for quick)."""
    from advlib.reproduce import trained_model
    return trained_model(profile, "natural", device=device)


def model_identity(profile: str) -> dict[str, dict]:
    """What the two models are, for the document: the released file, and the natural model's identity key."""
    from advlib.released import SOURCE
    return {"released": {"architecture": "smallcnn", "source": SOURCE, "md5": models.TRADES_SMALLCNN_MD5},
            "natural": trained_identity(profile, "natural")}


def run_item(ctx: Session, name: str) -> dict:
    """Item ``name``: skipped if the document has it with the same settings, else computed and saved."""
    wanted = item_settings(ctx.settings, name)
    have = ctx.doc["items"].get(name)
    if have is not None and have.get("settings") == wanted:
        ctx.log(f"item {name} ({TITLES[name]}): already done, skipped")
        return have
    ctx.log(f"item {name} ({TITLES[name]}) …")
    start = time.perf_counter()
    results = RUNNERS[name](ctx)
    item = {"title": TITLES[name], "settings": wanted, "results": results, "seconds": time.perf_counter() - start,
            **{k: v for k, v in provenance(ctx.device).items() if k != "written"}}
    ctx.doc["items"][name] = item
    ctx.save()
    ctx.log(f"item {name} done in {item['seconds']:.0f} s")
    return item


def run(out: str | Path, *, n: int = Settings.n, items: tuple[str, ...] = ITEMS, n_small: int = Settings.n_small,
        n_autoattack: int = Settings.n_autoattack, seed: int = 0, tiny: bool = False,
        log: Callable[[str], None] = print) -> dict:
    """Run ``items`` (resuming the document at ``out``) and return the document; ``tiny``: tests only."""
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        raise ValueError(f"unknown items {unknown}; valid: {', '.join(ITEMS)}")
    for name, value in (("n", n), ("n_small", n_small), ("n_autoattack", n_autoattack)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    settings = (Settings.tiny_for if tiny else Settings.for_n)(n, seed=seed, n_small=n_small,
                                                              n_autoattack=n_autoattack)
    runtime.tune_allocator()
    device = runtime.default_device()
    x, y = data.load_mnist("test", limit=settings.n, device=device)
    nets = {"released": models.load_trades_smallcnn(device), "natural": natural_model(settings.natural_profile, device)}
    doc = store.load(out, store.RELEASED_ABLATIONS, WHAT, jsonable(asdict(settings)))
    ctx = Session(settings, store.RELEASED_ABLATIONS, Path(out), device, x, y, nets,
                  model_identity(settings.natural_profile), doc, log)
    ctx.doc["data"] = {"split": "test", "first": settings.n, "fingerprint": data.fingerprint("test", limit=settings.n)}
    log(f"released-model ablations: N = {settings.n}, {runtime.device_name(device)}, out {out}")
    for name in items:
        run_item(ctx, name)
    ctx.save()
    return ctx.doc


def summary_rows(doc: dict) -> list[tuple[str, str, str]]:
    """(item, what, value with its n) for the printed table; items not in ``doc`` are left out."""
    items, rows = doc["items"], []

    def pct(v: float) -> str:
        return f"{100 * v:5.1f} %"
    if "a" in items:
        r = items["a"]["results"]
        rows += [("a", f"PGD-l2, {name}", f"{pct(r[name]['accuracy'])}  n={r[name]['n']}")
                 for name in ("random start", "no random start")]
    if "b" in items:
        r = items["b"]["results"]
        long_rows = (("long", ""), ("long_same_step", ""), ("long_same_step_no_random_start", ", no random start"))
        rows += ([("b", f"PGD-l2, worst of {r['restarts']['restarts']} restarts",
                   f"{pct(r['restarts']['accuracy'])}  n={r['n']}")]
                 + [("b", f"PGD-l2, {r[k]['steps']} steps of {r[k]['step_size']:g}{tail}",
                     f"{pct(r[k]['accuracy'])}  n={r['n']}") for k, tail in long_rows]
                 + [("b", "S-O-l2, authors' settings", f"{pct(r['so_authors']['accuracy'])}  n={r['n']}")])
    if "c" in items:
        rows += [("c", f"S-O-l2 sigma={c['sigma']} draws={c['draws']}", f"{pct(c['accuracy'])}  n={c['n']}")
                 for c in items["c"]["results"]["cells"]]
    if "d" in items:
        rows += [("d", f"{name}: advlib / clamp at end",
                  f"{pct(r['advlib']['accuracy'])} / {pct(r['clamp_at_end']['accuracy'])}, "
                  f"{r['comparison']['differ']} differ  n={r['comparison']['n']}")
                 for name, r in items["d"]["results"].items()]
    if "e" in items:
        r = items["e"]["results"]
        rows += [("e", f"{model}: clean ||grad||_2 median, share < 1e-6",
                  f"{c['q50']:.3g}, {100 * c['share_below_1e-6']:.1f} %  n={c['n']}")
                 for model, c in r["clean"].items()]
        rows += [("e", f"{name}: mean ||grad||_2 first -> last",
                  f"{t['grad_norm'][0]:.3g} -> {t['grad_norm'][-1]:.3g}  n={t['n']}")
                 for name, t in r["traces"].items()]
    if "f" in items:
        rows += [("f", f"{model}: median top Hessian eigenvalue", f"{r['median_eigenvalue']:.3g}  n={r['n']}")
                 for model, r in items["f"]["results"].items()]
    if "g" in items:
        r = items["g"]["results"]
        rows += [("g", f"AutoAttack l2 after {k}", f"{pct(v)}  n={r['n']}") for k, v in r["accuracy"].items()]
    return rows


def print_summary(doc: dict) -> None:
    """The ``summary_rows`` table and each item's seconds."""
    rows = summary_rows(doc)
    width = max((len(w) for _, w, _ in rows), default=10)
    print(f"\n{'item':4s}  {'what':{width}s}  value")
    for item, what, value in rows:
        print(f"{item:4s}  {what:{width}s}  {value}")
    print(f"seconds per item: { {k: round(v['seconds']) for k, v in doc['items'].items()} }")
