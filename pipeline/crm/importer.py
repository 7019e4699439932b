"""CRM import: CSV exports (ours, Salesforce, HubSpot) into accounts, contacts and CRM events.

    report = import_csv(session, "orders.csv", "orders", preset="salesforce")

Columns are found through a map (our field → the export's column), a preset of the real default
column names of Salesforce and HubSpot report exports, or our own field names. Dates in ISO,
03/31/2026, 31.03.2026 or 2026-03-31T10:00:00Z; whether 03/04/2026 is day- or month-first is
decided per file from its values (a value over 12 decides), else the import stops and says to pass
`date_order`. Amounts may carry currency symbols and thousand separators; credit notes are
negative orders. Re-importing a file changes nothing: each event has a `source_key`, a stable
hash of its kind and natural key (invoice id, case id) or of the whole normalised row. A bad row
is reported with its line number and the import goes on with the good rows.

Reading, column maps, dates and amounts live in `pipeline.crm.presets`; this module stores. A file
is stored in batches: every row is parsed and checked first, the rows a batch already has in the
store are loaded with one query, changed ones are updated and new ones written with one multi-row
INSERT ... ON CONFLICT DO NOTHING (SQLite, PostgreSQL), so an import running beside another never
trips on the unique source_key. A batch the database refuses is retried row by row, and a row it
still refuses is reported with its line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from pipeline.crm import opportunities as funnel_rows
from pipeline.crm.presets import (
    KINDS,
    read_export,
)
from pipeline.errors import ChurnwatchError, CsvRowError
from pipeline.store import Account, Contact, CrmEvent, Rep
from pipeline.store.database import storage_failure
from pipeline.store.lookups import in_chunks
from pipeline.store.tables import Lead, Opportunity, OpportunityStage

__all__ = ["EVENT_KIND", "ImportReport", "import_csv", "source_key"]

EVENT_KIND = {"orders": "order", "activities": "activity", "support": "support"}
BATCH_ROWS = 1000  # rows written per batch; a batch the database refuses is retried row by row
# Fields stored in length-limited columns: checked while reading, so a long value is a bad row
# with its line instead of a refused batch (PostgreSQL enforces lengths, SQLite does not).
_LIMITED = {"account_id": Account.id, "name": Account.name, "segment": Account.segment, "rep": Rep.name,
            "email": Contact.email, "role": Contact.role}


@dataclass
class ImportReport:
    path: str
    kind: str
    imported: int = 0  # new rows written
    updated: int = 0  # rows whose stored values changed (e.g. an invoice now paid)
    unchanged: int = 0  # rows already stored exactly so
    bad_rows: list[CsvRowError] = field(default_factory=list)
    date_order: str | None = None  # "dmy" or "mdy" when the file had slashed dates
    warnings: list[CsvRowError] = field(default_factory=list)  # rows imported, but odd (a future order date)
    decimal_mark: str | None = None  # "." or "," as the file's amounts show it

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "imported": self.imported,
                "updated": self.updated, "unchanged": self.unchanged, "date_order": self.date_order,
                "decimal_mark": self.decimal_mark,
                "bad_rows": [{"line": e.line, "reason": str(e).split(": ", 1)[-1]} for e in self.bad_rows],
                "warnings": [{"line": e.line, "reason": str(e).split(": ", 1)[-1]} for e in self.warnings]}


def source_key(kind: str, natural_key) -> str:
    """A stable hash of the kind and a natural key (or the whole normalised row)."""
    blob = json.dumps([kind, natural_key], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --- what each row becomes ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    line: int  # line of the row in the file, for the report
    key: Hashable  # what finds the stored row: account id, contact key or source_key
    values: dict  # the columns to write (accounts, contacts: None never overwrites a stored value)


@dataclass(frozen=True)
class _Target:
    model: type  # the ORM class stored into
    lookup: Callable  # keys (one chunk) → a select of the stored rows that may have them
    key_of: Callable  # a stored object, or a row RETURNING `returning`, → its key
    returning: tuple[str, ...]  # the columns key_of reads


def _contact_key(account_id: str, name: str, email: str | None) -> tuple:
    # a contact is found by its email within the account, one without email by its name
    return (account_id, email) if email else (account_id, None, name)


_TARGETS = {
    "accounts": _Target(Account, lambda keys: select(Account).where(Account.id.in_(keys)),
                        lambda r: r.id, ("id",)),
    "contacts": _Target(Contact, lambda keys: select(Contact).where(
                            Contact.account_id.in_({k[0] for k in keys})).order_by(Contact.id),
                        lambda r: _contact_key(r.account_id, r.name, r.email), ("account_id", "name", "email")),
    "events": _Target(CrmEvent, lambda keys: select(CrmEvent).where(CrmEvent.source_key.in_(keys)),
                      lambda r: r.source_key, ("source_key",)),
    "opportunities": _Target(Opportunity, lambda keys: select(Opportunity).where(Opportunity.id.in_(keys)),
                             lambda r: r.id, ("id",)),
    "stages": _Target(OpportunityStage, lambda keys: select(OpportunityStage).where(
                          OpportunityStage.opportunity_id.in_({k[0] for k in keys})).order_by(OpportunityStage.id),
                      lambda r: (r.opportunity_id, r.stage, r.entered_on), ("opportunity_id", "stage", "entered_on")),
    "leads": _Target(Lead, lambda keys: select(Lead).where(Lead.id.in_(keys)), lambda r: r.id, ("id",)),
}


def _check_lengths(row: dict) -> None:
    for name, column in _LIMITED.items():
        value, limit = row.get(name), column.type.length
        if isinstance(value, str) and len(value) > limit:
            raise ValueError(f"{name} is {len(value)} characters long; the store keeps at most {limit}")


def _plan_accounts(rows: list[tuple[int, dict]], rep_ids: dict[str, int]) -> list[_Item]:
    items = []
    for line, row in rows:
        values = {"id": row["account_id"], "name": row.get("name"), "segment": row.get("segment"),
                  "created_on": row.get("created"),
                  "status": row.get("status") or ("lost" if row.get("lost_on") else None),
                  "lost_on": row.get("lost_on"), "rep_id": rep_ids.get(row.get("rep"))}
        items.append(_Item(line, row["account_id"], {k: v for k, v in values.items() if v is not None}))
    return items


def _plan_contacts(rows: list[tuple[int, dict]]) -> list[_Item]:
    items = []
    for line, row in rows:
        values = {"account_id": row["account_id"], "name": row["name"], "email": row.get("email"),
                  "role": row.get("role"), "added_on": row.get("added")}
        items.append(_Item(line, _contact_key(row["account_id"], row["name"], row.get("email")),
                           {k: v for k, v in values.items() if v is not None}))
    return items


def _plan_events(rows: list[tuple[int, dict]], kind: str) -> list[_Item]:
    event_kind = EVENT_KIND[kind]
    natural = {"orders": "invoice_id", "support": "case_id"}.get(kind)
    seen: dict[str, int] = {}
    items = []
    for line, row in rows:
        attributes = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()
                      if k not in ("account_id", "amount") and v is not None}
        if natural and row.get(natural):
            key = source_key(event_kind, [row["account_id"], row[natural]])
        else:
            whole = [row["account_id"], row.get("amount"), sorted(attributes.items())]
            n = seen[source_key(event_kind, whole)] = seen.get(source_key(event_kind, whole), 0) + 1
            # identical rows in one file (two unanswered calls on a day) are kept apart by their count
            key = source_key(event_kind, whole if n == 1 else whole + [n])
        values = {"account_id": row["account_id"], "kind": event_kind,
                  "occurred_on": row["opened"] if kind == "support" else row["date"],
                  "amount": row.get("amount"), "attributes": attributes, "source_key": key}
        items.append(_Item(line, key, values))
    return items


# --- writing ------------------------------------------------------------------------------------


class _Vanished(Exception):
    """A row that a conflicting insert said was stored, but that the store does not show."""


def _insert_ignoring(session: Session, table, rows: list[dict], returning: tuple[str, ...]) -> list | None:
    """Insert rows, skipping those a unique constraint already holds; the RETURNING rows of those
    written, or None on a database without ON CONFLICT (there a conflict raises)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        session.execute(insert(table), rows)
        return None
    stmt = dialect_insert(table).on_conflict_do_nothing().returning(*(table.c[c] for c in returning))
    return list(session.execute(stmt, rows))


