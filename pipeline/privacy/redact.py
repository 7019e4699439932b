"""PII out before anything is stored: card numbers, IBANs, e-mail addresses and phone numbers.

Every detector checks what it finds: card numbers pass the Luhn check, IBANs the mod-97 check
and their country's length, phone numbers are found by `phonenumbers` (not a home-made regex)
for a list of default regions. Spoken forms are covered where a transcript spells them out:
digit words ("four one one one ...", "null drei null ..."), "john dot smith at example dot com".

    result = redact_text("call me on 030 1234567", RedactOptions())
    result.text      # "call me on [PHONE]"
    result.findings  # [Finding(kind="phone", start=11, end=22)]

`redact_transcript` redacts every segment and masks the words of each redacted span, keeping
their times, so word timings stay right. Redaction is idempotent: redacting twice = once.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace

import phonenumbers

from pipeline.errors import ChurnwatchError
from pipeline.privacy.detectors import DETECTORS, merge_spans
from pipeline.types import Cue, Segment, Transcript, Word

__all__ = [
    "KINDS",
    "Finding",
    "RedactOptions",
    "RedactResult",
    "redact_cue",
    "redact_source",
    "redact_text",
    "redact_transcript",
]

# The kinds of PII, in the order their detectors run (IBAN before card: an IBAN holds long digit runs;
# "number", long digit runs that no checksum explains, last: what the others leave).
KINDS = ("email", "iban", "card", "phone", "number")
LENIENCIES = ("possible", "valid", "strict_grouping", "exact_grouping")


@dataclass(frozen=True)
class RedactOptions:
    # Which kinds of PII to remove; any of KINDS.
    kinds: tuple[str, ...] = KINDS
    # What a redacted span becomes; "{kind}" is replaced by the upper-case kind, e.g. "[CARD]".
    token: str = "[{kind}]"
    # Regions (ISO 3166 codes) for phone numbers written without a country code, e.g. "030 1234567".
    regions: tuple[str, ...] = ("US", "GB", "DE")
    # How sure phonenumbers must be that a number is a phone number: one of LENIENCIES.
    phone_leniency: str = "valid"
    # Fewest digits a phone number has; shorter matches (service numbers like 112) are kept.
    phone_min_digits: int = 7
    # Also find spoken forms: digit words ("four one one ..."), "john dot smith at example dot com".
    spoken: bool = True

    def __post_init__(self):
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ChurnwatchError(f"Unknown PII kind(s) {bad}. Choose from: {', '.join(KINDS)}.")
        if "{kind}" not in self.token:
            raise ChurnwatchError(
                f"Redaction token {self.token!r} has no {{kind}} placeholder; use e.g. '[{{kind}}]'."
            )
        if re.search(r"[0-9@]", self.token) or any(not self.token_for(k) for k in KINDS):
            raise ChurnwatchError(
                f"Redaction token {self.token!r} must not contain digits or '@' (they would be "
                "redacted again); use e.g. '[{kind}]' or '<{kind}>'."
            )
        unknown = [r for r in self.regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ChurnwatchError(
                f"Unknown phone region(s) {unknown}. Use ISO 3166 codes such as US, GB, DE, FR."
            )
        if self.phone_leniency not in LENIENCIES:
            raise ChurnwatchError(
                f"Unknown phone leniency {self.phone_leniency!r}. Choose one of: {', '.join(LENIENCIES)}."
            )

    def token_for(self, kind: str) -> str:
        return self.token.replace("{kind}", kind.upper())


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    start: int  # character offsets into the original text
    end: int


@dataclass(frozen=True)
class RedactResult:
    text: str
    findings: list[Finding]


# --- applying the findings --------------------------------------------------------------------


def _render(
    text: str, findings: list[Finding], options: RedactOptions, lo: int = 0, hi: int | None = None
) -> str:
    """text[lo:hi] with every finding inside it replaced by its token."""
    hi = len(text) if hi is None else hi
    out, pos = [], lo
    for f in findings:
        if f.start >= lo and f.end <= hi:
            out += [text[pos : f.start], options.token_for(f.kind)]
            pos = f.end
    return "".join(out) + text[pos:hi]


def _to_original(findings: list[Finding], options: RedactOptions):
    """A function mapping an offset of the redacted text back to the original text; an offset
    inside a token maps to the token's edge (side "start" or "end")."""
    starts, tokens, deltas = [], [], []  # per finding: token start in the redacted text, ...
    delta = 0
    for f in findings:
        token = len(options.token_for(f.kind))
        starts.append(f.start + delta)
        tokens.append(token)
        delta += token - (f.end - f.start)
        deltas.append(delta)  # shift of everything after this token

    def convert(p: int, side: str) -> int:
        k = bisect_left(starts, p) - 1  # the last token starting before p
        if k < 0:
            return p
        if p < starts[k] + tokens[k]:
            return findings[k].start if side == "start" else findings[k].end
        return p - deltas[k]

    return convert


