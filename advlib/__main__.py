"""Command line: ``python -m advlib tour`` (start here), ``reproduce --profile P``, ``table results/P``, ``smoke``."""
from __future__ import annotations

import argparse
import logging
import textwrap
import sys
from pathlib import Path

from advlib import protocols


def _reproduce(args: argparse.Namespace) -> None:
    from advlib.reproduce import reproduce
    reproduce(args.profile, args.cells, args.out, args.device, args.quiet, args.time_budget, args.extended)
    if not args.quiet:
        print(f"records in {args.out or Path('results') / args.profile}; "
              f"show them with: python -m advlib table {args.out or Path('results') / args.profile}")


def _table(args: argparse.Namespace) -> None:
    from advlib import records, table
    found = records.load_records(args.results)
    recs, others = table.table1(found), {c: r for c, r in found.items() if c not in protocols.CELLS}
    if not recs and not others:
        raise ValueError(f"no valid records in {args.results}")
    if recs:
        profiles = sorted({r["profile"] for r in recs.values()})
        print(f"Table 1 — ours/paper, accuracy in %; profile(s): {', '.join(profiles)}; "
              f"{len(recs)} of {len(protocols.CELLS)} cells; n_test = "
              f"{', '.join(sorted({str(r['n_test']) for r in recs.values()}))}")
        print(table.compact(recs).to_string())
        missing = [c for c in protocols.CELL_ORDER if c not in recs]
        if missing:
            print(textwrap.fill("no record yet: " + ", ".join(missing), width=110))
        print("norm-agnostic: the per-example worst case, correct on the clean image and under all four attacks (%).")
    if others:
        print("\nBeyond Table 1 (multi-norm training), accuracy in %:")
        print(table.union_summary(others).round(1).to_string())
    if any("extended" in r for r in found.values()):
        print("\nExtended rows (AutoAttack, ℓ2 ε = 2, per-example worst cases), accuracy in %:")
        print(table.extended_rows({c: r for c, r in found.items() if "extended" in r}).round(1).to_string())
    if args.figure:
        from advlib import plots
        fig = plots.table_heatmaps(recs)
        fig.savefig(args.figure, bbox_inches="tight", dpi=120)
        print(f"figure saved to {args.figure}")


def _released(args: argparse.Namespace) -> None:
    from advlib import extended, released, table
    rec = released.evaluate_released(args.profile, args.out, args.device, extend=args.extended, quiet=args.quiet)
    rows = {**{table.LABELS.get(k, k): v for k, v in rec["accuracy"].items()},
            **extended.row_accuracies(rec)}
    print(f"TRADES' released SmallCNN, {rec['profile']} profile's attacks, n = {rec['n_test']}, {rec['device']}:")
    print(textwrap.fill(", ".join(f"{k} {100 * v:.1f}%" for k, v in rows.items()), width=110))


def _tour(args: argparse.Namespace) -> None:
    from advlib import tour
    tour.run(args.out, args.device)
    print(f"\nNext: python -m advlib table {args.out}\n      jupyter-book build .   (the book, in _build/html)\n"
          "      python -m advlib reproduce --profile medium   (all 12 cells on this CPU, about an hour)")


def _check(args: argparse.Namespace) -> int:
    from advlib import verify
    root = Path(args.results)
    findings = verify.verify(root)
    print(verify.report(findings, root))
    return 1 if verify.failed(findings) else 0


def _divergences(args: argparse.Namespace) -> None:
    from advlib import divergences
    divergences.command(args.out)


def _smoke(args: argparse.Namespace) -> None:
    import json
    from advlib import smoke
    report = smoke.run(args.device, protocols.parse_cells(args.cells))
    print(json.dumps(report, indent=1))
    print(f"smoke check passed on {report['device']} in {report['seconds']:.1f} s")


