"""Redaction throughput (utterances/s) and recall on generated English/German corpora.

    python bench/redact.py [--n 5000] [--pii-share 0.25] [--seed 0]

A quarter of the utterances (by default) hold one piece of PII (card, IBAN, e-mail, phone;
written or spoken); the rest are ordinary sales-call lines full of harmless numbers (seats,
prices, years, invoice numbers). Prints utterances/s for `redact_text` and for
`redact_transcript` (text plus word timings), how many planted items were removed and how many
clean utterances were changed.

A second corpus is ASR-shaped: PII the way Whisper writes what a customer spells out ("4,111,111,
111,111,111", "john .smithatexample .com", "0 -1 -5 -1 -2 ...", "D.E. 89 3704 ...", "D E eight
nine ..."), and clean lines the way Whisper writes prices, dates, quantities and invoice numbers.
A planted item counts as removed only when every letter and digit of it is inside a finding (a
card redacted to "[CARD],111,111" is not removed). Recall is printed per kind and per form.
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


# --- ASR-shaped corpus ------------------------------------------------------------------------

FIRST = ["john", "anna", "max", "li", "maya", "sven", "chloe", "rahul"]
LAST = ["smith", "mueller", "ng", "okafor", "lindqvist", "garcia", "peters"]
DOMAINS = ["example", "acme-corp", "kestrel", "brightwell", "firma", "gmail"]
TLDS = ["com", "de", "co.uk", "org", "io"]


def _luhn_number(rng: random.Random, first: str = "4", length: int = 16) -> str:
    body = first + "".join(rng.choice("0123456789") for _ in range(length - 1 - len(first)))
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def _thousands(number: str) -> str:
    head = len(number) % 3 or 3
    return ",".join([number[:head]] + [number[i : i + 3] for i in range(head, len(number), 3)])


def _spoken(digits: str, words=DIGITS_EN) -> str:
    return " ".join(words[int(c)] for c in digits)


def _asr_card(rng: random.Random) -> tuple[str, str]:
    number = _luhn_number(rng, rng.choice(["4", "51", "37"]), rng.choice([16, 16, 15]))
    form = rng.choice(["thousands", "overlong", "dots", "pairs", "mixed", "dashes-spaces", "misheard"])
    if form == "misheard":  # a digit heard twice, so no Luhn check holds: "4111 11111 1111 1111"
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
        k = rng.randrange(len(groups))
        groups[k] += groups[k][-1]
        return form, " ".join(groups)
    if form == "thousands":
        return form, _thousands(number)
    if form == "overlong":  # the ASR repeats a group: "4,111,111,111,111,111,111"
        return form, _thousands(number) + f",{number[-3:]}" * rng.randrange(1, 4)
    if form == "dots":
        return form, ".".join(number[i : i + 4] for i in range(0, len(number), 4))
    if form == "pairs":
        return form, " ".join(number[i : i + 2] for i in range(0, len(number), 2))
    if form == "mixed":  # some groups read out, some written
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
        return form, ", ".join(_spoken(g) if k % 2 == 0 else g for k, g in enumerate(groups))
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return form, " - ".join(groups)


def _asr_email(rng: random.Random) -> tuple[str, str]:
    f, l, d = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    tld = rng.choice(TLDS)
    spoken_tld = tld.replace(".", " dot ")
    form = rng.choice(["glued-at", "dots-only", "spaced-dots", "at-glued-left", "that-for-at", "mixed"])
    if form == "glued-at":  # "john .smithatexample .com"
        return form, f"{f} .{l}at{d} .{tld}"
    if form == "dots-only":  # the "at" heard as a dot: "john.smith.example.com"
        return form, f"{f}.{l}.{d}.{tld}"
    if form == "spaced-dots":  # "john . smith at example . com"
        return form, f"{f} . {l} at {d} . {tld.replace('.', ' . ')}"
    if form == "at-glued-left":  # "john dot smithat example dot com"
        return form, f"{f} dot {l}at {d} dot {spoken_tld}"
    if form == "that-for-at":  # tiny.en in tests/data/pii_call: "john dot smith that example dot com"
        return form, f"{f} dot {l} that {d} dot {spoken_tld}"
    return form, f"{f}.{l} at {d} dot {spoken_tld}"


def _asr_phone(rng: random.Random) -> tuple[str, str]:
    number = rng.choice(["0151", "0171", "030", "089", "0208"]) + "".join(
        rng.choice("0123456789") for _ in range(7)
    )
    form = rng.choice(["dash-digits", "space-digits", "spoken-groups", "mixed", "plus-spoken"])
    if form == "dash-digits":  # "0 -1 -5 -1 -2 -3 -4 ..."
        return form, " -".join(number)
    if form == "space-digits":
        return form, " ".join(number)
    if form == "spoken-groups":
        groups = [number[:4], number[4:7], number[7:]]
        return form, ", ".join(_spoken(g, rng.choice([DIGITS_EN, DIGITS_DE])) for g in groups)
    if form == "mixed":
        return form, f"{_spoken(number[:4])} {number[4:7]} {number[7:]}"
    return form, "plus four nine " + _spoken(number[1:])


def _asr_iban(rng: random.Random) -> tuple[str, str]:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # D=13, E=14
    compact = f"DE{check:02d}{bban}"
    groups = [compact[i : i + 4] for i in range(4, len(compact), 4)]
    form = rng.choice(["space-after-cc", "dotted-cc", "spelled", "pairs", "spelled-cc", "country-lost", "digits-lost",
                       "pieces"])
    if form == "pieces":  # tiny.en in tests/data/pii_call: "88-9, 370-4, 0044, 05-32, 0130, 00, 00"
        rest, out = compact[2:], []
        while rest:
            k = rng.randint(1, 4)
            out.append(rest[:k])
            rest = rest[k:]
        return form, out[0] + "".join(rng.choice(["-", ", "]) + g for g in out[1:])
    if form == "country-lost":  # the ASR lost "DE 89": what is left fails every IBAN check
        return form, " ".join(groups)
    if form == "digits-lost":  # and a group more, the rest heard digit by digit: "0 0 4 4 0 5 ..."
        return form, " ".join(compact[8:])
    if form == "space-after-cc":  # "DE 89 3704 0044 ..."
        return form, f"DE {compact[2:4]} " + " ".join(groups)
    if form == "dotted-cc":  # "D.E. 89 3704 ..."
        return form, f"D.E. {compact[2:4]} " + " ".join(groups)
    if form == "spelled":  # "D E eight nine three seven ..."
        return form, "D E " + _spoken(compact[2:])
    if form == "pairs":
        return form, "DE " + " ".join(compact[i : i + 2] for i in range(2, len(compact), 2))
    return form, f"D E {compact[2:4]} " + " ".join(groups)


ASR_PII = {"card": _asr_card, "iban": _asr_iban, "phone": _asr_phone, "email": _asr_email}

# Ordinary talk the way Whisper writes it: prices, dates, quantities, invoice and order numbers.
ASR_CLEAN = [
    "we pay {n},{m:03d} a month, so about {n}{m:03d},000 a year",
    "the contract is worth 1,{m:03d},{n:03d} euros over three years",
    "invoice number {n}{m:03d}{h} from the {h}th of March",
    "invoice 2026-{m:04d} and invoice 2026-{n:04d} were both charged twice",
    "order number 4500 {n:04d} {m:04d} shipped on {year}-0{h}-1{h}",
    "we have one, two, three sites and about {n} seats",
    "call me back at two thirty or at {h}:{m:02d} on Thursday",
    "the renewal is on the {h}th of October {year}, at ten thirty",
    "we went from {n} to {m} users, that's one hundred and twenty more",
    "our PO is 4 5 0 0 0 1 2 3, please put it on the invoice",
    "we bought {n} licenses at {m} dollars each in Q{h} {year}",
    "the price went from 4,{m:03d} to 5,{n:03d} per seat",
    "version {h}.{n}.{m} fixed it, ticket {n}{m} is closed",
    "send it to the office, at the usual time, dot the i's",
    "I looked at example dot com and at acme dot com, they're cheaper",
    "our team is at acme dot io now, and the service at Brightwell was better",
    "we are based at Kestrel dot com's old office",
    "die Rechnung {n}.{m:03d},00 Euro vom {h}.0{h}.{year}",
    "wir haben {n} Lizenzen, eins, zwei, drei Standorte",
    "der Termin ist am {h}. Oktober um zehn Uhr dreißig",
    "DE {h}{h} stayed flat, FY {h}{h} was up, Q{h} was down",
    "between 0 and {n} tickets a week, sometimes {m}",
    "the quote number is Q-{year}-{n:04d}-{m:04d}",
    "log in at app.acme-corp.com or at www.kestrel.co.uk, the docs are at docs.acme.io",
    "we moved to version two dot one at Acme dot com's request",
    "ask Mr. Smith at Kestrel. Come by on Monday",
    "ticket number {n}{m:03d}{h} is still open, and the order 7{m:03d}{n:03d} too",
    "Kundennummer {n}{m:03d}{h}, Bestellung {m}{n:03d}",
    "the total was 1,{n:03d},{m:03d}.50 for {h},000 units",
    "we signed on 06/10/{year} and renewed on 2026-10-0{h}",
    "it's {n} times {m}, so roughly {h} million",
    "we need {n} more seats by {year}, maybe {m}",
]


def make_asr_corpus(n: int, pii_share: float, seed: int) -> list[tuple[str, str | None, str | None, tuple[int, int] | None]]:
    """(utterance, planted kind or None, its form, the planted span)."""
    rng = random.Random(seed + 1)
    out = []
    for _ in range(n):
        text = rng.choice(ASR_CLEAN).format(
            n=rng.randrange(2, 999),
            m=rng.randrange(1, 999),
            h=rng.randrange(1, 9),
            year=rng.randrange(1990, 2030),
        )
        kind = form = span = None
        if rng.random() < pii_share:
            kind = rng.choice(list(ASR_PII))
            form, secret = ASR_PII[kind](rng)
            text += rng.choice([", you can use ", ", das ist ", ", it's ", ". Yeah, it's "])
            span = (len(text), len(text) + len(secret))
            text += secret + rng.choice([" okay", ", got it?", ". Thanks.", " und so weiter"])
        out.append((text, kind, form, span))
    return out


def _removed(result, span: tuple[int, int], text: str) -> bool:
    """Every letter and digit of the planted span lies inside a finding."""
    covered = [False] * len(text)
    for f in result.findings:
        covered[f.start : f.end] = [True] * (f.end - f.start)
    return all(covered[i] for i in range(*span) if text[i].isalnum())


def asr_report(n: int, pii_share: float, seed: int, options: RedactOptions) -> None:
    corpus = make_asr_corpus(n, pii_share, seed)
    per_kind: dict[str, list[int]] = {}
    per_form: dict[tuple[str, str], list[int]] = {}
    changed, clean, leaks = 0, 0, []
    for text, kind, form, span in corpus:
        result = redact_text(text, options)
        if kind is None:
            clean += 1
            if result.findings:
                changed += 1
                if len(leaks) < 5:
                    leaks.append(("false positive", result.text))
            continue
        ok = _removed(result, span, text)
        per_kind.setdefault(kind, [0, 0])[0] += ok
        per_kind[kind][1] += 1
        per_form.setdefault((kind, form), [0, 0])[0] += ok
        per_form[(kind, form)][1] += 1
    planted = sum(t for _, t in per_kind.values())
    removed = sum(r for r, _ in per_kind.values())
    print(f"ASR-shaped corpus: {len(corpus)} utterances, {planted} with PII (seed {seed})")
    print(f"  recall (planted PII fully removed): {removed}/{planted} = {removed / max(planted, 1):.1%}")
    for kind in sorted(per_kind):
        r, t = per_kind[kind]
        forms = ", ".join(
            f"{form} {fr}/{ft}" for (k, form), (fr, ft) in sorted(per_form.items()) if k == kind
        )
        print(f"    {kind:5s} {r:4d}/{t:<4d} {r / t:6.1%}   ({forms})")
    print(f"  false positives (clean utterances changed): {changed}/{clean} = {changed / max(clean, 1):.2%}")
    for what, text in leaks:
        print(f"    e.g. {what}: {text}")


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
    print()
    asr_report(args.n, args.pii_share, args.seed, options)


if __name__ == "__main__":
    main()
