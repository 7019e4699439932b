"""Recordings the pipeline must not take at face value: more than two channels, noise without a
voice, a transcript too thin for the speech heard, telephone-band audio in every supported
language, and the language a user gives (`--language`, the upload's `language` field).

The layout and noise checks need no Whisper model (they fail before one is used); the language
tests need tiny.en and the multilingual base model (`make setup` installs both) and skip without.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.errors import AudioError, ChurnwatchError
from pipeline.settings import PROJECT_ROOT
from pipeline.speech import transcribe as tr
from pipeline.types import Segment

DATA = Path(__file__).parent / "data"
MODELS = Path(os.environ.get("CHURNWATCH_MODELS_DIR", PROJECT_ROOT / "models"))
PHONE = json.loads((DATA / "phone.truth.json").read_text(encoding="utf-8"))


def _bare_asr(**options) -> tr.ASR:
    """An ASR with no model loaded: enough for checks that come before transcription."""
    return tr.ASR(options=tr.TranscribeOptions(**options), models_dir=MODELS)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def asr():
    for name in ("tiny.en", "base"):
        if not (MODELS / "whisper" / name / "ct2" / "model.bin").is_file():
            pytest.skip(f"{name} is not installed in {MODELS}; run: churnwatch models install {name}")
    return tr.load_asr(tr.TranscribeOptions(threads=1, diarize=False), MODELS)


# ---------------------------------------------------------------- layouts and noise


def test_six_channels_are_refused_naming_the_count(tmp_path):
    path = tmp_path / "surround.wav"
    # the rep on channel 1, the customer on channel 2 and the rest silent: a downmix would mix them
    _ffmpeg("-i", str(DATA / "two_voices.stereo.ogg"), "-af",
            "pan=5.1|c0=c0|c1=c1|c2=0*c0|c3=0*c0|c4=0*c0|c5=0*c0", "-t", "3", str(path))
    with pytest.raises(AudioError) as err:
        tr.transcribe(path, _bare_asr())
    message = str(err.value)
    assert "6 audio channels" in message and str(path) in message and "\n" not in message
    assert "pan=stereo" in message  # says how to keep the rep's and the customer's channels


def test_noise_without_a_voice_is_no_speech_found_not_silence(tmp_path):
    path = tmp_path / "pink.flac"
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.3:duration=20:sample_rate=16000", str(path))
    with pytest.raises(AudioError, match="no speech found in 20.0 s") as err:
        tr.transcribe(path, _bare_asr())
    assert "silent" not in str(err.value)


# ---------------------------------------------------------------- implausible transcripts


def _segs(words: int, seconds: float) -> list[Segment]:
    return [Segment(0.0, seconds, " ".join(["word"] * words), speaker="customer")]


def test_speech_with_almost_no_words_is_implausible():
    options = tr.TranscribeOptions()
    with pytest.raises(tr.ImplausibleTranscript, match=r"120 s of speech gave only 1 word.*--language"):
        tr.check_plausible(Path("call.wav"), _segs(1, 120), 120.0, "en", options)
    with pytest.raises(tr.ImplausibleTranscript):
        tr.check_plausible(Path("call.wav"), [], 60.0, "en", options)
    tr.check_plausible(Path("call.wav"), _segs(150, 60), 60.0, "en", options)  # a normal rate
    tr.check_plausible(Path("call.wav"), _segs(1, 4), 4.0, "en", options)  # "Hello?" and nothing more


def test_an_implausible_call_is_not_stored_and_can_be_run_again(engine, monkeypatch, tmp_path):
    from pipeline.flow import ingest

    calls = []

    def implausible(path, asr, options=None):
        calls.append(options.language if options else None)
        raise tr.ImplausibleTranscript(f"{path}: 60 s of speech gave only 2 word(s) of transcript")

    monkeypatch.setattr(tr, "transcribe", implausible)
    kit = SimpleNamespace(transcribe_options=tr.TranscribeOptions(), asr=None)
    path = DATA / "phone_de.8k.wav"
    first = ingest.ingest_file(engine, path, kit, ingest.IngestOptions(account_id="ACC-1"))
    again = ingest.ingest_file(engine, path, kit, ingest.IngestOptions(account_id="ACC-1", language="de"))
    assert first.status == again.status == "error" and first.call_id is None
    assert "only 2 word" in first.error
    assert calls == [None, "de"]  # tried again (not a duplicate), in the language given the second time


def test_the_transcript_cache_is_kept_per_language():
    from pipeline.flow import ingest

    options = tr.TranscribeOptions()
    assert ingest.cache_key(options) != ingest.cache_key(tr.TranscribeOptions(language="de"))


# ---------------------------------------------------------------- the language a user gives


def test_language_codes_are_checked_in_one_place():
    assert tr.check_language(" DE ", "--language") == "de" and tr.check_language(None) is None
    with pytest.raises(ChurnwatchError, match="--language: unknown language 'xx'"):
        tr.check_language("xx", "--language")
    with pytest.raises(ChurnwatchError, match="Unknown language 'klingon'"):
        tr.TranscribeOptions(language="klingon")


def test_ingest_refuses_an_unknown_language_before_loading_models(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.flow import ingest

    monkeypatch.setattr(ingest, "load_toolkit", lambda *a, **k: pytest.fail("models loaded"))
    result = CliRunner().invoke(app, ["ingest", str(DATA / "phone_de.8k.wav"), "--account", "ACC-1",
                                      "--create-account", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                                      "--language", "german"])
    assert result.exit_code == 1 and "unknown language 'german'" in result.output


def test_an_upload_may_name_its_language():
    from pipeline.flow.worker import SubmissionError, check_submission, requested_language

    sub = check_submission(None, account_id="ACC-1", rep=None, call_date=None, external_id=None,
                           participants=None, language="DE")
    assert sub.language == "de"
    with pytest.raises(SubmissionError, match="unknown language 'xx'"):
        check_submission(None, account_id="ACC-1", rep=None, call_date=None, external_id=None,
                         participants=None, language="xx")
    assert requested_language(SimpleNamespace(result={"request": {"language": "de"}})) == "de"
    assert requested_language(SimpleNamespace(result=None)) is None


# ---------------------------------------------------------------- telephone band, every language


def test_an_8khz_german_call_is_detected_as_german(asr, tmp_path):
    """samples/audio/call_07 (German) as a phone system stores it: 8 kHz mu-law, mono and stereo."""
    from pipeline.speech import audio

    for layout in ("mono", "stereo"):
        path = tmp_path / f"call_07.{layout}.8k.wav"
        _ffmpeg("-i", str(PROJECT_ROOT / "samples" / "audio" / "call_07.flac"), "-ar", "8000",
                *(["-ac", "1"] if layout == "mono" else []), "-c:a", "pcm_mulaw", str(path))
        x = audio.decode(path)
        tracks = [(0, x[0]), (1, x[1])] if layout == "stereo" else [(None, x[0])]
        regions = {ch: tr._regions(v, asr.options) for ch, v in tracks}
        assert tr.detect_language(asr, tr._first_speech(tracks, regions, 90.0)) == "de", layout


FUNCTION_WORDS = {
    "de": {"der", "die", "das", "den", "dem", "und", "ist", "sind", "nicht", "mit", "ein", "eine", "einem",
           "einen", "wir", "sie", "es", "zu", "von", "auf", "für", "noch", "sehr", "mal", "über", "als"},
    "ro": {"nu", "și", "si", "un", "o", "cu", "de", "la", "în", "pe", "mai", "este", "am", "vom", "au", "fost",
           "despre", "ori", "alt", "anul", "că", "ca"},
}


@pytest.mark.parametrize("lang", sorted(PHONE))
def test_phone_audio_in_each_language_is_transcribed_in_it(asr, lang):
    truth = PHONE[lang]
    t = tr.transcribe(DATA / truth["file"], asr, tr.TranscribeOptions(threads=1, diarize=False, language=lang))
    text = " ".join(s.text for s in t.segments).lower()
    assert t.language == lang and t.model == ("tiny.en" if lang == "en" else "base")
    words = len(text.split())
    assert words >= 0.3 * len(truth["text"].split()), text  # a real transcript, not a stray line
    if lang == "ko":
        assert sum("\uac00" <= c <= "\ud7a3" for c in text) >= 10, text  # Hangul, not a translation
    elif lang == "en":
        assert "contract" in text, text
    else:
        # base on a synthetic voice in the telephone band gets many German and Romanian content
        # words wrong (and which, when a window falls back to sampling, depends on the run), so
        # the check is the language itself: its function words, none of which an English
        # translation would contain.
        found = set(re.findall(r"[\w-]+", text)) & FUNCTION_WORDS[lang]
        assert len(found) >= 3, (found, text)


@pytest.mark.parametrize("lang", ["en", "de", "ro", "ko"])
def test_phone_audio_language_is_detected_or_reported_unsure(asr, lang):
    """Whisper base hardly tells synthetic German on an 8 kHz line from English (de 0.115 / en 0.088
    on one CPU, en 0.063 / de 0.035 on another; most of its belief goes to Thai and Latin): detection
    says it is unsure, and the right language is the winner or the runner-up; English is sure."""
    t = tr.transcribe(DATA / PHONE[lang]["file"], asr)
    scores = t.language_scores
    assert list(scores)[0] == t.language and list(scores.values()) == sorted(scores.values(), reverse=True)
    if lang == "en":
        assert t.language == "en" and not t.language_unsure, scores
    else:
        assert t.language == lang or (t.language_unsure and list(scores)[1] == lang), scores
    if lang == "de":
        assert t.language_unsure, scores  # whichever language won


def test_an_unsure_language_is_a_warning_that_names_the_runner_up():
    from pipeline.flow.ingest import language_warnings
    from pipeline.types import Transcript

    close = Transcript(language="en", duration=12.0, engine="faster-whisper", model="tiny.en",
                       language_scores={"en": 0.068, "de": 0.063, "ro": 0.003})
    [warning] = language_warnings("/calls/phone_de.8k.wav", close)
    assert warning.startswith("phone_de.8k.wav: ") and "en 7%, de 6%" in warning and "--language de" in warning
    clear = replace(close, language_scores={"en": 0.5, "de": 0.2})  # 2.5 times as likely: sure enough
    assert not clear.language_unsure and language_warnings("x.wav", clear) == []
    faint = replace(close, language_scores={"en": 0.1, "de": 0.01})  # far ahead, but of little belief
    assert faint.language_unsure and "--language de" in language_warnings("x.wav", faint)[0]
    assert language_warnings("x.wav", replace(close, language_scores=None)) == []  # language given
    assert Transcript.from_dict(close.to_dict()).language_unsure  # kept in the transcript cache
