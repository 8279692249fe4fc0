"""``python -m advlib released-ablations``, ``large-linf-ablations``, ``protocol-rows``, ``union-rows``,
``variants``, ``keep`` and ``kernel-check``: the argument parsing.

``add_commands`` adds the subcommands to ``advlib.__main__``'s parser; the experiments themselves are imported
only when a command runs.
"""
from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

RELEASED_ITEMS = ("a", "b", "c", "d", "e", "f", "g")  # as released_settings.ITEMS (kept light: no torch import)
LARGE_LINF_ITEMS = ("a", "b", "c")                    # as large_linf.ITEMS


def positive_int(text: str) -> int:
    """An integer of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def item_list(valid: tuple[str, ...]):
    """An argparse type: comma-separated item letters, each one of ``valid``."""
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(i.strip() for i in text.split(",") if i.strip())
        unknown = [i for i in items if i not in valid]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"unknown items {unknown or text!r}; valid: {', '.join(valid)}")
        return items
    return parse


def _released(args: argparse.Namespace) -> None:
    import torch

    from advlib.discovery import results_root
    from advlib.experiments import released_ablations
    torch.set_num_threads(args.threads)
    out = args.out or results_root() / "released" / "ablations-cpu.json"
    doc = released_ablations.run(out, n=args.n, items=args.items, n_small=args.n_small,
                                 n_autoattack=args.n_autoattack, seed=args.seed, tiny=args.tiny,
                                 log=partial(print, flush=True))
    released_ablations.print_summary(doc)


def _large_linf(args: argparse.Namespace) -> None:
    from advlib.discovery import results_root
    from advlib.experiments import large_linf
    out = args.out or results_root() / "beyond" / "large-linf-ablations.json"
    models_from = args.models_from or results_root() / large_linf.PROFILE
    large_linf.run(out, n=args.n, items=args.items, models_from=models_from, tiny=args.tiny,
                   log=partial(print, flush=True))


def profile_name(text: str) -> str:
    """A profile's name (argparse type), one of ``advlib.protocols.PROFILES``."""
    from advlib import protocols
    if text not in protocols.PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {text!r}; valid: {', '.join(protocols.PROFILES)}")
    return text


def cell_list(text: str) -> str:
    """Comma-separated cells or keywords (argparse type), as ``advlib.protocols.parse_cells`` takes them."""
    from advlib import protocols
    try:
        protocols.parse_cells(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _protocol_rows(args: argparse.Namespace) -> None:
    import torch

    from advlib.experiments import protocol_rows
    torch.set_num_threads(args.threads)
    protocol_rows.run(args.profile, args.cells, args.results, again=args.again, log=partial(print, flush=True))


def _union_rows(args: argparse.Namespace) -> None:
    import torch

    from advlib.experiments import union_rows
    torch.set_num_threads(args.threads)
    union_rows.run(args.profile, args.cells, args.results, autoattack=not args.no_autoattack,
                   log=partial(print, flush=True))


def variant_list(text: str) -> list[str]:
    """Comma-separated variant names (argparse type), each one of ``advlib.variants.VARIANTS``."""
    from advlib import variants
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in variants.VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown or text!r}; valid: {', '.join(variants.VARIANTS)}")
    return names


def _variants(args: argparse.Namespace) -> None:
    import torch

    from advlib.experiments import variant_runs
    torch.set_num_threads(args.threads)
    from advlib import protocols
    cells = None if args.cells is None else protocols.parse_cells(args.cells)
    variant_runs.run(args.names, args.results, cells=cells, log=partial(print, flush=True))


def _keep(args: argparse.Namespace) -> None:
    from advlib import kept
    for path in args.records:
        doc = kept.keep(path, args.results)
        print(f"kept {doc['file']} ({doc['bytes'] / 2 ** 20:.1f} MB); images whose outcome differs from the record "
              f"on the stored fp16 weights: {doc['differing']}", flush=True)
    total = kept.total_bytes(args.results)
    print(f"kept models: {total / 2 ** 20:.1f} MB of the {kept.BUDGET_BYTES / 2 ** 20:.0f} MB budget", flush=True)
    if total > kept.BUDGET_BYTES:
        raise SystemExit("over the budget: remove a kept model (results/models/)")


def _kernel_check(args: argparse.Namespace) -> None:
    from advlib.experiments import kernels
    kernels.run(args.profile, args.cell, args.steps, args.out, log=partial(print, flush=True))


