"""Reading opportunity stage histories and leads from CRM exports (ours, Salesforce, HubSpot).

    rows, bad, date_order = read_funnel_rows("history.csv", "opportunities", preset="salesforce")

One opportunity row is one stage change: `opportunity_id, account_id, stage, date` and, optionally,
`rep, amount, kind (new|renewal|upsell), lost_reason, product`. A lead row is `lead_id, created`
and, optionally, `rep, source, converted_opportunity_id`. Columns are found as for the other kinds
(a --map, then the preset's real export column names, then our own names), and dates and amounts
are read by `pipeline.crm.presets` (ISO, 03/31/2026, 31.03.2026; '$1,234.50'). Stage names are
checked against the funnel (rules/funnel.yaml) by the importer, which stores the rows.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.crm.presets import (
    DATE_ORDERS,
    _norm,
    check_locale,
    decide_date_order,
    decide_decimal_mark,
    parse_amount,
    parse_date,
    read_raw_rows,
)
from pipeline.errors import ChurnwatchError, CsvRowError

__all__ = ["FUNNEL_KINDS", "FUNNEL_PRESETS", "KIND_WORDS", "read_funnel_rows", "resolve_funnel_columns"]

# Our fields per kind: (required, optional)
FUNNEL_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "opportunities": (("opportunity_id", "account_id", "stage", "date"), ("rep", "amount", "kind", "lost_reason", "product")),
    "leads": (("lead_id", "created"), ("rep", "source", "converted_opportunity_id")),
}
_DATES = {"date", "created"}

# The default column names of the report exports, tried in order (case and spaces aside).
FUNNEL_PRESETS: dict[str, dict[str, dict[str, list]]] = {
    "salesforce": {  # the Opportunity History report; the Leads report
        "opportunities": {"opportunity_id": ["Opportunity ID", "Opportunity Name"],
                          "account_id": ["Account ID", "Account Name"], "stage": ["To Stage", "Stage"],
                          "date": ["Last Modified", "Edit Date", "Stage Change Date", "Created Date"],
                          "rep": ["Opportunity Owner", "Owner"], "amount": ["Amount"],
                          "kind": ["Type", "Opportunity Type"],
                          "lost_reason": ["Loss Reason", "Closed Lost Reason", "Reason Lost"],
                          "product": ["Product Name", "Primary Product", "Product"]},
        "leads": {"lead_id": ["Lead ID"], "created": ["Created Date", "Create Date"], "rep": ["Lead Owner", "Owner"],
                  "source": ["Lead Source"], "converted_opportunity_id": ["Converted Opportunity ID", "Opportunity ID"]},
    },
    "hubspot": {  # the deal stage history export; contacts or leads
        "opportunities": {"opportunity_id": ["Deal ID", "Record ID"],
                          "account_id": ["Company ID", "Associated Company ID", "Associated Company IDs"],
                          "stage": ["Deal Stage", "Stage", "Value"],
                          "date": ["Date entered stage", "Timestamp", "Change date", "Last Modified Date"],
                          "rep": ["Deal owner", "HubSpot owner"], "amount": ["Amount"], "kind": ["Deal Type", "Type"],
                          "lost_reason": ["Closed lost reason"], "product": ["Product", "Line item name"]},
        "leads": {"lead_id": ["Record ID", "Lead ID"], "created": ["Create Date", "Created Date"],
                  "rep": ["Lead owner", "Contact owner", "HubSpot owner"], "source": ["Original Source", "Lead source"],
                  "converted_opportunity_id": ["Associated Deal ID", "Associated Deal IDs", "Deal ID"]},
    },
}

# The deal types of Salesforce and HubSpot, and ours, → new | renewal | upsell
KIND_WORDS = {
    "new": "new", "newbusiness": "new", "new business": "new", "new customer": "new",
    "renewal": "renewal", "existing business": "renewal", "existingbusiness": "renewal",
    "existing customer - replacement": "renewal", "existing customer - downgrade": "renewal",
    "upsell": "upsell", "upgrade": "upsell", "cross-sell": "upsell", "crosssell": "upsell", "expansion": "upsell",
    "add-on": "upsell", "existing customer - upgrade": "upsell",
}


def resolve_funnel_columns(headers: list[str], kind: str, column_map: dict[str, str] | None,
                           preset: str | None, path) -> dict[str, list[str]]:
    """Our field → the export's column(s), from the map, then the preset, then our own names
    (compared case- and space-insensitively, as for the other kinds)."""
    if preset is not None and preset not in FUNNEL_PRESETS:
        raise ChurnwatchError(f"Unknown preset {preset!r}. Valid presets: {', '.join(FUNNEL_PRESETS)}.")
    required, optional = FUNNEL_KINDS[kind]
    by_norm = {_norm(h): h for h in headers}
    column_map = dict(column_map or {})
    for ours in column_map:
        if ours not in required + optional:
            raise ChurnwatchError(
                f"--map {ours}=...: {ours!r} is not a field of {kind}. Fields: {', '.join(required + optional)}.")
    found: dict[str, list[str]] = {}
    for ours in required + optional:
        if ours in column_map:
            candidates = [column_map[ours]]
        else:
            candidates = list(FUNNEL_PRESETS[preset][kind].get(ours, [])) if preset else []
            candidates.append(ours)
        for cand in candidates:
            if _norm(cand) in by_norm:
                found[ours] = [by_norm[_norm(cand)]]
                break
        else:
            if ours in column_map:
                raise ChurnwatchError(f"{path}: --map {ours}={column_map[ours]}: no column {column_map[ours]!r}. "
                                      f"Columns: {', '.join(headers)}.")
    missing = [f for f in required if f not in found]
    if missing:
        raise ChurnwatchError(
            f"{path}: no column for {', '.join(missing)} ({kind} needs {', '.join(required)}). "
            f"Columns found: {', '.join(headers)}. Pass --map {missing[0]}=COLUMN"
            + ("" if preset else " or --preset salesforce|hubspot") + ".")
    return found


def _normalise(raw: dict[str, str], kind: str, date_order: str | None, decimal_mark: str | None,
               locale: str | None) -> dict:
    row: dict = {}
    for name, value in raw.items():
        value = (value or "").strip() or None
        if value is None:
            row[name] = None
        elif name in _DATES:
            try:
                row[name] = parse_date(value, date_order)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif name == "amount":
            try:
                row[name] = parse_amount(value, decimal_mark, locale)
            except ValueError as e:
                raise ValueError(f"amount: {e}") from None
        elif name == "kind":
            word = " ".join(value.lower().split())
            if word not in KIND_WORDS:
                raise ValueError(f"kind {value!r} is not a deal type we know; use new, renewal or upsell "
                                 "(or Salesforce's and HubSpot's own: New Business, Existing Business, ...)")
            row[name] = KIND_WORDS[word]
        else:
            row[name] = value
    for name in FUNNEL_KINDS[kind][0]:
        if row.get(name) is None:
            raise ValueError(f"{name} is empty")
    return row


def read_funnel_rows(path, kind: str, column_map: dict[str, str] | None = None, preset: str | None = None,
                     date_order: str | None = None, locale: str | None = None
                     ) -> tuple[list[tuple[int, dict]], list[CsvRowError], str | None]:
    """The normalised rows of an opportunity history or lead export as (line, row), the bad rows,
    and the date order used (stage names are left as written). Amounts are read as for orders:
    in `locale` if given, else with the decimal mark the file's amounts show."""
    if kind not in FUNNEL_KINDS:
        raise ChurnwatchError(f"Unknown kind {kind!r}. Funnel kinds: {', '.join(FUNNEL_KINDS)}.")
    path = Path(path)
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ChurnwatchError(f"date order {date_order!r}: use one of {', '.join(DATE_ORDERS)}.")
    locale = check_locale(locale)
    raw_rows = read_raw_rows(path, lambda headers: resolve_funnel_columns(headers, kind, column_map, preset, path))
    if date_order is None:
        date_order = decide_date_order([r[f] for _, r in raw_rows for f in _DATES if r.get(f)], path, "")
    mark = None if locale else decide_decimal_mark([r["amount"] for _, r in raw_rows if r.get("amount")])
    good, bad = [], []
    for line, raw in raw_rows:
        if not any(raw.values()):
            continue
        try:
            good.append((line, _normalise(raw, kind, date_order, mark, locale)))
        except ValueError as e:
            bad.append(CsvRowError(path, line, str(e)))
    return good, bad, date_order


