"""Redaction throughput (utterances/s) on a generated English/German corpus.

    python bench/redact.py [--n 5000] [--pii-share 0.25] [--seed 0]

A quarter of the utterances (by default) hold one piece of PII (card, IBAN, e-mail, phone;
written or spoken); the rest are ordinary sales-call lines full of harmless numbers (seats,
prices, years, invoice numbers). Prints utterances/s for `redact_text` and for
`redact_transcript` (text plus word timings), and, as a sanity check, how many planted items
were removed and how many clean utterances were changed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.privacy.detectors import luhn_ok
from pipeline.privacy.redact import RedactOptions, redact_text, redact_transcript
from pipeline.types import Segment, Transcript, Word

CLEAN_EN = [
    "we have {n} seats on the current plan and might need {m} more",
    "invoice {n}-{m} was charged twice in {year}",
    "the renewal quote came in at ${n},{m:03d} per year",
    "honestly the last {n} tickets took over {m} days each",
    "can we move the call to {h}:{m:02d} on Thursday",
    "our team grew from {n} to {m} people since {year}",
    "order {n}{m} shipped on {year}-0{h}-1{h}",
]
CLEAN_DE = [
    "wir haben {n} Lizenzen und brauchen vielleicht {m} mehr",
    "die Rechnung {n}-{m} wurde doppelt abgebucht",
    "das Angebot lag bei {n}.{m:03d} Euro im Jahr {year}",
    "können wir das Gespräch auf {h}:{m:02d} Uhr verschieben",
]
DIGITS_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGITS_DE = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]


def _card(rng: random.Random) -> str:
    body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
    number = next(body + d for d in "0123456789" if luhn_ok(body + d))
    style = rng.randrange(3)
    if style == 0:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    if style == 1:
        return number
    return " ".join(DIGITS_EN[int(c)] for c in number)


def _iban(rng: random.Random) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # D=13, E=14
    compact = f"DE{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _phone(rng: random.Random) -> str:
    subscriber = "".join(rng.choice("0123456789") for _ in range(7))
    return rng.choice([
        f"+49 30 {subscriber}", f"030 {subscriber}", f"(212) 555-01{rng.randrange(10, 99)}",
        f"020 7946 0{rng.randrange(100, 999)}",
        "null drei null " + " ".join(DIGITS_DE[int(c)] for c in subscriber),
    ])  # fmt: skip


def _email(rng: random.Random) -> str:
    first, last = rng.choice(["john", "anna", "max", "li"]), rng.choice(["smith", "mueller", "ng"])
    return rng.choice([f"{first}.{last}@example.com", f"{first} dot {last} at example dot com"])


PII = {"card": _card, "iban": _iban, "phone": _phone, "email": _email}


def make_corpus(n: int, pii_share: float, seed: int) -> list[tuple[str, str | None]]:
    """(utterance, planted kind or None)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template = rng.choice(CLEAN_EN + CLEAN_DE)
        text = template.format(
            n=rng.randrange(2, 999),
            m=rng.randrange(1, 999),
            h=rng.randrange(1, 9),
            year=rng.randrange(1990, 2030),
        )
        kind = None
        if rng.random() < pii_share:
            kind = rng.choice(list(PII))
            text += (
                rng.choice([", you can use ", ", das ist ", ", it's "]) + PII[kind](rng) + " okay"
            )
        out.append((text, kind))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="utterances in the corpus")
    parser.add_argument(
        "--pii-share", type=float, default=0.25, help="share of utterances with PII"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = RedactOptions()
    corpus = make_corpus(args.n, args.pii_share, args.seed)

    redact_text("warm up 030 1234567", options)
    t0, c0 = time.perf_counter(), time.process_time()
    results = [redact_text(text, options) for text, _ in corpus]
    text_s, text_cpu = time.perf_counter() - t0, time.process_time() - c0

    segments = [
        Segment(i * 5.0, i * 5.0 + 4.0, f" {text}",
                words=[Word(f" {w}", i * 5.0 + k * 0.2, i * 5.0 + k * 0.2 + 0.15) for k, w in enumerate(text.split())])
        for i, (text, _) in enumerate(corpus)
    ]  # fmt: skip
    transcript = Transcript("en", len(corpus) * 5.0, "bench", "none", segments)
    t0, c0 = time.perf_counter(), time.process_time()
    redact_transcript(transcript, options)
    transcript_s, transcript_cpu = time.perf_counter() - t0, time.process_time() - c0

    planted = [(r, kind) for r, (_, kind) in zip(results, corpus) if kind]
    caught = sum(any(f.kind == kind for f in r.findings) for r, kind in planted)
    changed_clean = sum(bool(r.findings) for r, (_, kind) in zip(results, corpus) if not kind)
    print(f"corpus: {len(corpus)} utterances, {len(planted)} with PII (seed {args.seed})")
    n = len(corpus)
    print(
        f"redact_text:       {n / text_s:7.0f} utterances/s wall, {n / text_cpu:7.0f} per CPU-second (one core)"
    )
    print(
        f"redact_transcript: {n / transcript_s:7.0f} utterances/s wall, {n / transcript_cpu:7.0f} per CPU-second"
        " (text + word timings)"
    )
    print(
        f"planted PII removed: {caught}/{len(planted)}; clean utterances changed: {changed_clean}/{len(corpus) - len(planted)}"
    )


if __name__ == "__main__":
    main()
