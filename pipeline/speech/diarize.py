"""Mono speaker split: two speakers from resemblyzer voice embeddings, clustered with k=2.

How it works:
1. `embed_windows` slides a 1.6 s window (resemblyzer's partial utterance) with a ~0.75 s hop
   over each speech region and embeds it with `VoiceEncoder` (256-d, its packaged weights).
   It also cuts each region at its pauses (`speech_pieces`: quiet runs of at least
   `min_pause_s`) and embeds every piece on its own. Long recordings are embedded chunk by
   chunk; only the embeddings are kept (1 KB per window or piece).
2. `cluster_turns` clusters the windows into two speakers (k-means on unit-length embeddings;
   average-linkage clustering, used first, split real phone audio into one speaker and a few
   outlier windows) and smooths isolated label flips; the mean of each cluster is that
   speaker's voice. K-means holds no n x n matrix, so a 3-hour call clusters in little memory.
   Each piece then takes the voice it is closest to, and runs of pieces of one speaker become
   `Turn`s. Why pieces: a window is 1.6 s long, so a window across a turn change hears both
   voices, and windows alone moved every change by up to a second (the first words of a reply
   went to the previous speaker; a one-word "Right." vanished into the rep's turn). Two people
   rarely change turns without a pause, so a piece between pauses almost always holds one
   voice; where they do (real calls, meetings), the windows wholly inside a piece show both
   voices, and then those windows split the piece. Without pieces (none cut, or windows made
   by hand) the window labels make the turns.
   A turn's confidence is the mean, over its pieces or windows, of a softmax over the cosine
   similarity to the two voices (0.5 = undecided, 1.0 = certain).
3. Speaker names: **the speaker heard first is the rep** (`DiarizeOptions.first_speaker`):
   outbound sales calls open with the rep's greeting. Set `first_speaker="customer"` for
   inbound lines.
4. `split_segments` gives each word the speaker of the turn at its midpoint and cuts Whisper
   segments where the speaker changes between words.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.speech.audio import SAMPLE_RATE
from pipeline.types import Segment, Word



@dataclass(frozen=True)
class DiarizeOptions:
    # Partial windows per second of speech (resemblyzer `rate`); 1.33 = one window per 0.75 s.
    rate: float = 1.33
    # Speech regions shorter than this (seconds) get no windows (pieces are cut from every
    # region, see min_piece_s); a region without windows or pieces takes the nearest turn.
    min_region_s: float = 0.4
    # Who speaks first: "rep" (outbound calls, the default) or "customer".
    first_speaker: str = "rep"
    # Softmax temperature for the per-window confidence (lower = more confident).
    confidence_temperature: float = 0.05
    # A label run shorter than this many windows, between two runs of the other label, is
    # flipped (removes one-window blips).
    min_run: int = 2
    # A quiet run at least this long (seconds) cuts a speech region into pieces; turn gaps on
    # the dev calls are 0.15-0.7 s, stop consonants are shorter than 0.1 s.
    min_pause_s: float = 0.1
    # "Quiet": this many dB below the loud end (95th percentile) of the speech frames of the
    # chunk (up to 10 minutes), or 6 dB above its noise floor (5th percentile), whichever is higher.
    pause_below_db: float = 35.0
    # Pieces shorter than this (seconds: a click, half a syllable) are not embedded; their
    # words take the nearest turn. A one-word reply ("Right.") is 0.3-0.5 s.
    min_piece_s: float = 0.15

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
    """Embedded windows of a recording, times (n, 2) in seconds and embeddings (n, 256), and
    the embedded pieces between pauses, piece_times (m, 2) and piece_embeddings (m, 256)."""

    times: np.ndarray
    embeddings: np.ndarray
    piece_times: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    piece_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 256), np.float32))

    @classmethod
    def empty(cls) -> Windows:
        return cls(np.zeros((0, 2)), np.zeros((0, 256), np.float32))

    def __add__(self, other: Windows) -> Windows:
        return Windows(np.concatenate([self.times, other.times]),
                       np.concatenate([self.embeddings, other.embeddings]),
                       np.concatenate([self.piece_times, other.piece_times]),
                       np.concatenate([self.piece_embeddings, other.piece_embeddings]))


def load_encoder(device: str = "cpu"):
    """Load resemblyzer's VoiceEncoder from the weights inside the package (no download)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation notice
        from resemblyzer import VoiceEncoder

        return VoiceEncoder(device, verbose=False)


