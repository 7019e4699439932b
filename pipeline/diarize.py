"""Mono speaker split: two speakers from resemblyzer voice embeddings, clustered with k=2.

How it works:
1. `embed_windows` slides a 1.6 s window (resemblyzer's partial utterance) with a ~0.75 s hop
   over each speech region and embeds it with `VoiceEncoder` (256-d, its packaged weights).
   Long recordings are embedded chunk by chunk; only the embeddings are kept (1 KB per window).
2. `cluster_turns` clusters all windows into two speakers (agglomerative, cosine, average
   linkage), smooths isolated label flips, and merges runs of equal labels into `Turn`s. Each
   turn's confidence is the mean, over its windows, of a softmax over the window's cosine
   similarity to the two speaker centroids (0.5 = undecided, 1.0 = certain).
3. Speaker names: **the speaker heard first is the rep** (`DiarizeOptions.first_speaker`):
   outbound sales calls open with the rep's greeting. Set `first_speaker="customer"` for
   inbound lines.
4. `assign_words` gives each word the speaker of the turn at its midpoint, and
   `split_segments` cuts Whisper segments where the speaker changes between words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.audio import SAMPLE_RATE
from pipeline.types import Segment, Word



@dataclass(frozen=True)
class DiarizeOptions:
    # Partial windows per second of speech (resemblyzer `rate`); 1.33 = one window per 0.75 s.
    rate: float = 1.33
    # Speech regions shorter than this (seconds) are not embedded; their words take the nearest turn.
    min_region_s: float = 0.4
    # Who speaks first: "rep" (outbound calls, the default) or "customer".
    first_speaker: str = "rep"
    # Softmax temperature for the per-window confidence (lower = more confident).
    confidence_temperature: float = 0.05
    # A label run shorter than this many windows, between two runs of the other label, is
    # flipped (removes one-window blips).
    min_run: int = 2

    def __post_init__(self):
        if self.first_speaker not in ("rep", "customer"):
            raise ValueError(f"first_speaker must be 'rep' or 'customer', got {self.first_speaker!r}")


@dataclass
class Turn:
    start: float  # seconds from the start of the recording
    end: float
    speaker: str  # "rep" or "customer"
    confidence: float  # 0.5 (undecided) .. 1.0


@dataclass
class Windows:
    """Embedded windows of a recording: times (n, 2) in seconds and embeddings (n, 256)."""

    times: np.ndarray
    embeddings: np.ndarray

    @classmethod
    def empty(cls) -> Windows:
        return cls(np.zeros((0, 2)), np.zeros((0, 256), np.float32))

    def __add__(self, other: Windows) -> Windows:
        return Windows(np.concatenate([self.times, other.times]),
                       np.concatenate([self.embeddings, other.embeddings]))


def load_encoder(device: str = "cpu"):
    """Load resemblyzer's VoiceEncoder from the weights inside the package (no download)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation notice
        from resemblyzer import VoiceEncoder

        return VoiceEncoder(device, verbose=False)


def embed_windows(samples: np.ndarray, regions: list[tuple[float, float]], encoder,
                  options: DiarizeOptions = DiarizeOptions(), offset: float = 0.0) -> Windows:
    """Embed sliding windows over the speech regions of a mono 16 kHz signal."""
    times, embeds = [], []
    for a, b in regions:
        if b - a < options.min_region_s:
            continue
        wav = samples[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)].astype(np.float32)
        peak = float(np.abs(wav).max()) or 1.0
        _, partials, slices = encoder.embed_utterance(
            wav / peak * 0.5, return_partials=True, rate=options.rate, min_coverage=0.5
        )
        # resemblyzer frames are 10 ms; a slice is over mel frames -> samples via 160 per frame
        for emb, sl in zip(partials, slices):
            s = a + sl.start / SAMPLE_RATE
            e = min(b, a + sl.stop / SAMPLE_RATE)
            if e <= s:
                e = b
            times.append((offset + s, offset + e))
            embeds.append(emb)
    if not embeds:
        return Windows.empty()
    return Windows(np.asarray(times, dtype=float), np.asarray(embeds, dtype=np.float32))


