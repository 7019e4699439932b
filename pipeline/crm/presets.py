"""Reading CRM exports: our fields per kind, the column names of Salesforce and HubSpot exports,
dates, amounts, and the normalised rows of a file (`read_rows`). Nothing here touches the store;
`pipeline.crm` writes what this reads.

    rows, bad, date_order = read_rows("orders.csv", "orders", preset="salesforce")
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path

from pipeline.errors import ChurnwatchError, CsvRowError

# Our fields per kind: (required, optional). Date fields are parsed as dates, "amount" as money.
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accounts": (("account_id",), ("name", "segment", "rep", "created", "status", "lost_on")),
    "orders": (("account_id", "date", "amount"), ("invoice_id", "due_date", "paid_date")),
    "activities": (("account_id", "date"), ("type", "direction", "outcome", "rep")),
    "contacts": (("account_id", "name"), ("email", "role", "added")),
    "support": (("account_id", "opened"), ("case_id", "closed", "priority", "subject")),
}
DATE_FIELDS = {"created", "lost_on", "date", "due_date", "paid_date", "added", "opened", "closed"}
DATE_ORDERS = ("dmy", "mdy")

# The default column names of report exports; each field lists the names tried in order
# (compared case- and space-insensitively), a list inside a list is joined (first + last name).
PRESETS: dict[str, dict[str, dict[str, list]]] = {
    "salesforce": {
        "accounts": {"account_id": ["Account ID"], "name": ["Account Name"],
                     "segment": ["Type", "Industry"], "rep": ["Account Owner"],
                     "created": ["Created Date"], "status": ["Account Status", "Status"]},
        "orders": {"account_id": ["Account ID"], "date": ["Close Date"], "amount": ["Amount"],
                   "invoice_id": ["Opportunity ID", "Invoice Number"]},
        "activities": {"account_id": ["Account ID"], "date": ["Date", "Activity Date", "Due Date"],
                       "type": ["Task Subtype", "Type", "Task/Event"], "outcome": ["Call Result", "Status"],
                       "direction": ["Call Type"], "rep": ["Assigned", "Assigned To"]},
        "contacts": {"account_id": ["Account ID"], "name": ["Full Name", ["First Name", "Last Name"]],
                     "email": ["Email"], "role": ["Title"], "added": ["Created Date"]},
        "support": {"account_id": ["Account ID"], "case_id": ["Case Number", "Case ID"],
                    "opened": ["Date/Time Opened", "Opened Date"], "closed": ["Date/Time Closed", "Closed Date"],
                    "priority": ["Priority"], "subject": ["Subject"]},
    },
    "hubspot": {
        "accounts": {"account_id": ["Company ID", "Record ID"], "name": ["Company name", "Name"],
                     "segment": ["Type", "Industry"], "rep": ["Company owner"],
                     "created": ["Create Date"], "status": ["Lifecycle Stage"]},
        "orders": {"account_id": ["Company ID", "Associated Company ID", "Associated Company IDs"],
                   "date": ["Close date"], "amount": ["Amount"], "invoice_id": ["Deal ID", "Record ID"]},
        "activities": {"account_id": ["Company ID", "Associated Company ID"],
                       "date": ["Activity date", "Create Date"], "type": ["Activity type"],
                       "outcome": ["Call outcome", "Outcome"], "direction": ["Call direction", "Direction"],
                       "rep": ["Activity assigned to", "HubSpot owner"]},
        "contacts": {"account_id": ["Company ID", "Associated Company ID"],
                     "name": ["Full name", ["First Name", "Last Name"]], "email": ["Email"],
                     "role": ["Job Title"], "added": ["Create Date"]},
        "support": {"account_id": ["Company ID", "Associated Company ID"], "case_id": ["Ticket ID", "Record ID"],
                    "opened": ["Create date"], "closed": ["Close date"], "priority": ["Priority"],
                    "subject": ["Ticket name", "Subject"]},
    },
}



# --- values -------------------------------------------------------------------------------------

_NUMERIC_DATE = re.compile(r"^(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})(?:[ ,T].*)?$")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_NAMED_DATE = re.compile(r"^(?:(\d{1,2})\s+([A-Za-z]{3})[a-z]*\.?,?\s+(\d{4})|([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4}))")


def _year(y: str) -> int:
    return int(y) + 2000 if len(y) == 2 else int(y)


def slashed_parts(value: str) -> tuple[int, int] | None:
    """(first, second) of a day/month-ambiguous date like 03/04/2026 or 31.03.2026, else None."""
    m = _NUMERIC_DATE.match(value.strip())
    if not m or len(m.group(1)) == 4:
        return None
    return int(m.group(1)), int(m.group(3))


def decide_date_order(values: list[str], path, fields_seen: str = "") -> str | None:
    """"dmy" or "mdy" from the values of one file, None if no value needs it; raises if unclear."""
    parts = [(v, p) for v in values if (p := slashed_parts(v))]
    if not parts:
        return None
    dmy = [v for v, (a, b) in parts if a > 12]
    mdy = [v for v, (a, b) in parts if b > 12]
    if dmy and mdy:
        raise ChurnwatchError(
            f"{path}: dates mix day-first ({dmy[0]!r}) and month-first ({mdy[0]!r}) forms{fields_seen}. "
            "Export the file with one date format (ISO 2026-03-31 is safest).")
    if dmy:
        return "dmy"
    if mdy:
        return "mdy"
    if all("." in v for v, _ in parts):  # 01.02.2026 is day-first wherever dots are used
        return "dmy"
    raise ChurnwatchError(
        f"{path}: cannot tell whether dates like {parts[0][0]!r} are day/month or month/day "
        "(no day above 12 in the file). Pass --date-order dmy or --date-order mdy.")


def parse_date(value: str, date_order: str | None = None) -> date:
    """A date from ISO, ISO datetime (UTC date), d/m/y or m/d/y (per date_order), d.m.y, 'Mar 31, 2026'."""
    v = value.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d", v):
        try:
            dt = datetime.fromisoformat(v)
            return (dt.astimezone(UTC) if dt.tzinfo else dt).date()
        except ValueError:
            pass
    m = _NUMERIC_DATE.match(v)
    if m:
        a, sep, b, c = m.group(1), m.group(2), m.group(3), m.group(4)
        if len(a) == 4:
            return date(int(a), int(b), int(c))
        if re.fullmatch(r"\d{8}", c or ""):
            raise ValueError(f"not a date: {value!r}")
        if sep == "." or date_order == "dmy":
            return date(_year(c), int(b), int(a))
        if date_order == "mdy" or int(b) > 12:
            return date(_year(c), int(a), int(b))
        if int(a) > 12:
            return date(_year(c), int(b), int(a))
        raise ValueError(f"{value!r} could be day/month or month/day; pass --date-order dmy or mdy")
    if re.fullmatch(r"\d{8}", v):
        return date(int(v[:4]), int(v[4:6]), int(v[6:]))
    m = _NAMED_DATE.match(v)
    if m:
        day, mon, year = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        if mon.lower() in _MONTHS:
            return date(int(year), _MONTHS[mon.lower()], int(day))
    raise ValueError(f"not a date: {value!r} (use e.g. 2026-03-31, 03/31/2026 or 31.03.2026)")


def parse_amount(value: str) -> float:
    """Money: '$1,234.50', '€1.234,50', '(120.00)', '-45', 'USD 1 200', "1'234.5" → float."""
    v = value.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("'", "")
    negative = v.startswith("(") and v.endswith(")")
    v = v.strip("()")
    v = re.sub(r"[^\d,.\-+]", "", v)  # currency symbols and codes
    if v.startswith("-") or v.endswith("-"):
        negative, v = not negative, v.strip("-")
    v = v.lstrip("+")
    if not re.fullmatch(r"[\d.,]*\d[\d.,]*", v or ""):
        raise ValueError(f"not an amount: {value!r}")
    if "," in v and "." in v:
        decimal = "," if v.rfind(",") > v.rfind(".") else "."
        v = v.replace("." if decimal == "," else ",", "").replace(decimal, ".")
    elif "," in v:
        head, _, tail = v.rpartition(",")
        thousands = v.count(",") > 1 or (len(tail) == 3 and head.replace(",", "").isdigit())
        v = v.replace(",", "") if thousands else head.replace(",", "") + "." + tail
    elif v.count(".") > 1:
        v = v.replace(".", "")
    amount = float(v)
    return -amount if negative else amount


# --- columns ------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def resolve_columns(headers: list[str], kind: str, column_map: dict[str, str] | None,
                    preset: str | None, path) -> dict[str, list[str]]:
    """Our field → the export's column(s), from the map, then the preset, then our own names."""
    if kind not in KINDS:
        raise ChurnwatchError(f"Unknown kind {kind!r}. Valid kinds: {', '.join(KINDS)}.")
    if preset is not None and preset not in PRESETS:
        raise ChurnwatchError(f"Unknown preset {preset!r}. Valid presets: {', '.join(PRESETS)}.")
    required, optional = KINDS[kind]
    by_norm = {_norm(h): h for h in headers}
    column_map = dict(column_map or {})
    for ours in column_map:
        if ours not in required + optional:
            raise ChurnwatchError(
                f"--map {ours}=...: {ours!r} is not a field of {kind}. Fields: {', '.join(required + optional)}.")
    found: dict[str, list[str]] = {}
    for ours in required + optional:
        candidates: list = []
        if ours in column_map:
            candidates = [column_map[ours]]
        elif preset:
            candidates = list(PRESETS[preset][kind].get(ours, []))
        candidates.append(ours)
        for cand in candidates:
            names = cand if isinstance(cand, list) else [cand]
            if all(_norm(n) in by_norm for n in names):
                found[ours] = [by_norm[_norm(n)] for n in names]
                break
        else:
            if ours in column_map:
                raise ChurnwatchError(
                    f"{path}: --map {ours}={column_map[ours]}: no column {column_map[ours]!r}. "
                    f"Columns: {', '.join(headers)}.")
    missing = [f for f in required if f not in found]
    if missing:
        raise ChurnwatchError(
            f"{path}: no column for {', '.join(missing)} ({kind} needs {', '.join(required)}). "
            f"Columns found: {', '.join(headers)}. Pass --map {missing[0]}=COLUMN"
            + ("" if preset else " or --preset salesforce|hubspot") + ".")
    return found