def _combine(old: list[Finding], new: list[Finding]) -> list[Finding]:
    """Old and new findings, sorted; where they overlap, one finding of the new kind."""
    out: list[tuple[Finding, bool]] = []
    for f, is_new in sorted(
        [(f, False) for f in old] + [(f, True) for f in new], key=lambda x: x[0].start
    ):
        if out and f.start < out[-1][0].end:
            last, last_new = out[-1]
            kind = last.kind if last_new or not is_new else f.kind
            out[-1] = (Finding(kind, last.start, max(last.end, f.end)), last_new or is_new)
        else:
            out.append((f, is_new))
    return [f for f, _ in out]


def redact_text(text: str, options: RedactOptions = RedactOptions()) -> RedactResult:
    """Replace the PII in text by tokens; findings hold the replaced spans of the original text.

    The detectors run in turn, each on the text the previous ones left, until a round finds
    nothing new, so redacting the result again changes nothing.
    """
    findings: list[Finding] = []
    current = text
    for _ in range(5):
        found = False
        for kind in KINDS:
            if kind not in options.kinds:
                continue
            spans = merge_spans(DETECTORS[kind](current, options))
            if not spans:
                continue
            found = True
            convert = _to_original(findings, options)
            new = [Finding(kind, convert(s, "start"), convert(e, "end")) for s, e in spans]
            findings = _combine(findings, new)
            current = _render(text, findings, options)
        if not found:
            break
    return RedactResult(current, findings)


def _clip(findings: list[Finding], ends: list[int], lo: int, hi: int) -> list[Finding]:
    """The parts of findings (sorted, with their ends) inside [lo, hi), shifted to start at lo."""
    out = []
    for f in findings[bisect_right(ends, lo) :]:
        if f.start >= hi:
            break
        out.append(Finding(f.kind, max(f.start, lo) - lo, min(f.end, hi) - lo))
    return out


def _mask_words(words: list[Word], text: str, findings: list[Finding], options) -> list[Word]:
    """Words spelling text (offsets in order), with each redacted span's words merged into one
    word holding the token and the span's times."""
    offsets, pos = [], 0
    for w in words:
        pos = text.index(w.word, pos)
        offsets.append((pos, pos + len(w.word)))
        pos += len(w.word)
    out: list[Word] = []
    i = 0
    while i < len(words):
        hits = [f for f in findings if f.start < offsets[i][1] and offsets[i][0] < f.end]
        if not hits:
            out.append(words[i])
            i += 1
            continue
        j = i  # grow the cluster while a finding reaches into the next word
        while j + 1 < len(words) and any(f.end > offsets[j + 1][0] for f in hits):
            j += 1
            hits += [
                f
                for f in findings
                if f not in hits and f.start < offsets[j][1] and offsets[j][0] < f.end
            ]
        lo = min(offsets[i][0], *(f.start for f in hits))
        hi = max(offsets[j][1], *(f.end for f in hits))
        cluster = words[i : j + 1]
        word = _render(text, findings, options, lo, hi)
        out.append(
            Word(word, cluster[0].start, cluster[-1].end, min(w.probability for w in cluster))
        )
        i = j + 1
    return out


