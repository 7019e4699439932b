"""What one sentence or reply is: a question, how many fillers it holds, a backchannel.

Used by `pipeline.coach` to count questions and fillers per side and to tell a backchannel from
a reply that takes the floor. Everything here is a pure function of text (or of a spaCy parse).

- sentences: with a parser, where the text is punctuated only . ? ! end a sentence (the parser
  sometimes splits at a comma); unpunctuated text uses the parser's sentences. Without a
  parser, text is split after . ? ! (`split_sentences`).
- question, English with a spaCy parse (`is_question`): a sentence asks when it ends in "?" or
  in a tag (", right", ", isn't it"), or when the sentence or one of its comma-separated clauses
  opens with an auxiliary whose subject follows it ("could you tell me ...", "..., and are the
  readers covered") or with a wh-word followed by inversion or acting as subject ("what's your
  timeline", "who handles billing"); not a free relative ("what we need is ..."). ASR
  punctuation varies (a question may end in "." or run on after a comma), hence the clause
  starts. A sentence counts once however many of its clauses ask.
- question, without a parser (`is_question_plain`; other languages, or no model): a question
  mark, or a wh-word opening the sentence after discourse openers ("so", "und", "dar"). German
  asks by word order as well: a clause opening with a finite verb followed by a subject ("Haben
  Sie ...", "..., sind die Kollegen zufrieden"), or a wh-word, optionally with a measure word,
  followed by a finite verb ("..., wie lange läuft der Vertrag"). A German statement puts the
  finite verb second ("Dann fasse ich zusammen"); an indirect question puts it last ("..., wie
  es mit den Druckern läuft"); both are left out.
- fillers, English with a parse (`count_fillers`): um/uh/erm; "like" used as a filler (tagged
  UH or set off by commas); "you know" and "I mean" standing alone. Without a parser
  (`count_fillers_plain`): the language's filler tokens (English, German). A hyphenated
  acknowledgement ("uh-huh", "mm-hm") is a backchannel, not a filler. Whisper leaves most
  fillers out of what it writes (it learnt from transcripts that mostly leave out "um", "uh"),
  so on its transcripts these counts are what survived: a floor, not a rate.
- backchannel (`is_backchannel`): words that are only acknowledgement, each a backchannel token
  ("yeah", "right", "great") or together a backchannel phrase ("I see", "got it"); English and
  German lists. Languages without a list answer True, so only the word-count and time rules of
  `pipeline.coach` apply there.
"""

from __future__ import annotations

import re

# --- sentences --------------------------------------------------------------------------------

def sentences(doc) -> list:
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


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of plain text (no parser): split after . ? ! followed by a space; blank pieces dropped."""
    return [s for s in _SENT_SPLIT.split(text) if s.strip()]


# --- questions (spaCy parse, English) ---------------------------------------------------------

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


# --- questions without a parser (any language; German word order) -----------------------------

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


# --- fillers ----------------------------------------------------------------------------------

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
        hyphenated = (after == "-" and not t.whitespace_) or (before == "-" and not toks[j - 1].whitespace_)
        if hyphenated:  # "uh-huh", "mm-hm": one acknowledgement word, not a filler
            continue
        like_filler = low == "like" and (t.tag_ == "UH" or t.dep_ in ("intj", "discourse")
                                         or (before == "," and after == ","))
        if low in _FILLERS["en"] or like_filler:
            n += 1
        elif low in ("know", "mean") and j > 0 and toks[j - 1].lower_ == ("you" if low == "know" else "i"):
            opener = toks[j - 2].text if j > 1 else "."
            if opener in (",", ".", "?", "!") and after in (",", ".", "?", "!"):
                n += 1
    return n


def count_fillers_plain(text: str, language: str) -> int:
    """Fillers without a parser: the language's filler tokens ("um", "äh"); 0 for other languages.
    Hyphenated words stay whole, so "uh-huh" is not taken for "uh"."""
    tokens = re.findall(r"[\w'](?:[\w'-]*[\w'])?", text.lower())
    return sum(t in _FILLERS.get(language[:2], set()) for t in tokens)


# --- backchannels -----------------------------------------------------------------------------

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
