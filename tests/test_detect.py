"""Detection on hand-built transcripts: negation, exclusions, rep speech, word forms,
part of call, German, Korean, embeddings and the cache. Models load once per session."""

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.detect import (DetectOptions, InMemoryEmbeddingCache, detect, detect_text,
                             load_embedder)
from pipeline.nlp import korean_stem, load_nlp
from pipeline.rules import RulePack, load_pack, load_rule_file
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
    pack = make_pack(tmp_path, RULE + "    exclude: [if we ever]\n")
    assert detect_text("we will cancel the contract", pack, nlp)
    assert not detect_text("if we ever cancel the contract I'll buy you lunch", pack, nlp)


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
])
def test_german_phrases(nlp, keyword_pack, text, label):
    assert label in labels(detect_text(text, keyword_pack, nlp, lang="de"))


def test_german_negation_and_forms(nlp, keyword_pack):
    assert not detect_text("Wir werden nicht kündigen", keyword_pack, nlp, lang="de")
    assert "cancellation_intent" in labels(
        detect_text("Wir kündigen die Verträge", keyword_pack, nlp, lang="de"))


def test_korean_and_romanian(nlp, keyword_pack):
    assert korean_stem("라이선스를") == "라이선스"
    assert "cancellation_intent" in labels(detect_text("내년에 계약을 해지하려고 합니다", keyword_pack, nlp, lang="ko"))
    assert "pricing_request" in labels(detect_text("Cât costă licența pentru un an?", keyword_pack, nlp, lang="ro"))


def test_default_pack_keyword_hard_negatives(nlp, keyword_pack):
    assert "competitor_mention" in labels(detect_text("we are evaluating other vendors", keyword_pack, nlp))
    assert not detect_text("we are definitely not evaluating other vendors", keyword_pack, nlp)


def test_embedding_rule_and_cache(nlp, pack, embedder):
    cache = InMemoryEmbeddingCache()
    text = "honestly nobody on the team logs in to your dashboard these days"
    cues = detect_text(text, pack, nlp, embedder=embedder, cache=cache)
    assert "usage_decline" in labels(cues)
    emb = [c for c in cues if c.rule.endswith("similar")]
    assert not emb or (0 < emb[0].score <= 1 and "near example" in emb[0].why)
    assert text in cache.get_many([text], embedder.name)

    class Boom:
        def encode(self, *a, **k):
            raise AssertionError("re-encoded a cached text")

    from pipeline.detect import Embedder
    again = detect_text(text, pack, nlp, embedder=Embedder(embedder.name, Boom()), cache=cache)
    assert labels(again) == labels(cues)


def test_embedding_vectors_are_unit(embedder):
    from pipeline.detect import encode
    v = encode(["a test", "another test"], embedder, None)
    assert v.shape[0] == 2 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)


def test_dev_file_macro_f1(nlp, pack, embedder):
    dev = shared_dir() / "data" / "utterances_dev.jsonl"
    if not dev.exists():
        pytest.skip("shared evaluation data not present")
    from pipeline.detect import Utterance, detect_utterances
    from pipeline.rules import read_labeled, score_predictions

    rows = read_labeled(dev)
    found = detect_utterances([Utterance(r["text"], r["speaker"], r["lang"]) for r in rows],
                              pack, nlp, embedder, InMemoryEmbeddingCache())
    report = score_predictions(rows, [labels(c) for c in found])
    assert report["macro_f1"] >= 0.85 and report["false_alarm_rate"] <= 0.05