def step_list(text: str) -> tuple[int, ...]:
    """Comma-separated positive step counts (argparse type)."""
    steps = tuple(positive_int(t.strip()) for t in text.split(",") if t.strip())
    if not steps:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts, got {text!r}")
    return steps


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the experiments' subcommands (the module's list) to the subcommands ``sub``."""
    rel = sub.add_parser("released-ablations", help="ablations of the TRADES authors' released MNIST model "
                                                    "(chapter 12; resumable)")
    rel.add_argument("--n", type=positive_int, default=1000,
                     help="N, the most test images any item uses (default 1000)")
    rel.add_argument("--out", type=Path, default=None,
                     help="results document (default results/released/ablations-cpu.json)")
    rel.add_argument("--items", type=item_list(RELEASED_ITEMS), default=RELEASED_ITEMS,
                     help=f"comma-separated items to run (default all: {','.join(RELEASED_ITEMS)})")
    rel.add_argument("--n-small", type=positive_int, default=200,
                     help="n of items b, c, d (S-O) and e (traces), capped at N (default 200)")
    rel.add_argument("--n-autoattack", type=positive_int, default=1000,
                     help="n of item g, capped at N (default 1000)")
    rel.add_argument("--seed", type=int, default=0)
    rel.add_argument("--threads", type=positive_int, default=1,
                     help="torch intra-op threads (default 1: on 2 cores shared with another job, measured "
                          "0.95 ms per image-gradient with 1 thread against 1.8 ms with 2)")
    rel.add_argument("--tiny", action="store_true", help="test only: tiny settings, meaningless numbers")
    rel.set_defaults(run=_released)
    big = sub.add_parser("large-linf-ablations", help="chapter 10's ablations of the large profile's ℓ∞-trained "
                                                      "models (needs their checkpoints; resumable)")
    big.add_argument("--n", type=positive_int, default=1000, help="test images (default 1000)")
    big.add_argument("--out", type=Path, default=None,
                     help="results document (default results/beyond/large-linf-ablations.json)")
    big.add_argument("--items", type=item_list(LARGE_LINF_ITEMS), default=LARGE_LINF_ITEMS,
                     help=f"comma-separated items (default all: {','.join(LARGE_LINF_ITEMS)})")
    big.add_argument("--models-from", type=Path, default=None,
                     help="folder whose checkpoints/ hold the large models (default results/large)")
    big.add_argument("--tiny", action="store_true", help="test only: tiny settings, meaningless numbers")
    big.set_defaults(run=_large_linf)
    rows = sub.add_parser("protocol-rows", help="train Table 1 models again on this CPU, compare them with the "
                                                "committed records and add the paper's PGD-l2 protocol rows "
                                                "(resumable)")
    rows.add_argument("--profile", type=profile_name, default="medium", help="the records' profile (default medium)")
    rows.add_argument("--cells", type=cell_list, default=None,
                      help="comma-separated cells, or 'all' (default: the 12 Table 1 cells)")
    rows.add_argument("--results", type=Path, default=None, help="records folder (default results/<profile>)")
    rows.add_argument("--threads", type=positive_int, default=2,
                      help="torch intra-op threads (default 2: the medium records were made with 2)")
    rows.add_argument("--again", action="store_true",
                      help="check cells already in the document once more (e.g. under other kernels), keeping "
                           "their earlier entries")
    rows.set_defaults(run=_protocol_rows)
    uni = sub.add_parser("union-rows", help="add the rows the union leaderboard reads and no profile evaluates "
                                            "(ℓ1: PGD and AutoAttack) beside records whose model is kept or "
                                            "checkpointed (resumable)")
    uni.add_argument("--profile", default="medium", help="a profile or variant (default medium)")
    uni.add_argument("--cells", type=cell_list, default=None,
                     help="comma-separated cells (default: every record in the results folder)")
    uni.add_argument("--results", type=Path, default=None, help="records folder (default results/<profile>)")
    uni.add_argument("--no-autoattack", action="store_true", help="add the PGD rows only")
    uni.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads (default 2)")
    uni.set_defaults(run=_union_rows)
    var = sub.add_parser("variants", help="train and evaluate the profile variants of advlib.variants (ablations of "
                                          "the divergences' causes, seed spread) into results/variants/ (resumable)")
    var.add_argument("--names", type=variant_list, default=None,
                     help="comma-separated variants (default all, in order)")
    var.add_argument("--cells", type=cell_list, default=None,
                     help="comma-separated cells: only these of each variant's cells (default all)")
    var.add_argument("--results", type=Path, default=None, help="results root (default results/)")
    var.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads (default 2)")
    var.set_defaults(run=_variants)
    keep = sub.add_parser("keep", help="store recorded models as fp16 in results/models/, re-evaluated on the stored "
                                       "weights (advlib.kept)")
    keep.add_argument("records", nargs="+", type=Path, help="record files whose checkpoints exist, e.g. "
                                                            "results/medium/madry-l2.json")
    keep.add_argument("--results", type=Path, default=None, help="results root (default results/)")
    keep.set_defaults(run=_keep)
    ker = sub.add_parser("kernel-check", help="the same training on this CPU's own kernels, one thread and AVX2-capped "
                                              "kernels (ATen, oneDNN): how far weights and predictions drift apart "
                                              "(resumable)")
    ker.add_argument("--profile", type=profile_name, default="medium", help="profile (default medium)")
    ker.add_argument("--cell", type=cell_list, default="madry-l2", help="one cell (default madry-l2)")
    ker.add_argument("--steps", type=step_list, default=None,
                     help="comma-separated step counts to compare at (default kernels.STEPS: 1,10,100 and the "
                          "medium profile's whole training, 1000)")
    ker.add_argument("--out", type=Path, default=None, help="document (default results/kernel-check.json)")
    ker.set_defaults(run=_kernel_check)
