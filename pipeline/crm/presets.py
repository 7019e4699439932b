"""Reading CRM exports: our fields per kind, the column names of Salesforce and HubSpot exports,
dates, amounts, and the normalised rows of a file (`read_export`, `read_rows`). Nothing here
touches the store; `pipeline.crm` writes what this reads.

    export = read_export("orders.csv", "orders", preset="salesforce")   # rows, bad, warnings, ...

Values are parsed strictly: a date outside 1970 .. today + a year, a three-digit year, an amount
that could be read two ways (1.234 with no other amount showing the decimal mark), malformed
thousands groups and scientific notation are bad rows naming the value, never a silent guess.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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


# A date outside [EARLIEST_DATE, today + FUTURE_MARGIN_DAYS] is a typo (31.03.202, 12/31/99 read
# as 2099, 0026-01-05), not data: the row is reported as bad. Future order dates within the
# margin are imported with a warning (a booked renewal, or a clock that is off).
EARLIEST_DATE = date(1970, 1, 1)
FUTURE_MARGIN_DAYS = 366


def _year(y: str, today: date | None = None) -> int:
    if len(y) == 4:
        return int(y)
    if len(y) != 2:
        raise ValueError(f"the year {y!r} has {len(y)} digit(s); write it with four (2026) or two (26)")
    # two digits: the century that keeps the year at most ten years ahead (26 → 2026, 99 → 1999)
    now = (today or date.today()).year
    year = now - now % 100 + int(y)
    return year if year <= now + 10 else year - 100


def check_date_range(day: date, value: str, today: date | None = None) -> date:
    """The date, or ValueError naming the value when it lies outside the plausible range."""
    today = today or date.today()
    latest = today + timedelta(days=FUTURE_MARGIN_DAYS)
    if day < EARLIEST_DATE:
        raise ValueError(f"{value!r} is {day}, before {EARLIEST_DATE.year}; check the date")
    if day > latest:
        raise ValueError(f"{value!r} is {day}, more than {FUTURE_MARGIN_DAYS} days after today ({today}); "
                         "check the date (a two-digit year?)")
    return day


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


def parse_date(value: str, date_order: str | None = None, today: date | None = None) -> date:
    """A date from ISO, ISO datetime (UTC date), d/m/y or m/d/y (per date_order), d.m.y, 'Mar 31, 2026';
    ValueError for a year of one or three digits and for a date outside the plausible range
    (`check_date_range`: before 1970, or more than a year after today)."""
    return check_date_range(_parse_date(value, date_order, today), value, today)


def _parse_date(value: str, date_order: str | None, today: date | None) -> date:
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
            return date(_year(c, today), int(b), int(a))
        if date_order == "mdy" or int(b) > 12:
            return date(_year(c, today), int(a), int(b))
        if int(a) > 12:
            return date(_year(c, today), int(b), int(a))
        raise ValueError(f"{value!r} could be day/month or month/day; pass --date-order dmy or mdy")
    if re.fullmatch(r"\d{8}", v):
        return date(int(v[:4]), int(v[4:6]), int(v[6:]))
    m = _NAMED_DATE.match(v)
    if m:
        day, mon, year = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        if mon.lower() in _MONTHS:
            return date(int(year), _MONTHS[mon.lower()], int(day))
    raise ValueError(f"not a date: {value!r} (use e.g. 2026-03-31, 03/31/2026 or 31.03.2026)")


_MINUS = dict.fromkeys(map(ord, "\u2212\u2012\u2013\u2014\ufe63\uff0d"), "-")  # Unicode minus, dashes
_GAPS = "\\s'\u2019\u00a0\u202f\u2009"  # spaces and apostrophes: only ever thousands separators
_SCIENTIFIC = re.compile(r"\d\s*[eE]\s*[+-]?\d")
_NOT_NUMBER = re.compile(rf"[^\d,.+\-{_GAPS}]")  # currency symbols and codes
_GAP = re.compile(rf"[{_GAPS}]+")
_GROUP = re.compile(r"\d{3}(?:[.,]\d*)?")
_NUMBER = re.compile(r"[\d.,]*\d[\d.,]*")
_SIMPLE = re.compile(r"-?\d+(?:\.\d+)?")
_PLAIN = re.compile(r"\d+(?:([.,])\d+)?")  # no thousands separator: read without babel
_BABEL_LOCALE = {".": "en_US", ",": "de_DE"}  # the locale that reads a decimal point / a decimal comma


def _amount_number(value: str) -> tuple[str, bool]:
    """The digits and '.' ',' separators of an amount (no currency, sign or gaps), and its sign."""
    if _SIMPLE.fullmatch(value):  # the common 1234.50 or -45 of a machine export
        return value.lstrip("-"), value.startswith("-")
    v = value.strip().translate(_MINUS)
    if _SCIENTIFIC.search(v):
        raise ValueError(f"{value!r} is in scientific notation (spreadsheets show big numbers so and drop "
                         "digits); format the column as a plain number and export again")
    negative = v.startswith("(") and v.endswith(")")
    v = _NOT_NUMBER.sub("", v.strip("()")).strip()
    if v.startswith("-") or v.endswith("-"):
        negative, v = not negative, v.strip("-").strip()
    v = v.lstrip("+").strip()
    head, *groups = _GAP.split(v)
    if groups and not (head[-1:].isdigit() and all(_GROUP.fullmatch(g) for g in groups)):
        raise ValueError(f"not an amount: {value!r} (a space or apostrophe must be followed by three digits)")
    v = head + "".join(groups)
    if not _NUMBER.fullmatch(v):
        raise ValueError(f"not an amount: {value!r}")
    return v, negative


def _decimal_mark_of(number: str) -> str | None:
    dots, commas = number.count("."), number.count(",")
    if dots and commas:
        return "." if number.rfind(".") > number.rfind(",") else ","
    if dots + commas == 0:
        return None
    mark = "." if dots else ","
    if dots + commas > 1:  # 1.234.567: the repeated one groups thousands
        return "," if mark == "." else "."
    head, tail = number.split(mark)
    if len(tail) != 3 or not head or head.startswith("0") or len(head) > 3:  # 12,5  0,001  1234,567
        return mark
    return None


def amount_decimal_mark(value: str) -> str | None:
    """'.' or ',' where an amount's own form shows its decimal mark (1,234.50; 12,5; 1.234.567;
    0,001), else None: no separator, or one before exactly three digits (1,234 is 1234 in an
    American export and 1.234 in a German one), or not an amount at all."""
    try:
        return _decimal_mark_of(_amount_number(value)[0])
    except ValueError:
        return None


def decide_decimal_mark(values: list[str]) -> str | None:
    """The decimal mark of a file's amounts when those that show one agree, else None."""
    marks = {m for v in values if (m := amount_decimal_mark(v))}
    return marks.pop() if len(marks) == 1 else None


