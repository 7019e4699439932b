"""Ingest end to end: a real short clip through tiny.en, the rules and the store, on every backend.

The toolkit (Whisper tiny.en, spaCy, the embedder, the rule pack) is loaded once per session by
`load_kit`, which tests/test_faults.py shares. Short clips are cut from the project's
two-voice test call (tests/data/two_voices.stereo.ogg) so each transcribes in a few seconds;
each cut has its own length, so its own bytes and audio hash.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline.flow import ingest
from pipeline.flow import executors as scale
from pipeline import store
from pipeline.speech.audio import audio_sha256

ROOT = Path(__file__).resolve().parents[1]
TWO_VOICES = ROOT / "tests" / "data" / "two_voices.stereo.ogg"
ACCOUNT = "ACC-1003"


@functools.cache
def load_kit() -> ingest.Toolkit:
    """The toolkit, loaded once per test session (shared with tests/test_faults.py)."""
    from pipeline.settings import load_settings

    settings = load_settings(db_url="sqlite://")
    if not (settings.models_dir / "whisper" / settings.asr_model).exists():
        pytest.skip(f"Whisper {settings.asr_model} is not installed in {settings.models_dir / 'whisper'}; "
                    f"run: churnwatch models install {settings.asr_model}")
    return ingest.load_toolkit(settings)


def make_clips(folder: Path, n: int, base: float = 10.0) -> list[Path]:
    """n short stereo clips of the two-voice call (rep, then the customer talking of cancelling)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        out = folder / f"clip_{i + 1}.ogg"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(TWO_VOICES), "-t", f"{base + 0.25 * i:.2f}",
             "-c:a", "libvorbis", "-q:a", "3", str(out)],
            check=True,
        )
        clips.append(out)
    return clips


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in store.Base.metadata.sorted_tables
        }


@pytest.fixture(scope="session")
def kit() -> ingest.Toolkit:
    return load_kit()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list[Path]:
    return make_clips(tmp_path_factory.mktemp("clips"), 2)


@pytest.fixture
def use_kit(monkeypatch, kit):
    """Make the executors and the CLI reuse the session's toolkit instead of loading models again."""
    monkeypatch.setattr(ingest, "load_toolkit", lambda settings, **options: kit)
    return kit


def corrupt_copy(good: Path, folder: Path) -> Path:
    """A file with a real Ogg header followed by garbage."""
    bad = folder / "broken call.ogg"
    data = good.read_bytes()
    bad.write_bytes(data[:200] + bytes(range(256)) * 40)
    return bad


def test_ingest_stores_segments_cues_and_score(engine, kit, clips):
    opts = ingest.IngestOptions(account_id=ACCOUNT, rep="Maya Okafor")
    result = ingest.ingest_file(engine, clips[0], kit, opts)

    assert result.status == "ok", result.error
    with store.session_scope(engine) as s:
        call = s.get(store.Call, result.call_id)
        assert call.status == "done" and call.account_id == ACCOUNT
        assert call.audio_sha256 == audio_sha256(clips[0])
        assert len(call.segments) >= 2
        assert {seg.speaker for seg in call.segments} == {"rep", "customer"}
        assert "cancel" in " ".join(seg.text.lower() for seg in call.segments)
        cues = call.cues
        assert any(c.label == "cancellation_intent" for c in cues)
        for c in cues:
            assert c.rule_name and c.rule_version >= 1 and c.quote and c.speaker in ("rep", "customer")
            assert c.segment_id is not None and c.start < c.end
            # the rule definition that produced the cue is kept
            assert s.scalar(select(store.Rule).where(store.Rule.name == c.rule_name,
                                                       store.Rule.version == c.rule_version))
        cancel = next(c for c in cues if c.label == "cancellation_intent")
        assert cancel.speaker == "customer" and "cancel" in cancel.quote.lower()
        scores = s.scalars(select(store.RiskScore).where(store.RiskScore.account_id == ACCOUNT)).all()
        assert len(scores) == 1 and 0 <= scores[0].score <= 100
    assert result.score == pytest.approx(scores[0].score)
    assert {c["label"] for c in result.cues} == {c.label for c in cues}


