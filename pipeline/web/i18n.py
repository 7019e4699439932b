"""The pages' languages: English in the templates, German (and any other) from gettext catalogs.

Messages are written in English where they are used (`_("Inbox")` in templates and page code)
and translated in the .po files of `pipeline/web/locale/<lang>/LC_MESSAGES/` (one per page group,
all read), read with Babel when the app starts (no compiled .mo files to keep in step). Dates and numbers are formatted by Babel for
the same language. Each user chooses a language on their page; before login, the browser's
Accept-Language decides.

To add a message: use `_("...")`, then add its translation to each messages.po (the tests fail
for a message that has none).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"
LANGUAGES = {"en": "English", "de": "Deutsch"}


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    """msgid -> msgstr for one language (empty for English, whose messages are the ids)."""
    if lang == DEFAULT:
        return {}
    out: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            cat = read_po(f, locale=lang)
        out.update({m.id: m.string for m in cat if m.id and m.string and not m.fuzzy})
    return out


class Translator:
    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self._messages = catalog(self.lang)

    def gettext(self, message: str, **values) -> str:
        text = self._messages.get(message, message)
        return text.format(**values) if values else text

    __call__ = gettext

    def date(self, value: date | datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return "–"
        if isinstance(value, datetime):
            value = value.date()
        return format_date(value, format=fmt, locale=self.lang)

    def datetime(self, value: datetime | None, fmt: str = "short") -> str:
        return "–" if value is None else format_datetime(value, format=fmt, locale=self.lang)

    def language_name(self, code: str | None) -> str:
        """A language code as its name in this language ("de" -> "German", or "Deutsch" in German)."""
        if not code:
            return "–"
        name = Locale.parse(self.lang).languages.get(code.split("-")[0].lower())
        return name or code

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.lang)


def best_match(accept_language: str | None) -> str:
    """The first language of an Accept-Language header that the pages speak."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT
