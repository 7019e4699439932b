"""Finding PII in text: one detector per kind, each returning the character spans it found.

The detectors check what they find: card numbers pass the Luhn check, IBANs the mod-97 check and
their country's length, phone numbers come from `phonenumbers`' matcher (for the default regions
in RedactOptions). What is left of a long run of digits that none of them explains (a card or
IBAN the ASR misheard, an account number) is redacted as a number. Spoken forms are read too:
digit words in English and German ("four one one one", "null drei null"), "double four", "plus
four nine", and addresses like "john dot smith at example dot com" or "max punkt mustermann ät
firma punkt de".
`pipeline.privacy.redact` runs them and replaces what they find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import phonenumbers

if TYPE_CHECKING:
    from pipeline.privacy.redact import RedactOptions

__all__ = [
    "DETECTORS",
    "find_cards",
    "find_emails",
    "find_ibans",
    "find_numbers",
    "find_phones",
    "iban_ok",
    "luhn_ok",
]


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with overlapping ones joined."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


# --- card numbers and spoken digits -----------------------------------------------------------

DIGIT_WORDS = {
    # English
    "zero": "0", "oh": "0", "nought": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    # German
    "null": "0", "eins": "1", "zwei": "2", "zwo": "2", "drei": "3", "vier": "4", "fünf": "5",
    "fuenf": "5", "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
}  # fmt: skip
REPEATS = {"double": 2, "triple": 3, "doppel": 2}
_NUM_TOKEN = re.compile(
    r"(?<!\w)(?:\+?[0-9]+|plus|"
    + "|".join(sorted([*DIGIT_WORDS, *REPEATS], key=len, reverse=True))
    + r")(?!\w)",
    re.IGNORECASE,
)
_NUM_GAP = re.compile(r"\s*[-–,./]?\s*")  # what may stand between two groups of one number


@dataclass
class _Group:
    start: int
    end: int
    digits: str  # "+" for a leading plus
    spoken: bool


def _digit_runs(text: str) -> list[list[_Group]]:
    """Runs of digit groups and digit words, e.g. "4111 1111", "oh two oh, seven nine"."""
    runs: list[list[_Group]] = []
    pending_repeat: tuple[int, int] | None = None  # (start, times) of a "double"
    prev_end = -1
    for m in _NUM_TOKEN.finditer(text):
        word = m.group().lower()
        joined = prev_end >= 0 and _NUM_GAP.fullmatch(text, prev_end, m.start()) is not None
        if not joined:
            runs.append([])
            pending_repeat = None
        prev_end = m.end()
        if word in REPEATS:
            pending_repeat = (m.start(), REPEATS[word])
            continue
        spoken = word in DIGIT_WORDS or word == "plus"
        digits = DIGIT_WORDS.get(word) or ("+" if word == "plus" else word)
        start = m.start()
        if pending_repeat and len(digits) == 1:
            start, digits = pending_repeat[0], digits * pending_repeat[1]
        pending_repeat = None
        runs[-1].append(_Group(start, m.end(), digits, spoken))
    return [r for r in runs if r]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _windows(run: list[_Group], lo: int, hi: int):
    """Every stretch of whole groups holding lo..hi digits: (first, last, digits)."""
    for i in range(len(run)):
        digits = ""
        for j in range(i, len(run)):
            digits += run[j].digits
            n = len(digits.lstrip("+"))
            if n > hi or ("+" in digits[1:]):
                break
            if n >= lo:
                yield i, j, digits


def find_cards(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    spans = []
    for run in _digit_runs(text):
        if not options.spoken and any(g.spoken for g in run):
            continue
        # A Luhn-valid stretch of 13-19 digits is a card; the whole run of digits it stands in
        # goes with it: the ASR repeats or splits groups ("4,111,111,111,111,111,111"), and what
        # is read out next to a card number (expiry, security code) is card data too.
        if any("+" not in digits and luhn_ok(digits) for _, _, digits in _windows(run, 13, 19)):
            spans.append((run[0].start, run[-1].end))
    return spans


def _is_item(groups: list[_Group]) -> bool:
    """One number, or a range of two ("12-14"), as a list holds them."""
    return len(groups) == 1 or (len(groups) == 2 and all(g.digits.isdigit() for g in groups)
                                and int(groups[0].digits) < int(groups[1].digits))


# A run of this many digits or more is redacted even where no checksum explains it.
NUMBER_MIN_DIGITS = 12
_CODE_PREFIX = re.compile(r"[^\W\d_]{1,6}[-/#]$")  # "Q-2026-0417-0033", "INV/...": a document's id


def _is_list(text: str, run: list[_Group]) -> bool:
    """Whether a run joined by commas is a list ("10, 20, 30, 40") rather than one number: one
    read digit by digit ("4, 1, 1, 1, ...") or in thousands ("4,111,111,...") is a number, and so
    is one written the way the ASR writes an IBAN read in pieces ("88-9, 370-4, 0044, 05-32, 0130,
    00, 00"): an item of two digits or more that starts with 0, or one of hyphen-joined pieces that
    is not a range ("12-14, 15-17" is a list of ranges; "88-9" and "2-2-57" are not ranges)."""
    gaps = [text[a.end:b.start] for a, b in zip(run, run[1:])]
    if not any("," in gap for gap in gaps):
        return False
    items = [[run[0]]]  # the groups of each item between commas
    for g, gap in zip(run[1:], gaps):
        if "," in gap:
            items.append([])
        items[-1].append(g)
    if any(len(g.digits) > 1 and g.digits[0] == "0" for g in run) or not all(map(_is_item, items)):
        return False
    return not (all(len(g.digits) == 1 for g in run) or all(len(g.digits) == 3 for g in run[1:]))


def find_numbers(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    """Long runs of digits that no checksum explains: a card or IBAN the ASR misheard (a digit
    heard twice, the country code lost: "4111 11111 11111 11111", "0 0 4 4 0 5 3 2 0 1 3 0 0 0"),
    a bank account or card number read out. NUMBER_MIN_DIGITS or more digits in one run, written
    or spoken; a list of numbers, a business reference ("order number ...") and a document id
    ("Q-2026-0417-0033") are kept. Runs after the specific kinds, so a valid card, IBAN or phone
    number keeps its own token."""
    spans = []
    for run in _digit_runs(text):
        if not options.spoken and any(g.spoken for g in run):
            continue
        digits = "".join(g.digits for g in run).replace("+", "")
        start = run[0].start
        if (len(digits) < NUMBER_MIN_DIGITS or _is_list(text, run) or _is_reference(text, start)
                or _CODE_PREFIX.search(text, max(0, start - 7), start)):
            continue
        spans.append((start, run[-1].end))
    return spans


def _find_spoken_phones(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    """Phone numbers read out digit by digit, which the matcher misses: in words ("oh two oh
    seven ...") or as the ASR writes such a reading, one digit at a time ("0 1 5 1 2 3 ...")."""
    spans = []
    lo = max(options.phone_min_digits, 5)
    for run in _digit_runs(text):
        if len(run) >= 5 and all(len(g.digits) == 1 and not g.spoken for g in run):
            # digits written one by one are one number: where a stretch of them is a phone number,
            # the whole run goes as one, unless it is too long for one (the number detector's)
            everything = "".join(g.digits for g in run)
            if ((len(everything) < NUMBER_MIN_DIGITS or _valid_phone(everything, options.regions))
                    and any(_valid_phone(digits, options.regions) for _, _, digits in _windows(run, lo, 15))):
                spans.append((run[0].start, run[-1].end))
            continue
        if not any(g.spoken for g in run):
            continue
        for i, j, digits in _windows(run, lo, 15):
            if any(g.spoken for g in run[i : j + 1]) and _valid_phone(digits, options.regions):
                if i > 0 and run[i - 1].digits == "+":  # "plus" before a number read without it
                    i -= 1
                spans.append((run[i].start, run[j].end))
    return spans


def _valid_phone(digits: str, regions: tuple[str, ...]) -> bool:
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(digits, region)):
                return True
        except phonenumbers.NumberParseException:
            pass
    return False


_DIGIT_STRETCH = re.compile(r"\d(?:[^\w]{0,4}\d)+")  # digits close enough to be one number
_MATCHER_MARGIN = 24  # characters of context the matcher sees either side of such a stretch


# A number right after one of these words is a business reference, not a phone number:
# "invoice number 4960013", "Kundennummer 1234567", "ticket #5550123".
_REFERENCE_BEFORE = re.compile(
    r"(?<!\w)(?:invoice|order|ticket|case|po|purchase order|quote|reference|ref|contract|customer"
    r"|serial|sku|item|part|version|build|batch|rechnung|bestellung|auftrag|vertrag|kunde"
    r"|rechnungsnummer|bestellnummer|auftragsnummer|vertragsnummer|kundennummer|ticketnummer)"
    r"\s*(?:number|no\.?|nr\.?|num|nummer|id|#)?\s*(?:is|was|ist|war)?\s*[:#]?\s*$",
    re.IGNORECASE,
)


def _is_reference(text: str, start: int) -> bool:
    return _REFERENCE_BEFORE.search(text, max(0, start - 40), start) is not None


def find_phones(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    # the matcher is slow: run it only around stretches of digits long enough to be a number
    windows = merge_spans([
        (max(0, m.start() - _MATCHER_MARGIN), m.end() + _MATCHER_MARGIN)
        for m in _DIGIT_STRETCH.finditer(text)
        if sum(c.isdigit() for c in m.group()) >= options.phone_min_digits
    ])  # fmt: skip
    leniency = getattr(phonenumbers.Leniency, options.phone_leniency.upper())
    spans = []
    for lo, hi in windows:
        for region in options.regions:
            for m in phonenumbers.PhoneNumberMatcher(text[lo:hi], region, leniency=leniency):
                if sum(ch.isdigit() for ch in m.raw_string) >= options.phone_min_digits:
                    spans.append((lo + m.start, lo + m.end))
    if options.spoken:
        spans += _find_spoken_phones(text, options)
    return [(s, e) for s, e in spans if not _is_reference(text, s)]


# --- IBAN -------------------------------------------------------------------------------------

# IBAN length per country (the SWIFT IBAN registry); other letter pairs are not IBANs.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}")
_IBAN_SEP = " -"


def iban_ok(compact: str) -> bool:
    compact = compact.upper()
    if not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_ibans(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    spans = []
    for m in _IBAN_START.finditer(text):
        # walk on over letters and digits, allowing one space or dash between characters
        ends: list[int] = []  # ends[k]: end offset after k+5 characters
        compact, pos = m.group(), m.end()
        while len(compact) < 34:
            if pos < len(text) and text[pos].isascii() and text[pos].isalnum():
                compact += text[pos]
                pos += 1
            elif (
                pos + 1 < len(text)
                and text[pos] in _IBAN_SEP
                and text[pos + 1].isascii()
                and text[pos + 1].isalnum()
            ):
                pos += 1
                continue
            else:
                break
            ends.append(pos)
        n = IBAN_LENGTHS.get(compact[:2].upper(), 0)
        if not 0 <= n - 5 < len(ends) or (ends[n - 5] < len(text) and text[ends[n - 5]].isalnum()):
            continue  # not a country, too short, or the IBAN would end inside a word
        bban = compact[4:n]
        # mostly digits (words that follow an "AB12" must not make up an IBAN), and the checksum
        if 2 * sum(c.isdigit() for c in bban) >= len(bban) and iban_ok(compact[:n]):
            spans.append((m.start(), ends[n - 5]))
    return spans + _find_asr_ibans(text, options)


# IBANs the way an ASR writes them: the country code apart or spelled ("DE 89 ...", "D.E. 89",
# "D E eight nine ..."), any grouping, digits read out. Tokens are letter/digit groups joined by
# at most one separator; the IBAN is found by its country's length and the mod-97 check.
_IBAN_TOKEN = re.compile(r"[A-Za-z0-9]+")
_IBAN_GAP = re.compile(r"\s*[-–,./]?\s*")


def _iban_piece(word: str, spoken: bool) -> str | None:
    """What a token adds to an IBAN: a digit for a digit word, the token for a group of digits
    or capitals ("3704", "WEST", "D"); None for an ordinary word, which ends the IBAN."""
    low = word.lower()
    if low in DIGIT_WORDS:
        return DIGIT_WORDS[low] if spoken else None
    if word.isdigit() or (word.isupper() and len(word) <= 4) or len(word) == 1:
        return word.upper()
    if re.fullmatch(r"[A-Za-z]{2}[0-9]+", word):  # "DE89", "de89"
        return word.upper()
    if any(c.isdigit() for c in word) and (word.isupper() or word.isdigit()):
        return word.upper()
    return None


def _find_asr_ibans(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    tokens = [m for m in _IBAN_TOKEN.finditer(text) if m.group().isascii()]
    spans = []
    for i, first in enumerate(tokens):
        word = first.group()
        if not (len(word) <= 2 and word.isalpha() or re.fullmatch(r"[A-Za-z]{2}[0-9]+", word)):
            continue
        if first.start() > 0 and text[first.start() - 1].isalnum():
            continue  # starts inside a word
        compact = ""
        for k in range(i, len(tokens)):
            tok = tokens[k]
            if k > i and _IBAN_GAP.fullmatch(text, tokens[k - 1].end(), tok.start()) is None:
                break
            piece = word.upper() if k == i else _iban_piece(tok.group(), options.spoken)
            if piece is None or len(compact) + len(piece) > 34:
                break
            if len(compact) < 2 and not piece[: 2 - len(compact)].isalpha():
                break  # the country code is letters
            compact += piece
            n = IBAN_LENGTHS.get(compact[:2], 0)
            if len(compact) >= 4 and (not n or not compact[2:4].isdigit()):
                break
            if n and len(compact) == n:
                bban = compact[4:]
                if 2 * sum(c.isdigit() for c in bban) >= len(bban) and iban_ok(compact):
                    spans.append((first.start(), tok.end()))
                break
            if n and len(compact) > n:
                break
    return spans


# --- e-mail -----------------------------------------------------------------------------------

_SPOKEN_DOT = r"\s+(?:dot|punkt)\s+"
_ATOM = r"[\w%+\-]+"
_LOCAL = rf"{_ATOM}(?:(?:\.|{_SPOKEN_DOT}|\s+(?:underscore|unterstrich|dash|hyphen|bindestrich)\s+){_ATOM})*"
_AT = r"(?P<at>\s*@\s*|\s+(?:at|ät|klammeraffe)\s+)"
_LABEL = r"[^\W_](?:[\w\-]*[^\W_])?"
SPOKEN_TLDS = (
    "com", "org", "net", "edu", "gov", "info", "biz", "io", "co", "ai", "app", "dev", "eu", "uk",
    "us", "ca", "au", "de", "at", "ch", "fr", "it", "es", "nl", "be", "pl", "se", "dk", "no", "ie",
)  # fmt: skip
_EMAIL = re.compile(
    rf"(?<![\w.+\-'’])(?P<local>{_LOCAL}){_AT}{_LABEL}(?:(?:\.|{_SPOKEN_DOT}){_LABEL})*"
    rf"(?:\.[A-Za-z]{{2,24}}|{_SPOKEN_DOT}(?:{'|'.join(SPOKEN_TLDS)}))(?![\w\-])",
    re.IGNORECASE,
)
# Words that stand before a spoken "at" without being an address: "meet me at google dot com".
NOT_LOCAL = frozenset({
    "i", "me", "you", "he", "him", "she", "her", "it", "we", "us", "they", "them", "is", "are",
    "was", "were", "be", "been", "look", "looking", "looked", "meet", "here", "there", "home",
    "work", "office", "that", "this", "reach", "call", "email", "mail", "write", "contact", "find",
    "see", "visit", "sign", "signed", "log", "logged", "buy", "bought", "order", "ordered", "book",
    "booked", "check", "based", "located", "hosted", "live",
    "ich", "mich", "dich", "uns", "sie", "ihn", "ihr", "es", "wir",
    "and", "or", "but", "also", "then", "only", "just", "still", "now", "even", "both", "not",
    "in", "on", "up", "out", "over", "back", "by", "again", "them", "all", "one", "ones",
    "und", "oder", "aber", "auch", "dann", "nur", "noch", "jetzt", "an", "bei", "mit",
})  # fmt: skip


def _numeric_local(local: str) -> bool:
    """A local part made of numbers and digit words only: "version two dot one at acme dot com"."""
    words = re.split(r"[\s.\-_]+|\s+(?:dot|punkt)\s+", local.lower())
    return all(w.isdigit() or w in DIGIT_WORDS or w in ("dot", "punkt", "") for w in words)

# Addresses the way an ASR writes them: "name dot name at domain dot com" with the dots written
# apart ("john .smith"), the "at" glued to a word ("smithatexample", "smithat example") or heard
# as one more dot ("john.smith.example.com") or as "that" ("john dot smith that example dot com").
# The local part must be two names or more.
_ASR_SEP = r"(?:\s*\.\s*|\s+(?:dot|punkt)\s+)"
_NAME = r"[^\W\d_](?:[^\W\d_]|-(?=[^\W\d_])){0,29}"
_ASR_TLD = r"(?:" + "|".join(SPOKEN_TLDS) + r")"
_ASR_EMAIL = re.compile(
    rf"(?<![\w.@+\-'’])(?P<local>{_NAME}(?:{_ASR_SEP}{_NAME})+?)"
    rf"(?P<at>\s*(?:at|ät)\s*|\s+that\s+|{_ASR_SEP})"
    rf"(?P<domain>{_LABEL}(?:{_ASR_SEP}{_LABEL})*){_ASR_SEP}(?P<tld>{_ASR_TLD})(?![\w\-])",
    re.IGNORECASE,
)
# Labels that start a host name rather than an address: "www.acme.co.uk", "app.eu.acme.com".
HOST_WORDS = frozenset({
    "www", "app", "apps", "mail", "portal", "api", "support", "help", "docs", "status", "my",
    "login", "shop", "store", "cdn", "dev", "staging", "test", "admin", "web", "m", "go", "en",
    "blog", "news", "info", "sales", "crm", "cloud", "secure", "auth", "static", "files",
})  # fmt: skip


def _find_asr_emails(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    while (m := _ASR_EMAIL.search(text, pos)) is not None:
        names = [n.lower() for n in re.split(_ASR_SEP, m.group("local"), flags=re.IGNORECASE)]
        at = m.group("at").strip().lower()
        ok = names[-1] not in NOT_LOCAL and names[0] not in NOT_LOCAL and not _numeric_local(m.group("local"))
        if at not in ("at", "ät", "that"):  # no "at" at all: a host name unless it looks like name.name.
            ok = ok and not any(n in SPOKEN_TLDS or n in HOST_WORDS for n in names)
        if ok:
            spans.append((m.start(), m.end()))
            pos = m.end()
        else:
            pos = m.start() + 1
    return spans


def find_emails(text: str, options: RedactOptions) -> list[tuple[int, int]]:
    spans, pos = [], 0
    while (m := _EMAIL.search(text, pos)) is not None:
        spoken_at = "@" not in m.group("at")
        if not options.spoken and (spoken_at or re.search(_SPOKEN_DOT, m.group(), re.IGNORECASE)):
            pos = m.start() + 1
            continue
        if spoken_at and (m.group("local").lower() in NOT_LOCAL or _numeric_local(m.group("local"))):
            pos = m.start() + 1  # try again from the next word: "email me at john dot ..."
            continue
        spans.append((m.start(), m.end()))
        pos = m.end()
    if options.spoken:
        spans += _find_asr_emails(text)
    return spans


DETECTORS = {"email": find_emails, "iban": find_ibans, "card": find_cards, "phone": find_phones,
             "number": find_numbers}