def test_reingest_is_duplicate_and_adds_nothing(engine, kit, clips):
    opts = ingest.IngestOptions(account_id=ACCOUNT)
    first = ingest.ingest_file(engine, clips[1], kit, opts)
    assert first.status == "ok", first.error
    before = table_counts(engine)

    again = ingest.ingest_file(engine, clips[1], kit, opts)
    copy = clips[1].parent / "same audio, other name.ogg"
    copy.write_bytes(clips[1].read_bytes())
    renamed = ingest.ingest_file(engine, copy, kit, opts)

    assert (again.status, again.call_id) == ("duplicate", first.call_id)
    assert (renamed.status, renamed.call_id) == ("duplicate", first.call_id)
    assert table_counts(engine) == before


def test_batch_stores_good_file_and_reports_bad_one(tmp_path, use_kit, clips):
    from pipeline.settings import load_settings

    url = f"sqlite:///{tmp_path / 'batch.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    bad = corrupt_copy(clips[0], tmp_path)
    opts = ingest.IngestOptions(account_id=ACCOUNT)
    jobs = [(bad, opts), (clips[0], opts)]

    results = scale.run_jobs(jobs, load_settings(db_url=url), executor="local", progress=False)

    assert [r.file for r in results] == [str(bad), str(clips[0])]
    assert results[1].status == "ok"
    assert results[0].status == "error" and results[0].call_id is None
    assert str(bad) in results[0].error and "\n" not in results[0].error
    counts = table_counts(engine)
    assert counts["calls"] == 1 and counts["segments"] >= 2
    engine.dispose()


def test_cli_ingest_json_shape_and_exit_code(tmp_path, use_kit, clips):
    from typer.testing import CliRunner

    from pipeline.cli import app

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    bad = corrupt_copy(clips[0], tmp_path)
    args = ["ingest", str(clips[0]), str(bad), "--account", ACCOUNT, "--rep", "Maya Okafor",
            "--date", "2026-10-06", "--db", db, "--json"]
    res = CliRunner().invoke(app, args)

    assert res.exit_code == 1, res.output  # one file failed
    assert "Traceback" not in res.output
    out = json.loads(res.stdout)
    assert [r["file"] for r in out] == [str(clips[0]), str(bad)]
    for r in out:
        assert set(r) == {"file", "call_id", "status", "error", "cues", "hints", "warnings"}
    good, broken = out
    assert good["status"] == "ok" and isinstance(good["call_id"], int) and good["error"] is None
    assert good["warnings"] == []  # an English call: its language is clear
    assert good["cues"] and good["hints"]
    for cue in good["cues"]:
        assert set(cue) == {"label", "rule", "rule_version", "start", "end", "speaker", "quote", "score"}
    assert any(c["label"] == "cancellation_intent" and c["speaker"] == "customer" for c in good["cues"])
    assert broken["status"] == "error" and broken["call_id"] is None and broken["cues"] == []
    assert str(bad) in broken["error"]

    # again: the good file is a duplicate, exit code still counts only the failure
    res2 = CliRunner().invoke(app, args)
    assert res2.exit_code == 1
    assert [r["status"] for r in json.loads(res2.stdout)] == ["duplicate", "error"]


def test_the_transcript_cache_key_fits_its_column():
    """options_key is String(64): PostgreSQL refuses a longer one (SQLite would not notice)."""
    from pipeline.flow.ingest import cache_key
    from pipeline.speech.transcribe import TranscribeOptions
    from pipeline.store.tables import TranscriptCache

    width = TranscriptCache.__table__.c.options_key.type.length
    for options in (TranscribeOptions(), TranscribeOptions(language="de", rep_channel="right", batch_size=8)):
        assert len(cache_key(options)) <= width
    assert cache_key(TranscribeOptions(language="de")) != cache_key(TranscribeOptions(language="en"))


