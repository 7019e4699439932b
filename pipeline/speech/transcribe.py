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
- language: given (`language`), or detected on the first 30 s of speech with the multilingual
  model (English-only models cannot detect); English goes to `model`, other languages to
  `multilingual_model`. A call given as English never loads the multilingual model;
- decoding: window after window with the temperature fallback (int8 weights for faster-whisper);
  or, with `batch_size` > 0 (faster-whisper), the speech of both channels cut into pieces of at
  most 30 s and decoded that many at a time, a piece that loops or scores below
  `logprob_threshold` decoded again window by window;
- plausibility: a call with speech but (almost) no words is refused with `ImplausibleTranscript`
  (a wrong language, most often), so it is never stored as a finished call;
- layouts: mono and stereo only; more channels are refused (which is the rep is unknown);
- long files: chunks are transcribed one after another; a word spoken across a chunk boundary
  (every `chunk_s` seconds) may be cut in two or lost. Diarization embeds each chunk and
  clusters all windows at the end, so speaker names stay consistent across chunks;
- guards: segments that are silence (high no-speech probability and low log-probability) are
  dropped; repetition loops are re-decoded with temperature and, if still looping, collapsed.
"""

from __future__ import annotations

import bisect
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.speech import audio as audio_mod
from pipeline.speech import diarize as diarize_mod
from pipeline.errors import AudioError, ChurnwatchError, ModelMissing
from pipeline.speech.loop_guards import collapse_repetition, is_looping
from pipeline.settings import CHANNELS, ENGINES
from pipeline.types import Segment, Transcript, Word, language_doubt

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
    # faster-whisper: decodes that run at once, each on its own copy of the model with
    # threads/streams CPU threads; 0 = one per thread. The two channels of a stereo call (or two
    # halves of a mono call's speech, cut at a pause) are decoded side by side: tiny.en on the
    # 5-minute bench call took 21.5 s CPU with one thread and 30.9 s with two (CTranslate2's
    # intra-op threads wait on each other over such small matrices). A copy of tiny.en int8 is
    # about 40 MB. openai-whisper decodes one piece at a time.
    streams: int = 0
    # CTranslate2 compute type. int8 (weights quantised when loaded): 1.9x less CPU than float32
    # with one thread, 5x with two busy threads, on the 2-core AVX2 build machine (bench/pipeline.py).
    compute_type: str = "int8"
    # ... for the multilingual model (non-English calls, language detection): int8 cost German 3.8
    # WER points on the dev call (28.7% -> 32.5%), so it stays float32.
    multilingual_compute_type: str = "float32"
    # ... for language detection (faster-whisper), its own copy of the multilingual model when the
    # types differ: int8 picked the same language as float32 on 22 of the 23 sample, test and dev
    # recordings and the right one on the 23rd (tests/data/phone_de.8k.wav, German, that float32
    # takes for English), at a quarter of the memory (base: about 80 MB against 290 MB) and less CPU.
    detect_compute_type: str = "int8"
    # faster-whisper: speech pieces (<= 30 s, both channels together) decoded this many at once;
    # 0 (the default) decodes one 30 s window after another with the temperature fallback. Batched
    # cost accuracy and saved no CPU on 2 cores (bench call: WER 9.5% batched vs 6.4%, 38 vs 52 s CPU).
    batch_size: int = 0
    # Feed the previous window's text as a prompt; off, because it propagates loops.
    condition_on_previous_text: bool = False
    # Temperatures tried in turn when a window fails the thresholds below.
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Seed of the sampling at temperatures above 0. Unseeded, a window that fell back to sampling
    # came out different from run to run (tests/data/phone_de.8k.wav lost its "Anbieter" one run in
    # four). openai-whisper is seeded before every decode, so a file always gives the same
    # transcript; CTranslate2 keeps one generator per decoding thread, seeded when the first model
    # loads, so a process that transcribes the same files in the same order gives the same words.
    seed: int = 0
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
    # Language detection averages the probabilities of up to `detect_windows` windows of
    # `detect_window_s` seconds of speech, stopping once one language clearly leads (the first
    # window, for most calls). samples/audio/call_07 (German) at 8 kHz scores en 0.14 / de 0.08 on
    # its first 30 s and en 0.08 / de 0.39 on the next 30 s.
    detect_windows: int = 3
    detect_window_s: float = 30.0
    # Consecutive segments of one speaker closer than this (seconds) are joined into one turn,
    # so a sentence Whisper split in two ("we are not looking" | "at other vendors") stays whole.
    merge_gap_s: float = 1.0
    # ... but a joined turn never grows past this many seconds (keeps cue evidence tight).
    max_turn_s: float = 30.0
    # A call with at least `min_speech_s` seconds of speech (VAD) but fewer words than this per
    # minute of it is implausible (people say 100-180 a minute): a wrong language, or noise.
    min_words_per_minute: float = 15.0
    min_speech_s: float = 10.0
    # Diarization settings for mono recordings (who speaks first, window rate, ...).
    diarize_options: diarize_mod.DiarizeOptions = field(default_factory=diarize_mod.DiarizeOptions)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ChurnwatchError(f"Unknown engine {self.engine!r}. Choose one of: {', '.join(ENGINES)}.")
        if self.rep_channel not in CHANNELS:
            raise ChurnwatchError(
                f"Unknown rep channel {self.rep_channel!r}. Choose one of: {', '.join(CHANNELS)}."
            )
        if self.beam_size < 1 or self.threads < 1 or self.chunk_s < 30 or self.batch_size < 0 or self.streams < 0:
            raise ChurnwatchError("beam_size and threads must be >= 1, batch_size and streams >= 0 and chunk_s "
                                  ">= 30 seconds.")
        if self.language is not None and not _is_language_code(self.language):
            raise ChurnwatchError(f"Unknown language {self.language!r}: give a language code such as "
                                  f"{', '.join(self.languages or ('en', 'de'))}.")

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

    The default model is loaded by `load_asr`; the multilingual model, the speaker encoder and
    the copies of a model for parallel streams (`TranscribeOptions.streams`) are loaded the first
    time a call needs them, and kept.
    """

    options: TranscribeOptions
    models_dir: Path
    models: dict[str, Any] = field(default_factory=dict)
    encoder: Any = None  # resemblyzer VoiceEncoder, for mono calls
    pipelines: dict[str, Any] = field(default_factory=dict)  # faster-whisper batched pipelines
    # a model's copies: (name, stream >= 1) for parallel streams, (name, "detect") for language detection
    copies: dict[tuple[str, int | str], Any] = field(default_factory=dict)

    @property
    def streams(self) -> int:
        """How many pieces of speech are decoded at once (see `TranscribeOptions.streams`)."""
        o = self.options
        if o.engine != "faster-whisper":
            return 1
        return max(1, min(o.streams or o.threads, o.threads))

    def model(self, name: str, stream: int = 0):
        """The loaded model `name`; `stream` > 0 gives that stream's own copy. Each copy is seeded
        alike when it loads and only ever decodes its own stream's pieces, in order, so a file
        gives the same words however the streams' threads are scheduled."""
        loaded = self.models if stream == 0 else self.copies
        key = name if stream == 0 else (name, stream)
        if key not in loaded:
            if self.options.engine == "faster-whisper":
                loaded[key] = self._load_ct2(name, max(1, self.options.threads // self.streams),
                                             self._compute_type(name))
            elif stream == 0:
                from pipeline.weights import manifest as weights

                loaded[key] = weights.load_openai_whisper(name, self.models_dir)
            else:
                raise ChurnwatchError("openai-whisper decodes one stream; stream must be 0.")
        return loaded[key]

    def _load_ct2(self, name: str, threads: int, compute_type: str):
        """A faster-whisper model, its sampling seeded (`TranscribeOptions.seed`) as it loads."""
        import ctranslate2

        from pipeline.weights import manifest as weights

        ctranslate2.set_random_seed(self.options.seed)
        return weights.load_faster_whisper(name, self.models_dir, threads=threads, compute_type=compute_type)

    def _compute_type(self, name: str) -> str:
        return self.options.compute_type if name.endswith(".en") else self.options.multilingual_compute_type

    def detector(self, name: str):
        """The model `name` as language detection runs it: faster-whisper in `detect_compute_type`
        (a copy of its own, with all `threads`, when the decoding one is loaded in another type)."""
        o = self.options
        if o.engine != "faster-whisper" or o.detect_compute_type == self._compute_type(name):
            return self.model(name)
        if (name, "detect") not in self.copies:
            self.copies[name, "detect"] = self._load_ct2(name, o.threads, o.detect_compute_type)
        return self.copies[name, "detect"]

    def batched(self, name: str):
        """faster-whisper's BatchedInferencePipeline over the loaded model `name` (no copy)."""
        if name not in self.pipelines:
            from faster_whisper import BatchedInferencePipeline

            self.pipelines[name] = BatchedInferencePipeline(self.model(name))
        return self.pipelines[name]

    def english_only(self, name: str) -> bool:
        from pipeline.weights import manifest as weights

        return bool(weights.is_english_only(name, self.models_dir))

    def speaker_encoder(self):
        if self.encoder is None:
            self.encoder = diarize_mod.load_encoder("cpu")
        return self.encoder


def _one_malloc_arena() -> None:
    """Ask glibc for one malloc arena. With two decoding threads, each got an arena of its own and
    freed memory stayed in them: the bench call peaked at 898 MB against 730 MB decoding the same
    two copies one after the other, and at 625 MB with one arena (no slower: 19.2-19.9 s CPU both
    ways). Only glibc has mallopt; elsewhere this does nothing."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def load_asr(options, models_dir: Path, detect_language: bool = True) -> ASR:
    """Load the default model of `options` (TranscribeOptions, or Settings) from models_dir, with
    faster-whisper also each stream's copy and, unless the language is set in `options` or
    `detect_language` is False (every call's language is given), the model that detects it."""
    if not isinstance(options, TranscribeOptions):
        options = TranscribeOptions.from_settings(options)
    asr = ASR(options=options, models_dir=Path(models_dir))
    if asr.streams > 1:
        _one_malloc_arena()  # before the decoding threads start
    if options.engine != "faster-whisper":
        asr.model(options.model)
        return asr
    # what the first call asks for: each stream's copy of the default model and, for an English
    # model, the multilingual one that detects the language; loaded side by side (CTranslate2
    # loads without the interpreter lock; each copy is seeded alike however the loads interleave)
    with ThreadPoolExecutor(max_workers=asr.streams + 1, thread_name_prefix="churnwatch-load") as pool:
        detecting = pool.submit(_preload_detector, asr) if detect_language and not options.language else None
        for done in [pool.submit(asr.model, options.model, stream) for stream in range(asr.streams)]:
            done.result()
        if detecting is not None:
            detecting.result()
    return asr


def _preload_detector(asr: ASR) -> None:
    """Load the model that detects a call's language now; where it is missing, the first call
    says so (guess_language), as before."""
    try:
        asr.detector(detection_model(asr))
    except ModelMissing:
        pass


def detection_model(asr: ASR) -> str:
    """The model that detects a call's language: the default one, or for an English-only default
    the multilingual one (ModelMissing where that is not installed)."""
    name = asr.options.model
    if not asr.english_only(name):
        return name
    name = asr.options.multilingual_model
    if asr.english_only(name):
        raise ModelMissing(name)
    return name


# ---------------------------------------------------------------- silence


def is_silence(seg: dict, options: TranscribeOptions) -> bool:
    return (seg["no_speech_prob"] > options.no_speech_threshold
            and seg["avg_logprob"] < options.logprob_threshold) or not any(
        c.isalnum() for c in seg["text"])


# ---------------------------------------------------------------- engines


def _run_engine(asr: ASR, model_name: str, samples: np.ndarray, language: str,
                options: TranscribeOptions, temperatures=None, stream: int = 0) -> list[dict]:
    """Transcribe a mono 16 kHz array; segments as dicts with times relative to the array."""
    model = asr.model(model_name, stream)
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
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
        torch.manual_seed(options.seed)
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


def _run_batched(asr: ASR, model_name: str, samples: np.ndarray, language: str,
                 clips: list[tuple[float, float]]) -> list[dict]:
    """Decode the `clips` (start, end seconds, each <= 30 s) of a mono array in batches
    (faster-whisper); segments as dicts like `_run_engine`'s, times in the array's time."""
    options = asr.options
    lang = None if asr.english_only(model_name) else language
    segs, _ = asr.batched(model_name).transcribe(
        samples, language=lang, beam_size=options.beam_size, temperature=options.temperatures[0],
        compression_ratio_threshold=options.compression_ratio_threshold,
        log_prob_threshold=options.logprob_threshold, no_speech_threshold=options.no_speech_threshold,
        word_timestamps=True, vad_filter=False, without_timestamps=True,
        clip_timestamps=[{"start": a, "end": b} for a, b in clips], batch_size=options.batch_size)
    return [{"start": s.start, "end": s.end, "text": s.text.strip(), "avg_logprob": s.avg_logprob,
             "no_speech_prob": s.no_speech_prob,
             "words": [(w.word.strip(), w.start, w.end, w.probability) for w in s.words or []]}
            for s in segs]


def clip_spans(bounds: list[float], total: float, max_s: float = 29.5) -> list[tuple[float, float]]:
    """Cut [0, total) into spans of at most `max_s` seconds, at the given boundaries (the starts
    of speech regions in concatenated speech) where one lies close enough, else every max_s."""
    spans, a, prev = [], 0.0, 0.0
    for b in [*sorted(x for x in bounds if 0 < x < total), total]:
        if b - a > max_s and prev > a:
            spans.append((a, prev))
            a = prev
        while b - a > max_s:
            spans.append((a, a + max_s))
            a += max_s
        prev = b
    if total - a > 0.01:
        spans.append((a, total))
    return spans


@dataclass(frozen=True)
class LanguageGuess:
    """What detection found: the chosen language and the averaged scores of the candidates (the
    team's `languages`, or every language when that is empty), best first."""

    language: str
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def unsure(self) -> bool:
        """A weak guess (see pipeline.types.UNSURE_RATIO): the runner-up scored close to the winner, or
        the model mostly heard another language; the call may be in the runner-up's language."""
        return language_doubt(self.scores) is not None


def detect_language(asr: ASR, samples: np.ndarray) -> str:
    """Language code of a call's speech; see `guess_language`."""
    return guess_language(asr, samples).language


def guess_language(asr: ASR, samples: np.ndarray) -> LanguageGuess:
    """The language of a call's speech (up to `detect_windows` x `detect_window_s` seconds), with
    the multilingual model when needed: the probabilities of successive windows are averaged until
    one of `languages` clearly leads."""
    options = asr.options
    try:
        name = detection_model(asr)
        model = asr.detector(name)
    except ModelMissing:
        if not asr.english_only(options.model):
            raise
        name = options.multilingual_model
        log.warning("Multilingual model %r is not installed: assuming English. Install it "
                    "with `churnwatch models install %s` to detect languages.", name, name)
        return LanguageGuess("en")
    window = int(options.detect_window_s * audio_mod.SAMPLE_RATE)
    total: dict[str, float] = {}
    n = 0
    for start in range(0, max(samples.size, 1), window):
        clip = samples[start: start + window].astype(np.float32)
        if n and clip.size < 3 * audio_mod.SAMPLE_RATE:
            break  # a last scrap of a few seconds says little
        probs = _language_probs(model, clip, options.engine)
        n += 1
        for k, v in probs.items():
            total[k] = total.get(k, 0.0) + v
        allowed = {k: v / n for k, v in total.items() if k in options.languages} if options.languages else {}
        ranked = sorted((allowed or {k: v / n for k, v in total.items()}).items(), key=lambda kv: -kv[1])
        best, second = ranked[0][1], ranked[1][1] if len(ranked) > 1 else 0.0
        if n >= options.detect_windows or (best >= 0.5 and best >= 3 * second):
            break
    return LanguageGuess(ranked[0][0], {k: round(float(v), 4) for k, v in ranked[:4]})


def _language_probs(model, clip: np.ndarray, engine: str) -> dict[str, float]:
    if engine == "faster-whisper":
        _, _, ranked = model.detect_language(audio=clip)
        return dict(ranked)
    import whisper

    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(clip), model.dims.n_mels)
    _, probs = model.detect_language(mel)
    return dict(probs)


def model_for(asr: ASR, language: str) -> str:
    """The model that transcribes `language`: the default one for English (or if multilingual)."""
    opts = asr.options
    if language == "en" or not asr.english_only(opts.model):
        return opts.model
    return opts.multilingual_model


def transcribe_audio(samples: np.ndarray, asr: ASR, language: str, channel: int | None = None,
                     offset: float = 0.0, regions=None, stream: int = 0) -> list[Segment]:
    """Transcribe a mono 16 kHz array (only its speech `regions`, if given) into Segments.

    Times are shifted by `offset` (the array's position in the recording); the guards drop
    silence and fix repetition loops. Decodes window after window on `stream`'s model (see
    `transcribe_tracks` for the parallel and the batched paths).
    """
    options = asr.options
    if regions is None:
        regions = [(0.0, samples.size / audio_mod.SAMPLE_RATE)]
    speech, tmap = audio_mod.collect(samples, regions)
    if speech.size < audio_mod.SAMPLE_RATE // 10:
        return []
    name = model_for(asr, language)
    out: list[Segment] = []
    for raw in _run_engine(asr, name, speech, language, options, stream=stream):
        out += _guarded_segments(raw, asr, name, speech, tmap, language, channel, offset, retry_low=False,
                                 stream=stream)
    return out


def split_regions(regions: list[tuple[float, float]], parts: int,
                  min_part_s: float = 30.0) -> list[list[tuple[float, float]]]:
    """Cut a track's speech regions, at pauses between them, into up to `parts` consecutive
    groups of about equal speech time, none with less than `min_part_s` seconds of it (a short
    call stays whole: each group starts a fresh 30 s window)."""
    total = sum(b - a for a, b in regions)
    parts = max(1, min(parts, int(total // min_part_s)))
    groups: list[list[tuple[float, float]]] = [[]]
    done = 0.0
    for a, b in regions:
        if groups[-1] and len(groups) < parts and done >= total * len(groups) / parts:
            groups.append([])
        groups[-1].append((a, b))
        done += b - a
    return groups


def _transcribe_parallel(tracks: list[tuple[int | None, np.ndarray]], asr: ASR, language: str,
                         regions: dict, offset: float) -> dict[int | None, list[Segment]]:
    """Each track's speech, cut into pieces (`split_regions`) so that there is one per stream
    where it can, decoded side by side: piece i on stream i mod streams, each stream's pieces in
    order on its own model copy."""
    n = asr.streams
    per_track = max(1, n // max(1, len(tracks)))
    pieces = [(ch, x, part) for ch, x in tracks for part in split_regions(regions[ch], per_track)]
    name = model_for(asr, language)
    used = min(n, len(pieces))
    for stream in range(used):  # load the copies here, not inside the threads
        asr.model(name, stream)

    def run(stream: int) -> list[tuple[int, list[Segment]]]:
        return [(i, transcribe_audio(x, asr, language, channel=ch, offset=offset, regions=part, stream=stream))
                for i, (ch, x, part) in enumerate(pieces) if i % used == stream]

    if used == 1:
        done = run(0)
    else:
        with ThreadPoolExecutor(max_workers=used, thread_name_prefix="churnwatch-asr") as pool:
            done = [item for items in pool.map(run, range(used)) for item in items]
    out: dict[int | None, list[Segment]] = {ch: [] for ch, _ in tracks}
    for i, segs in sorted(done, key=lambda item: item[0]):  # pieces of a track are in time order
        out[pieces[i][0]] += segs
    return out


def transcribe_tracks(tracks: list[tuple[int | None, np.ndarray]], asr: ASR, language: str,
                      regions: dict, offset: float = 0.0) -> dict[int | None, list[Segment]]:
    """Transcribe the speech `regions` of each (channel, mono array) track: Segments per channel.

    faster-whisper with `batch_size` > 0: the speech of all tracks is cut into pieces of at most
    30 s (at pauses where it can) and decoded in batches; otherwise window after window, in
    `ASR.streams` parallel streams (`_transcribe_parallel`).
    """
    options = asr.options
    if options.engine != "faster-whisper" or options.batch_size < 1:
        return _transcribe_parallel(tracks, asr, language, regions, offset)
    out: dict[int | None, list[Segment]] = {ch: [] for ch, _ in tracks}
    name = model_for(asr, language)
    pieces, clips, base = [], [], 0.0  # pieces: (channel, speech, time map, start in the joined array)
    for ch, x in tracks:
        speech, tmap = audio_mod.collect(x, regions[ch])
        if speech.size < audio_mod.SAMPLE_RATE // 10:
            continue
        length = speech.size / audio_mod.SAMPLE_RATE
        clips += [(base + a, base + b) for a, b in clip_spans([p for p, _ in tmap.starts], length)]
        pieces.append((ch, speech, tmap, base))
        base += length
    if not pieces:
        return out
    joined = np.concatenate([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
    raws = _run_batched(asr, name, joined, language, clips)
    del joined
    starts = [p[3] for p in pieces]
    for raw in raws:
        middle = (raw["start"] + raw["end"]) / 2  # a segment lies inside one piece; its edges may be rounded
        ch, speech, tmap, b0 = pieces[max(0, bisect.bisect_right(starts, middle) - 1)]
        local = dict(raw, start=raw["start"] - b0, end=raw["end"] - b0,
                     words=[(w, ws - b0, we - b0, p) for w, ws, we, p in raw["words"]])
        out[ch] += _guarded_segments(local, asr, name, speech, tmap, language, ch, offset, retry_low=True)
    return out


def _guarded_segments(raw: dict, asr: ASR, name: str, speech: np.ndarray, tmap, language: str,
                      channel: int | None, offset: float, retry_low: bool, stream: int = 0) -> list[Segment]:
    """One decoded segment (times in `speech`) → Segments in file time, one per speech region.

    Drops silence; re-decodes a looping segment at higher temperature (and, with `retry_low`, a
    batched piece that scored below `logprob_threshold`, with the whole temperature fallback).
    """
    options = asr.options
    if is_silence(raw, options):
        return []
    if is_looping(raw["text"], options.compression_ratio_threshold):
        raw = _redecode(asr, name, speech, raw, language, stream=stream)
    elif retry_low and raw["avg_logprob"] < options.logprob_threshold:
        raw = _redecode(asr, name, speech, raw, language, temperatures=options.temperatures, stream=stream)
    if raw is None:
        return []
    # one Segment per speech region: a segment never spans a pause between regions
    groups: dict[int, list[Word]] = {}
    for w, ws, we, p in raw["words"]:
        s, e = tmap.span(ws, we)
        groups.setdefault(tmap.piece(ws), []).append(
            Word(w, round(s + offset, 3), round(e + offset, 3), round(float(p), 4)))
    if not groups:
        s, e = tmap.span(raw["start"], raw["end"])
        groups[0] = []
    out = []
    for words in groups.values():
        text = raw["text"] if len(groups) == 1 else " ".join(w.word for w in words)
        start = words[0].start if words else round(s + offset, 3)
        end = words[-1].end if words else round(e + offset, 3)
        out.append(Segment(start=start, end=end, text=text, channel=channel,
                           avg_logprob=round(float(raw["avg_logprob"]), 4), words=words))
    return out


def _redecode(asr: ASR, name: str, speech: np.ndarray, raw: dict, language: str,
              temperatures=None, stream: int = 0) -> dict | None:
    """Re-decode a segment's window one window at a time (by default at the temperatures above 0,
    for a loop); collapse what still loops."""
    options = asr.options
    a, b = int(raw["start"] * audio_mod.SAMPLE_RATE), int(raw["end"] * audio_mod.SAMPLE_RATE)
    again = _run_engine(asr, name, speech[a:b], language,
                        replace(options, condition_on_previous_text=False),
                        temperatures=temperatures or [t for t in options.temperatures if t > 0] or [0.4],
                        stream=stream)
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
    if info.channels > 2:
        raise AudioError(
            f"{path}: has {info.channels} audio channels; churnwatch reads mono calls, or stereo with the "
            "rep on one channel and the customer on the other. Keep the two channels that carry them, "
            f"e.g. ffmpeg -i {path.name} -af \"pan=stereo|c0=c0|c1=c1\" call.flac (channels 1 and 2).")
    layout, language = None, options.language
    guess: LanguageGuess | None = None
    segments: list[Segment] = []
    windows = diarize_mod.Windows.empty()
    duration, speech_s, loud = 0.0, 0.0, False
    for offset, chunk in audio_mod.iter_chunks(path, info, chunk_s=options.chunk_s):
        duration = offset + chunk.shape[1] / audio_mod.SAMPLE_RATE
        if layout is None:
            layout = "stereo" if audio_mod.is_dual_channel(chunk) else "mono"
        if layout == "stereo":
            tracks = [(0, chunk[0]), (1, chunk[1])]
        else:
            tracks = [(None, chunk.mean(0) if chunk.shape[0] > 1 else chunk[0])]
        del chunk
        loud = loud or any(audio_mod.rms_db(x) >= SILENT_DB for _, x in tracks)
        regions = _track_regions(tracks, options)
        if not any(regions.values()):
            continue
        speech_s += sum(b - a for rs in regions.values() for a, b in rs)
        if language is None:
            seconds = options.detect_window_s * options.detect_windows
            guess = guess_language(asr, _first_speech(tracks, regions, seconds))
            language = guess.language
        by_channel = transcribe_tracks(tracks, asr, language, regions, offset=offset)
        for ch, x in tracks:
            segs = by_channel[ch]
            if layout == "stereo":
                spk = "rep" if CHANNELS[ch] == options.rep_channel else "customer"
                segs = [replace(s, speaker=spk, speaker_confidence=1.0) for s in segs]
            segments += segs
            if layout == "mono" and options.diarize:
                windows = windows + diarize_mod.embed_windows(
                    x, regions[ch], asr.speaker_encoder(), options.diarize_options, offset=offset)
        del tracks, by_channel
    if not speech_s:
        if loud:
            raise AudioError(f"{path}: no speech found in {duration:.1f} s of audio (there is sound, but no "
                             "voice: noise, music or a tone?); check that this is the call's recording.")
        raise AudioError(f"{path}: holds no speech (silent for {duration:.1f} s); "
                         "check the recording's input level or channel.")
    check_plausible(path, segments, speech_s, language or "en", options)
    if layout == "mono" and options.diarize:
        segments = diarize_mod.split_segments(segments,
                                              diarize_mod.cluster_turns(windows, options.diarize_options))
    segments.sort(key=lambda s: (s.start, s.channel or 0))
    segments = merge_turns(segments, options.merge_gap_s, options.max_turn_s)
    return Transcript(language=language or "en", duration=round(duration, 3),
                      engine=options.engine, model=model_for(asr, language or "en"),
                      segments=segments, channel_layout=layout or "mono",
                      language_scores=guess.scores if guess and guess.scores else None)


def check_plausible(path: Path, segments: list[Segment], speech_s: float, language: str,
                    options: TranscribeOptions) -> None:
    """Raise ImplausibleTranscript when `speech_s` seconds of speech gave (almost) no words."""
    words = sum(len(s.text.split()) for s in segments)
    if speech_s < options.min_speech_s or words >= options.min_words_per_minute * speech_s / 60:
        return
    given = options.language is not None
    hint = (f"is the call really in {language!r}? Give its language (--language, or the upload's "
            "language field) and send it again" if given else
            f"the language was taken to be {language!r}: if the call is in another language, give it "
            "(e.g. --language de, or the upload's language field) and send it again")
    raise ImplausibleTranscript(
        f"{path}: {speech_s:.0f} s of speech gave only {words} word(s) of transcript, too few to be "
        f"right; {hint}. Nothing was stored.")


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


SILENT_DB = -60.0  # a track quieter than this (dBFS) is silence: VAD is not even run


class ImplausibleTranscript(AudioError):
    """Speech was heard but the transcript is (nearly) empty: a wrong language, most often."""


def check_language(code: str | None, where: str = "language") -> str | None:
    """A language code as Whisper knows it ("de"), lower-cased; ChurnwatchError naming it otherwise."""
    if code is None or not str(code).strip():
        return None
    code = str(code).strip().lower()
    if not _is_language_code(code):
        raise ChurnwatchError(f"{where}: unknown language {code!r}; give a language code such as en, de, ro or ko.")
    return code


def _is_language_code(code: str) -> bool:
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:  # openai-whisper only
        from whisper.tokenizer import LANGUAGES as _LANGUAGE_CODES
    return code in _LANGUAGE_CODES


def _regions(x: np.ndarray, options: TranscribeOptions) -> list[tuple[float, float]]:
    if audio_mod.rms_db(x) < SILENT_DB:
        return []
    if not options.vad:
        return [(0.0, x.size / audio_mod.SAMPLE_RATE)]
    return audio_mod.speech_regions(x)


def _track_regions(tracks: list[tuple[int | None, np.ndarray]], options: TranscribeOptions) -> dict:
    """Speech regions per track; with more than one thread, the channels of a stereo call side by
    side (Silero VAD runs on one thread: 1.0 s a channel of the 5-minute bench call)."""
    if len(tracks) == 1 or options.threads == 1:
        return {ch: _regions(x, options) for ch, x in tracks}
    with ThreadPoolExecutor(max_workers=len(tracks), thread_name_prefix="churnwatch-vad") as pool:
        found = list(pool.map(lambda track: _regions(track[1], options), tracks))
    return {ch: r for (ch, _), r in zip(tracks, found)}


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