def _smooth(labels: np.ndarray, min_run: int) -> np.ndarray:
    labels = labels.copy()
    i = 0
    while i < len(labels):
        j = i
        while j < len(labels) and labels[j] == labels[i]:
            j += 1
        if 0 < i and j < len(labels) and j - i < min_run and labels[i - 1] == labels[j]:
            labels[i:j] = labels[j]
        i = j
    return labels


def cluster_turns(windows: Windows, options: DiarizeOptions = DiarizeOptions()) -> list[Turn]:
    """Cluster embedded windows into two speakers and return their turns in time order."""
    n = len(windows.embeddings)
    if n == 0:
        return []
    order = np.argsort(windows.times[:, 0], kind="stable")
    times, emb = windows.times[order], windows.embeddings[order]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    if n == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average").fit_predict(emb)
    labels = _smooth(labels, options.min_run)
    centroids = np.stack([emb[labels == k].mean(0) if (labels == k).any() else np.zeros(emb.shape[1])
                          for k in (0, 1)])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)
    sims = emb @ centroids.T  # (n, 2)
    z = (sims - sims.max(1, keepdims=True)) / options.confidence_temperature
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    conf = probs[np.arange(n), labels]
    first = labels[0]
    other = "customer" if options.first_speaker == "rep" else "rep"
    names = {first: options.first_speaker, 1 - first: other}
    # each window owns the time from the midpoint with its predecessor to the one with its successor
    centers = times.mean(1)
    turns: list[Turn] = []
    confs: list[list[float]] = []
    for i in range(n):
        s = times[i, 0] if i == 0 else max(times[i, 0], (centers[i - 1] + centers[i]) / 2)
        e = times[i, 1] if i == n - 1 else min(times[i, 1], (centers[i] + centers[i + 1]) / 2)
        spk = names[labels[i]]
        if turns and turns[-1].speaker == spk and min(s, e) - turns[-1].end < 2.0:
            turns[-1].end = max(turns[-1].end, float(e))
            confs[-1].append(float(conf[i]))
        else:
            turns.append(Turn(float(min(s, e)), float(e), spk, 0.0))
            confs.append([float(conf[i])])
    for turn, c in zip(turns, confs):
        turn.confidence = round(float(np.mean(c)), 3)
    return turns


def diarize(samples: np.ndarray, regions: list[tuple[float, float]], encoder,
            options: DiarizeOptions = DiarizeOptions()) -> list[Turn]:
    """Two-speaker turns of a mono 16 kHz signal, given its speech regions (seconds)."""
    return cluster_turns(embed_windows(samples, regions, encoder, options), options)


def speaker_at(turns: list[Turn], t: float) -> Turn | None:
    """The turn covering time t, else the nearest turn (None when there are no turns)."""
    best, dist = None, float("inf")
    for turn in turns:
        if turn.start <= t <= turn.end:
            return turn
        d = min(abs(turn.start - t), abs(turn.end - t))
        if d < dist:
            best, dist = turn, d
    return best


def split_segments(segments: list[Segment], turns: list[Turn]) -> list[Segment]:
    """Label segments with speakers, cutting each where the speaker changes between words."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            turn = speaker_at(turns, (seg.start + seg.end) / 2)
            out.append(replace(seg, speaker=turn.speaker if turn else None,
                               speaker_confidence=turn.confidence if turn else None))
            continue
        groups: list[tuple[Turn | None, list[Word]]] = []
        for w in seg.words:
            turn = speaker_at(turns, (w.start + w.end) / 2)
            spk = turn.speaker if turn else None
            if groups and (groups[-1][0].speaker if groups[-1][0] else None) == spk:
                groups[-1][1].append(w)
            else:
                groups.append((turn, [w]))
        for turn, words in groups:
            out.append(replace(
                seg, start=words[0].start, end=words[-1].end,
                text="".join(_spaced(w.word) for w in words).strip(), words=words,
                speaker=turn.speaker if turn else None,
                speaker_confidence=turn.confidence if turn else None,
            ))
    return out


def _spaced(word: str) -> str:
    return word if word[:1] in ",.!?;:'%" else " " + word