def _load(session: Session, target: _Target, keys: list) -> dict:
    found: dict = {}
    for chunk in in_chunks(list(dict.fromkeys(keys))):
        query = target.lookup(chunk).execution_options(populate_existing=True)
        for obj in session.scalars(query):
            found.setdefault(target.key_of(obj), obj)
    return found


def _merge(stored, values: dict) -> bool:
    """Write values into a stored object (or a row about to be inserted); True if any changed."""
    changed = False
    for name, value in values.items():
        current = stored.get(name) if isinstance(stored, dict) else getattr(stored, name)
        if current != value:
            if isinstance(stored, dict):
                stored[name] = value
            else:
                setattr(stored, name, value)
            changed = True
    return changed


def _write(session: Session, target: _Target, items: list[_Item]) -> list[str]:
    """Store a batch: one lookup, updates in place, one multi-row insert; the outcome per item."""
    stored = _load(session, target, [item.key for item in items])
    fresh: dict = {}  # key → (position, values) of rows to insert
    outcomes: list[str] = []
    for item in items:
        if item.key in stored:
            outcomes.append("updated" if _merge(stored[item.key], item.values) else "unchanged")
        elif item.key in fresh:  # the same row twice in the file: the later one wins
            outcomes.append("updated" if _merge(fresh[item.key][1], item.values) else "unchanged")
        else:
            fresh[item.key] = (len(outcomes), dict(item.values))
            outcomes.append("imported")
    table = target.model.__table__
    by_columns: dict[tuple, list[dict]] = {}
    for _, values in fresh.values():
        by_columns.setdefault(tuple(sorted(values)), []).append(values)
    written: set | None = set()
    for rows in by_columns.values():
        returned = _insert_ignoring(session, table, rows, target.returning)
        written = None if returned is None or written is None else written | {target.key_of(r) for r in returned}
    lost = [] if written is None else [key for key in fresh if key not in written]
    if lost:  # stored meanwhile by an import running beside this one: update those instead
        again = _load(session, target, lost)
        for key in lost:
            if key not in again:
                raise _Vanished(key)
            position, values = fresh[key]
            outcomes[position] = "updated" if _merge(again[key], values) else "unchanged"
    session.flush()
    return outcomes


