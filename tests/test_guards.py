"""The repetition-loop guard on hand-built text."""

from __future__ import annotations

from pipeline.speech.loop_guards import collapse_repetition, compression_ratio, is_looping, repeated_ngram


def test_repetition_loop_detector():
    loop = "Thank you for calling. " + "I will check the invoice. " * 6
    assert repeated_ngram(loop) == (5, 6)
    assert is_looping(loop) and compression_ratio(loop) > 2.4
    normal = "We looked at the invoice and the credit note, and the numbers add up now."
    assert not is_looping(normal) and repeated_ngram(normal) is None
    assert repeated_ngram("no, no, no, I said the other one") is None  # three is speech, not a loop
    assert collapse_repetition(loop) == "Thank you for calling. I will check the invoice."
    assert collapse_repetition("yes yes yes yes yes yes ok") == "yes ok"


def test_loop_inside_longer_text_is_found_once_collapsed():
    text = "So the renewal is in May. " + "We will see. " * 4 + "Thanks, bye."
    assert repeated_ngram(text) == (3, 4)
    fixed = collapse_repetition(text)
    assert fixed == "So the renewal is in May. We will see. Thanks, bye."
    assert not is_looping(fixed)