# --- what the rows become (the importer stores them) --------------------------------------------

_LIMITS = {"opportunity_id": 100, "account_id": 100, "stage": 200, "rep": 200, "product": 200,
           "lead_id": 100, "source": 200, "converted_opportunity_id": 100}


def check_row(row: dict, kind: str, funnel) -> None:
    """Raise ValueError for a row the store cannot keep: a value too long, a stage the funnel
    does not know. Adds the funnel's name for the stage as row["funnel_stage"]."""
    for name, limit in _LIMITS.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise ValueError(f"{name} is {len(value)} characters long; the store keeps at most {limit}")
    if kind == "opportunities":
        stage = funnel.canonical(row["stage"])
        if stage is None:
            raise ValueError(funnel.unknown_message(row["stage"]))
        row["funnel_stage"] = stage


def plan_opportunities(rows: list[tuple[int, dict]], rep_ids: dict[str, int]):
    """(line, key, values) for each opportunity (its latest non-empty values, by date) and for
    each stage change (keyed by opportunity, stage and day, so a re-import changes nothing)."""
    latest: dict[str, tuple[int, dict]] = {}
    for line, row in sorted(rows, key=lambda lr: (lr[1]["date"], lr[0])):
        first_line, values = latest.get(row["opportunity_id"], (line, {"id": row["opportunity_id"]}))
        values["account_id"] = row["account_id"]
        for field in ("kind", "amount", "product", "lost_reason"):
            if row.get(field) is not None:
                values[field] = row[field]
        if row.get("rep") and row["rep"] in rep_ids:
            values["rep_id"] = rep_ids[row["rep"]]
        latest[row["opportunity_id"]] = (first_line, values)
    opportunities = [(line, opp_id, values) for opp_id, (line, values) in latest.items()]
    stages = []
    for line, row in rows:
        key = (row["opportunity_id"], row["funnel_stage"], row["date"])
        stages.append((line, key, {"opportunity_id": key[0], "stage": key[1], "entered_on": key[2],
                                   "crm_stage": row["stage"]}))
    return opportunities, stages


def plan_leads(rows: list[tuple[int, dict]], rep_ids: dict[str, int]):
    """(line, key, values) per lead, keyed by the lead id."""
    out = []
    for line, row in rows:
        values = {"id": row["lead_id"], "created_on": row["created"], "rep_id": rep_ids.get(row.get("rep")),
                  "source": row.get("source"), "converted_opportunity_id": row.get("converted_opportunity_id")}
        out.append((line, row["lead_id"], {k: v for k, v in values.items() if v is not None}))
    return out