def _store(session: Session, target: _Target, items: list[_Item], report: ImportReport, path) -> None:
    def count(outcome: str) -> None:
        setattr(report, outcome, getattr(report, outcome) + 1)

    for batch in in_chunks(items, BATCH_ROWS):
        try:
            with session.begin_nested():
                outcomes = _write(session, target, batch)
        except (StatementError, _Vanished) as e:
            _stop_if_storage_failure(session, e)
            outcomes = None
        if outcomes is not None:
            for outcome in outcomes:
                count(outcome)
            continue
        for item in batch:  # the database refused the batch: find the rows it refuses
            for attempt in (1, 2):  # a second try sees a row another import stored meanwhile
                try:
                    with session.begin_nested():
                        count(_write(session, target, [item])[0])
                    break
                except (StatementError, _Vanished) as e:
                    _stop_if_storage_failure(session, e)
                    if attempt == 2:
                        reason = getattr(e, "orig", None) or e
                        first = (str(reason).splitlines() or [""])[0]
                        report.bad_rows.append(CsvRowError(
                            path, item.line, f"cannot store the row: {type(reason).__name__}: {first}"))


def _stop_if_storage_failure(session: Session, error: Exception) -> None:
    """A full disk or a read-only database refuses every row alike: stop at once with the cause
    (the caller's transaction rolls back, so nothing of the file is stored), rather than retry
    each row and blame it on the row."""
    failure = storage_failure(error, session.get_bind())
    if failure is not None:
        raise failure from None


def _before_creation(session: Session, rows: list[tuple[int, dict]], kind: str, path,
                     report: ImportReport) -> list[tuple[int, dict]]:
    """The rows not dated before their account was created (as the accounts import stored it);
    those that are go to the bad rows, naming both dates."""
    field_of = {"orders": "date", "activities": "date", "support": "opened", "contacts": "added"}.get(kind)
    if field_of is None or not rows:
        return rows
    created: dict[str, date] = {}
    for chunk in in_chunks(sorted({row["account_id"] for _, row in rows})):
        created.update((i, c) for i, c in session.execute(
            select(Account.id, Account.created_on).where(Account.id.in_(chunk), Account.created_on.is_not(None))))
    good = []
    for line, row in rows:
        day, since = row.get(field_of), created.get(row["account_id"])
        if day is not None and since is not None and day < since:
            report.bad_rows.append(CsvRowError(path, line, f"{field_of} {day} is before account {row['account_id']} "
                                                           f"was created ({since}); check the date"))
            continue
        good.append((line, row))
    return good


def _rep_ids(session: Session, names) -> dict[str, int]:
    """Rep name → id, creating the reps not stored yet."""
    def stored(wanted: list[str]) -> dict[str, int]:
        return {name: rep_id for chunk in in_chunks(wanted)
                for name, rep_id in session.execute(select(Rep.name, Rep.id).where(Rep.name.in_(chunk)))}

    names = sorted({n for n in names if n})
    found = stored(names)
    missing = [n for n in names if n not in found]
    if missing:
        _insert_ignoring(session, Rep.__table__, [{"name": n} for n in missing], ("id",))
        found |= stored(missing)
    return found


