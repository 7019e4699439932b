"""Transcription with the real tiny.en model (loaded once per session) and the guards by hand."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from pipeline.speech import audio
from pipeline.errors import AudioError, ChurnwatchError
from pipeline.settings import PROJECT_ROOT
from pipeline.speech.transcribe import (
    TranscribeOptions,
    format_transcript,
    load_asr,
    transcribe,
    transcribe_audio,
    transcript_json,
)
from pipeline.types import Segment, Transcript, Word

DATA = Path(__file__).parent / "data"
STEREO = DATA / "two_voices.stereo.ogg"
MONO = DATA / "two_voices.mono.mp3"
TRUTH = json.loads((DATA / "two_voices.truth.json").read_text())
MODELS = Path(os.environ.get("CHURNWATCH_MODELS_DIR", PROJECT_ROOT / "models"))


@pytest.fixture(scope="session")
def asr():
    if not (MODELS / "whisper" / "tiny.en" / "ct2" / "model.bin").is_file():
        pytest.skip(f"tiny.en is not installed in {MODELS}; run: churnwatch models install tiny.en")
    # one thread: CTranslate2's OpenMP threads spin badly on a busy CI machine
    return load_asr(TranscribeOptions(language="en", threads=1), MODELS)


@pytest.fixture(scope="session")
def stereo(asr) -> Transcript:
    return transcribe(STEREO, asr)


@pytest.fixture(scope="session")
def mono(asr) -> Transcript:
    return transcribe(MONO, asr)


def _first_seconds(src: Path, dest: Path, seconds: float, duplicate: bool = False) -> Path:
    x = audio.decode(src)[:, : int(seconds * 16000)]
    if duplicate:
        x = np.stack([x[0], x[0]])
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(x.shape[0]), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(x.T, -1, 1) * 32767).astype("<i2").tobytes())
    return dest


def _truth_speaker(t: float) -> str:
    return min(TRUTH["turns"], key=lambda turn: 0 if turn["start"] <= t <= turn["end"]
               else min(abs(turn["start"] - t), abs(turn["end"] - t)))["speaker"]


def _word_accuracy(transcript: Transcript) -> float:
    words = [(w, s.speaker) for s in transcript.segments for w in s.words]
    right = sum(_truth_speaker((w.start + w.end) / 2) == spk for w, spk in words)
    return right / len(words)


def test_stereo_clip_key_phrases_and_exact_speakers(stereo):
    t = stereo
    assert t.channel_layout == "stereo" and t.engine == "faster-whisper" and t.model == "tiny.en"
    assert abs(t.duration - TRUTH["duration_s"]) < 0.1
    rep = " ".join(s.text for s in t.segments if s.speaker == "rep").lower()
    customer = " ".join(s.text for s in t.segments if s.speaker == "customer").lower()
    assert "renewal" in rep and "billing" in rep and "cancel" not in rep
    assert "cancelling the contract" in customer and "vendor" in customer and "renewal" not in customer
    assert all(s.channel == (0 if s.speaker == "rep" else 1) for s in t.segments)
    assert _word_accuracy(t) == 1.0
    assert [s.start for s in t.segments] == sorted(s.start for s in t.segments)
    # words carry times inside their segment and a probability
    for s in t.segments:
        assert s.words and all(s.start <= w.start <= w.end <= s.end + 0.01 for w in s.words)
        assert all(0 <= w.probability <= 1 for w in s.words)


def test_rep_channel_right_swaps_speakers(asr, tmp_path):
    clip = _first_seconds(STEREO, tmp_path / "first10.wav", 10.0)
    t = transcribe(clip, asr, TranscribeOptions(language="en", threads=1, beam_size=1,
                                                rep_channel="right"))
    customer = " ".join(s.text for s in t.segments if s.speaker == "customer").lower()
    assert "renewal" in customer and all(s.speaker == ("rep" if s.channel == 1 else "customer")
                                         for s in t.segments)


def test_mono_clip_is_diarized_into_rep_and_customer(mono):
    t = mono
    assert t.channel_layout == "mono"
    assert {s.speaker for s in t.segments} == {"rep", "customer"}
    assert all(s.channel is None and 0.5 <= s.speaker_confidence <= 1.0 for s in t.segments)
    assert _word_accuracy(t) >= 0.9


def test_identical_stereo_channels_are_mono(asr, tmp_path):
    path = _first_seconds(MONO, tmp_path / "dup.wav", 10.0, duplicate=True)
    t = transcribe(path, asr, TranscribeOptions(language="en", threads=1, beam_size=1, diarize=False))
    assert t.channel_layout == "mono" and all(s.speaker is None for s in t.segments)


def test_silent_file_is_an_audio_error(asr, tmp_path):
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(bytes(8000 * 2 * 5))
    with pytest.raises(AudioError, match="silence.wav.*no speech"):
        transcribe(path, asr)


def test_openai_engine_gives_the_same_words(asr):
    if not (MODELS / "whisper" / "tiny.en" / "openai.pt").is_file():
        pytest.skip("tiny.en is not converted for openai-whisper; run: "
                    "churnwatch models install tiny.en --engine openai-whisper")
    ow = load_asr(TranscribeOptions(engine="openai-whisper", language="en", threads=1), MODELS)
    left = audio.decode(STEREO)[0][: 16000 * 5]  # the rep's first turn
    words = lambda segs: [w.word.lower().strip(",.?") for s in segs for w in s.words]
    fw_words = words(transcribe_audio(left, asr, "en"))
    assert "renewal" in fw_words and words(transcribe_audio(left, ow, "en")) == fw_words


def test_options_are_validated():
    with pytest.raises(ChurnwatchError, match="left, right"):
        TranscribeOptions(rep_channel="middle")
    with pytest.raises(ChurnwatchError, match="faster-whisper, openai-whisper"):
        TranscribeOptions(engine="whisper.cpp")


def test_output_formats_by_hand():
    t = Transcript(language="en", duration=70.0, engine="faster-whisper", model="tiny.en", segments=[
        Segment(1.0, 2.5, "Hello there.", speaker="rep", channel=0, words=[Word("Hello", 1.0, 1.4, 0.9)]),
        Segment(65.2, 66.0, "Hi.", speaker="customer", channel=1),
    ])
    assert format_transcript(t, "txt") == "[00:01] REP: Hello there.\n[01:05] CUSTOMER: Hi."
    srt = format_transcript(t, "srt")
    assert "1\n00:00:01,000 --> 00:00:02,500\nREP: Hello there." in srt
    assert format_transcript(t, "vtt").startswith("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500")
    data = transcript_json(t)
    assert data["segments"][0]["words"] == [{"word": "Hello", "start": 1.0, "end": 1.4, "probability": 0.9}]
    assert {"language", "duration", "engine", "model", "segments"} <= set(data)
    with pytest.raises(ChurnwatchError, match="txt, srt, vtt"):
        format_transcript(t, "docx")


def test_cli_reports_a_bad_file_in_one_line(asr, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setenv("CHURNWATCH_MODELS_DIR", str(MODELS))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["transcribe", str(empty), "--json"])
    assert result.exit_code == 1
    assert "empty.wav" in result.output and "empty (0 bytes)" in result.output


def test_merge_turns_joins_one_speakers_split_sentence_only():
    from pipeline.speech.transcribe import merge_turns
    from pipeline.types import Segment, Word

    segs = [
        Segment(0.0, 2.0, "we are not looking", "customer", 1, -0.2, [Word("we", 0.0, 0.3)]),
        Segment(2.4, 4.0, "at other vendors.", "customer", 1, -0.4, [Word("at", 2.4, 2.6)]),
        Segment(4.5, 6.0, "Great to hear.", "rep", 0, -0.1),
        Segment(9.0, 10.0, "One more thing.", "rep", 0, -0.1),  # gap 3 s: a new turn
    ]
    out = merge_turns(segs, max_gap=1.0, max_len=30.0)
    assert [s.text for s in out] == ["we are not looking at other vendors.", "Great to hear.",
                                     "One more thing."]
    assert (out[0].start, out[0].end) == (0.0, 4.0) and len(out[0].words) == 2
    assert out[0].avg_logprob == pytest.approx((-0.2 * 2.0 - 0.4 * 1.6) / 3.6)
    assert len(merge_turns(segs[:2], max_gap=1.0, max_len=3.0)) == 2  # would pass max_len


def test_mono_coaching_metrics_match_the_truth_on_quick_turns(asr):
    """The coaching issue's agreement, in small: a mono call with short gaps and one-word
    replies, transcribed and diarized, against the same metrics from its reference turns."""
    from pipeline.coach.metrics import call_metrics

    truth = json.loads((DATA / "quick_turns.truth.json").read_text())
    ref = Transcript(language="en", duration=truth["duration_s"], engine="truth", model="", channel_layout="mono",
                     segments=[Segment(start=u["start"], end=u["end"], text=u["text"], speaker=u["speaker"])
                               for u in truth["turns"]])
    got = call_metrics(transcribe(DATA / "quick_turns.mono.mp3", asr))
    want = call_metrics(ref)
    assert abs(got.talk_ratio_rep - want.talk_ratio_rep) <= 0.02
    assert abs(got.longest_monologue_s - want.longest_monologue_s) <= 2.0
    # both one-word replies are heard as turns: missing one would cost two switches
    assert want.switches == 7 and abs(got.switches - want.switches) <= 1


def test_clip_spans_cut_at_pauses_and_never_pass_the_limit():
    from pipeline.speech.transcribe import clip_spans

    # speech regions start at 0, 12, 25, 31 and 70 s of the concatenated speech (100 s in all)
    spans = clip_spans([12.0, 25.0, 31.0, 70.0], 100.0, max_s=29.5)
    assert spans[0] == (0.0, 25.0) and spans[1] == (25.0, 31.0)
    assert all(b - a <= 29.5 + 1e-9 for a, b in spans)
    assert spans[-1][1] == 100.0 and all(a2 == b1 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    assert clip_spans([], 10.0) == [(0.0, 10.0)]


def test_batched_and_window_by_window_decoding_hear_the_same_call(asr, stereo):
    """Batched decoding (both channels at once) against the default window-by-window path."""
    batched = load_asr(TranscribeOptions(language="en", threads=1, batch_size=8), MODELS)
    t = transcribe(STEREO, batched)
    words = lambda tr: [w.word.lower().strip(",.?") for s in tr.segments for w in s.words]  # noqa: E731
    a, b = words(stereo), words(t)
    assert abs(len(a) - len(b)) <= 3 and len(set(a) & set(b)) >= 0.85 * len(set(a))
    assert [s.speaker for s in stereo.segments] == [s.speaker for s in t.segments]


def test_start_up_imports_neither_torch_nor_the_multilingual_model():
    """spaCy without torch (thinc would import it), the embedding model in NumPy, and an English
    call given as English loads no multilingual model (a fresh process: nothing imported before)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipeline.weights.spacy_import import import_spacy\n"
        "import_spacy()\n"
        "from pipeline.cues.languages import load_nlp\n"
        "from pipeline.cues.embeddings import load_embedder\n"
        "nlp = load_nlp(['en'])\n"
        "vectors = load_embedder().model.encode(['we will not renew'])\n"
        "assert nlp['en']('We are not renewing.')[3].lemma_ == 'renew'\n"
        "assert vectors.shape == (1, 384)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_an_english_call_given_as_english_loads_one_model(tmp_path):
    if not (MODELS / "whisper" / "tiny.en" / "ct2" / "model.bin").is_file():
        pytest.skip("tiny.en is not installed")
    asr = load_asr(TranscribeOptions(language="en", threads=1), MODELS)
    transcribe(_first_seconds(STEREO, tmp_path / "first10.wav", 10.0), asr)
    assert list(asr.models) == ["tiny.en"] and asr.encoder is None  # no base, no speaker encoder


