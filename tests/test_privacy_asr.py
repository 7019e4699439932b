"""PII the way Whisper writes what a customer spells out, and sales talk that must stay (issue 19).

A case passes only when every letter and digit of the planted PII is inside a finding: a card
redacted to "[CARD],111,111" still leaks.
"""

from __future__ import annotations

import re

import pytest

from pipeline.privacy.redact import RedactOptions, redact_source, redact_text

OPTS = RedactOptions()


def assert_removed(text: str, secret: str, kind: str) -> None:
    assert secret in text
    result = redact_text(text, OPTS)
    lo = text.index(secret)
    covered = set()
    for f in result.findings:
        covered.update(range(f.start, f.end))
    left = "".join(c for i, c in enumerate(text) if lo <= i < lo + len(secret) and c.isalnum() and i not in covered)
    assert left == "", f"{left!r} of {secret!r} survived: {result.text!r}"
    assert f"[{kind.upper()}]" in result.text, result.text


@pytest.mark.parametrize(
    "secret",
    [
        "4,111,111,111,111,111",
        "4,111,111,111,111,111,111,111,111",  # the ASR repeated a group
        "4111 1111 1111 1111 1111",
        "4111.1111.1111.1111",
        "41 11 11 11 11 11 11 11",
        "four one one one, 1111, one one one one, 1111",
        "4111 - 1111 - 1111 - 1111",
    ],
)
def test_cards_heard_by_the_asr(secret):
    assert_removed(f"sure, the card is {secret}, expires in May", secret, "card")


@pytest.mark.parametrize(
    "secret",
    [
        "john .smithatexample .com",
        "john.smith.example.com",
        "john . smith at example . com",
        "john dot smithat example dot com",
        "john.smith at example dot com",
        "anna .muelleratfirma .co.uk",
        "max . mustermann ät firma . de",
    ],
)
def test_emails_heard_by_the_asr(secret):
    assert_removed(f"yes, it's {secret}, all lower case", secret, "email")


@pytest.mark.parametrize(
    "secret",
    [
        "0 -1 -5 -1 -2 -3 -4 -5 -6 -7 -8",
        "0 1 5 1 2 3 4 5 6 7 8",
        "oh one five one, two three four, five six seven eight",
        "plus four nine one five one two three four five six seven eight",
        "null eins fünf eins 234 5678",
    ],
)
def test_phones_heard_by_the_asr(secret):
    assert_removed(f"call me on {secret} after lunch", secret, "phone")


@pytest.mark.parametrize(
    "secret",
    [
        "DE 89 3704 0044 0532 0130 00",
        "D.E. 89 3704 0044 0532 0130 00",
        "D E eight nine three seven zero four zero zero four four zero five three two zero one three zero zero zero",
        "D E 89 3704 0044 0532 0130 00",
        "DE 89 37 04 00 44 05 32 01 30 00",
        "de 89-3704-0044-0532-0130-00",
        "GB 82 WEST 1234 5698 7654 32",
    ],
)
def test_ibans_heard_by_the_asr(secret):
    assert_removed(f"Bitte überweisen Sie auf {secret} bis Freitag.", secret, "iban")


def test_an_iban_in_any_grouping_with_a_wrong_check_digit_is_not_called_an_iban():
    text = "the reference is DE 88 3704 0044 0532 0130 00 from the bank"
    assert [f.kind for f in redact_text(text, OPTS).findings] == ["number"]  # its digits still go


@pytest.mark.parametrize(
    "text",
    [
        "we pay 12,500 a month, so about 150,000 a year",
        "the contract is worth 1,250,000 euros over three years",
        "invoice number 4960013 from the 4th of March",
        "ticket number 1694144 is still open, and the order 7414169 too",
        "Kundennummer 1234567, Bestellung 4567123",
        "order number 4500 0123 0456 shipped on 2023-05-01",
        "our PO is 4 5 0 0 0 1 2 3, please put it on the invoice",
        "we have one, two, three sites and about 250 seats",
        "call me back at two thirty or at 10:30 on Thursday",
        "the price went from 4,111 to 5,250 per seat",
        "the total was 1,250,000.50 for 3,000 units",
        "we signed on 06/10/2024 and renewed on 2026-10-06",
        "I looked at example dot com and at acme dot com, they're cheaper",
        "we moved to version two dot one at Acme dot com's request",
        "log in at app.acme-corp.com or at www.kestrel.co.uk, the docs are at docs.acme.io",
        "ask Mr. Smith at Kestrel. Come by on Monday",
        "DE 12 stayed flat, FY 24 was up, Q3 was down",
        "die Rechnung 12.500,00 Euro vom 31.03.2026",
        "der Termin ist am 3. Oktober um zehn Uhr dreißig",
    ],
)
def test_sales_talk_the_asr_writes_is_not_pii(text):
    result = redact_text(text, OPTS)
    assert result.findings == [], result.text


# --- the recording's name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("/calls/john.smith@example.com_4111111111111111.flac", "/calls/[EMAIL]_[CARD].flac"),
        ("/calls/+49 30 1234567.wav", "/calls/[PHONE].wav"),
        ("C:\\calls\\DE89370400440532013000 anna.m4a", "C:\\calls\\[IBAN] anna.m4a"),
        ("/data/john.smith@example.com/call_01.ogg", "/data/[EMAIL]/call_01.ogg"),
        ("/data/2026-10-06/call_01.flac", "/data/2026-10-06/call_01.flac"),
        ("samples/audio/call_07.flac", "samples/audio/call_07.flac"),
    ],
)
def test_the_recordings_path_loses_the_pii_in_its_names(source, expected):
    assert redact_source(source, OPTS) == expected
    assert redact_source(expected, OPTS) == expected  # idempotent


def test_the_recordings_path_keeps_no_digits_of_a_card_or_phone():
    out = redact_source("/in/4111-1111-1111-1111_0151 2345 678_john.smith@example.com.mp3", OPTS)
    assert out.startswith("/in/[") and out.endswith("].mp3"), out
    assert not re.search(r"[0-9@]", out.removesuffix(".mp3")) and "smith" not in out, out