def _ensure_accounts(session: Session, account_ids) -> None:
    """A bare account for every id not stored yet (orders may arrive before the accounts file)."""
    ids = sorted(set(account_ids))
    stored: set[str] = set()
    for chunk in in_chunks(ids):
        stored.update(session.scalars(select(Account.id).where(Account.id.in_(chunk))))
    missing = [{"id": i} for i in ids if i not in stored]
    if missing:
        _insert_ignoring(session, Account.__table__, missing, ("id",))


def _import_funnel_kind(session: Session, path, kind: str, column_map, preset, date_order, funnel,
                        locale: str | None = None) -> ImportReport:
    """Opportunity stage histories (one row per stage change, stages checked against the funnel)
    and leads; the report counts the file's rows."""
    if kind == "opportunities" and funnel is None:
        raise ChurnwatchError("Importing opportunities needs the stage order: pass funnel=load_funnel(rules/funnel.yaml).")
    rows, bad, used_order = funnel_rows.read_funnel_rows(path, kind, column_map, preset, date_order, locale)
    report = ImportReport(path=str(path), kind=kind, bad_rows=bad, date_order=used_order)
    good = []
    for line, row in rows:
        try:
            funnel_rows.check_row(row, kind, funnel)
        except ValueError as e:
            report.bad_rows.append(CsvRowError(path, line, str(e)))
            continue
        good.append((line, row))
    session.flush()
    rep_ids = _rep_ids(session, [row.get("rep") for _, row in good])
    if kind == "leads":
        items = [_Item(*t) for t in funnel_rows.plan_leads(good, rep_ids)]
        _store(session, _TARGETS["leads"], items, report, path)
    else:
        _ensure_accounts(session, [row["account_id"] for _, row in good])
        opportunities, stages = funnel_rows.plan_opportunities(good, rep_ids)
        deals = ImportReport(path=str(path), kind=kind)
        _store(session, _TARGETS["opportunities"], [_Item(*t) for t in opportunities], deals, path)
        refused = {e.line for e in deals.bad_rows}
        report.bad_rows += deals.bad_rows
        _store(session, _TARGETS["stages"], [_Item(*t) for t in stages if t[0] not in refused], report, path)
        report.updated += deals.updated  # a deal's amount or owner changed, its stages not
    report.bad_rows.sort(key=lambda e: e.line)
    return report


def import_csv(session: Session, path, kind: str, column_map: dict[str, str] | None = None,
               preset: str | None = None, date_order: str | None = None, funnel=None,
               locale: str | None = None, today: date | None = None) -> ImportReport:
    """Import one CRM export of a kind (accounts, orders, activities, contacts, support, and
    opportunities or leads; opportunities need `funnel`, the stages of rules/funnel.yaml)."""
    if kind not in KINDS and kind not in funnel_rows.FUNNEL_KINDS:
        raise ChurnwatchError(f"Unknown kind {kind!r}. Valid kinds: {', '.join([*KINDS, *funnel_rows.FUNNEL_KINDS])}.")
    if kind in funnel_rows.FUNNEL_KINDS:
        return _import_funnel_kind(session, path, kind, column_map, preset, date_order, funnel, locale)
    export = read_export(path, kind, column_map, preset, date_order, locale, today)
    report = ImportReport(path=str(path), kind=kind, bad_rows=export.bad, date_order=export.date_order,
                          warnings=export.warnings, decimal_mark=export.decimal_mark)
    rows = _before_creation(session, export.rows, kind, path, report)
    bad_lines = {e.line for e in report.bad_rows}
    report.warnings = [w for w in report.warnings if w.line not in bad_lines]
    good = []
    for line, row in rows:
        try:
            _check_lengths(row)
        except ValueError as e:
            report.bad_rows.append(CsvRowError(path, line, str(e)))
            continue
        good.append((line, row))
    session.flush()  # the caller's pending objects first, so that a refused batch cannot drop them
    rep_ids = _rep_ids(session, [row.get("rep") for _, row in good]) if kind in ("accounts", "activities") else {}
    if kind == "accounts":
        target, items = _TARGETS["accounts"], _plan_accounts(good, rep_ids)
    else:
        _ensure_accounts(session, [row["account_id"] for _, row in good])
        if kind == "contacts":
            target, items = _TARGETS["contacts"], _plan_contacts(good)
        else:
            target, items = _TARGETS["events"], _plan_events(good, kind)
    _store(session, target, items, report, path)
    report.bad_rows.sort(key=lambda e: e.line)
    return report