def test_numpy_minilm_matches_sentence_transformers():
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    from pipeline.weights.manifest import load_embedding_model, package_model_path
    from pipeline.weights.minilm import MiniLM

    texts = ["we won't be renewing when the contract runs out", "Lovely weather today!", "",
             "Hi Graham, it's Maya from Ridgeway. " * 40]  # the last one is cut at 256 word pieces
    ours = load_embedding_model("all-MiniLM-L6-v2")
    assert isinstance(ours, MiniLM)
    reference = SentenceTransformer(str(package_model_path("all-MiniLM-L6-v2")), device="cpu")
    a = ours.encode(texts)
    b = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert a.shape == b.shape == (4, 384)
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_sampling_at_a_fallback_temperature_is_seeded(engine):
    """A window that falls back to sampling gives the same words from two freshly loaded models
    (unseeded, each load drew its own random state and the words differed)."""
    from pipeline.speech.transcribe import _run_engine

    if not (MODELS / "whisper" / "tiny.en" / "ct2" / "model.bin").is_file():
        pytest.skip(f"tiny.en is not installed in {MODELS}; run: churnwatch models install tiny.en")
    x = audio.decode(MONO)[0, : 20 * 16000]
    options = TranscribeOptions(engine=engine, language="en", threads=1)
    texts = [" ".join(s["text"] for s in _run_engine(load_asr(options, MODELS), "tiny.en", x, "en", options,
                                                      temperatures=(1.0,)))
             for _ in range(2)]
    assert texts[0] and texts[0] == texts[1]
    other = TranscribeOptions(engine=engine, language="en", threads=1, seed=7)
    assert " ".join(s["text"] for s in _run_engine(load_asr(other, MODELS), "tiny.en", x, "en", other,
                                                    temperatures=(1.0,))) != texts[0]


