"""Detection on hand-built transcripts: negation, exclusions, rep speech, word forms,
part of call, German, Korean, embeddings and the cache; the fast path (prefilter, gated
parse) against the slow one; the backtest on a hand-built database. Models load once per session."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cues.detect import DetectOptions, detect, detect_text
from pipeline.cues.embeddings import InMemoryEmbeddingCache, load_embedder
from pipeline.cues.languages import korean_stem, load_nlp
from pipeline.cues.rule_files import RulePack, load_pack, load_rule_file
from pipeline.types import Segment, Transcript

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def nlp():
    return load_nlp(["en", "de", "ro", "ko"])


@pytest.fixture(scope="session")
def pack():
    return load_pack(ROOT / "rules")


@pytest.fixture(scope="session")
def keyword_pack(pack):
    return RulePack([r for r in pack.rules if r.type == "keyword"])


@pytest.fixture(scope="session")
def embedder():
    return load_embedder()


@pytest.fixture(scope="session")
def example_cache():
    """One cache for the session, so the rule examples are encoded once."""
    return InMemoryEmbeddingCache()


def make_pack(tmp_path, body: str) -> RulePack:
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n" + body, encoding="utf-8")
    return RulePack(load_rule_file(p))


RULE = """  - name: t.cancel
    type: keyword
    label: cancellation_intent
    version: 3
    description: test
    weight: 1
    lang: en
    phrases: [cancel the contract]
