"""Speech to text: two engines (faster-whisper, openai-whisper) behind one function.

    asr = load_asr(TranscribeOptions(), models_dir)      # loads the default model once
    transcript = transcribe(Path("call.flac"), asr)      # -> pipeline.types.Transcript

The path a call takes:
- decode in chunks of `chunk_s` seconds (bounded memory, see pipeline.speech.audio);
- dual-channel files (two different channels): each channel is transcribed on its own, only
  its speech regions (Silero VAD), and the speaker is the channel's (exact attribution);
  stereo files whose channels are copies are treated as mono;
- mono files: speech regions are transcribed, then diarized into rep/customer
  (pipeline.speech.diarize), segments split at speaker changes using word times;
- language: detected on the first 30 s of speech with the multilingual model (English-only
  models cannot detect); English goes to `model`, other languages to `multilingual_model`;
- long files: chunks are transcribed one after another; a word spoken across a chunk boundary
  (every `chunk_s` seconds) may be cut in two or lost. Diarization embeds each chunk and
  clusters all windows at the end, so speaker names stay consistent across chunks;
- guards: segments that are silence (high no-speech probability and low log-probability) are
  dropped; repetition loops are re-decoded with temperature and, if still looping, collapsed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.speech import audio as audio_mod
from pipeline.speech import diarize as diarize_mod
from pipeline.errors import AudioError, ChurnwatchError, ModelMissing
from pipeline.speech.loop_guards import collapse_repetition, is_looping
from pipeline.settings import CHANNELS, ENGINES
from pipeline.types import Segment, Transcript, Word

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TranscribeOptions:
    # "faster-whisper" (CTranslate2, fast, the default) or "openai-whisper" (the reference).
    engine: str = "faster-whisper"
    # Whisper model for English calls (may be English-only, e.g. "tiny.en").
    model: str = "tiny.en"
    # Multilingual model: detects the language and transcribes non-English calls.
    multilingual_model: str = "base"
    # Channel of a dual-channel recording that carries the rep: "left" or "right".
    rep_channel: str = "left"
    # Beam width for decoding at temperature 0.
    beam_size: int = 5
    # Transcribe only speech regions found by Silero VAD (faster and fewer hallucinations).
    vad: bool = True
    # Language code ("en", "de", ...) to skip detection; None detects it per call.
    language: str | None = None
    # CPU threads for the engine (CTranslate2 intra-op threads / torch threads).
    threads: int = 2
    # CTranslate2 compute type; float32 is as fast as int8 on the CPUs we measured.
    compute_type: str = "float32"
    # Feed the previous window's text as a prompt; off, because it propagates loops.
    condition_on_previous_text: bool = False
    # Temperatures tried in turn when a window fails the thresholds below.
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Re-decode a window whose gzip compression ratio is above this (repetitive text).
    compression_ratio_threshold: float = 2.4
    # A segment is silence when no_speech_prob > this and avg_logprob < logprob_threshold.
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    # Seconds of audio decoded and transcribed at once (memory bound: 77 MB per stereo chunk).
    chunk_s: float = 600.0
    # Split mono recordings into rep/customer with resemblyzer; False leaves speaker None.
    diarize: bool = True
    # Languages the team's calls are in: detection picks the likeliest of these (synthetic or
    # accented German is otherwise often taken for Latin). Empty = any language Whisper knows.
    languages: tuple[str, ...] = ("en", "de", "ro", "ko")
    # Consecutive segments of one speaker closer than this (seconds) are joined into one turn,
    # so a sentence Whisper split in two ("we are not looking" | "at other vendors") stays whole.
    merge_gap_s: float = 1.0
    # ... but a joined turn never grows past this many seconds (keeps cue evidence tight).
    max_turn_s: float = 30.0
    # Diarization settings for mono recordings (who speaks first, window rate, ...).
    diarize_options: diarize_mod.DiarizeOptions = field(default_factory=diarize_mod.DiarizeOptions)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ChurnwatchError(f"Unknown engine {self.engine!r}. Choose one of: {', '.join(ENGINES)}.")
        if self.rep_channel not in CHANNELS:
            raise ChurnwatchError(
                f"Unknown rep channel {self.rep_channel!r}. Choose one of: {', '.join(CHANNELS)}."
            )
        if self.beam_size < 1 or self.threads < 1 or self.chunk_s < 30:
            raise ChurnwatchError("beam_size and threads must be >= 1 and chunk_s >= 30 seconds.")

    @classmethod
    def from_settings(cls, settings, **overrides) -> TranscribeOptions:
        """Options from a pipeline.settings.Settings, with explicit overrides (None = keep)."""
        base = {"engine": settings.engine, "model": settings.asr_model,
                    "multilingual_model": settings.multilingual_model,
                    "rep_channel": settings.rep_channel, "threads": settings.threads}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


@dataclass
class ASR:
    """Loaded models for one engine; create with `load_asr` once and pass to `transcribe`.

    The default model is loaded by `load_asr`; the multilingual model and the speaker encoder
    are loaded the first time a call needs them, and kept.
    """

    options: TranscribeOptions
    models_dir: Path
    models: dict[str, Any] = field(default_factory=dict)
    encoder: Any = None  # resemblyzer VoiceEncoder, for mono calls

    def model(self, name: str):
        if name not in self.models:
            from pipeline.weights import manifest as weights

            if self.options.engine == "faster-whisper":
                self.models[name] = weights.load_faster_whisper(
                    name, self.models_dir, threads=self.options.threads,
                    compute_type=self.options.compute_type)
            else:
                self.models[name] = weights.load_openai_whisper(name, self.models_dir)
        return self.models[name]

    def english_only(self, name: str) -> bool:
        from pipeline.weights import manifest as weights

        return bool(weights.is_english_only(name, self.models_dir))

    def speaker_encoder(self):
        if self.encoder is None:
            self.encoder = diarize_mod.load_encoder("cpu")
        return self.encoder


def load_asr(options, models_dir: Path) -> ASR:
    """Load the default model of `options` (TranscribeOptions, or Settings) from models_dir."""
    if not isinstance(options, TranscribeOptions):
        options = TranscribeOptions.from_settings(options)
    asr = ASR(options=options, models_dir=Path(models_dir))
    asr.model(options.model)
    return asr


# ---------------------------------------------------------------- silence


def is_silence(seg: dict, options: TranscribeOptions) -> bool:
    return (seg["no_speech_prob"] > options.no_speech_threshold
            and seg["avg_logprob"] < options.logprob_threshold) or not any(
        c.isalnum() for c in seg["text"])


# ---------------------------------------------------------------- engines


def _run_engine(asr: ASR, model_name: str, samples: np.ndarray, language: str,
                options: TranscribeOptions, temperatures=None) -> list[dict]:
    """Transcribe a mono 16 kHz array; segments as dicts with times relative to the array."""
    model = asr.model(model_name)
    temps = tuple(temperatures or options.temperatures)
    lang = None if asr.english_only(model_name) else language
    if options.engine == "faster-whisper":
        segs, _ = model.transcribe(
            samples, language=lang, beam_size=options.beam_size, temperature=list(temps),
            compression_ratio_threshold=options.compression_ratio_threshold,
            log_prob_threshold=options.logprob_threshold,
            no_speech_threshold=options.no_speech_threshold,
            condition_on_previous_text=options.condition_on_previous_text,
            word_timestamps=True, vad_filter=False)
        return [{"start": s.start, "end": s.end, "text": s.text.strip(), "avg_logprob": s.avg_logprob,
                     "no_speech_prob": s.no_speech_prob,
                     "words": [(w.word.strip(), w.start, w.end, w.probability) for w in s.words or []]}
                for s in segs]
    import torch
    import whisper

    torch.set_num_threads(options.threads)
    result = whisper.transcribe(
        model, samples.astype(np.float32), language=lang, temperature=temps,
        beam_size=options.beam_size if temps[0] == 0 else None,
        best_of=5 if len(temps) > 1 or temps[0] > 0 else None,
        compression_ratio_threshold=options.compression_ratio_threshold,
        logprob_threshold=options.logprob_threshold,
        no_speech_threshold=options.no_speech_threshold,
        condition_on_previous_text=options.condition_on_previous_text,
        word_timestamps=True, fp16=False, verbose=None)
    return [{"start": s["start"], "end": s["end"], "text": s["text"].strip(),
                 "avg_logprob": s["avg_logprob"], "no_speech_prob": s["no_speech_prob"],
                 "words": [(w["word"].strip(), w["start"], w["end"], w["probability"])
                        for w in s.get("words", [])]}
            for s in result["segments"]]


def detect_language(asr: ASR, samples: np.ndarray) -> str:
    """Language code of up to 30 s of speech, with the multilingual model when needed."""
    options = asr.options
    name = options.model
    if asr.english_only(name):
        name = options.multilingual_model
        try:
            if asr.english_only(name):
                raise ModelMissing(name)
            asr.model(name)
        except ModelMissing:
            log.warning("Multilingual model %r is not installed: assuming English. Install it "
                        "with `churnwatch models install %s` to detect languages.", name, name)
            return "en"
    model = asr.model(name)
    clip = samples[: 30 * audio_mod.SAMPLE_RATE].astype(np.float32)
    if options.engine == "faster-whisper":
        _, _, ranked = model.detect_language(audio=clip)
        probs = dict(ranked)
    else:
        import whisper

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(clip), model.dims.n_mels)
        _, probs = model.detect_language(mel)
    allowed = {k: v for k, v in probs.items() if k in options.languages} if options.languages else {}
    return max(allowed or probs, key=(allowed or probs).get)


def model_for(asr: ASR, language: str) -> str:
    """The model that transcribes `language`: the default one for English (or if multilingual)."""
    opts = asr.options
    if language == "en" or not asr.english_only(opts.model):
        return opts.model
    return opts.multilingual_model


def transcribe_audio(samples: np.ndarray, asr: ASR, language: str, channel: int | None = None,
                     offset: float = 0.0, regions=None) -> list[Segment]:
    """Transcribe a mono 16 kHz array (only its speech `regions`, if given) into Segments.

    Times are shifted by `offset` (the array's position in the recording); the guards drop
    silence and fix repetition loops.
    """
    options = asr.options
    if regions is None:
        regions = [(0.0, samples.size / audio_mod.SAMPLE_RATE)]
    speech, tmap = audio_mod.collect(samples, regions)
    if speech.size < audio_mod.SAMPLE_RATE // 10:
        return []
    name = model_for(asr, language)
    out: list[Segment] = []
    for raw in _run_engine(asr, name, speech, language, options):
        if is_silence(raw, options):
            continue
        if is_looping(raw["text"], options.compression_ratio_threshold):
            raw = _redecode(asr, name, speech, raw, language)
            if raw is None:
                continue
        # one Segment per speech region: a segment never spans a pause between regions
        groups: dict[int, list[Word]] = {}
        for w, ws, we, p in raw["words"]:
            s, e = tmap.span(ws, we)
            groups.setdefault(tmap.piece(ws), []).append(
                Word(w, round(s + offset, 3), round(e + offset, 3), round(float(p), 4)))
        if not groups:
            s, e = tmap.span(raw["start"], raw["end"])
            groups[0] = []
        for words in groups.values():
            text = raw["text"] if len(groups) == 1 else " ".join(w.word for w in words)
            start = words[0].start if words else round(s + offset, 3)
            end = words[-1].end if words else round(e + offset, 3)
            out.append(Segment(start=start, end=end, text=text, channel=channel,
                               avg_logprob=round(float(raw["avg_logprob"]), 4), words=words))
    return out


def _redecode(asr: ASR, name: str, speech: np.ndarray, raw: dict, language: str) -> dict | None:
    """Re-decode a looping segment's window at higher temperature; collapse what still loops."""
    options = asr.options
    a, b = int(raw["start"] * audio_mod.SAMPLE_RATE), int(raw["end"] * audio_mod.SAMPLE_RATE)
    again = _run_engine(asr, name, speech[a:b], language,
                        replace(options, condition_on_previous_text=False),
                        temperatures=[t for t in options.temperatures if t > 0] or [0.4])
    again = [s for s in again if not is_silence(s, options)]
    if again:
        text = " ".join(s["text"] for s in again)
        words = [(w, ws + raw["start"], we + raw["start"], p)
                 for s in again for (w, ws, we, p) in s["words"]]
        raw = dict(raw, text=text, words=words,
                   avg_logprob=float(np.mean([s["avg_logprob"] for s in again])))
    if is_looping(raw["text"], options.compression_ratio_threshold):
        text = collapse_repetition(raw["text"])
        keep = len(text.split())
        raw = dict(raw, text=text, words=raw["words"][:keep])
    return raw if raw["text"].strip() else None


# ---------------------------------------------------------------- files


def transcribe(path: Path, asr: ASR, options: TranscribeOptions | None = None) -> Transcript:
    """Transcribe a recording (wav, mp3, flac, m4a, ogg; mono or stereo) into a Transcript.

    `options` overrides asr.options for this call (same engine and models; e.g. rep_channel
    or language). Raises AudioError for unreadable or silent files.
    """
    path = Path(path)
    if options is not None:
        if (options.engine, options.model) != (asr.options.engine, asr.options.model):
            raise ChurnwatchError("transcribe(): options name a different engine or model than "
                                  "the loaded ASR; load it with load_asr(options, models_dir).")
        caller, asr = asr, replace(asr, options=options)
        try:
            return transcribe(path, asr)
        finally:
            caller.encoder = caller.encoder or asr.encoder  # keep a speaker encoder loaded here
    options = asr.options
    info = audio_mod.probe(path)
    layout, language = None, options.language
    segments: list[Segment] = []
    windows = diarize_mod.Windows.empty()
    duration, heard = 0.0, False
    for offset, chunk in audio_mod.iter_chunks(path, info, chunk_s=options.chunk_s):
        duration = offset + chunk.shape[1] / audio_mod.SAMPLE_RATE
        if layout is None:
            layout = "stereo" if audio_mod.is_dual_channel(chunk) else "mono"
        if layout == "stereo":
            tracks = [(0, chunk[0]), (1, chunk[1])]
        else:
            tracks = [(None, chunk.mean(0) if chunk.shape[0] > 1 else chunk[0])]
        del chunk
        regions = {ch: _regions(x, options) for ch, x in tracks}
        if not any(regions.values()):
            continue
        heard = True
        if language is None:
            language = detect_language(asr, _first_speech(tracks, regions))
        for ch, x in tracks:
            segs = transcribe_audio(x, asr, language, channel=ch, offset=offset, regions=regions[ch])
            if layout == "stereo":
                spk = "rep" if CHANNELS[ch] == options.rep_channel else "customer"
                segs = [replace(s, speaker=spk, speaker_confidence=1.0) for s in segs]
            segments += segs
            if layout == "mono" and options.diarize:
                windows = windows + diarize_mod.embed_windows(
                    x, regions[ch], asr.speaker_encoder(), options.diarize_options, offset=offset)
    if not heard:
        raise AudioError(f"{path}: holds no speech (silent for {duration:.1f} s); "
                         "check the recording's input level or channel.")
    if layout == "mono" and options.diarize:
        segments = diarize_mod.split_segments(segments,
                                              diarize_mod.cluster_turns(windows, options.diarize_options))
    segments.sort(key=lambda s: (s.start, s.channel or 0))
    segments = merge_turns(segments, options.merge_gap_s, options.max_turn_s)
    return Transcript(language=language or "en", duration=round(duration, 3),
                      engine=options.engine, model=model_for(asr, language or "en"),
                      segments=segments, channel_layout=layout or "mono")


def merge_turns(segments: list[Segment], max_gap: float, max_len: float) -> list[Segment]:
    """Join consecutive segments of the same speaker into turns (segments sorted by start)."""
    out: list[Segment] = []
    for seg in segments:
        prev = out[-1] if out else None
        if (prev is not None and seg.speaker is not None and seg.speaker == prev.speaker
                and seg.channel == prev.channel and seg.start - prev.end <= max_gap
                and seg.end - prev.start <= max_len):
            a, b = prev.end - prev.start, seg.end - seg.start
            logprob = None
            if prev.avg_logprob is not None and seg.avg_logprob is not None:
                logprob = (prev.avg_logprob * a + seg.avg_logprob * b) / max(a + b, 1e-6)
            conf = [c for c in (prev.speaker_confidence, seg.speaker_confidence) if c is not None]
            out[-1] = replace(prev, end=max(prev.end, seg.end), text=f"{prev.text} {seg.text}".strip(),
                              words=prev.words + seg.words, avg_logprob=logprob,
                              speaker_confidence=min(conf) if conf else None)
        else:
            out.append(seg)
    return out


def _regions(x: np.ndarray, options: TranscribeOptions) -> list[tuple[float, float]]:
    if audio_mod.rms_db(x) < -60:
        return []
    if not options.vad:
        return [(0.0, x.size / audio_mod.SAMPLE_RATE)]
    return audio_mod.speech_regions(x)


def _first_speech(tracks, regions, seconds: float = 30.0) -> np.ndarray:
    """Up to `seconds` of speech in time order, across the tracks, for language detection."""
    spans = sorted((a, b, i) for i, (ch, _) in enumerate(tracks) for a, b in regions[ch])
    pieces, total = [], 0.0
    for a, b, i in spans:
        x = tracks[i][1][int(a * audio_mod.SAMPLE_RATE): int(b * audio_mod.SAMPLE_RATE)]
        pieces.append(x)
        total += x.size / audio_mod.SAMPLE_RATE
        if total >= seconds:
            break
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


# ---------------------------------------------------------------- output


def _clock(t: float, sep: str = ",", hours: bool = True) -> str:
    ms = round(t * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}" if hours else f"{m + 60 * h:02d}:{s:02d}"


def format_transcript(t: Transcript, fmt: str = "txt") -> str:
    """The transcript as "txt" ([mm:ss] REP: text lines), "srt" or "vtt" subtitles."""
    def who(s: Segment) -> str:
        return (s.speaker or "speaker").upper()

    if fmt == "txt":
        return "\n".join(f"[{_clock(s.start, hours=False)}] {who(s)}: {s.text}" for s in t.segments)
    if fmt in ("srt", "vtt"):
        sep = "," if fmt == "srt" else "."
        cues = [f"{i}\n{_clock(s.start, sep)} --> {_clock(s.end, sep)}\n{who(s)}: {s.text}\n"
                for i, s in enumerate(t.segments, 1)]
        return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues)
    raise ChurnwatchError(f"Unknown transcript format {fmt!r}. Choose one of: txt, srt, vtt.")


def transcript_json(t: Transcript) -> dict:
    """The `--json` shape: language, duration, engine, model and segments with words."""
    return {
        "language": t.language, "duration": t.duration, "engine": t.engine, "model": t.model,
        "channel_layout": t.channel_layout,
        "segments": [
            {"start": s.start, "end": s.end, "speaker": s.speaker, "channel": s.channel,
             "speaker_confidence": s.speaker_confidence, "avg_logprob": s.avg_logprob,
             "text": s.text,
             "words": [{"word": w.word, "start": w.start, "end": w.end,
                        "probability": w.probability} for w in s.words]}
            for s in t.segments
        ],
    }