def _union(args: argparse.Namespace) -> None:
    from advlib import union
    union.command(args.results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="train and evaluate Table 1 cells, one JSON record each")
    rep.add_argument("--profile", default="quick", help=f"one of {', '.join(protocols.PROFILES)} (default quick)")
    rep.add_argument("--cells", default=None, help="comma-separated cells, e.g. madry-linf,trades-l2, or 'all' (the 12 Table 1 cells, "
                          "the default), 'multi' (max-union, avg-union, msd-union), 'all,multi'")
    rep.add_argument("--out", default=None, help="results folder (default results/<profile>)")
    rep.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars")
    rep.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                     help="stop cleanly before this many seconds: start a cell only if it is expected to fit, "
                          "checkpoint and stop training at the limit (the next call resumes)")
    rep.add_argument("--extended", action="store_true",
                     help="also run the extended evaluation (AutoAttack in both norms, ℓ2 ε = 2, robustness curves, "
                          "gradient-masking diagnostics) on each cell's model and add it to its record")
    rep.set_defaults(run=_reproduce)
    rel = sub.add_parser("released", help="the TRADES authors' released MNIST model under a profile's attacks")
    rel.add_argument("--profile", default="quick", help=f"one of {', '.join(protocols.PROFILES)} (default quick)")
    rel.add_argument("--out", default=None, help="results folder (default results/released)")
    rel.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    rel.add_argument("--extended", action="store_true", help="also the extended evaluation (see reproduce)")
    rel.add_argument("--quiet", action="store_true", help="no progress bars")
    rel.set_defaults(run=_released)
    tab = sub.add_parser("table", help="print Table 1 from records against the paper")
    tab.add_argument("results", help="folder of records, e.g. results/medium")
    tab.add_argument("--figure", default=None, help="also save the Δ heatmap to this file (png/pdf/svg)")
    tab.set_defaults(run=_table)
    trip = sub.add_parser("tour", help="the first run: the committed Table 1 and verdicts, then the central "
                                       "claim's two cells reproduced live (about 13 min on 2 CPU cores)")
    trip.add_argument("--out", default=str(Path("results") / "tour"), help="results folder (default results/tour)")
    trip.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    trip.set_defaults(run=_tour)
    chk = sub.add_parser("check", help="every committed record and side file against the code: current / stale / "
                                       "invalid (and rows missing); exits 1 on any stale or invalid file")
    chk.add_argument("results", nargs="?", default="results", help="results folder (default results/)")
    chk.set_defaults(run=_check)
    div = sub.add_parser("divergences", help="every Table 1 cell more than 5 points from the paper, with its cause and "
                                             "evidence, into results/divergences.csv")
    div.add_argument("--out", default=None, help="CSV file (default results/divergences.csv)")
    div.set_defaults(run=_divergences)
    smk = sub.add_parser("smoke", help="seconds-long check of every code path on one device (run first on a GPU)")
    smk.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    smk.add_argument("--cells", default=None, help="comma-separated cells (default all 12)")
    smk.set_defaults(run=_smoke)
    bnd = sub.add_parser("bounds", help="the data's own bound on any classifier's robust accuracy (test pairs of "
                                        "different classes ≤ 2ε apart) and the nearest-real-digit attack (resumable)")
    bnd.add_argument("--out", default=None, help="sealed JSON document (default results/bounds.json)")
    bnd.add_argument("--norms", nargs="+", default=["l2", "linf"], choices=["l2", "linf"], help="default both")
    bnd.set_defaults(run=lambda args: __import__("advlib.bounds").bounds.command(args.out, args.norms))  # lazy: scipy
    uni = sub.add_parser("union", help="the union leaderboard: every model's accuracy under every attack in both "
                                       "norms at once (ℓ∞ 0.3 ∪ ℓ2 2.0, then ℓ2 4.0 with the data's bound), "
                                       "with the published multi-norm rows")
    uni.add_argument("--results", default=None, help="results folder (default results/)")
    uni.set_defaults(run=_union)
    from advlib.experiments import cli as experiments_cli
    experiments_cli.add_commands(sub)  # released-ablations, large-linf-ablations, protocol-rows, union-rows
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "reproduce":
            protocols.get_profile(args.profile)
            protocols.parse_cells(args.cells)
        code = args.run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