"""


def labels(cues):
    return {c.label for c in cues}


@pytest.mark.parametrize("text, fires", [
    ("we want to cancel the contract", True),
    ("we are not going to cancel the contract", False),
    ("we won't cancel the contract, don't worry", False),
    ("we never cancel the contract", False),
])
def test_negation_english(tmp_path, nlp, text, fires):
    pack = make_pack(tmp_path, RULE)
    assert bool(detect_text(text, pack, nlp)) is fires


def test_negation_window_fallback_without_parser(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE)
    opts = DetectOptions(parse_negation=False)
    assert not detect_text("we will not cancel the contract", pack, nlp, options=opts)
    assert detect_text("we will cancel the contract", pack, nlp, options=opts)


def test_negation_can_be_switched_off(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE + "    negation: false\n")
    assert detect_text("we are not going to cancel the contract", pack, nlp)


def test_word_forms_match_lemmas(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE)
    cues = detect_text("we're cancelling the contracts in May", pack, nlp)
    assert labels(cues) == {"cancellation_intent"}
    assert cues[0].rule == "t.cancel" and cues[0].rule_version == 3 and "cancelling" in cues[0].why


def test_match_on_orth_is_exact(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE.replace("phrases: [cancel the contract]",
                                            "phrases: [Cancel]\n    match_on: orth"))
    assert detect_text("Cancel it", pack, nlp)
    assert not detect_text("cancel it", pack, nlp)
    assert not detect_text("Cancelling it", pack, nlp)


def test_exclusion_vetoes(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE + "    exclude: [board game]\n")
    assert detect_text("we will cancel the contract", pack, nlp)
    assert not detect_text("in the board game you cancel the contract to win", pack, nlp)


def test_requires_any_and_min_hits(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE.replace("[cancel the contract]", "[wrong, double]")
                     + "    requires_any: [invoice]\n")
    assert detect_text("the invoice is wrong", pack, nlp)
    assert not detect_text("wrong number, sorry", pack, nlp)
    pack2 = make_pack(tmp_path, RULE.replace("[cancel the contract]", "[wrong, double]")
                      + "    min_hits: 2\n")
    assert not detect_text("the invoice is wrong", pack2, nlp)
    assert detect_text("the invoice is wrong, you charged double", pack2, nlp)


def test_rep_speech_ignored_by_default(tmp_path, nlp, pack):
    mine = make_pack(tmp_path, RULE)
    assert not detect_text("you could cancel the contract", mine, nlp, speaker="rep")
    anyone = make_pack(tmp_path, RULE + "    speaker: any\n")
    assert detect_text("you could cancel the contract", anyone, nlp, speaker="rep")
    assert not detect_text("I'll send you our new price list tomorrow", pack, nlp, speaker="rep")


def test_part_of_call_and_transcript_fields(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE + "    last_minutes: 2\n")
    segs = [Segment(10, 14, "we might cancel the contract", "customer"),
            Segment(20, 25, "how is the weather", "rep"),
            Segment(290, 296, "honestly we will cancel the contract", "customer")]
    cues = detect(Transcript("en", 300.0, "test", "none", segs), pack, nlp)
    assert [(c.segment_index, c.start, c.end, c.speaker) for c in cues] == [(2, 290, 296, "customer")]
    first = make_pack(tmp_path, RULE + "    first_minutes: 1\n")
    assert [c.segment_index for c in detect(Transcript("en", 300.0, "t", "m", segs), first, nlp)] == [0]


def test_questions_only(tmp_path, nlp):
    pack = make_pack(tmp_path, RULE.replace("[cancel the contract]", "[price]")
                     + "    questions_only: true\n")
    assert detect_text("what is the price for ten seats?", pack, nlp)
    assert not detect_text("the price is fine", pack, nlp)


@pytest.mark.parametrize("text, label", [
    ("Wir wollen den Vertrag zum Jahresende kündigen", "cancellation_intent"),
    ("Die Rechnung ist falsch, da ist eine Position doppelt", "invoice_dispute"),
    ("Wir haben ein Angebot von einem anderen Anbieter bekommen", "competitor_mention"),
    ("Unsere Firma wurde übernommen", "org_change"),
    ("Wir bezahlen die Rechnung für September erst im Dezember", "payment_delay"),
])
def test_german_phrases(nlp, keyword_pack, text, label):
    assert label in labels(detect_text(text, keyword_pack, nlp, lang="de"))


def test_german_paid_invoice_is_not_a_payment_delay(nlp, keyword_pack):
    # "bezahlt" must not veto every form of "bezahlen" (exclusions match on lemmas)
    assert not detect_text("Wir haben die Rechnung bereits bezahlt", keyword_pack, nlp, lang="de")
    assert not detect_text("Wir haben die Rechnung erst im Dezember bekommen", keyword_pack, nlp, lang="de")


def test_german_negation_and_forms(nlp, keyword_pack):
    assert not detect_text("Wir werden nicht kündigen", keyword_pack, nlp, lang="de")
    assert "cancellation_intent" in labels(
        detect_text("Wir kündigen die Verträge", keyword_pack, nlp, lang="de"))


def test_korean_and_romanian(nlp, keyword_pack):
    assert korean_stem("라이선스를") == "라이선스"
    assert "cancellation_intent" in labels(detect_text("내년에 계약을 해지하려고 합니다", keyword_pack, nlp, lang="ko"))
    assert "pricing_request" in labels(detect_text("Cât costă licența pentru un an?", keyword_pack, nlp, lang="ro"))


SUPPOSITIONS = [  # (lang, a supposition, the same cue said outright)
    ("en", "say we ever found a mistake on the invoice, is there a form for that",
     "there's a mistake on the invoice, the freight is charged twice"),
    ("de", "Falls wir irgendwann mal kündigen würden, bräuchten wir einen Export der Daten.",
     "Wir kündigen den Vertrag zum Jahresende."),
    ("ro", "Dacă vreodată am anula contractul, ce se întâmplă cu datele noastre?",
     "Vrem să anulăm contractul de la anul."),
    ("ko", "만약 나중에 계약을 해지하면 데이터는 어떻게 되나요", "내년에 계약을 해지하려고 합니다"),
]


@pytest.mark.parametrize("lang, supposed, said", SUPPOSITIONS)
def test_a_supposition_keeps_keyword_rules_quiet(nlp, keyword_pack, monkeypatch, lang, supposed, said):
    from pipeline.cues import languages

    assert detect_text(said, keyword_pack, nlp, lang=lang)
    assert not detect_text(supposed, keyword_pack, nlp, lang=lang)
    monkeypatch.setitem(languages.HYPOTHETICALS, lang, re.compile(r"(?!)"))  # markers off: it fires
    assert detect_text(supposed, keyword_pack, nlp, lang=lang)


def test_a_supposition_is_read_in_its_own_sentence_and_a_threat_is_not_one(nlp, keyword_pack):
    # a threat is a condition, not a supposition; the supposition ends with its sentence
    assert "cancellation_intent" in labels(detect_text(
        "if you can't fix the mistake on the invoice we will cancel the contract", keyword_pack, nlp))
    assert "invoice_dispute" in labels(detect_text(
        "If we ever moved offices we'd tell you. There's a mistake on the invoice, the freight is charged twice.",
        keyword_pack, nlp))


def test_clause_doubt_is_checked():
    from pipeline.errors import ChurnwatchError

    with pytest.raises(ChurnwatchError, match="clause_doubt"):
        DetectOptions(clause_doubt=0)


def test_a_supposition_keeps_embedding_rules_quiet(nlp, pack, embedder, example_cache, monkeypatch):
    from pipeline.cues import languages

    similar = RulePack([r for r in pack.rules if r.type == "embedding"])
    said = "there's a mistake on the invoice, the freight is charged twice"
    supposed = "say we ever found a mistake on the invoice, the freight charged twice, is there a form for that"
    assert "invoice_dispute" in labels(detect_text(said, similar, nlp, embedder=embedder, cache=example_cache))
    assert not detect_text(supposed, similar, nlp, embedder=embedder, cache=example_cache)
    monkeypatch.setitem(languages.HYPOTHETICALS, "en", re.compile(r"(?!)"))
    assert "invoice_dispute" in labels(detect_text(supposed, similar, nlp, embedder=embedder, cache=example_cache))


def test_default_pack_keyword_hard_negatives(nlp, keyword_pack):
    assert "competitor_mention" in labels(detect_text("we are evaluating other vendors", keyword_pack, nlp))
    assert not detect_text("we are definitely not evaluating other vendors", keyword_pack, nlp)


def test_embedding_rule_and_cache(nlp, pack, embedder, example_cache):
    cache = example_cache
    text = "honestly nobody on the team logs in to your dashboard these days"
    cues = detect_text(text, pack, nlp, embedder=embedder, cache=cache)
    assert "usage_decline" in labels(cues)
    emb = [c for c in cues if c.rule.endswith("similar")]
    assert not emb or (0 < emb[0].score <= 1 and "near example" in emb[0].why)
    assert text in cache.get_many([text], embedder.name)

    class Boom:
        def encode(self, *a, **k):
            raise AssertionError("re-encoded a cached text")

    from pipeline.cues.embeddings import Embedder
    again = detect_text(text, pack, nlp, embedder=Embedder(embedder.name, Boom()), cache=cache)
    assert labels(again) == labels(cues)


def test_embedding_vectors_are_unit(embedder):
    from pipeline.cues.embeddings import encode
    v = encode(["a test", "another test"], embedder, None)
    assert v.shape[0] == 2 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)


def test_dev_file_macro_f1(nlp, pack, embedder, example_cache):
    dev = shared_dir() / "data" / "utterances_dev.jsonl"
    if not dev.exists():
        pytest.skip("shared evaluation data not present")
    from pipeline.cues.detect import Utterance, detect_utterances
    from pipeline.cues.rule_files import read_labeled, score_predictions

    rows = read_labeled(dev)
    found = detect_utterances([Utterance(r["text"], r["speaker"], r["lang"]) for r in rows],
                              pack, nlp, embedder, example_cache)
    report = score_predictions(rows, [labels(c) for c in found])
    assert report["macro_f1"] >= 0.85 and report["false_alarm_rate"] <= 0.05


# ---- the fast path: prefilter, gated parse ---------------------------------------------------


def corpus(pack) -> list[tuple[str, str]]:
    """(text, lang): sample call turns, rule examples and, where present, the shared texts."""
    files = sorted((ROOT / "samples" / "audio").glob("*.truth.json"))
    files += sorted((ROOT / "tests" / "data").glob("*.truth.json"))
    files += sorted((shared_dir() / "data" / "calls_dev").glob("*.truth.json"))
    out = []
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        out += [(t["text"], (data.get("language") or "en").split("-")[0]) for t in data.get("turns", [])]
    for r in pack.rules:
        if r.type == "embedding":
            out += [(t, "en") for t in list(r.examples) + list(r.counter_examples)]
    dev = shared_dir() / "data" / "utterances_dev.jsonl"
    if dev.exists():
        out += [(r["text"], r["lang"]) for r in map(json.loads, dev.read_text().splitlines()) if r]
    return out


TRICKY = ["we cannot renew, gonna cancel", "won't renew!", "10km of cable, 5pm-6pm", "e-mail the quote",
          "U.S. pricing?", "o'clock", "it's the invoice's total", "re-negotiate the price",
          "C++ licences", "#pricing @finance", "http://example.com/price-list", "CANCEL-THE-CONTRACT",
          "ÜBERNOMMEN wurde die Firma", "Kündigungsfrist?", "don't cancel", "gotta pay later"]


def test_tokenizer_splits_letter_runs_only_in_special_cases(nlp, pack):
    # The prefilter relies on this: a letter-only token is a whole run of letters of the text,
    # unless it is a piece a tokenizer special case cuts out ("cannot" -> "can" "not").
    from pipeline.cues.languages import split_pieces

    letters = re.compile(r"[^\W\d_]+")
    for lang in ("en", "de", "ro"):
        pipe, pieces = nlp[lang], split_pieces(nlp[lang])
        assert lang != "en" or {"wo", "ca"} <= pieces
        for text, tlang in corpus(pack) + [(t, lang) for t in TRICKY]:
            if tlang != lang:
                continue
            runs = set(letters.findall(text.lower()))
            for tok in pipe.make_doc(text):
                if letters.fullmatch(tok.lower_) and tok.lower_ not in pieces:
                    assert tok.lower_ in runs, (text, tok.text)


def _hits(doc, comp):
    from spacy.attrs import LOWER

    from pipeline.cues.detect import _match
    return [m for m in _match(doc, comp, set(doc.to_array(LOWER).tolist())) if comp.kinds[m[0]][1] == "hit"]


def test_prefilter_never_drops_a_text_the_matchers_would_hit(nlp, keyword_pack):
    from pipeline.cues.languages import compile_rules

    skipped = 0
    for lang in ("en", "de", "ro"):
        comp = compile_rules(keyword_pack, nlp[lang], lang)
        texts = [t for t, tl in corpus(keyword_pack) if tl == lang] + TRICKY
        for text in texts + [t.upper() for t in texts]:
            if not comp.may_match(text):
                skipped += 1
                assert not _hits(nlp[lang].make_doc(text), comp), text
    assert skipped > 10  # the prefilter does skip cue-free turns


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prefilter_property(nlp, keyword_pack, data):
    # texts built from the rules' own words, special-case pieces and punctuation
    from pipeline.cues.languages import compile_rules, split_pieces

    comp = compile_rules(keyword_pack, nlp["en"], "en")
    vocab = sorted(comp.triggers)[:400] + sorted(split_pieces(nlp["en"]))[:80] + \
        ["n't", "'s", "-", ".", ",", "?", "10", "cannot", "won't", "gonna", "other", "vendors", "the"]
    words = data.draw(st.lists(st.sampled_from(vocab), min_size=1, max_size=8))
    seps = data.draw(st.lists(st.sampled_from([" ", "", "-", "'", ". ", "  "]), min_size=len(words),
                              max_size=len(words)))
    text = "".join(w + s for w, s in zip(words, seps))
    if data.draw(st.booleans()):
        text = text.upper()
    if not comp.may_match(text):
        assert not _hits(nlp["en"].make_doc(text), comp), text


def test_is_verb_matches_the_attribute_ruler(nlp, pack):
    from pipeline.cues.detect import is_verb

    texts = [t for t, lang in corpus(pack) if lang == "en"][:300]
    for doc in nlp["en"].pipe(texts):
        for tok in doc:
            assert is_verb(tok) == (tok.pos_ in ("VERB", "AUX")), (doc.text, tok.text, tok.tag_, tok.dep_)


class Recorder:
    """A spaCy pipeline that records what it tokenizes and what it parses."""

    def __init__(self, pipe):
        self._pipe, self.tokenized, self.parsed = pipe, [], []
        rec = self

        class Tok:
            def __getattr__(self, name):
                return getattr(pipe.tokenizer, name)

            def pipe(self, texts, batch_size=1000):
                texts = list(texts)
                rec.tokenized += texts
                return pipe.tokenizer.pipe(texts, batch_size=batch_size)

        self.tokenizer = Tok()

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def pipe(self, docs, **kw):
        docs = list(docs)
        self.parsed += [d.text for d in docs]
        assert "lemmatizer" in kw.get("disable", ()) and "attribute_ruler" in kw["disable"]
        return self._pipe.pipe(docs, **kw)


def test_fast_path_tokenizes_candidates_and_parses_only_where_negation_can_matter(nlp, keyword_pack):
    rec = Recorder(nlp["en"])
    texts = {
        "How was the weekend? The weather was lovely.": None,  # no trigger word: never tokenized
        "we will cancel the contract in May": "cancellation_intent",  # no negator: not parsed
        "We are happy with you. We would never cancel the contract.": None,  # negator in the sentence: parsed
        "We will cancel the contract. I don't know when.": "cancellation_intent",  # other sentence
        "we dont want to cancel the contract": None,  # "dont" = do + nt, a negator to the parser
    }
    found = detect_utterances_([(t, "customer") for t in texts] + [("we will cancel the contract", "rep")],
                               keyword_pack, {"en": rec})
    assert [("cancellation_intent" in labels(c)) for c in found] == \
        [v == "cancellation_intent" for v in texts.values()] + [False]
    assert "How was the weekend? The weather was lovely." not in rec.tokenized
    assert "we will cancel the contract" not in rec.tokenized  # the rep line: no rule reads it
    assert sorted(rec.parsed) == sorted(["We are happy with you. We would never cancel the contract.",
                                         "we dont want to cancel the contract"])


def detect_utterances_(items, pack, nlp):
    from pipeline.cues.detect import Utterance, detect_utterances
    return detect_utterances([Utterance(t, s, "en") for t, s in items], pack, nlp)


def test_korean_stem_takes_the_longest_suffix_each_round():
    assert korean_stem("해지하려고요") == "해지"
    assert korean_stem("계약을") == "계약"
    assert korean_stem("요") == "요"  # at least one syllable stays


# ---- backtest ------------------------------------------------------------------------------

BACKTEST_RULES = RULE + """  - name: t.cancel2
    type: keyword
    label: cancellation_intent
    version: 1
    description: same label as t.cancel; both must be counted
    lang: en
    phrases: [cancel]
  - name: t.price
    type: keyword
    label: pricing_request
    version: 2
    description: price questions, in lost and kept accounts alike
    lang: en
    phrases: [price]
  - name: t.kuendigen
    type: keyword
    label: cancellation_intent
    version: 1
    description: German
    lang: de
    phrases: [kündigen]
