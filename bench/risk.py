"""Backtest the risk score on CDNOW (a real transaction log shipped with lifetimes).

    python bench/risk.py [--cutoff 1997-09-30 --cutoff 1997-12-31] [--horizon-days 91] [--json OUT]

Writes bench/results/cdnow_orders.csv (via bench/cdnow_orders.py), trains before each cutoff on
rolling earlier cutoffs, and prints churnwatch's metrics beside the baselines (days since last
order; BG/NBD 1 - P(alive); BG/NBD exp(-expected orders in the horizon), BG/NBD being
pipeline.risk.bgnbd), each baseline's status, and the lead times of the lost accounts. Check the
JSON independently with
python3 ../shared/tools/score.py backtest bench/results/cdnow_orders.csv bench/results/cdnow_backtest.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdnow_orders import convert

from pipeline.risk.fit import backtest, load_orders

COLS = ("roc_auc", "pr_auc", "recall_top10", "precision_top10", "recall_top20", "precision_top20",
        "flag_share_for_85pct", "flag_share_for_85pct_floor", "brier")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutoff", action="append", default=None, help="test cutoff YYYY-MM-DD (repeatable)")
    ap.add_argument("--horizon-days", type=int, default=91)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "cdnow_backtest.json"))
    args = ap.parse_args()
    orders_csv = Path(__file__).parent / "results" / "cdnow_orders.csv"
    convert(orders_csv)
    cutoffs = [date.fromisoformat(c) for c in (args.cutoff or ["1997-09-30", "1997-12-31"])]
    t0 = time.perf_counter()
    frame, _ = load_orders(orders_csv)
    t1 = time.perf_counter()
    result = backtest(frame, cutoffs, args.horizon_days)
    t2 = time.perf_counter()
    Path(args.json).write_text(json.dumps(result.to_dict()))
    print(f"CDNOW: {len(frame)} orders, {frame['account_id'].nunique()} customers; "
          f"read {t1 - t0:.1f} s, backtest {t2 - t1:.1f} s; JSON -> {args.json}")
    print(f"{'cutoff':<11} {'scorer':<22} {'n':>6} {'lost':>6} " + " ".join(f"{c:>9}" for c in COLS))
    for cutoff, m in result.metrics.items():
        rows = [("churnwatch", m)] + [(name, b[cutoff]) for name, b in result.baselines.items()]
        for name, mm in rows:
            if mm.get("status", "ok") != "ok":
                print(f"{cutoff:<11} {name:<22} unavailable: {mm.get('reason', '')}")
                continue
            print(f"{cutoff:<11} {name:<22} {mm['n']:>6} {mm['lost_share']:>6.3f} "
                  + " ".join(f"{mm.get(c, float('nan')):>9.3f}" for c in COLS))
    for cutoff, reason in result.skipped.items():
        print(f"{cutoff} skipped: {reason}")
    for cutoff, info in result.models.items():
        print(f"{cutoff} weights: " + ", ".join(f"{k} {v:+.2f}" for k, v in info["weights"].items()))
    for cutoff, lt in result.lead_times.items():
        q = lt["quantiles"]
        print(f"{cutoff} lead time (threshold {lt['threshold']:.1f}): {lt['flagged']} of {lt['lost']} lost "
              f"flagged by the cutoff; first flag median {lt['median_days']} days before the last order "
              f"(p10 {q.get('p10')}, p90 {q.get('p90')}; negative = after it)")
        print("   " + ", ".join(f"{h['bin']}: {h['count']}" for h in lt["histogram"]))


if __name__ == "__main__":
    main()