def test_split_regions_cuts_at_pauses_into_balanced_groups():
    from pipeline.speech.transcribe import split_regions

    regions = [(0.0, 20.0), (21.0, 41.0), (42.0, 52.0), (60.0, 90.0), (91.0, 101.0)]  # 90 s of speech
    groups = split_regions(regions, 2)
    assert [r for g in groups for r in g] == regions  # every region once, in order, none cut
    assert [sum(b - a for a, b in g) for g in groups] == [50.0, 40.0]
    assert len(split_regions(regions, 3)) == 3
    assert split_regions(regions, 4) == split_regions(regions, 3)  # never a group under 30 s of speech
    assert split_regions(regions[:2], 2) == [regions[:2]]  # 40 s: too short to split
    assert split_regions([], 2) == [[]]


def test_load_asr_loads_what_the_first_call_needs_and_no_more():
    """With two streams: both copies of tiny.en and, unless every call's language is given, the
    multilingual model that detects it (loaded side by side, before the first call)."""
    if not (MODELS / "whisper" / "base" / "ct2" / "model.bin").is_file():
        pytest.skip(f"the multilingual model base is not installed in {MODELS}")
    detecting = load_asr(TranscribeOptions(threads=2), MODELS)
    assert set(detecting.models) == {"tiny.en"} and set(detecting.copies) == {("tiny.en", 1), ("base", "detect")}
    told = load_asr(TranscribeOptions(threads=2), MODELS, detect_language=False)
    assert set(told.copies) == {("tiny.en", 1)}
    english = load_asr(TranscribeOptions(threads=2, language="en"), MODELS)
    assert set(english.copies) == {("tiny.en", 1)}  # a call known to be English needs no detection