def speech_pieces(samples: np.ndarray, regions: list[tuple[float, float]],
                  options: DiarizeOptions = DiarizeOptions()) -> list[tuple[float, float]]:
    """The speech regions cut at their pauses: quiet runs (30 ms frames every 10 ms, see
    `DiarizeOptions`) of at least `min_pause_s`. Pieces shorter than `min_piece_s` are left out;
    a region left with no piece (all of it quiet or short) is one piece. Seconds from the start
    of `samples`."""
    hop = SAMPLE_RATE // 100
    n = samples.size // hop
    if n < 3 or not regions:
        return []
    # energy per 10 ms block without an (n x 480) copy of the signal; a frame is 3 blocks
    blocks = samples[: n * hop].astype(np.float32, copy=False).reshape(n, hop)
    energy = np.einsum("ij,ij->i", blocks, blocks).astype(np.float64)
    frames = np.convolve(energy, np.ones(3), mode="valid")
    frames = np.concatenate([frames, np.repeat(frames[-1], 2)])
    db = 10 * np.log10(frames / (3 * hop) + 1e-12)
    spans = [(round(a * 100), min(round(b * 100), n)) for a, b in regions]
    in_speech = np.concatenate([db[i:j] for i, j in spans])
    if in_speech.size == 0:
        return []
    quiet = db < max(np.percentile(db, 5) + 6.0, np.percentile(in_speech, 95) - options.pause_below_db)
    min_frames = max(1, round(options.min_pause_s * 100))
    pieces = []
    for (a, b), (i, end) in zip(regions, spans):
        cut, start = [], i
        while i < end:
            if not quiet[i]:
                i += 1
                continue
            j = i
            while j < end and quiet[j]:
                j += 1
            if j - i >= min_frames:
                if i > start:
                    cut.append((start / 100, i / 100))
                start = j
            i = j
        if end > start:
            cut.append((start / 100, min(b, end / 100)))
        cut = [(s, e) for s, e in cut if e - s >= options.min_piece_s]
        pieces += cut or ([(a, b)] if b - a >= options.min_piece_s else [])
    return pieces


def _stretch(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    """Seconds start..end of the signal as float32, peak-normalised to 0.5 (the encoder's level)."""
    wav = samples[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)].astype(np.float32)
    peak = float(np.abs(wav).max()) or 1.0
    return wav / peak * 0.5