def check_locale(locale: str | None) -> str | None:
    """A locale name babel knows (en, en_US, de_DE, fr_CH ...), or ChurnwatchError listing examples."""
    if locale is None:
        return None
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ChurnwatchError(
            f"Unknown locale {locale!r}. Use the one the export's amounts are written in, e.g. en_US (1,234.50), "
            "de_DE (1.234,50), fr_FR (1 234,50) or de_CH (1'234.50).") from None
    return locale.replace("-", "_")


def parse_amount(value: str, decimal_mark: str | None = None, locale: str | None = None) -> float:
    """Money: '$1,234.50', '€1.234,50', '(120.00)', '-45', '−45', 'USD 1 200', "1'234.5" → float.

    The number is read by babel (`parse_decimal`, strict: thousands groups must be whole) in
    `locale` if given, else with the decimal mark the value shows, else with `decimal_mark` (the
    file's, from `decide_decimal_mark`). A value that could be read either way (1.234 with no
    mark known), malformed groups (1,234,56) and scientific notation (1e3) are ValueErrors."""
    from babel.numbers import NumberFormatError, parse_decimal

    number, negative = _amount_number(value)
    if locale is None:
        mark = _decimal_mark_of(number) or decimal_mark
        if mark is None and ("." in number or "," in number):
            sep = "." if "." in number else ","
            whole = number.replace(sep, "")
            raise ValueError(f"{value!r} could be {whole} or {number.replace(',', '.')}: pass --locale en_US if "
                             "amounts are written 1,234.50 or --locale de_DE if 1.234,50")
        plain = _PLAIN.fullmatch(number)
        if plain and plain.group(1) in (None, mark):  # 1234 or 1234.5: nothing for babel to check
            amount = float(number.replace(",", "."))
            return -amount if negative else amount
        locale = _BABEL_LOCALE[mark or "."]
    try:
        amount = float(parse_decimal(number, locale=locale, strict=True))
    except NumberFormatError:
        raise ValueError(f"{value!r} is not a well-formed amount in {locale} (its thousands groups or decimal mark "
                         f"do not fit); write it like {_example(locale)}") from None
    return -amount if negative else amount


def _example(locale: str) -> str:
    from babel.numbers import format_decimal

    return format_decimal(1234.5, format="#,##0.00", locale=locale)


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


def _normalise(raw: dict[str, str | None], kind: str, date_order: str | None, decimal_mark: str | None = None,
               locale: str | None = None, today: date | None = None) -> dict:
    row: dict = {}
    for name, value in raw.items():
        value = (value or "").strip() or None
        if value is None:
            row[name] = None
        elif "\x00" in value:  # PostgreSQL refuses NUL in text; a sign of a broken export anyway
            raise ValueError(f"{name}: holds a NUL character; re-export the file as UTF-8 CSV")
        elif name in DATE_FIELDS:
            try:
                row[name] = parse_date(value, date_order, today)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif name == "amount":
            try:
                row[name] = parse_amount(value, decimal_mark, locale)
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
    if kind == "accounts" and row.get("created") and row.get("lost_on") and row["lost_on"] < row["created"]:
        raise ValueError(f"lost_on {row['lost_on']} is before created {row['created']}; check both dates")
    return row


