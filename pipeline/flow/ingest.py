"""The way a call travels: audio → transcript → redacted → cues → store → score → reminders → hint.

`analyse_file` does the heavy, database-free part (decode, transcribe, redact, detect, coach
metrics) and can run anywhere, e.g. in a Ray worker. `store_analysis` writes one call in one
transaction: a call is either stored whole or not at all, and a second copy of the same audio
(same sha256) is reported as a duplicate, never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline import store
from pipeline.errors import ChurnwatchError, StorageError
from pipeline.types import Cue, Transcript, language_doubt

if TYPE_CHECKING:
    from collections.abc import Mapping

    from spacy.language import Language

    from pipeline.cues.detect import LearnedCues
    from pipeline.cues.embeddings import Embedder, InMemoryEmbeddingCache
    from pipeline.cues.rule_files import RulePack
    from pipeline.privacy.redact import RedactOptions
    from pipeline.reminders.policies import Policies
    from pipeline.risk.score import RiskModel
    from pipeline.settings import Settings
    from pipeline.speech.transcribe import ASR, TranscribeOptions


@dataclass(frozen=True)
class IngestOptions:
    account_id: str  # the CRM account the call belongs to
    rep: str | None = None  # the rep's name as in the CRM
    call_date: date | None = None  # defaults to today
    store_transcript_cache: bool = True  # keep the transcript per audio hash, engine and model
    language: str | None = None  # the call's language code ("en", "de", ...); None detects it


@dataclass
class Toolkit:
    """Everything loaded once per process and passed to every call: models, rules, policies."""

    asr: ASR
    transcribe_options: TranscribeOptions
    pack: RulePack
    nlp: Mapping[str, Language]  # language code → spaCy pipeline (pipeline.cues.languages.Pipelines)
    embedder: Embedder | None  # None skips embedding rules
    example_vectors: InMemoryEmbeddingCache  # the rules' examples, encoded once
    redact_options: RedactOptions
    risk_model: RiskModel
    policies: Policies  # rules/reminders.yaml
    settings: Settings
    learned: LearnedCues | None = None  # the fitted learned cue model and its encoder


@dataclass
class Analysis:
    """What one recording yields before anything is stored."""

    path: str
    sha256: str
    transcript: Transcript
    cues: list[Cue]
    metrics: dict[str, Any] | None
    embeddings: dict[str, Any] = field(default_factory=dict)  # text → vector, for the cache
    learned_embeddings: dict[str, Any] = field(default_factory=dict)  # text → learned model's encoder vector


@dataclass
class IngestResult:
    file: str
    call_id: int | None = None
    status: str = "ok"  # ok | duplicate | error | skipped (not tried: the batch stopped before it)
    error: str | None = None
    stops_batch: bool = False  # the store cannot be written (disk full, read-only): later files would fail too
    cues: list[dict[str, Any]] = field(default_factory=list)
    hints: list[dict[str, Any]] = field(default_factory=list)
    account_id: str | None = None
    score: float | None = None
    warnings: list[str] = field(default_factory=list)  # stored, but worth a person's look

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "call_id": self.call_id,
            "status": self.status,
            "error": self.error,
            "cues": self.cues,
            "hints": self.hints,
            "warnings": self.warnings,
        }


def load_toolkit(settings, with_embeddings: bool = True, detect_language: bool = True) -> Toolkit:
    """Load the models and the rule pack once (the slow part of start-up); `detect_language`
    False when every call's language is given (then no model for detecting it is loaded).

    Only what calls need: the default Whisper model with a copy per stream and the small copy of
    the multilingual one that detects a call's language, side by side (`load_asr`); the
    multilingual model that decodes and the speaker encoder with the first call that needs them
    (a call not in English, a mono call); the embedding model only when an embedding rule is in
    the pack; spaCy without torch (pipeline.weights.spacy_import).
    """
    from pipeline.weights.spacy_import import import_spacy

    import_spacy()  # before anything imports spaCy: thinc would import torch (4 s, 200 MB)
    from pipeline.cues import embeddings
    from pipeline.cues import languages as nlp_mod
    from pipeline.cues.learned import load_learned
    from pipeline.privacy import redact
    from pipeline import reminders as remind
    from pipeline.risk import score as risk
    from pipeline.cues import rule_files as rules
    from pipeline.speech import transcribe

    options = transcribe.TranscribeOptions.from_settings(settings)
    asr = transcribe.load_asr(options, settings.models_dir, detect_language)
    pack = rules.load_pack(settings.rules_dir / "cues")
    nlp = nlp_mod.Pipelines()  # each language's spaCy pipeline loads with its first call
    embedder = None
    example_vectors = embeddings.InMemoryEmbeddingCache()
    embedding_rules = [r for r in pack.rules if r.type == "embedding"]
    if with_embeddings and embedding_rules:
        embedder = embeddings.load_embedder(name=settings.embedding_model)
        examples = [t for r in embedding_rules for t in (*r.examples, *r.counter_examples)]
        encode_examples(examples, embedder, example_vectors, settings.models_dir / "cache")
    learned = load_learned(pack, settings.models_dir / "cues")
    return Toolkit(
        asr=asr,
        transcribe_options=options,
        pack=pack,
        nlp=nlp,
        embedder=embedder,
        example_vectors=example_vectors,
        redact_options=redact.RedactOptions(),
        risk_model=risk.load_risk_model(settings.rules_dir, settings.models_dir),
        policies=remind.load_policies(settings.rules_dir / "reminders.yaml"),
        settings=settings,
        learned=learned,
    )


def encode_examples(texts: list[str], embedder, cache, folder: Path) -> None:
    """Put the vectors of the embedding rules' examples into `cache`, reading those encoded before
    from folder/examples.<model>.npz (by text hash) and encoding only the rest: a cold process
    spent 2 s of an 11-second clip's ingest encoding the same examples again. A folder that
    cannot be written leaves it at encoding them."""
    import os

    import numpy as np

    from pipeline.cues import embeddings

    path = folder / f"examples.{embedder.name}.npz"
    kept: dict[str, np.ndarray] = {}
    try:
        with np.load(path) as saved:
            kept = dict(zip(saved["keys"].tolist(), saved["vectors"]))
    except (OSError, KeyError, ValueError):  # none yet, or unreadable: encode
        pass
    found = {t: kept[k] for t in texts if (k := embeddings.text_key(t)) in kept}
    cache.put_many(found, embedder.name)
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if not missing:
        return
    vectors = embeddings.encode(missing, embedder, cache)
    kept.update(zip((embeddings.text_key(t) for t in missing), vectors))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # workers may write at once
        np.savez(tmp, keys=np.array(list(kept)), vectors=np.stack(list(kept.values())))
        tmp.replace(path)
    except OSError:
        pass


def cache_key(options) -> str:
    """The transcription options besides engine and model that change a transcript; the column
    holds 64 characters, so a longer description is stored as its sha256."""
    import hashlib

    key = (f"rep={options.rep_channel};ml={options.multilingual_model};vad={options.vad};beam={options.beam_size}"
           f";lang={options.language or 'auto'};ct={options.compute_type}/{options.multilingual_compute_type}/{options.detect_compute_type}"
           f";batch={options.batch_size}")
    return key if len(key) <= 64 else hashlib.sha256(key.encode("utf-8")).hexdigest()


def call_options(kit: Toolkit, language: str | None) -> TranscribeOptions:
    """The toolkit's transcription options, with the call's language when one is given."""
    from dataclasses import replace

    return replace(kit.transcribe_options, language=language) if language else kit.transcribe_options


def rule_hash(rule) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(rule.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def cached_transcript(session: Session, sha256: str, options: TranscribeOptions) -> Transcript | None:
    return store.cached_transcript(session, sha256, options.engine, options.model, cache_key(options))


def analyse_file(path: Path, kit: Toolkit, transcript: Transcript | None = None,
                 sha256: str | None = None, language: str | None = None) -> Analysis:
    """Decode, transcribe (unless a cached transcript is given; in `language` if given), redact,
    detect, measure."""
    from pipeline.speech import audio
    from pipeline.coach import metrics as coach
    from pipeline.cues import detect
    from pipeline.privacy import redact
    from pipeline.speech import transcribe

    sha256 = sha256 or audio.audio_sha256(path)
    if transcript is None:
        transcript = transcribe.transcribe(path, kit.asr, call_options(kit, language))
    transcript = redact.redact_transcript(transcript, kit.redact_options)
    cache = kit.example_vectors.copy()  # the rules' examples are not encoded again per call
    cues = detect.detect(transcript, kit.pack, kit.nlp, embedder=kit.embedder, cache=cache, learned=kit.learned)
    cues = [redact.redact_cue(c, kit.redact_options) for c in cues]
    metrics = coach.call_metrics(transcript, kit.nlp.get(transcript.language)).to_dict()
    vectors = {}
    if kit.embedder is not None:
        vectors = cache.get_many([s.text for s in transcript.segments], kit.embedder.name)
    learned_vectors = {}
    if kit.learned is not None:  # kept in the store so a refit re-scores stored calls without re-encoding
        learned_vectors = cache.get_many([s.text for s in transcript.segments], kit.learned.embedder.name)
    return Analysis(str(path), sha256, transcript, cues, metrics, vectors, learned_vectors)


FUTURE_CALL_DAYS = 1  # a call date may lie this many days after today (time zones), no more


def check_call_date(day: date | None, today: date | None = None) -> date | None:
    """The call date, or ChurnwatchError naming it when it lies in the future (past a day's margin):
    risk would be scored as of that day, with every order and call before it counted as past."""
    today = today or datetime.now(timezone.utc).date()
    if day is not None and (day - today).days > FUTURE_CALL_DAYS:
        raise ChurnwatchError(f"The call date {day} is in the future (today is {today}). "
                              "Give the day the call took place, e.g. --date " f"{today}.")
    return day


def _call_datetime(day: date | None) -> datetime:
    day = day or datetime.now(timezone.utc).date()
    return datetime.combine(day, time(12, 0), tzinfo=timezone.utc)


def store_analysis(session: Session, analysis: Analysis, options: IngestOptions, kit: Toolkit) -> IngestResult:
    """Write one analysed call with its segments, cues and reminders; commit once.

    Returns status "duplicate" (and stores nothing) when the same audio is already stored.
    """
    from pipeline import reminders as remind
    from pipeline.privacy import redact
    from pipeline.risk import score as risk

    result = IngestResult(file=analysis.path, account_id=options.account_id)
    existing = store.call_id_for_audio(session, analysis.sha256)
    if existing is not None:
        result.status, result.call_id = "duplicate", existing
        return result

    transcript = analysis.transcript
    account = store.get_or_create_account(session, options.account_id)
    rep = store.get_or_create_rep(session, options.rep)
    if account.rep_id is None and rep is not None:
        account.rep_id = rep.id
    call_dt = _call_datetime(options.call_date)

    risk_model = kit.risk_model
    risk_before = risk.score_account(session, account.id, call_dt.date(), risk_model)

    call = store.add_call(session, audio_sha256=analysis.sha256,
                          source=redact.redact_source(analysis.path, kit.redact_options), account=account, rep=rep,
                          call_date=call_dt, transcript=transcript, metrics=analysis.metrics, cues=analysis.cues)
    record_rules(session, kit.pack, {(c.rule, c.rule_version) for c in analysis.cues})
    if analysis.embeddings and kit.embedder is not None:
        store.DbEmbeddingCache(session).put_many(analysis.embeddings, kit.embedder.name)
    if analysis.learned_embeddings and kit.learned is not None:
        store.DbEmbeddingCache(session).put_many(analysis.learned_embeddings, kit.learned.embedder.name)
    session.flush()

    risk_after = risk.score_account(session, account.id, call_dt.date(), risk_model)
    risk.save_score(session, risk_after)
    policies = kit.policies
    reminders = remind.plan_after_call(
        session,
        account_id=account.id,
        rep_id=rep.id if rep else None,
        call_date=call_dt,
        cues=analysis.cues,
        segments=transcript.segments,
        risk_before=risk_before,
        risk_after=risk_after,
        policies=policies,
        now=call_dt,
        call_id=call.id,
        language=transcript.language,
    )
    hint = remind.post_call_hint(account, call, analysis.cues, risk_before, risk_after, reminders,
                                 policies=policies)

    result.call_id = call.id
    result.score = risk_after.score
    result.cues = [
        {k: c.to_dict()[k] for k in ("label", "rule", "rule_version", "start", "end", "speaker", "quote", "score")}
        for c in analysis.cues
    ]
    result.hints = [{**hint.to_dict(), "text": hint.render()}]
    result.warnings = language_warnings(analysis.path, transcript)
    return result


def language_warnings(path: str, transcript: Transcript) -> list[str]:
    """A warning where detection could barely tell the call's language from another one."""
    doubt = language_doubt(transcript.language_scores)
    if doubt is None:
        return []
    first, second = doubt
    return [f"{Path(path).name}: the language was hard to tell ({first[0]} {first[1]:.0%}, {second[0]} "
            f"{second[1]:.0%}); it was transcribed as {first[0]!r}. If it is in {second[0]!r}, its "
            f"transcript and cues are wrong: give the language of such calls when you send them "
            f"(--language {second[0]}, or the upload's language field)."]


def record_rules(session: Session, pack, used: set[tuple[str, int]]) -> None:
    """Keep the definition of every rule version that produced a stored cue."""
    for rule in pack.rules:
        if (rule.name, rule.version) not in used:
            continue
        store.record_rule_version(session, name=rule.name, version=rule.version, kind=rule.type, label=rule.label,
                                  content_hash=rule_hash(rule), definition=rule.model_dump(mode="json"))


STORE_ATTEMPTS = 3  # a store that collides with a concurrent run's new rows is retried this often


def not_tried(path, options: IngestOptions, stopped: IngestResult) -> IngestResult:
    """The result of a file a batch did not try, because an earlier one found the store unwritable."""
    return IngestResult(file=str(path), status="skipped", account_id=options.account_id,
                        error=f"not tried: the batch stopped at {Path(stopped.file).name}, "
                              "because the database cannot be written (see that file's error)")


def ingest_file(engine, path: Path, kit: Toolkit, options: IngestOptions) -> IngestResult:
    """Analyse and store one recording; any user-fixable problem becomes status "error".

    A store that cannot be written (StorageError) is an error with `stops_batch` set: the
    executors try no later file, since each would fail the same way after its transcription."""
    from pipeline.speech import audio

    try:
        sha256 = audio.audio_sha256(path)
        with store.session_scope(engine) as session:
            dup = store.call_id_for_audio(session, sha256)
            transcript = None if dup else cached_transcript(session, sha256, call_options(kit, options.language))
        if dup:
            return IngestResult(file=str(path), call_id=dup, status="duplicate", account_id=options.account_id)
        fresh = transcript is None
        # an absolute path: a name starting with "-" must not reach ffmpeg as an option
        analysis = analyse_file(Path(path).absolute(), kit, transcript=transcript, sha256=sha256,
                                language=options.language)
        if fresh and options.store_transcript_cache:
            save_transcript_cache(engine, sha256, call_options(kit, options.language), analysis.transcript)
        for _ in range(STORE_ATTEMPTS):
            try:
                with store.session_scope(engine) as session:
                    result = store_analysis(session, analysis, options, kit)
                result.file = str(path)
                return result
            except IntegrityError:
                with store.session_scope(engine) as session:
                    dup = store.call_id_for_audio(session, sha256)
                if dup is not None:  # another process stored the same audio a moment ago
                    return IngestResult(file=str(path), call_id=dup, status="duplicate",
                                        account_id=options.account_id)
                # another process created the same account, rep or day's score row: try again
        return IngestResult(file=str(path), status="error", account_id=options.account_id,
                            error=f"{path}: could not store the call after {STORE_ATTEMPTS} tries "
                                  "(concurrent writers); run the ingest again.")
    except StorageError as e:
        return IngestResult(file=str(path), status="error", error=str(e), account_id=options.account_id,
                            stops_batch=True)
    except ChurnwatchError as e:
        return IngestResult(file=str(path), status="error", error=str(e), account_id=options.account_id)


def save_transcript_cache(engine, sha256: str, options, transcript: Transcript) -> None:
    """Keep the (already redacted) transcript so a re-run never transcribes the same audio twice."""
    try:
        with store.session_scope(engine) as session:
            store.add_transcript_cache(session, sha256, options.engine, options.model, cache_key(options), transcript)
    except IntegrityError:
        pass  # cached by a concurrent run
