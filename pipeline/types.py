"""Plain data that travels between the stages: a transcript and the cues found in it.

Every stage takes and returns these dataclasses; only `store` maps them to tables.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

SPEAKERS = ("rep", "customer")

# The eight cue types of the default pack, in rules/cue_types.yaml's order. Cue types are data:
# a pack declares its own in cue_types.yaml (pipeline.cues.cue_types.load_cue_types), and code
# that reads a pack asks it; this list is the fallback for a folder without that file.
CUE_LABELS = (
    "pricing_request",
    "invoice_dispute",
    "competitor_mention",
    "cancellation_intent",
    "org_change",
    "payment_delay",
    "usage_decline",
    "support_frustration",
)


@dataclass
class Word:
    word: str
    start: float  # seconds from the start of the call
    end: float
    probability: float = 1.0


@dataclass
class Segment:
    start: float
    end: float
    text: str
    speaker: str | None = None  # "rep", "customer" or None where unknown
    channel: int | None = None  # 0 = left, 1 = right; None for a mono recording
    avg_logprob: float | None = None
    words: list[Word] = field(default_factory=list)
    speaker_confidence: float | None = None  # 1.0 for dual-channel; diarization's confidence for mono


# Whisper base takes synthetic German on an 8 kHz phone line for English as often as for German
# (tests/data/phone_de.8k.wav: de 0.115 / en 0.088 with int8 weights on one CPU, en 0.063 / de 0.035
# on another; longer crops, shifted crops and the clip repeated to 30 s all lean further to English,
# and forced decoding scores fluent English nonsense above the right German). Most of its belief
# there goes to languages the team does not speak (Thai, Latin). A guess is reported as unsure when
# the winner leads the runner-up by less than UNSURE_RATIO, or holds less than MIN_LANGUAGE_SHARE
# of the model's belief (real calls here: 0.40 and more), so that a person can give the language.
UNSURE_RATIO = 1.5
MIN_LANGUAGE_SHARE = 0.25


def language_doubt(scores: dict[str, float] | None) -> tuple[tuple[str, float], tuple[str, float]] | None:
    """The winner and the runner-up, (language, score) each, where detection's scores make a weak
    guess (see UNSURE_RATIO); None where it is sure or there are no scores. Ranked by score: a
    store need not keep a JSON object's key order."""
    ranked = sorted((scores or {}).items(), key=lambda kv: -kv[1])
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]
    return (first, second) if first[1] < MIN_LANGUAGE_SHARE or first[1] < UNSURE_RATIO * second[1] else None


@dataclass
class Transcript:
    language: str
    duration: float
    engine: str
    model: str
    segments: list[Segment] = field(default_factory=list)
    channel_layout: str = "mono"  # "mono" or "stereo"
    # Detection's scores of the likeliest languages, best first (None where the language was given)
    language_scores: dict[str, float] | None = None

    @property
    def language_unsure(self) -> bool:
        """Detection made a weak guess: the runner-up came close, or the model mostly heard another language."""
        return language_doubt(self.language_scores) is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            Segment(**{**s, "words": [Word(**w) for w in s.get("words", [])]})
            for s in data.get("segments", [])
        ]
        return cls(**{**data, "segments": segments})


@dataclass
class Cue:
    label: str  # one of the cue labels, e.g. "competitor_mention"
    rule: str  # rule name
    rule_version: int
    start: float
    end: float
    speaker: str | None
    quote: str
    score: float  # 1.0 for keyword rules; cosine similarity for embedding rules
    segment_index: int | None = None  # index into Transcript.segments
    why: str = ""  # matched phrase, or nearest example sentence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_input(text: str, context: str | None) -> str:
    """The text a learned model reads: a short reply is read together with the turn before it.
    Here, at the bottom, because the store keys cached embeddings and probabilities by it and the
    privacy purge must find those keys for the calls it deletes."""
    return f"{context.strip()} || {text.strip()}" if context else text.strip()


# Where one statement ends and another begins inside a turn ("the app crashes and nobody fixes it,
# so half the drivers stopped using it"): punctuation and joining words of every supported language.
# Not "but" and its kin: "the outage was annoying but you fixed it" is one statement, and its first
# half alone would read as a complaint.
_CLAUSE_SPLIT = re.compile(
    r"\s*[,;]?\s+(?:and|so|because|und|weil|deshalb|daher|also|și|deci|pentru că|așa că|iar)\s+"
    r"|\s*(?:[,;:!?]|\.(?=\s)|\s[–—-]\s)\s*"
    r"(?!\s*(?:but|though|although|however|yet|not|that's all|aber|doch|obwohl|jedoch|nicht|dar|însă|deși|nu)\b)"
    r"|(?<=는데|니까|어서|아서|해서)\s+",
    re.IGNORECASE)


def clauses(text: str, min_words: int = 3) -> list[str]:
    """The statements of a turn that has two or more, each of at least `min_words` words (a
    shorter piece joins its neighbour), as they stand in the turn, without the joining word or
    mark between them; [] for a turn that is one statement. A learned model reads each as well as
    the whole turn, so that a turn holding two cues can report both. Here, at the bottom, for the
    same reason as model_input: cached rows are keyed by these texts."""
    text = text.strip()
    spans, start = [], 0
    for m in _CLAUSE_SPLIT.finditer(text):
        if m.start() > start:
            spans.append([start, m.start()])
        start = m.end()
    if start < len(text):
        spans.append([start, len(text)])
    def short(span) -> bool:
        return len(text[span[0]:span[1]].split()) < min_words

    merged: list[list[int]] = []
    for span in spans:
        if merged and (short(span) or short(merged[-1])):
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    return [text[a:b] for a, b in merged] if len(merged) > 1 else []