def _warnings(row: dict, kind: str, today: date) -> list[str]:
    """What is odd about a row that is still imported: an order dated in the future, paid before it was placed."""
    out = []
    if kind == "orders":
        if row["date"] > today + timedelta(days=1):
            out.append(f"the order date {row['date']} is in the future (today is {today}); imported as given")
        if row.get("paid_date") and row["paid_date"] < row["date"]:
            out.append(f"paid_date {row['paid_date']} is before the order date {row['date']}; imported as given")
    return out



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


@dataclass
class ExportRows:
    """What `read_export` makes of a file."""

    rows: list[tuple[int, dict]]  # (line, normalised row) of the good rows
    bad: list[CsvRowError]  # rows that cannot be read, with their line and the value
    warnings: list[CsvRowError] = field(default_factory=list)  # rows read, but odd (a future order date)
    date_order: str | None = None  # "dmy" or "mdy" when the file had slashed dates
    decimal_mark: str | None = None  # "." or "," as the amounts show it (None: no amount showed it)


def _read_text(path: Path) -> str:
    """The text of a CSV: UTF-8 (with or without BOM), UTF-16 (Excel's 'Unicode text'), or Windows-1252."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ChurnwatchError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ChurnwatchError(f"{path}: is a folder; pass the CSV file itself.") from None
    except PermissionError:
        raise ChurnwatchError(f"{path}: cannot be read (no permission); check the file's permissions.") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or _looks_utf16(data):
        encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else (
            "utf-16-le" if data[1:2] == b"\x00" else "utf-16-be")
        try:
            return data.decode(encoding).lstrip("\ufeff")
        except UnicodeDecodeError:
            raise ChurnwatchError(f"{path}: looks like UTF-16 text but does not decode as UTF-16. "
                                  "Export it again as 'CSV UTF-8'.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:  # Excel on Windows saves CSVs as cp1252
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise ChurnwatchError(
                f"{path}: is not a text CSV (neither UTF-8, UTF-16 nor Windows-1252). "
                "Export it again as 'CSV UTF-8' from your CRM or spreadsheet."
            ) from None


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: every other byte of the first line is NUL, the rest are not."""
    head = data[: min(200, len(data)) // 2 * 2]
    if len(head) < 4:
        return False
    odd, even = head[1::2], head[0::2]
    return (odd.count(0) == len(odd) and 0 not in even) or (even.count(0) == len(even) and 0 not in odd)


def read_raw_rows(path: Path, resolve) -> list[tuple[int, dict[str, str]]]:
    """(line, {our field: text}) for each row of a CSV export; `resolve(headers)` maps our fields
    to the file's columns (several columns are joined with a space)."""
    text = _read_text(path)
    if "\x00" in text:
        raise ChurnwatchError(f"{path}: holds binary data, not a CSV. Export it again as CSV.")
    reader = _sniff_reader(text)
    headers = [h for h in (reader.fieldnames or []) if h is not None]
    if not headers:
        raise ChurnwatchError(f"{path}: the file is empty; expected a CSV with a header line.")
    columns = resolve(headers)
    raw_rows = []
    for record in reader:
        raw = {ours: " ".join((record.get(c) or "").strip() for c in cols).strip() for ours, cols in columns.items()}
        raw_rows.append((reader.line_num, raw))
    return raw_rows


def read_export(path, kind: str, column_map: dict[str, str] | None = None, preset: str | None = None,
                date_order: str | None = None, locale: str | None = None, today: date | None = None) -> ExportRows:
    """The normalised rows of a CRM export, its bad rows and warnings, the date order and decimal
    mark used. `locale` reads amounts as written there (babel); without it the file's amounts
    decide (`decide_decimal_mark`), and one that could be read two ways is a bad row."""
    path = Path(path)
    today = today or date.today()
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ChurnwatchError(f"date order {date_order!r}: use one of {', '.join(DATE_ORDERS)}.")
    locale = check_locale(locale)
    raw_rows = read_raw_rows(path, lambda headers: resolve_columns(headers, kind, column_map, preset, path))
    if date_order is None:
        values = [r[f] for _, r in raw_rows for f in DATE_FIELDS if r.get(f)]
        date_order = decide_date_order(values, path, "")
    mark = None if locale else decide_decimal_mark([r["amount"] for _, r in raw_rows if r.get("amount")])
    out = ExportRows([], [], date_order=date_order, decimal_mark=mark)
    for line, raw in raw_rows:
        if not any(raw.values()):
            continue
        try:
            row = _normalise(raw, kind, date_order, mark, locale, today)
        except ValueError as e:
            out.bad.append(CsvRowError(path, line, str(e)))
            continue
        out.rows.append((line, row))
        out.warnings += [CsvRowError(path, line, w) for w in _warnings(row, kind, today)]
    return out


def read_rows(path, kind: str, column_map: dict[str, str] | None = None, preset: str | None = None,
              date_order: str | None = None, locale: str | None = None
              ) -> tuple[list[tuple[int, dict]], list[CsvRowError], str | None]:
    """The normalised rows of a CRM export as (line, row), the bad rows, and the date order used
    (`read_export` also gives the warnings and the decimal mark)."""
    export = read_export(path, kind, column_map, preset, date_order, locale)
    return export.rows, export.bad, export.date_order