def _redact_block(segments: list[Segment], options: RedactOptions) -> list[Segment]:
    """Consecutive segments of one speaker, redacted together: a number read out across a pause
    (and so across two segments) is found; each segment masks its own part of it."""
    text = "\n".join(s.text for s in segments)
    result = redact_text(text, options)
    # the words of all segments, spelled out the same way; usually the very same text
    spaced = any(w.word[:1].isspace() for s in segments for w in s.words[1:])
    word_texts = [("" if spaced else " ").join(w.word for w in s.words) for s in segments]
    words_text = "\n".join(word_texts)
    words_result = result if words_text == text else redact_text(words_text, options)
    ends, wends = [f.end for f in result.findings], [f.end for f in words_result.findings]
    out, pos, wpos = [], 0, 0
    for seg, wtext in zip(segments, word_texts):
        local = _clip(result.findings, ends, pos, pos + len(seg.text))
        wlocal = _clip(words_result.findings, wends, wpos, wpos + len(wtext))
        words = _mask_words(seg.words, wtext, wlocal, options) if wlocal else list(seg.words)
        out.append(replace(seg, text=_render(seg.text, local, options), words=words))
        pos, wpos = pos + len(seg.text) + 1, wpos + len(wtext) + 1
    return out


def redact_segment(segment: Segment, options: RedactOptions = RedactOptions()) -> Segment:
    """A copy of one segment with PII replaced in its text and words."""
    return _redact_block([segment], options)[0]


def redact_transcript(
    transcript: Transcript, options: RedactOptions = RedactOptions()
) -> Transcript:
    """A copy of the transcript with PII replaced in every segment's text and words.

    Consecutive segments of the same speaker are searched together, so a card number or
    address split across segments is found too.
    """
    segments: list[Segment] = []
    block: list[Segment] = []
    for seg in [*transcript.segments, None]:
        if block and (seg is None or seg.speaker != block[-1].speaker):
            segments += _redact_block(block, options)
            block = []
        if seg is not None:
            block.append(seg)
    return replace(transcript, segments=segments)


_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")  # a file name's extension: ".flac", ".m4a"
_PATH_PARTS = re.compile(r"([/\\])")


def redact_source(source: str, options: RedactOptions = RedactOptions()) -> str:
    """A recording's path or URL with the PII in its file and folder names replaced by tokens.

    Each part of the path is searched on its own, with "_" read as a space (file names glue
    words with it), and the file's extension is kept apart so it cannot pass for an e-mail's
    top-level domain: "/calls/john.smith@example.com_4111111111111111.flac" becomes
    "/calls/[EMAIL]_[CARD].flac". The folders and the extension stay, so the stored source
    still says where the recording came from. Redacting twice changes nothing.
    """
    parts = _PATH_PARTS.split(source)
    for k in range(0, len(parts), 2):  # the separators are at the odd positions
        part = parts[k]
        suffix = _SUFFIX.search(part) if k == len(parts) - 1 else None
        stem = part[: suffix.start()] if suffix and suffix.start() > 0 else part
        rest = part[len(stem) :]
        findings = redact_text(stem.replace("_", " "), options).findings
        parts[k] = _render(stem, findings, options) + rest
    return "".join(parts)


def redact_cue(cue: Cue, options: RedactOptions = RedactOptions()) -> Cue:
    """A copy of the cue with PII replaced in its quote and its hint (`why`)."""
    return replace(
        cue, quote=redact_text(cue.quote, options).text, why=redact_text(cue.why, options).text
    )
