"""Run a rule pack over utterances: spaCy matchers for keyword rules, nearest-example cosine
similarity for embedding rules (pipeline.cues.embeddings). Plain functions over plain data; models are
passed in.

    nlp = load_nlp(["en", "de"]); pack = load_pack(Path("rules"))
    cues = detect(transcript, pack, nlp, embedder=load_embedder(), cache=InMemoryEmbeddingCache())

Keyword fast path, cheapest step first:
1. prefilter: an utterance holding none of the pack's trigger words (pipeline.cues.languages.compile_rules)
   cannot match and never becomes a spaCy Doc; most call turns stop here;
2. the tokenizer alone makes Docs for the rest (rule phrases were compiled to every word form
   of their lemmas, so no lemmatizer is needed), matched by PhraseMatchers and by token-pattern
   Matchers that run only when each word a pattern requires is present;
3. exclusions, `requires_any` and speaker / part-of-call conditions drop matches;
4. only English matches of negation-sensitive rules with a negator in their sentence (outside
   the matched words) go through the parser: tok2vec, tagger and parser, batched, on the same
   Doc; no attribute ruler, no lemmatizer (`is_verb` reads the tags instead).
With a learned model, its probabilities come first (from the cache where a line was scored by
the same fitted model before: a rule edit re-scores stored lines without re-reading them), and a
line the model vetoes for every cue type the keyword rules could give it is never tokenized: its
keyword cues would be dropped anyway (DetectOptions.confirm_share). Keyword matching itself is
not cached: the same utterance twice is matched twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.cues.embeddings import Embedder, EmbeddingCache, cached_rows, embedding_hits, encode
from pipeline.cues.learned import NONE as NONE_CLASS, LearnedModel
from pipeline.errors import ChurnwatchError
from pipeline.cues.languages import NEGATORS, compile_rules, hypothetical_before, supposes, uses_stems
from pipeline.cues.rule_files import EmbeddingRule, KeywordRule, LearnedRule, RulePack
from pipeline.types import Cue, Transcript, clauses, model_input

__all__ = ["DetectOptions", "LearnedCues", "Utterance", "detect", "detect_text", "detect_utterances", "is_verb", "reply_context"]

QUESTION_STARTS = {
    "en": {"what", "how", "can", "could", "would", "is", "are", "do", "does", "did", "will",
           "when", "why", "where", "which", "who", "any", "should", "shall", "may"},
    "de": {"was", "wie", "können", "könnten", "würden", "ist", "sind", "haben", "gibt", "wann",
           "warum", "wo", "welche", "welcher", "wer", "kann", "könnte"},
    "ro": {"ce", "cât", "cum", "puteți", "putem", "este", "când", "de", "care", "cine", "aveți"},
    "ko": set(),
}
_CLAUSE_BREAKS = {",", ".", ";", "?", "!", ":", "—", "–", "but", "aber", "dar", "und", "and"}
# Words the parse check can act on (see _parse_negated): a match with none of them outside its
# own words cannot be negated, so its utterance is not parsed.
_EN_NEG_WORDS = {"never", "nobody", "nothing", "no", "none", "neither", "nor"}
_PARSE_GATE = NEGATORS["en"] | _EN_NEG_WORDS | {"nt", "n’t", "n‘t"}
# Components the parse check reads (tags and dependencies); the others are skipped.
_PARSE_PIPES = ("tok2vec", "tagger", "parser")


@dataclass(frozen=True)
class DetectOptions:
    # Tokens looked at around a match for a negator where there is no parser (de, ro, ko).
    negation_window: int = 3
    # Use the English dependency parse for negation; False = token window for English too.
    parse_negation: bool = True
    # Keep one cue per (utterance, label): the strongest one. False keeps every rule's cue.
    one_cue_per_label: bool = True
    # Utterances per spaCy/encoder batch.
    batch_size: int = 256
    # A customer reply of at most this many words is read by learned models together with the
    # other speaker's question before it ("Still happy with the service?" "Not really, no."). 0: never.
    context_words: int = 8
    # With a learned model loaded, a keyword or embedding cue stands only if the learned model gives
    # its cue type at least this share of its own threshold: the hand-written rule says where to
    # look, the model vetoes the harmless readings ("the invoice mix-up was sorted"). None: no veto.
    confirm_share: float | None = 0.7
    # A turn of two or more statements that the learned model gives at least this much cue
    # probability (1 - P(no cue)) is also read statement by statement (pipeline.types.clauses): "the
    # invoice is still wrong and nobody has fixed it" reports both cues, where the whole turn splits
    # its probability between them. A statement must be surer than a whole turn: its doubt (1 - p)
    # counts 1 / `clause_doubt` times, so it raises a cue whose threshold is t only where
    # 1 - p <= clause_doubt * (1 - t). Pieces are shorter than the lines the model was fitted on,
    # and read without the rest of the turn ("we trialled others before we picked you, ages ago
    # now"). Scaled by the threshold, not a fixed amount off p: thresholds of 0.67-0.79 left the
    # fixed 0.3 of before no room. Chosen on the read tuning sets (0.08, 0.12, 0.2, 0.3: the same
    # cue-free lines flagged, mean macro-F1 0.887, 0.888, 0.893, 0.892). None: never.
    clause_gate: float | None = 0.5
    clause_doubt: float = 0.2

    def __post_init__(self):
        if self.negation_window < 0 or self.batch_size < 1:
            raise ChurnwatchError("DetectOptions: negation_window must be ≥ 0 and batch_size ≥ 1.")
        if not 0 < self.clause_doubt <= 1:
            raise ChurnwatchError(f"DetectOptions: clause_doubt must be in (0, 1], not {self.clause_doubt}.")


@dataclass(frozen=True)
class Utterance:
    text: str
    speaker: str | None = "customer"
    lang: str = "en"
    start: float = 0.0
    end: float = 0.0
    call_duration: float | None = None  # for first/last-N-minutes rules
    index: int | None = None  # segment index in the transcript
    context: str | None = None  # the other speaker's turn just before this one, if any


@dataclass(frozen=True)
class LearnedCues:
    """A fitted learned cue model and the sentence encoder it was fitted on."""

    model: LearnedModel
    embedder: Embedder


# ---- conditions ----------------------------------------------------------------------------


def _applies(rule, u: Utterance) -> bool:
    if rule.speaker != "any" and u.speaker != rule.speaker:
        return False
    if rule.first_minutes is not None and u.start > rule.first_minutes * 60:
        return False
    if rule.last_minutes is not None and (
            u.call_duration is None or u.end < u.call_duration - rule.last_minutes * 60):
        return False
    return not rule.questions_only or _is_question(u)


def _reader(rules):
    """A test of whether any of `rules` reads an utterance (the speaker alone, where it can)."""
    if any(r.first_minutes is not None or r.last_minutes is not None or r.questions_only
           for r in rules):
        return lambda u: any(_applies(r, u) for r in rules)
    speakers = {r.speaker for r in rules}
    if "any" in speakers:
        return lambda u: True
    return lambda u: u.speaker in speakers


def _reads_by_rule(rules, utterances) -> dict[str, list[int]]:
    """Per rule (of those with `langs`), the indices of the non-empty utterances it reads; rules
    with the same conditions share one pass over the utterances."""
    by_conditions: dict[tuple, list[int]] = {}
    out = {}
    for r in rules:
        key = (r.speaker, r.first_minutes, r.last_minutes, r.questions_only, tuple(sorted(r.langs)))
        if key not in by_conditions:
            langs = set(r.langs)
            by_conditions[key] = [i for i, u in enumerate(utterances)
                                  if u.lang in langs and u.text.strip() and _applies(r, u)]
        out[r.name] = by_conditions[key]
    return out


def _is_question(u: Utterance) -> bool:
    text = u.text.strip()
    if "?" in text:
        return True
    first = text.split(maxsplit=1)[0].lower().strip(",.") if text else ""
    return first in QUESTION_STARTS.get(u.lang, set())


# ---- negation ------------------------------------------------------------------------------


def _window_negated(doc, start: int, end: int, lang: str, window: int) -> bool:
    negators = NEGATORS.get(lang, set())

    def is_neg(tok):
        return tok.lower_ in negators or tok.lemma_ in negators

    i = start - 1
    while i >= 0 and start - i <= window and doc[i].lower_ not in _CLAUSE_BREAKS:
        if is_neg(doc[i]):
            return True
        i -= 1
    if lang in ("de", "ko", "en"):  # German V2 and Korean SOV put the negator after the verb
        j = end
        while j < len(doc) and j - end < window and doc[j].lower_ not in _CLAUSE_BREAKS:
            if is_neg(doc[j]):
                return True
            j += 1
    return False


_VERB_TAGS = {"MD", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "BES", "HVS"}
_DO_HAVE = {"do", "does", "did", "'d", "have", "has", "had"}
_CLAUSE_DEPS = {"ROOT", "advcl", "ccomp", "conj", "relcl", "xcomp"}
_BE = {"is", "are", "was", "were", "'s", "'re"}


def is_verb(tok) -> bool:
    """`tok.pos_ in ("VERB", "AUX")` as en_core_web_sm's attribute ruler would set it, read from
    the tag and the parse, so the parse check can skip the attribute ruler (its rules in order;
    tests/test_detect.py compares the two)."""
    tag, dep = tok.tag_, tok.dep_
    verb = tag in _VERB_TAGS
    if dep in ("aux", "auxpass") and tag not in ("TO", ""):
        verb = True
    if tok.lower_ in _DO_HAVE and dep in _CLAUSE_DEPS:
        verb = True
    if tag in ("DT", "WDT") and dep not in ("det", "quantmod", ""):
        verb = False
    if tok.lower_ in _BE and tok.i > 0 and tok.doc[tok.i - 1].dep_ == "expl":
        verb = True
    return verb and tag != "_SP" and not tok.is_space


def _governor(tok):
    """The verb a token hangs from, climbing through nouns, prepositions and modifiers."""
    h, steps = tok, 0
    while not is_verb(h) and h.head is not h and steps < 4:
        if h.dep_ in ("ccomp", "advcl", "conj", "relcl", "parataxis"):
            break
        h, steps = h.head, steps + 1
    return h


_SENTENCE_ENDS = {".", "!", "?", "...", "…"}


def _negator_near(doc, start: int, end: int, gate: set) -> bool:
    """Whether a gate word sits outside the match [start, end) but in its sentence, where a
    sentence ends at a separate "." "!" "?" token followed by a capitalised token. Only then can
    the parse find a negator of the match (parse trees do not cross sentences; a boundary that
    strong is one the parser keeps), so only then is the utterance parsed."""
    n = len(doc)

    def boundary(k):  # a sentence ends after token k
        return doc[k].text in _SENTENCE_ENDS and k + 1 < n and doc[k + 1].text[:1].isupper()

    k = start - 1
    while k >= 0 and not boundary(k):
        if doc[k].lower in gate:
            return True
        k -= 1
    k = end
    while k < n:
        if doc[k].lower in gate:
            return True
        if boundary(k):
            break
        k += 1
    return False


def _parse_negated(doc, start: int, end: int) -> bool:
    """True when a negator modifies the matched tokens [start, end) or the verb they belong to."""
    span = doc[start:end]
    inside = set(range(start, end))
    candidates = set(span)
    for t in span:
        gov = _governor(t)
        candidates.add(gov)
        if gov.dep_ in ("xcomp", "aux", "auxpass"):
            candidates.add(gov.head)
    for c in candidates:
        for child in c.children:
            if child.i in inside:
                continue
            if child.dep_ == "neg" or (child.lower_ in _EN_NEG_WORDS and child.dep_ in
                                       ("det", "nsubj", "nsubjpass", "advmod", "dobj", "neg")):
                return True
    return False


# ---- running -------------------------------------------------------------------------------


def detect_utterances(utterances: list[Utterance], pack: RulePack, nlp: dict, embedder=None,
                      cache: EmbeddingCache | None = None,
                      options: DetectOptions = DetectOptions(),
                      learned: LearnedCues | None = None) -> list[list[Cue]]:
    """Cues per utterance (same order). Languages without a loaded pipeline skip keyword rules;
    without an `embedder` embedding rules are skipped, without `learned` the learned rules."""
    results: list[list[Cue]] = [[] for _ in utterances]
    scores = _learned_scores(utterances, pack, learned, cache, options) if learned is not None else None
    _keyword_pass(utterances, pack, nlp, options, results,
                  scores if scores is not None and options.confirm_share is not None else None)
    if embedder is not None:
        _embedding_pass(utterances, pack, embedder, cache, options, results)
    if scores is not None:
        _learned_cues(utterances, scores, learned, cache, options, results)
    if options.one_cue_per_label:
        for i, cues in enumerate(results):
            best: dict[str, Cue] = {}
            for c in cues:
                if c.label not in best or c.score > best[c.label].score:
                    best[c.label] = c
            results[i] = list(best.values())
    return results


def _cue(rule, u: Utterance, score: float, why: str) -> Cue:
    return Cue(label=rule.label, rule=rule.name, rule_version=rule.version, start=u.start,
               end=u.end, speaker=u.speaker, quote=u.text, score=round(float(score), 4),
               segment_index=u.index, why=why)


def _match(doc, comp, lowers: set) -> list:
    """(match id, start, end) from the phrase matchers and the pattern matchers whose gate passes."""
    hits = [m for pm in comp.phrase_matchers for m in pm(doc)]
    for matcher, gate in comp.pattern_matchers:
        if all(not words.isdisjoint(lowers) for words in gate):
            hits += matcher(doc)
    return hits


def _keyword_pass(utterances, pack, nlp, options, results, scores=None):
    """With `scores` (the learned model's, see _LearnedScores), matches of a cue type the model
    will veto on that utterance are not worked out, and an utterance whose every cue type is
    vetoed is not even tokenized. The cues that come out are the same."""
    from spacy.attrs import LOWER

    rules = {r.name: r for r in pack.rules if isinstance(r, KeywordRule)}
    for lang in sorted({r.lang for r in rules.values()}):
        reads = _reader([r for r in rules.values() if r.lang == lang])
        idx = [i for i, u in enumerate(utterances) if u.lang == lang and reads(u) and u.text.strip()]
        if scores is not None:
            dropped = scores.all_vetoed({r.label for r in rules.values() if r.lang == lang})
            idx = [i for i in idx if i not in dropped]
        if lang not in nlp or not idx:  # a language no utterance is in: its pipeline is not even loaded
            continue
        pipe = nlp[lang]
        comp = compile_rules(pack, pipe, lang)
        idx = [i for i in idx if comp.may_match(utterances[i].text)]
        if not idx:
            continue
        texts = [utterances[i].text for i in idx]
        docs = pipe.pipe(texts, batch_size=options.batch_size) if uses_stems(pipe) else \
            pipe.tokenizer.pipe(texts, batch_size=options.batch_size)
        parse = options.parse_negation and "parser" in pipe.pipe_names
        gate = {pipe.vocab.strings.add(w) for w in _PARSE_GATE} if parse else set()
        pending = []  # (utterance index, doc, {rule name: [(start, end)]})
        to_parse = {}  # utterance index -> doc: a negator shares a sentence with a negatable match
        for i, doc in zip(idx, docs):
            lowers = set(doc.to_array(LOWER).tolist())
            found: dict[str, list] = {}
            excluded, present = set(), set()
            for match_id, s, e in _match(doc, comp, lowers):
                name, kind = comp.kinds[match_id]
                if kind == "excl":
                    excluded.add(name)
                elif kind == "req":
                    present.add(name)
                else:
                    found.setdefault(name, []).append((s, e))
            found = {n: sorted(set(m)) for n, m in found.items()
                     if n not in excluded and (n in present or not rules[n].requires_any)
                     and _applies(rules[n], utterances[i])
                     and (scores is None or not scores.vetoed(i, rules[n].label))}
            if not found:
                continue
            pending.append((i, doc, found))
            if parse and not gate.isdisjoint(lowers) and any(
                    rules[n].negation and _negator_near(doc, s, e, gate)
                    for n, spans in found.items() for s, e in spans):
                to_parse[i] = doc
        if to_parse:
            skip = [n for n in pipe.pipe_names if n not in _PARSE_PIPES]
            for i, parsed in zip(list(to_parse), pipe.pipe(list(to_parse.values()),
                                                           batch_size=options.batch_size, disable=skip)):
                to_parse[i] = parsed
        for i, doc, found in pending:
            u = utterances[i]
            for name, spans in found.items():
                rule = rules[name]
                kept = []
                for s, e in spans:
                    if rule.negation:
                        if parse:  # not parsed: no negator near the match, nothing negates it
                            neg = i in to_parse and _parse_negated(to_parse[i], s, e)
                        else:
                            neg = _window_negated(doc, s, e, lang, options.negation_window)
                        if neg:
                            continue
                    if hypothetical_before(u.text, doc[s].idx, lang):
                        continue
                    kept.append(doc[s:e].text)
                distinct = list(dict.fromkeys(k.lower() for k in kept))
                if len(distinct) >= rule.min_hits:
                    results[i].append(_cue(rule, u, 1.0, "matched " + ", ".join(
                        repr(k) for k in distinct)))


def _embedding_pass(utterances, pack, embedder, cache, options, results):
    rules = [r for r in pack.rules if isinstance(r, EmbeddingRule)]
    todo = _reads_by_rule(rules, utterances)
    texts = [u.text for u in utterances]
    for i, rule, score, why in embedding_hits(texts, rules, todo, embedder, cache, options.batch_size):
        if supposes(texts[i], utterances[i].lang):
            continue
        results[i].append(_cue(rule, utterances[i], score, why))


@dataclass
class _LearnedScores:
    """The learned model's probabilities for the utterances its rules read."""

    rules: list  # the pack's learned rules
    todo: dict  # rule name -> indices of the utterances it reads
    row: dict  # utterance index -> row of `probs` and `inputs`
    inputs: list  # what the model read (model_input), per row
    probs: dict  # cue type -> P per row
    share_of: dict  # cue type -> the probability below which its other cues are vetoed
    read_in: dict  # (row, class index) -> the statement of the turn that gave that probability

    def vetoed(self, i: int, label: str) -> bool:
        """Whether a keyword or embedding cue of `label` on utterance i is dropped (confirm_share)."""
        r = self.row.get(i)
        return r is not None and label in self.share_of and self.probs[label][r] < self.share_of[label]

    def all_vetoed(self, labels: set[str]) -> set[int]:
        """The utterances on which a cue of any of `labels` would be vetoed."""
        if not labels or not labels <= set(self.share_of) or not self.row:
            return set()
        low = np.logical_and.reduce([self.probs[label] < self.share_of[label] for label in labels])
        wanted = list(self.row)  # utterance indices in row order
        return {wanted[r] for r in np.flatnonzero(low)}


def _learned_scores(utterances, pack, learned: LearnedCues, cache, options) -> _LearnedScores | None:
    rules = [r for r in pack.rules if isinstance(r, LearnedRule)]
    if not rules:
        return None
    model = learned.model
    for rule in rules:
        if rule.model != learned.embedder.name or model.encoder != learned.embedder.name:
            raise ChurnwatchError(
                f"Rule {rule.name!r} needs a learned model on {rule.model!r}, but the fitted model uses "
                f"{model.encoder!r} and {learned.embedder.name!r} is loaded. Refit: churnwatch rules fit")
        if rule.label not in model.labels:
            raise ChurnwatchError(
                f"Rule {rule.name!r} reports {rule.label!r}, which the fitted model was not trained on. "
                "Add examples to rules/examples/ and refit: churnwatch rules fit")
    todo = _reads_by_rule(rules, utterances)
    wanted = sorted({i for ids in todo.values() for i in ids})
    if not wanted:
        return None
    inputs = [model_input(utterances[i].text, reply_context(utterances[i], options)) for i in wanted]
    matrix = learned_probabilities(inputs, learned, cache, options.batch_size)
    read_in = _by_clause(inputs, matrix, model, learned, cache, options)
    probs = {label: matrix[:, model.classes.index(label)] for label in model.labels}
    # only cue types the model was trained on: of a type declared since the last fit (budget_freeze)
    # it knows nothing, so that type's keyword and embedding cues stand on their own
    share = options.confirm_share or 0.0
    return _LearnedScores(rules, todo, {i: n for n, i in enumerate(wanted)}, inputs, probs,
                          {label: share * head["threshold"] for label, head in model.labels.items()}, read_in)


def _by_clause(inputs, matrix, model, learned, cache, options) -> dict:
    """Raise `matrix` (in place) where a statement of a turn (pipeline.types.clauses), read alone,
    gives a cue type more than the whole turn does, its doubt scaled by `clause_doubt`; only for
    turns the clause gate lets through. {(row, class index): the statement} for each probability a statement gave."""
    if options.clause_gate is None:
        return {}
    none = model.classes.index(NONE_CLASS)
    split = {r: parts for r, text in enumerate(inputs)
             if " || " not in text and 1.0 - matrix[r, none] >= options.clause_gate
             and (parts := clauses(text))}
    if not split:
        return {}
    pm = 1.0 - (1.0 - learned_probabilities([c for parts in split.values() for c in parts], learned, cache,
                                            options.batch_size)) / options.clause_doubt
    pm[:, none] = 0.0
    read_in, k = {}, 0
    for r, parts in split.items():
        for c in parts:
            for j in np.flatnonzero(pm[k] > matrix[r]):
                matrix[r, j] = pm[k, j]
                read_in[(r, int(j))] = c
            k += 1
    return read_in


def learned_probabilities(inputs: list[str], learned: LearnedCues, cache: EmbeddingCache | None,
                          batch_size: int = 256) -> np.ndarray:
    """P over the model's classes per input (rows as float32), through the cache: a fitted model's
    probabilities for a line never change, so a rule edit re-scores stored lines without
    re-reading their n-grams or embeddings. They are kept under the model's version (a refit
    starts afresh), beside the sentence embeddings."""
    model = learned.model

    def compute(missing):
        return model.class_probabilities(missing, encode(missing, learned.embedder, cache, batch_size))

    return cached_rows(inputs, f"{model.encoder}+learned-{model.version}", cache, compute, len(model.classes))


def _learned_cues(utterances, scores: _LearnedScores, learned: LearnedCues, cache, options, results):
    model = learned.model
    if options.confirm_share is not None:  # veto the other rules' cues the model reads as harmless
        for i in scores.row:
            if results[i]:
                results[i] = [c for c in results[i] if not scores.vetoed(i, c.label)]
    for rule in scores.rules:
        threshold = rule.threshold if rule.threshold is not None else model.labels[rule.label]["threshold"]
        p = scores.probs[rule.label]
        fired = [i for i in scores.todo[rule.name] if p[scores.row[i]] >= threshold]
        if not fired:
            continue
        # embeddings only for the lines that fired: the nearest training example explains each cue
        x = encode([scores.inputs[scores.row[i]] for i in fired], learned.embedder, cache, options.batch_size)
        for i, near in zip(fired, model.nearest_many(x, rule.label, k=1)):
            like = f", like {near[0]['text']!r} ({near[0]['source']})" if near else ""
            clause = scores.read_in.get((scores.row[i], model.classes.index(rule.label)))
            part = f" in {clause!r}" if clause else ""
            why = f"learned model {model.version}: p={p[scores.row[i]]:.2f}{part} ≥ {threshold:.2f}{like}"
            results[i].append(_cue(rule, utterances[i], float(p[scores.row[i]]), why))


def reply_context(u: Utterance, options: DetectOptions) -> str | None:
    """The other speaker's turn before a short reply, which a learned model reads with it."""
    if not u.context or options.context_words <= 0 or len(u.text.split()) > options.context_words:
        return None
    # only a question gives a short reply its meaning: after a statement ("we'll send the new
    # pricing on Monday." "Perfect."), the reply is read alone, or the rep's words would raise the cue
    return u.context if "?" in u.context else None


def detect(transcript: Transcript, pack: RulePack, nlp: dict, embedder=None,
           cache: EmbeddingCache | None = None, options: DetectOptions = DetectOptions(),
           learned: LearnedCues | None = None) -> list[Cue]:
    """Cues in a transcript's segments, in segment order; each turn knows the turn before it."""
    lang = (transcript.language or "en").split("-")[0]
    segs = transcript.segments
    utts = [Utterance(text=s.text, speaker=s.speaker, lang=lang, start=s.start, end=s.end,
                      call_duration=transcript.duration, index=n,
                      context=segs[n - 1].text if n and segs[n - 1].speaker != s.speaker else None)
            for n, s in enumerate(segs)]
    return [c for cues in detect_utterances(utts, pack, nlp, embedder, cache, options, learned) for c in cues]


def detect_text(text: str, pack: RulePack, nlp: dict, speaker: str = "customer", lang: str = "en",
                embedder=None, cache: EmbeddingCache | None = None,
                options: DetectOptions = DetectOptions(), learned: LearnedCues | None = None,
                context: str | None = None) -> list[Cue]:
    """Cues in one utterance (optionally after the other speaker's turn `context`)."""
    return detect_utterances([Utterance(text=text, speaker=speaker, lang=lang, context=context)], pack, nlp,
                             embedder, cache, options, learned)[0]
