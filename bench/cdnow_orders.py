"""Convert lifetimes' CDNOW transaction log into churnwatch's orders format.

    python bench/cdnow_orders.py [OUT.csv]    # default bench/results/cdnow_orders.csv

CDNOW_master.txt (shipped with the lifetimes package): customer id, date YYYYMMDD, number of CDs,
dollar value; 69,659 purchases of 23,570 customers, 1997-01 to 1998-06. Output columns:
account_id, date (ISO), amount.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def cdnow_path() -> Path:
    import lifetimes

    return Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"


def convert(out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with cdnow_path().open() as src, out.open("w", newline="") as dst:
        w = csv.writer(dst)
        w.writerow(["account_id", "date", "amount"])
        next(src)  # header line
        for line in src:
            parts = line.split()
            if len(parts) != 4:
                continue
            cid, ymd, _, dollars = parts
            w.writerow([cid, f"{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}", dollars])
            n += 1
    return n


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "cdnow_orders.csv"
    print(f"{convert(target)} orders -> {target}")