def _normal(text: str) -> str:
    """Lower case, words only: what a word error rate against a reference should compare."""
    import re

    return " ".join(re.findall(r"[\w']+", text.lower()))


def test_two_streams_give_the_words_of_one(asr, stereo, tmp_path):
    """threads=2 decodes the two channels side by side (one model copy each, one thread each): the
    same words as one stream; a mono call's speech is cut at a pause and comes back whole, as
    right as one stream's (the words around the cut may differ: each stream decodes without the
    other's text as context)."""
    two = load_asr(TranscribeOptions(language="en", threads=2), MODELS)
    assert two.streams == 2
    got = transcribe(STEREO, two)
    assert [(w.word, w.start, w.end) for s in got.segments for w in s.words] == \
        [(w.word, w.start, w.end) for s in stereo.segments for w in s.words]
    assert [s.speaker for s in got.segments] == [s.speaker for s in stereo.segments]
    call = PROJECT_ROOT / "samples" / "audio" / "call_02.mp3"  # mono, 76 s: two pieces of speech
    one_text = [w.word for s in transcribe(call, asr).segments for w in s.words]
    both = transcribe(call, two).segments
    assert len(two.copies) == 1  # stream 1's copy of tiny.en, loaded once
    starts = [s.start for s in both]
    assert starts == sorted(starts) and both[-1].end > 60
    words = [w.word for s in both for w in s.words]
    import jiwer

    truth = json.loads(call.with_suffix(".truth.json").read_text(encoding="utf-8"))
    reference = _normal(" ".join(t["text"] for t in truth["turns"]))
    one_wer = jiwer.wer(reference, _normal(" ".join(one_text)))
    two_wer = jiwer.wer(reference, _normal(" ".join(words)))
    assert one_wer < 0.3 and two_wer <= one_wer + 0.05, (one_wer, two_wer)
    assert jiwer.wer(" ".join(one_text), " ".join(words)) < 0.2  # the same transcript, bar the cut