def test_rule_examples_are_encoded_once_per_install(tmp_path):
    """A cold process reads the embedding rules' example vectors kept by the one before."""
    import numpy as np

    from pipeline.cues.embeddings import InMemoryEmbeddingCache, load_embedder

    embedder = load_embedder()
    encoded = []
    real = embedder.model.encode

    def counting(texts, **kw):
        encoded.extend(texts)
        return real(texts, **kw)

    embedder.model.encode = counting
    examples = ["we are looking at other vendors", "the invoice is wrong", "we are looking at other vendors"]
    first, second = InMemoryEmbeddingCache(), InMemoryEmbeddingCache()
    ingest.encode_examples(examples, embedder, first, tmp_path / "cache")
    assert sorted(encoded) == sorted(set(examples)) and (tmp_path / "cache" / "examples.all-MiniLM-L6-v2.npz").is_file()
    ingest.encode_examples(examples, embedder, second, tmp_path / "cache")  # the next process
    assert len(encoded) == 2  # nothing encoded again
    a, b = first.get_many(examples, embedder.name), second.get_many(examples, embedder.name)
    assert set(a) == set(b) == set(examples) and all(np.array_equal(a[t], b[t]) for t in a)
    ingest.encode_examples(examples + ["a new example"], embedder, InMemoryEmbeddingCache(), tmp_path / "cache")
    assert encoded[2:] == ["a new example"]
    # a folder that cannot be written: encoded, not kept, no error
    blocked = tmp_path / "file"
    blocked.write_text("x")
    cache = InMemoryEmbeddingCache()
    ingest.encode_examples(examples, embedder, cache, blocked / "cache")
    assert len(cache.get_many(examples, embedder.name)) == 2


PII_CALL = ROOT / "tests" / "data" / "pii_call.stereo.ogg"
# the test's own list, not the detectors' (pipeline.privacy.detectors.DIGIT_WORDS): a word missing
# there must still count as a digit here
_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9"}


# words that join the parts of a spoken address, as the ASR hears them ("john dot smith that example")
_JOINERS = {"dot", "at", "that", "punkt"}


def _squeezed(value) -> str:
    """A stored value as letters and digits only, digit words as digits, without the words that
    join a spoken address: "4,111-one one" -> "411111", "john dot smith at x" -> "johnsmithx"."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    words = re.findall(r"[^\W_]+", text.lower())
    return "".join(_DIGIT_WORDS.get(w, w) for w in words if w not in _JOINERS)


def test_pii_spelled_in_a_call_reaches_no_stored_column(engine, kit, tmp_path):
    """The customer spells a card, an e-mail, a phone number and an IBAN (tests/data/pii_call,
    flite voices) in a recording whose file name holds PII too. After ingest, the reminders it
    planned and their messages queued, no column of any table holds 8 letters or digits in a row
    of any of them, in any grouping or spelling, and each was heard (its redaction token is in
    the transcript)."""
    from pipeline.reminders.outbox import enqueue_hint, queue_open_reminders

    truth = json.loads(PII_CALL.with_name("pii_call.truth.json").read_text())
    secrets = {kind: _squeezed(text) for kind, text in truth["secrets"].items()}
    audio = tmp_path / f"{truth['secrets']['email']} card {truth['secrets']['card']} tel 0151 2345678.ogg"
    audio.write_bytes(PII_CALL.read_bytes())
    policies = kit.policies.model_copy(
        update={"delivery": kit.policies.delivery.model_copy(update={"webhook_url": "http://127.0.0.1:9/hook"})})

    result = ingest.ingest_file(engine, audio, kit, ingest.IngestOptions(account_id=ACCOUNT, rep="Maya Okafor"))
    assert result.status == "ok", result.error
    now = datetime.now(timezone.utc)
    with store.session_scope(engine) as s:
        queue_open_reminders(s, policies, now)
        enqueue_hint(s, call_id=result.call_id, account_id=ACCOUNT, rep=None, text=result.hints[0]["text"],
                     policies=policies, now=now)
    with engine.connect() as conn:
        customer = " ".join(conn.execute(select(store.Segment.text).where(store.Segment.speaker == "customer"))
                            .scalars())
        stored = {(t.name, col): _squeezed(v) for t in store.Base.metadata.sorted_tables
                  for row in conn.execute(select(t)) for col, v in row._mapping.items()
                  if v is not None and not isinstance(v, (int, float, bool))}
        assert conn.execute(select(func.count()).select_from(store.Outbox)).scalar_one() >= 2  # messages queued
        assert conn.execute(select(func.count()).select_from(store.Reminder)).scalar_one() >= 1
    # each was heard and redacted; tiny.en hears the IBAN's "D E eight nine" as "88 -9", so what is
    # left of it is no IBAN any more and goes as a phone number or a long number
    for token in ("[CARD]", "[EMAIL]", "[PHONE]"):
        assert token in customer, (token, customer)
    assert len(re.findall(r"\[(?:CARD|EMAIL|PHONE|IBAN|NUMBER)\]", customer)) >= 4, customer
    for kind, secret in secrets.items():
        pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
        leaks = [(where, piece) for where, text in stored.items() for piece in pieces if piece in text]
        assert not leaks, (kind, leaks[:5])
