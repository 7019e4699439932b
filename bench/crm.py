"""Time `crm import` of the five sample exports into a fresh database, then a re-import.

    python bench/crm.py [--db URL] [--dir samples/crm]

Without --db a SQLite file in a temporary folder is used. With a PostgreSQL URL the database must
exist and be empty (or migrated); the script migrates it and imports into it. Prints, per file, the
rows imported/updated/unchanged/bad and the seconds taken, for the first import and the second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.crm.importer import import_csv
from pipeline.store import init_db, make_engine, session_scope

KINDS = ("accounts", "contacts", "orders", "activities", "support")


def run(url: str, folder: Path) -> None:
    engine = make_engine(url)
    init_db(engine)
    for label in ("first import", "re-import"):
        total = 0.0
        for kind in KINDS:
            t0 = time.perf_counter()
            with session_scope(engine) as session:
                r = import_csv(session, folder / f"{kind}.csv", kind)
            dt = time.perf_counter() - t0
            total += dt
            print(f"{label:13} {kind:11} imported={r.imported:5} updated={r.updated:4} "
                  f"unchanged={r.unchanged:5} bad={len(r.bad_rows):3} {dt:7.2f} s")
        print(f"{label:13} {'all five':11} {total:.2f} s  ({engine.dialect.name})")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: a temporary SQLite file)")
    ap.add_argument("--dir", default=str(Path(__file__).resolve().parents[1] / "samples" / "crm"),
                    help="folder holding accounts.csv, contacts.csv, orders.csv, activities.csv, support.csv")
    args = ap.parse_args()
    if args.db:
        run(args.db, Path(args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(args.dir))


if __name__ == "__main__":
    main()