def _unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero)."""
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def _embed_piece(wav: np.ndarray, encoder, options: DiarizeOptions) -> np.ndarray:
    """One embedding for a short stretch; shorter than a partial window, it is repeated to fill
    one (repeating the voice keeps it a voice, where zero padding adds silence to the average)."""
    partial = int(1.6 * SAMPLE_RATE)
    if wav.size < partial:
        wav = np.tile(wav, -(-partial // wav.size))[:partial]
    return encoder.embed_utterance(wav, rate=options.rate, min_coverage=0.5)


def embed_windows(samples: np.ndarray, regions: list[tuple[float, float]], encoder,
                  options: DiarizeOptions = DiarizeOptions(), offset: float = 0.0) -> Windows:
    """Embed sliding windows over the speech regions of a mono 16 kHz signal, and the pieces
    of those regions between pauses."""
    times, embeds = [], []
    for a, b in regions:
        if b - a < options.min_region_s:
            continue
        _, partials, slices = encoder.embed_utterance(
            _stretch(samples, a, b), return_partials=True, rate=options.rate, min_coverage=0.5
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
    piece_times, piece_embeds = [], []
    for s, e in speech_pieces(samples, regions, options):
        piece_times.append((offset + s, offset + e))
        piece_embeds.append(_embed_piece(_stretch(samples, s, e), encoder, options))
    return Windows(np.asarray(times, dtype=float), np.asarray(embeds, dtype=np.float32),
                   np.asarray(piece_times, dtype=float).reshape(-1, 2),
                   np.asarray(piece_embeds, dtype=np.float32).reshape(-1, 256))


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
    emb = _unit(emb)
    if n == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(emb)
    labels = _smooth(labels, options.min_run)
    # names follow the first window (from a speech region of at least min_region_s), not the
    # first piece, which can be a click or a breath
    first = labels[0]
    centroids = np.stack([emb[labels == k].mean(0) if (labels == k).any() else np.zeros(emb.shape[1])
                          for k in (0, 1)])
    centroids = _unit(centroids)
    window_probs = _softmax(emb @ centroids.T, options.confidence_temperature)
    # each window owns the time from the midpoint with its predecessor to the one with its successor
    centers = times.mean(1)
    window_spans = []
    for i in range(n):
        s = times[i, 0] if i == 0 else max(times[i, 0], (centers[i - 1] + centers[i]) / 2)
        e = times[i, 1] if i == n - 1 else min(times[i, 1], (centers[i] + centers[i + 1]) / 2)
        window_spans.append((float(min(s, e)), float(e)))
    if not len(windows.piece_embeddings):
        spans, labels, conf = window_spans, labels, window_probs[np.arange(n), labels]
    else:
        spans, labels, conf = _piece_labels(windows, times, labels, window_spans, window_probs, centroids, options)
    other = "customer" if options.first_speaker == "rep" else "rep"
    names = {first: options.first_speaker, 1 - first: other}
    turns: list[Turn] = []
    confs: list[list[float]] = []
    for (s, e), label, c in zip(spans, labels, conf):
        spk = names[label]
        if turns and turns[-1].speaker == spk and s - turns[-1].end < 2.0:
            turns[-1].end = max(turns[-1].end, e)
            confs[-1].append(float(c))
        else:
            turns.append(Turn(s, e, spk, 0.0))
            confs.append([float(c)])
    for turn, c in zip(turns, confs):
        turn.confidence = round(float(np.mean(c)), 3)
    return turns


def _piece_labels(windows: Windows, window_times, window_labels, window_spans, window_probs, centroids,
                  options: DiarizeOptions):
    """Spans, labels and confidences from the pieces: each piece takes the nearer voice, except a
    piece whose own windows (those wholly inside it) hold both voices for at least `min_run`
    windows each: two people talking with no pause between them, where the windows decide."""
    order = np.argsort(windows.piece_times[:, 0], kind="stable")
    piece_times = windows.piece_times[order]
    pieces = windows.piece_embeddings[order]
    pieces = _unit(pieces)
    probs = _softmax(pieces @ centroids.T, options.confidence_temperature)
    spans, labels, conf = [], [], []
    for (s, e), p in zip(piece_times, probs):
        inside = np.flatnonzero((window_times[:, 0] >= s - 0.05) & (window_times[:, 1] <= e + 0.05))
        if len(inside) and np.bincount(window_labels[inside], minlength=2).min() >= options.min_run:
            for i in inside:
                a, b = max(window_spans[i][0], float(s)), min(window_spans[i][1], float(e))
                if i == inside[0]:
                    a = float(s)
                if i == inside[-1]:
                    b = float(e)
                if b > a:
                    spans.append((a, b))
                    labels.append(int(window_labels[i]))
                    conf.append(float(window_probs[i, window_labels[i]]))
        else:
            spans.append((float(s), float(e)))
            labels.append(int(p.argmax()))
            conf.append(float(p.max()))
    return spans, np.asarray(labels, dtype=int), np.asarray(conf)


def _softmax(sims: np.ndarray, temperature: float) -> np.ndarray:
    z = (sims - sims.max(1, keepdims=True)) / temperature
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


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
