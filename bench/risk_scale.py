"""Score and explain a whole book of synthetic accounts on SQLite, and time it.

    python bench/risk_scale.py [--accounts 100000] [--db /tmp/risk_scale.db] [--rebuild]

Builds (once; --rebuild to redo) a SQLite store with N accounts over two years: about 8 orders
each (invoices with due and paid dates, some paid late, a few credit notes), 3 activities, a
support case for one in five, a contact each, and calls with cues (one sentence firing two cues,
an invoice dispute with its billing case) for one account in fifty. Then times, with the shipped
rules/risk.yaml, `score_accounts` (every feature with its evidence, merging one event counted once,
score, score points: what `risk score` and `risk explain` need) and `save_scores` (what `risk
score` stores). The goal is scoring and explaining 100,000 accounts in 10 s or less. Writes
bench/results/risk_scale.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import store  # noqa: E402
from pipeline.risk.score import load_risk_model, save_scores, score_accounts  # noqa: E402
from pipeline.store import Account, Call, Contact, CrmEvent, Cue, Segment, session_scope  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 12)


def build(engine, n: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    start = AS_OF - timedelta(days=730)
    accounts, events, contacts, calls, segments, cues = [], [], [], [], [], []
    inv = case = 0
    for i in range(n):
        acc = f"S{i:06d}"
        accounts.append({"id": acc, "name": f"Account {i}", "segment": rng.choice(["SMB", "Mid", "Enterprise"]),
                         "status": "active", "created_on": start})
        gap = rng.choice([30, 60, 90, 120])
        stop = AS_OF - timedelta(days=rng.choice([0, 0, 0, 60, 200]))
        d = start + timedelta(days=rng.randint(0, gap))
        while d <= stop:
            inv += 1
            amount = round(rng.uniform(100, 5000), 2)
            due = d + timedelta(days=30)
            paid = due + timedelta(days=rng.choice([-20, -10, -5, 0, 3, 15, 40]))
            events.append({"account_id": acc, "kind": "order", "occurred_on": d, "amount": amount,
                           "source_key": f"o{inv}", "attributes": {
                               "invoice_id": f"INV-{inv}", "due_date": due.isoformat(),
                               "paid_date": paid.isoformat() if paid <= AS_OF and rng.random() > 0.05 else None}})
            if rng.random() < 0.03:
                events.append({"account_id": acc, "kind": "order", "occurred_on": d + timedelta(days=5),
                               "amount": -round(amount / 4, 2), "source_key": f"cn{inv}",
                               "attributes": {"invoice_id": f"CN-{inv}"}})
            d += timedelta(days=max(7, int(rng.gauss(gap, gap / 4))))
        for k in range(3):
            day = AS_OF - timedelta(days=rng.randint(1, 400))
            events.append({"account_id": acc, "kind": "activity", "occurred_on": day, "amount": None,
                           "source_key": f"a{i}-{k}", "attributes": {
                               "type": rng.choice(["call", "email"]), "direction": "outbound",
                               "outcome": rng.choice(["answered", "replied", "no_reply", "voicemail"])}})
        if rng.random() < 0.2:
            case += 1
            events.append({"account_id": acc, "kind": "support", "occurred_on": AS_OF - timedelta(days=rng.randint(1, 300)),
                           "amount": None, "source_key": f"c{case}",
                           "attributes": {"case_id": f"CS-{case}", "priority": "normal",
                                          "subject": rng.choice(["Order portal slow", "Invoice question", "Damaged goods"])}})
        contacts.append({"account_id": acc, "name": f"Person {i}", "role": rng.choice(["Owner", "Buyer", "Office Manager"]),
                         "added_on": AS_OF - timedelta(days=rng.randint(1, 700))})
        if i % 50 == 0:
            calls.append({"id": len(calls) + 1, "audio_sha256": f"{i:064d}", "account_id": acc,
                          "call_date": datetime.combine(AS_OF - timedelta(days=rng.randint(1, 60)),
                                                        datetime.min.time(), UTC), "status": "done"})
    with session_scope(engine) as s:
        for table, rows in ((Account, accounts), (CrmEvent, events), (Contact, contacts), (Call, calls)):
            for k in range(0, len(rows), 20000):
                s.execute(table.__table__.insert(), rows[k:k + 20000])
        seg_id = 0
        for c in calls:
            lines = [("Vendora offered the same for fifteen percent less.", ["competitor_mention", "pricing_request"]),
                     ("The October invoice charges us for boxes we never received.", ["invoice_dispute"]),
                     ("We may not renew next year.", ["cancellation_intent"])]
            for j, (text, labels) in enumerate(lines):
                seg_id += 1
                segments.append({"id": seg_id, "call_id": c["id"], "idx": j, "start": j * 10.0, "end": j * 10.0 + 4,
                                 "speaker": "customer", "text": text})
                cues += [{"call_id": c["id"], "segment_id": seg_id, "rule_name": f"{lab}_kw", "rule_version": 1,
                          "label": lab, "start": j * 10.0, "end": j * 10.0 + 4, "speaker": "customer", "quote": text,
                          "score": 1.0} for lab in labels]
        s.execute(Segment.__table__.insert(), segments)
        s.execute(Cue.__table__.insert(), cues)
    return {"accounts": n, "crm_events": len(events), "contacts": len(contacts), "calls": len(calls),
            "cues": len(cues)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--db", default="/tmp/churnwatch_risk_scale.db")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "risk_scale.json"))
    ap.add_argument("--no-freeze", action="store_true",
                    help="leave the results to the cyclic collector, as before `risk score` froze them")
    args = ap.parse_args()
    db = Path(args.db)
    meta = db.with_suffix(".json")
    if args.rebuild or not db.exists() or not meta.exists() or json.loads(meta.read_text())["accounts"] != args.accounts:
        db.unlink(missing_ok=True)
        engine = store.make_engine(f"sqlite:///{db}")
        store.init_db(engine)
        t = time.perf_counter()
        sizes = build(engine, args.accounts)
        sizes["build_s"] = round(time.perf_counter() - t, 1)
        meta.write_text(json.dumps(sizes))
        print(f"built {db}: {sizes}", flush=True)
    else:
        engine = store.make_engine(f"sqlite:///{db}")
        sizes = json.loads(meta.read_text())
    model = load_risk_model(ROOT / "rules", ROOT / "models")
    with session_scope(engine) as s:
        t0, c0 = time.perf_counter(), time.process_time()
        results = score_accounts(s, AS_OF, model)
        t1, c1 = time.perf_counter(), time.process_time()
        save_scores(s, results)
        t2 = time.perf_counter()
        # what `risk score` does next: the collector's permanent generation for the results (else
        # the first allocations after this pay for walking millions of objects), then more work
        if not args.no_freeze:
            gc.freeze()
        after = [{} for _ in range(200_000)]
        t3 = time.perf_counter()
        del after
    merged = sum(1 for r in results if r.merged)
    out = {**sizes, "scored": len(results), "score_and_explain_s": round(t1 - t0, 2),
           "score_and_explain_cpu_s": round(c1 - c0, 2), "save_scores_s": round(t2 - t1, 2),
           "next_200k_allocations_s": round(t3 - t2, 2), "gc_freeze": not args.no_freeze,
           "flagged": sum(r.flagged for r in results), "accounts_with_merged_events": merged,
           "max_points_sum_error": max(abs(r.base_score + sum(r.points.values()) - r.score) for r in results)}
    print(f"{len(results):,} accounts scored and explained in {out['score_and_explain_s']} s "
          f"({out['score_and_explain_cpu_s']} s CPU); scores stored in {out['save_scores_s']} s more; "
          f"the next 200,000 allocations {out['next_200k_allocations_s']} s"
          f"{'' if out['gc_freeze'] else ' (without gc.freeze)'}. "
          f"{out['flagged']:,} flagged, {merged:,} with an event counted once across factors; "
          f"largest |base + points - score| {out['max_points_sum_error']:.1e}.")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