"""


def _fill(session):
    from pipeline import store

    def call(n, account, lang, *segments):
        c = store.Call(audio_sha256=f"{n:064x}", account_id=account, language=lang, duration=120.0,
                       status="done")
        c.segments = [store.Segment(idx=i, speaker=who, start=10.0 * i, end=10.0 * i + 8, text=text)
                      for i, (who, text) in enumerate(segments)]
        session.add(c)

    session.add_all([store.Account(id="L1", status="lost"), store.Account(id="L2", status="lost"),
                     store.Account(id="K1"), store.Account(id="K2"), store.Account(id="K3"),
                     store.Account(id="K4")])  # K4 has no calls: not counted
    session.flush()
    call(1, "L1", "en", ("rep", "how are things"), ("customer", "we will cancel the contract in May"))
    call(2, "L1", "en", ("customer", "and what is the price for ten seats?"))
    call(3, "L2", "en", ("customer", "fine thanks"))
    call(4, "L2", "de-DE", ("customer", "Wir wollen den Vertrag kündigen"))
    call(5, "K1", "en", ("customer", "we will not cancel the contract"), ("customer", "the price is ok"))
    call(6, "K2", "en", ("rep", "you could cancel the contract any time"), ("customer", "good to know"))
    call(7, "K3", "de", ("customer", "Wir werden nicht kündigen"))
    call(8, None, "en", ("customer", "we will cancel the contract"))  # no account: ignored


def test_backtest_hit_rates_and_lift(engine, tmp_path, nlp):
    from pipeline import store
    from pipeline.cues.backtest import backtest

    pack = make_pack(tmp_path, BACKTEST_RULES)
    with store.session_scope(engine) as session:
        _fill(session)
    with store.session_scope(engine) as session:
        rows = {r["rule"]: r for r in backtest(session, pack, nlp)}
        assert backtest(session, pack, nlp, chunk=3) == list(rows.values())  # streamed in chunks
    assert set(rows) == {"t.cancel", "t.cancel2", "t.price", "t.kuendigen"}
    for r in rows.values():
        assert (r["lost_accounts"], r["kept_accounts"]) == (2, 3)
    # fires only in lost accounts: L1 (en); K1 negated it, K2 was the rep
    assert (rows["t.cancel"]["accounts_hit"], rows["t.cancel"]["hit_rate_lost"],
            rows["t.cancel"]["hit_rate_kept"], rows["t.cancel"]["lift"]) == (1, 0.5, 0.0, None)
    assert rows["t.cancel"]["version"] == 3 and rows["t.cancel"]["label"] == "cancellation_intent"
    # same label, same segment: counted on its own (not hidden by one cue per label)
    assert rows["t.cancel2"]["accounts_hit"] == 1 and rows["t.cancel2"]["hit_rate_lost"] == 0.5
    # German call with a region code: L2 hit, K3 negated
    assert (rows["t.kuendigen"]["hit_rate_lost"], rows["t.kuendigen"]["hit_rate_kept"]) == (0.5, 0.0)
    # in both: L1 of 2 lost, K1 of 3 kept -> lift 0.5 / 0.333 = 1.5
    p = rows["t.price"]
    assert (p["accounts_hit"], p["hit_rate_lost"], p["hit_rate_kept"], p["lift"]) == (2, 0.5, 0.333, 1.5)


def test_backtest_cli_json(engine, db_url, tmp_path):
    from typer.testing import CliRunner

    from pipeline import store
    from pipeline.cli import app

    (tmp_path / "cues").mkdir()
    (tmp_path / "cues" / "t.yaml").write_text("rules:\n" + BACKTEST_RULES, encoding="utf-8")
    with store.session_scope(engine) as session:
        _fill(session)
    result = CliRunner().invoke(app, ["rules", "backtest", "--db", db_url, "--rules", str(tmp_path),
                                      "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["rule"]: r for r in json.loads(result.stdout)["rules"]}
    assert rows["t.cancel"]["hit_rate_lost"] == 0.5 and rows["t.price"]["lift"] == 1.5


def test_pipelines_load_a_language_with_its_first_utterance(keyword_pack):
    """ingest's spaCy pipelines: an English call loads English only; a German line then loads German."""
    from pipeline.cues.languages import Pipelines

    lazy = Pipelines(["en", "de", "ro", "ko"])
    assert "de" in lazy and lazy.loaded() == []
    english = detect_text("We will not renew the contract next year.", keyword_pack, lazy)
    assert {c.label for c in english} == {"cancellation_intent"} and lazy.loaded() == ["en"]
    german = detect_text("Wir werden den Vertrag nicht verlängern.", keyword_pack, lazy, lang="de")
    assert {c.label for c in german} == {"cancellation_intent"} and sorted(lazy.loaded()) == ["de", "en"]
    with pytest.raises(Exception, match="No spaCy pipeline for language 'xx'"):
        Pipelines(["en", "xx"])


