"""The "call me back" date parser, relative to fixed call dates."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.reminders.callback_dates import find_callback, parse_when

THU = date(2026, 2, 19)  # Thursday 19 Feb 2026
MON = date(2026, 2, 16)  # Monday 16 Feb 2026


@pytest.mark.parametrize("text,expected", [
    ("Call me back in two weeks.", date(2026, 3, 5)),
    ("Can you ring me next Tuesday?", date(2026, 2, 24)),
    ("Give me a call after the 15th.", date(2026, 3, 16)),  # the 15th has passed this month
    ("Let's talk again in a month.", date(2026, 3, 19)),
    ("Get back to me next quarter, we'll know more then.", date(2026, 4, 1)),
    ("Try me again tomorrow.", date(2026, 2, 20)),
    ("Call me the day after tomorrow.", date(2026, 2, 21)),
    ("Can we speak on Monday?", date(2026, 2, 23)),
    ("Call me in 10 days please.", date(2026, 3, 1)),
    ("Ring me at the end of the month.", date(2026, 2, 27)),  # the 28th is a Saturday
    ("Let's catch up in early March.", date(2026, 3, 1)),
    ("Call me on the 3rd of April.", date(2026, 4, 3)),
    ("Call me after March 15th.", date(2026, 3, 16)),
    ("Let's reconnect in a couple of weeks.", date(2026, 3, 5)),
    ("Call me back three weeks from now.", date(2026, 3, 12)),
    ("We should talk end of next week.", date(2026, 2, 27)),
    ("Speak to you in the new year.", date(2027, 1, 1)),
    ("Call me after quarter end.", date(2026, 4, 1)),
    ("Fine. Call me next Friday.", date(2026, 2, 27)),
    ("Rufen Sie mich in zwei Wochen an.", date(2026, 3, 5)),
    ("Können wir nach dem 15. telefonieren?", date(2026, 3, 16)),
])
def test_phrasings_relative_to_the_call_date(text, expected):
    found = find_callback(text, THU)
    assert found is not None, text
    assert found.when == expected
    assert found.phrase.lower() in text.lower()


def test_next_weekday_means_the_following_week():
    # on a Monday, "Tuesday" is tomorrow but "next Tuesday" is the week after
    assert find_callback("Call me on Tuesday.", MON).when == date(2026, 2, 17)
    assert find_callback("Call me next Tuesday.", MON).when == date(2026, 2, 24)


def test_after_the_15th_early_in_the_month_is_this_month():
    assert find_callback("Ring me after the 15th.", date(2026, 3, 2)).when == date(2026, 3, 16)


def test_month_ends_and_year_wrap():
    assert find_callback("Call me in a month.", date(2026, 1, 31)).when == date(2026, 2, 28)
    assert find_callback("Call me next quarter.", date(2026, 11, 3)).when == date(2027, 1, 1)
    assert find_callback("Call me next month.", date(2026, 12, 10)).when == date(2027, 1, 1)


@pytest.mark.parametrize("text", [
    "I'll set it up next week.",  # a date, but no request to be contacted
    "Every time we ring support we're told to restart the server.",  # contact, no date
    "Our finance director wants sixty days terms from the start of next quarter.",
    "From 30 to 60 days, call me whenever.",
    "We may call you.",
    "It has been crashing every afternoon for two weeks, we ring support daily.",
])
def test_no_request_no_date(text):
    assert find_callback(text, THU) is None


def test_date_and_request_must_share_a_sentence():
    assert find_callback("We go live next week. Call me if anything comes up.", THU) is None
    found = find_callback("We go live next week. Call me in a fortnight.", THU)
    assert found is not None and found.when == date(2026, 3, 5)
    assert found.sentence == "Call me in a fortnight."


def test_parse_when_only_returns_future_dates():
    assert parse_when("on the 19th", THU)[0] == date(2026, 3, 19)
    assert parse_when("nothing here", THU) is None