def _sniff_reader(text: str) -> csv.DictReader:
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample.splitlines()[0] if sample else ",", delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    return csv.DictReader(text.splitlines(keepends=True), delimiter=delimiter)


# --- rows ---------------------------------------------------------------------------------------

_LOST = {"lost", "churned", "closed lost", "inactive", "cancelled", "canceled", "former customer"}


def _normalise(raw: dict[str, str | None], kind: str, date_order: str | None) -> dict:
    row: dict = {}
    for name, value in raw.items():
        value = (value or "").strip() or None
        if value is None:
            row[name] = None
        elif "\x00" in value:  # PostgreSQL refuses NUL in text; a sign of a broken export anyway
            raise ValueError(f"{name}: holds a NUL character; re-export the file as UTF-8 CSV")
        elif name in DATE_FIELDS:
            try:
                row[name] = parse_date(value, date_order)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif name == "amount":
            try:
                row[name] = parse_amount(value)
            except ValueError as e:
                raise ValueError(f"amount: {e}") from None
        elif name in ("type", "direction", "outcome", "priority"):
            row[name] = value.lower().replace(" ", "_")
        else:
            row[name] = value
    for name in KINDS[kind][0]:
        if row.get(name) is None:
            raise ValueError(f"{name} is empty")
    if kind == "accounts" and row.get("status"):
        row["status"] = "lost" if row["status"].lower() in _LOST else "active"
    if kind == "contacts" and row.get("email"):
        row["email"] = row["email"].lower()
    return row