@pytest.mark.parametrize("text, parts", [
    ("the app crashes constantly and nobody fixes it so half the drivers stopped using it",
     ["the app crashes constantly", "nobody fixes it", "half the drivers stopped using it"]),
    ("Die Rechnung ist falsch, und Ihr Support antwortet nicht.",
     ["Die Rechnung ist falsch", "Ihr Support antwortet nicht."]),
    ("Factura e greșită, v-am scris de trei ori și n-a răspuns nimeni.",
     ["Factura e greșită", "v-am scris de trei ori", "n-a răspuns nimeni."]),
    ("다른 업체에서 훨씬 싸게 제안 받았는데 가격 좀 맞춰주실 수 있어요?",
     ["다른 업체에서 훨씬 싸게 제안 받았는데", "가격 좀 맞춰주실 수 있어요"]),
    # one statement: a "but" (or a trailing "that's all") takes the first half back
    ("the outage was annoying, but you fixed it the same day", []),
    ("Das Problem war nervig, aber seit dem Update läuft alles", []),
    # pieces under three words join the statement before them
    ("no, the payment is on its way, approved yesterday", []),
    ("we're fine", []),
])
def test_clauses_splits_a_turn_into_its_statements(text, parts):
    from pipeline.types import clauses

    assert clauses(text) == parts
