"""When did the customer ask to be called back? A small deterministic date-expression parser.

"Call me back in two weeks", "ring me next Tuesday", "after the 15th", "in a month",
"next quarter": `find_callback(text, call_date)` finds a sentence that both asks for contact
(call, ring, get back to, talk, follow up ...) and names a time, and returns the date it means,
counted from the call date. A sentence with a date but no request for contact ("we go live
next week") gives nothing, so a reminder is only made when the customer asked for one.

Conventions (documented, because people disagree):
- "next Tuesday" is the Tuesday of the following calendar week; "Tuesday", "on Tuesday" and
  "this Tuesday" are the first Tuesday after the call date.
- "next week" is the Monday of the following week; "next month" the 1st of the following
  month; "next quarter" the first day of the next calendar quarter; "in a month" one month on.
- "after the 15th" is the 16th (of this month if still ahead, else of the next month).
- "end of the month/week/quarter" is its last (working) day.
English and German phrasings are understood.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["CallbackRequest", "find_callback", "parse_when"]


@dataclass(frozen=True)
class CallbackRequest:
    when: date  # the date the customer asked for
    phrase: str  # the words that named the time, e.g. "in two weeks"
    sentence: str  # the sentence that asked for the call


_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a couple of": 2, "couple of": 2, "a couple": 2, "a few": 3, "few": 3,
    "ein": 1, "einem": 1, "einer": 1, "eine": 1, "zwei": 2, "drei": 3, "vier": 4, "fünf": 5,
    "sechs": 6, "acht": 8, "zehn": 10, "ein paar": 3, "paar": 3,
}
_UNIT = {
    "day": "d", "days": "d", "week": "w", "weeks": "w", "month": "m", "months": "m",
    "year": "y", "years": "y", "fortnight": "f", "fortnights": "f",
    "tag": "d", "tagen": "d", "woche": "w", "wochen": "w", "monat": "m", "monaten": "m",
    "jahr": "y", "jahren": "y",
}
_WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6, "montag": 0, "dienstag": 1, "mittwoch": 2, "donnerstag": 3, "freitag": 4,
    "samstag": 5, "sonntag": 6,
}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS.update({"januar": 1, "februar": 2, "märz": 3, "mai": 5, "juni": 6, "juli": 7,
                "oktober": 10, "dezember": 12})

_num = "|".join(sorted((re.escape(k) for k in _NUM), key=len, reverse=True)) + r"|\d{1,3}"
_unit = "|".join(sorted(_UNIT, key=len, reverse=True))
_wday = "|".join(_WEEKDAYS)
_month = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ord = r"(\d{1,2})(?:st|nd|rd|th|\.)?"

# Words that ask for contact. The sentence must hold one of these and a time expression.
_TRIGGER = re.compile(
    r"\b(call|calls|calling|ring|phone|give (?:me|us) a (?:call|ring|bell|shout)|get back|come back"
    r"|reach out|touch base|follow up|follow-up|check in|check back|circle back|catch up|speak"
    r"|talk|try (?:me|us|again)|contact|reconnect|revisit|chat|pick (?:this|it) up|meet"
    r"|anrufen|rufen|ruf|melden|zurückrufen|sprechen|telefonieren|reden|treffen)\b",
    re.IGNORECASE,
)


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y, m = d.year + y, m + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _quarter_start(d: date, offset: int) -> date:
    q = (d.month - 1) // 3 + offset
    y, q = d.year + q // 4, q % 4
    return date(y, q * 3 + 1, 1)


def _workday_back(d: date) -> date:
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def _next_weekday(ref: date, wd: int, following_week: bool) -> date:
    if following_week:
        monday = ref - timedelta(days=ref.weekday()) + timedelta(days=7)
        return monday + timedelta(days=wd)
    ahead = (wd - ref.weekday()) % 7 or 7
    return ref + timedelta(days=ahead)


def _day_of_month(ref: date, day: int, after: bool) -> date | None:
    if not 1 <= day <= 31:
        return None
    y, m = ref.year, ref.month
    if day <= ref.day:
        nxt = _add_months(date(y, m, 1), 1)
        y, m = nxt.year, nxt.month
    day = min(day, calendar.monthrange(y, m)[1])
    out = date(y, m, day)
    return out + timedelta(days=1) if after else out


def _month_date(ref: date, month: int, day: int, after: bool) -> date | None:
    year = ref.year
    try:
        out = date(year, month, min(day, calendar.monthrange(year, month)[1]))
        if out <= ref:
            out = date(year + 1, month, min(day, calendar.monthrange(year + 1, month)[1]))
    except ValueError:
        return None
    return out + timedelta(days=1) if after else out


def _offset(ref: date, n: int, unit: str) -> date:
    if unit == "d":
        return ref + timedelta(days=n)
    if unit == "w":
        return ref + timedelta(weeks=n)
    if unit == "f":
        return ref + timedelta(weeks=2 * n)
    if unit == "m":
        return _add_months(ref, n)
    return _add_months(ref, 12 * n)


# Each pattern and how to turn a match into a date (most specific first).
_PATTERNS: list[tuple[re.Pattern, object]] = []


def _pattern(regex: str):
    def register(fn):
        _PATTERNS.append((re.compile(regex, re.IGNORECASE), fn))
        return fn
    return register


@_pattern(r"\b(?:the )?day after tomorrow\b|\bübermorgen\b")
def _p_day_after(m, ref):
    return ref + timedelta(days=2)


@_pattern(r"\btomorrow\b|\bmorgen\b")
def _p_tomorrow(m, ref):
    return ref + timedelta(days=1)


@_pattern(rf"\b(?:in|within|after|nach|in about|in around)\s+(?:another\s+)?(?:about\s+)?({_num})\s+({_unit})(?:'?s)?(?:\s+time)?\b")
def _p_in_n(m, ref):
    n = _NUM.get(m.group(1).lower()) or int(m.group(1))
    return _offset(ref, n, _UNIT[m.group(2).lower()])


@_pattern(rf"\b({_num})\s+({_unit})\s+from\s+(?:now|today)\b")
def _p_n_from_now(m, ref):
    n = _NUM.get(m.group(1).lower()) or int(m.group(1))
    return _offset(ref, n, _UNIT[m.group(2).lower()])


@_pattern(r"\bin\s+a\s+fortnight\b")
def _p_fortnight(m, ref):
    return ref + timedelta(days=14)


@_pattern(r"\bend of (?:the |this )?quarter\b|\bquarter[- ]end\b|\bquartalsende\b")
def _p_quarter_end(m, ref):
    if re.search(r"after|nach", ref_text_before(m), re.IGNORECASE):
        return _quarter_start(ref, 1)
    return _workday_back(_quarter_start(ref, 1) - timedelta(days=1))


@_pattern(r"\b(?:next|the new|following|nächsten?|im nächsten) (?:quarter|quartal)\b")
def _p_next_quarter(m, ref):
    return _quarter_start(ref, 1)


@_pattern(r"\bend of next week\b|\bende nächster woche\b")
def _p_end_next_week(m, ref):
    return _next_weekday(ref, 4, True)


@_pattern(r"\b(?:end of|later) (?:the |this )week\b|\bende der woche\b")
def _p_end_week(m, ref):
    return ref + timedelta(days=(4 - ref.weekday()) % 7)


@_pattern(r"\bend of next month\b")
def _p_end_next_month(m, ref):
    nxt = _add_months(ref.replace(day=1), 1)
    return _workday_back(_month_end(nxt.year, nxt.month))


@_pattern(r"\bend of (?:the |this )month\b|\bmonth[- ]end\b|\bende des monats\b|\bmonatsende\b")
def _p_end_month(m, ref):
    return _workday_back(_month_end(ref.year, ref.month))


@_pattern(r"\b(?:early|beginning of|start of|anfang)?\s*(?:next month|nächsten monat|nächster monat)\b")
def _p_next_month(m, ref):
    return _add_months(ref.replace(day=1), 1)


@_pattern(r"\b(?:next year|the new year|nächstes jahr|im neuen jahr)\b")
def _p_next_year(m, ref):
    return date(ref.year + 1, 1, 1)


@_pattern(r"\b(?:next week|nächste woche|kommende woche)\b")
def _p_next_week(m, ref):
    return _next_weekday(ref, 0, True)


@_pattern(rf"\b(next|this|on|coming|nächsten|kommenden|am)?\s*({_wday})\b")
def _p_weekday(m, ref):
    following = (m.group(1) or "").lower() in ("next", "nächsten")
    return _next_weekday(ref, _WEEKDAYS[m.group(2).lower()], following)


@_pattern(rf"\b(after|from|on|nach dem|ab dem|am)?\s*(?:the\s+)?{_ord}\s+(?:of\s+)?({_month})\b")
def _p_day_month(m, ref):
    after = (m.group(1) or "").lower() in ("after", "nach dem")
    return _month_date(ref, _MONTHS[m.group(3).lower()], int(m.group(2)), after)


@_pattern(rf"\b(after|from|on)?\s*({_month})\s+(?:the\s+)?{_ord}(?!\d)")
def _p_month_day(m, ref):
    after = (m.group(1) or "").lower() == "after"
    return _month_date(ref, _MONTHS[m.group(2).lower()], int(m.group(3)), after)


@_pattern(r"\b(after|from|on|nach dem|am|ab dem)\s+(the\s+)?(\d{1,2})(st|nd|rd|th|\.)?(?!\d)")
def _p_day(m, ref):
    if not (m.group(2) or m.group(4)):  # "after the 15" or "after 15th", never "from 30 to 60"
        return None
    word = m.group(1).lower()
    return _day_of_month(ref, int(m.group(3)), word in ("after", "nach dem"))


@_pattern(rf"\b(early|beginning of|start of|mid|mid-|middle of|end of|late|in|anfang|mitte|ende)\s*({_month})\b")
def _p_in_month(m, ref):
    when, month = m.group(1).lower().strip(), _MONTHS[m.group(2).lower()]
    year = ref.year if month > ref.month else ref.year + 1
    if when in ("mid", "mid-", "middle of", "mitte"):
        return date(year, month, 15)
    if when in ("end of", "late", "ende"):
        return _workday_back(_month_end(year, month))
    return date(year, month, 1)


def ref_text_before(m: re.Match) -> str:
    return m.string[max(0, m.start() - 8) : m.start()]


def parse_when(text: str, ref: date) -> tuple[date, str] | None:
    """The first time expression in `text` as a date counted from `ref`, with its words."""
    found: list[tuple[int, int, date, str]] = []
    for order, (regex, fn) in enumerate(_PATTERNS):
        for m in regex.finditer(text):
            if not m.group(0).strip():
                continue
            when = fn(m, ref)
            if when is not None and when > ref:
                found.append((m.start(), order, when, m.group(0).strip()))
                break
    if not found:
        return None
    _, _, when, phrase = min(found)
    return when, phrase


# a sentence ends at . ! ? ; but not at the dot of a German ordinal ("nach dem 15. anrufen")
_SENTENCE = re.compile(r"(?:(?<=[!?;])|(?<=[^0-9]\.))\s+")


def find_callback(text: str, call_date: date) -> CallbackRequest | None:
    """A request to be contacted at a stated time in `text`, dated relative to `call_date`."""
    for sentence in _SENTENCE.split(text.strip()):
        if not _TRIGGER.search(sentence):
            continue
        parsed = parse_when(sentence, call_date)
        if parsed is not None:
            return CallbackRequest(when=parsed[0], phrase=parsed[1], sentence=sentence.strip())
    return None