def parse_map(items: list[str] | str | None) -> dict[str, str]:
    """'account_id=AccountId,date=CloseDate' (or a list of such) → {"account_id": "AccountId", ...}."""
    if not items:
        return {}
    parts = [p for item in ([items] if isinstance(items, str) else items) for p in item.split(",")]
    out = {}
    for part in (p.strip() for p in parts if p.strip()):
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ChurnwatchError(f"--map {part!r}: write field=Column, e.g. --map account_id=AccountId")
        out[ours.strip()] = theirs.strip()
    return out


def read_rows(path, kind: str, column_map: dict[str, str] | None = None, preset: str | None = None,
              date_order: str | None = None) -> tuple[list[tuple[int, dict]], list[CsvRowError], str | None]:
    """The normalised rows of a CRM export as (line, row), the bad rows, and the date order used."""
    path = Path(path)
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ChurnwatchError(f"date order {date_order!r}: use one of {', '.join(DATE_ORDERS)}.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ChurnwatchError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ChurnwatchError(f"{path}: is a folder; pass the CSV file itself.") from None
    except UnicodeDecodeError:
        try:  # Excel on Windows saves CSVs as cp1252
            text = path.read_text(encoding="cp1252")
        except UnicodeDecodeError:
            raise ChurnwatchError(
                f"{path}: is not a text CSV (neither UTF-8 nor Windows-1252). "
                "Export it again as 'CSV UTF-8' from your CRM or spreadsheet."
            ) from None
    if "\x00" in text:
        raise ChurnwatchError(f"{path}: holds binary data, not a CSV. Export it again as CSV.")
    reader = _sniff_reader(text)
    headers = [h for h in (reader.fieldnames or []) if h is not None]
    if not headers:
        raise ChurnwatchError(f"{path}: the file is empty; expected a CSV with a header line.")
    columns = resolve_columns(headers, kind, column_map, preset, path)
    raw_rows = []
    for record in reader:
        raw = {ours: " ".join((record.get(c) or "").strip() for c in cols).strip() for ours, cols in columns.items()}
        raw_rows.append((reader.line_num, raw))
    if date_order is None:
        values = [r[f] for _, r in raw_rows for f in DATE_FIELDS if r.get(f)]
        date_order = decide_date_order(values, path, "")
    good, bad = [], []
    for line, raw in raw_rows:
        if not any(raw.values()):
            continue
        try:
            good.append((line, _normalise(raw, kind, date_order)))
        except ValueError as e:
            bad.append(CsvRowError(path, line, str(e)))
    return good, bad, date_order
