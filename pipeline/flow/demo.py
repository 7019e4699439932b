"""The demo: the bundled sample world through every real stage, on a fresh database.

CRM exports are imported, the sample calls are ingested (transcribed, cues detected, stored,
accounts re-scored, reminders planned), and then every account is scored as of the world's
"today". Nothing is canned: every number printed comes from the stages.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pipeline.errors import ChurnwatchError
from pipeline.settings import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "samples"
CRM_KINDS = ("accounts", "orders", "activities", "contacts", "support")


@dataclass
class DemoReport:
    as_of: date
    imports: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Any] = field(default_factory=list)  # IngestResult
    riskiest: list[Any] = field(default_factory=list)  # RiskResult
    reminders: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "imports": self.imports,
            "calls": [c.to_dict() for c in self.calls],
            "riskiest": [{**r.to_dict(), "reasons": top_reasons(r)} for r in self.riskiest],
            "reminders": self.reminders,
        }


def top_reasons(result, n: int = 3) -> list[str]:
    """The factors that push a score up most, in plain words."""
    from pipeline.reminders.post_call_note import plain_factor

    pushing = sorted(
        ((v, k) for k, v in result.contributions.items() if k != "intercept" and v > 0), reverse=True
    )
    labels = {k: (e or {}).get("label") for k, e in result.evidence.items()}
    return [labels.get(k) or plain_factor(k) for _, k in pushing[:n]]


def read_call_list(path: Path) -> list[dict[str, str]]:
    """samples/calls.csv: file,account_id,rep,date."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"file", "account_id", "rep", "date"}
    if not rows or not need <= set(rows[0]):
        raise ChurnwatchError(f"{path}: expected columns {', '.join(sorted(need))}.")
    return rows


def run_demo(settings, samples: Path = SAMPLES, as_of: date | None = None, top: int = 5,
             progress: bool = True) -> DemoReport:
    from pipeline import crm
    from pipeline.flow import ingest
    from pipeline import reminders as remind
    from pipeline.risk import score as risk
    from pipeline.flow import executors as scale
    from pipeline import store

    engine = store.make_engine(settings.db_url)
    store.init_db(engine)
    calls = read_call_list(samples / "calls.csv")
    as_of = as_of or max(date.fromisoformat(c["date"]) for c in calls)
    report = DemoReport(as_of=as_of)

    with store.session_scope(engine) as session:
        for kind in CRM_KINDS:
            path = samples / "crm" / f"{kind}.csv"
            if path.exists():
                result = crm.import_csv(session, path, kind)
                report.imports.append({"file": path.name, **result.to_dict()})

    jobs = [
        (samples / c["file"],
         ingest.IngestOptions(account_id=c["account_id"], rep=c["rep"] or None,
                              call_date=date.fromisoformat(c["date"])))
        for c in calls
    ]
    report.calls = scale.run_jobs(jobs, settings, executor="local", progress=progress)

    with store.session_scope(engine) as session:
        model = risk.load_risk_model(settings.rules_dir, settings.models_dir)
        results = risk.score_accounts(session, as_of, model)
        report.riskiest = sorted(results, key=lambda r: r.score, reverse=True)[:top]
        policies = remind.load_policies(settings.rules_dir / "reminders.yaml")
        remind.plan_silence(session, as_of, policies)
        rows = session.scalars(
            select(store.Reminder).where(store.Reminder.status == "open").order_by(store.Reminder.due)
        ).all()
        reps = {r.id: r.name for r in session.scalars(select(store.Rep))}
        report.reminders = [
            {**remind.reminder_to_dict(r, policies), "rep": reps.get(r.rep_id)} for r in rows
        ]
    engine.dispose()
    return report
