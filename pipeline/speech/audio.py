"""Audio in: probe, decode (any format ffmpeg reads) to 16 kHz float32 per channel, in chunks.

Every failure a user can cause (missing, empty, corrupt, truncated, unsupported or silent file)
raises `AudioError` with a one-line message that names the file.

Memory bound: a file is never decoded whole. `iter_chunks` yields at most `chunk_s` seconds
(default 600 s = 10 min) at a time, so the largest array alive is
channels x chunk_s x 16000 x 4 bytes = 2 x 600 x 16000 x 4 B = 77 MB for a stereo chunk,
whatever the length of the recording (a 3-hour call is 18 chunks, one at a time).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import AudioError

SAMPLE_RATE = 16000  # what Whisper, Silero VAD and resemblyzer all expect
CHUNK_S = 600.0  # seconds decoded at once (see the memory bound above)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    duration: float  # seconds, from the container (or decoded length when it has none)
    channels: int  # channels in the file (we keep at most two)
    sample_rate: int  # of the file; decoding always resamples to SAMPLE_RATE
    codec: str


def audio_sha256(path: Path, block: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (constant memory)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(block):
                digest.update(chunk)
    except OSError as e:
        raise AudioError(f"{path}: cannot read the file ({e.strerror}).") from e
    return digest.hexdigest()


def _run(cmd: list[str], path: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise AudioError(
            f"{path}: cannot decode audio because {cmd[0]!r} is not installed; "
            "install ffmpeg (e.g. apt-get install ffmpeg)."
        ) from e


def _first_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no details"


def probe(path: Path) -> AudioInfo:
    """Read a file's duration, channels and codec with ffprobe; raise AudioError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); record or copy it again.")
    out = _run(
        ["ffprobe", "-v", "error", "-show_entries",
         "stream=codec_type,codec_name,channels,sample_rate:format=duration,format_name",
         "-of", "json", str(Path(path).absolute())],
        path,
    )
    if out.returncode != 0:
        raise AudioError(
            f"{path}: not a readable audio file ({_first_line(out.stderr)}); "
            "use wav, mp3, flac, m4a or ogg."
        )
    data = json.loads(out.stdout or b"{}")
    streams = [s for s in data.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioError(f"{path}: holds no audio stream; use wav, mp3, flac, m4a or ogg.")
    s = streams[0]
    try:
        duration = float(data.get("format", {}).get("duration", "nan"))
    except ValueError:
        duration = float("nan")
    return AudioInfo(
        path=path,
        duration=duration,
        channels=int(s.get("channels") or 1),
        sample_rate=int(s.get("sample_rate") or 0),
        codec=str(s.get("codec_name", "?")),
    )


def decode(path: Path, start: float = 0.0, duration: float | None = None,
           channels: int = 2, info: AudioInfo | None = None) -> np.ndarray:
    """Decode [start, start+duration) of a file to float32 at 16 kHz, shape (channels, samples).

    `channels` is 1 (downmix) or 2 (keep left/right; a mono file is returned as one row).
    Raises AudioError on decoding errors (corrupt or truncated data).
    """
    path = Path(path)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-xerror"]
    if start > 0:
        cmd += ["-ss", f"{start:.3f}"]
    cmd += ["-i", str(Path(path).absolute())]  # absolute: a name like "-x.wav" is no option
    if duration is not None:
        cmd += ["-t", f"{duration:.3f}"]
    cmd += ["-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-ar", str(SAMPLE_RATE)]
    if channels == 1:
        cmd += ["-ac", "1"]
    else:
        # keep the first two channels; a mono source stays mono
        cmd += ["-af", "aformat=channel_layouts=mono|stereo"]
    out = _run(cmd + ["-"], path)
    if out.returncode != 0 or (out.stderr.strip() and not out.stdout):
        raise AudioError(
            f"{path}: the audio data is corrupt or truncated ({_first_line(out.stderr)}); "
            "re-export or re-download the recording."
        )
    samples = np.frombuffer(out.stdout, dtype=np.float32)
    n_ch = 1 if channels == 1 or (info or probe(path)).channels == 1 else 2
    if samples.size % n_ch:
        samples = samples[: samples.size - samples.size % n_ch]
    return samples.reshape(-1, n_ch).T.copy()


def iter_chunks(path: Path, info: AudioInfo | None = None, chunk_s: float = CHUNK_S,
                channels: int = 2) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (offset seconds, samples (channels, n)) chunks of at most `chunk_s` seconds.

    Raises AudioError when the file decodes to nothing or to much less than its stated
    duration (a truncated download).
    """
    info = info or probe(path)
    offset, total = 0.0, 0
    while True:
        chunk = decode(path, start=offset, duration=chunk_s, channels=channels, info=info)
        n = chunk.shape[1]
        if n == 0:
            break
        total += n
        yield offset, chunk
        offset += n / SAMPLE_RATE
        if n < chunk_s * SAMPLE_RATE - SAMPLE_RATE // 10:
            break
    decoded = total / SAMPLE_RATE
    if total == 0:
        raise AudioError(f"{path}: decodes to no audio samples; the file is truncated or corrupt.")
    if info.duration == info.duration and decoded < 0.9 * info.duration - 1.0:
        raise AudioError(
            f"{path}: truncated: the header says {info.duration:.1f} s but only {decoded:.1f} s "
            "decode; re-export or re-download the recording."
        )


def rms_db(samples: np.ndarray) -> float:
    """Root-mean-square level in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def is_dual_channel(stereo: np.ndarray, tolerance_db: float = -40.0) -> bool:
    """True when a (2, n) array holds two different channels, not copies of one signal.

    The channels count as copies when their difference is `tolerance_db` below the louder
    channel (lossy codecs leave a small difference between identical channels), or when one
    channel is scaled copy of the other (correlation > 0.999).
    """
    if stereo.ndim != 2 or stereo.shape[0] < 2:
        return False
    left, right = stereo[0], stereo[1]
    level = max(rms_db(left), rms_db(right))
    if level == float("-inf"):
        return False
    if rms_db(left - right) - level < tolerance_db:
        return False
    if rms_db(left) > level - 60 and rms_db(right) > level - 60:
        corr = np.corrcoef(left[::4], right[::4])[0, 1]
        if corr > 0.999:
            return False
    return True


def speech_regions(samples: np.ndarray, threshold: float = 0.5, min_silence_ms: int = 500,
                   pad_ms: int = 200) -> list[tuple[float, float]]:
    """Speech regions (start, end) in seconds of a mono 16 kHz signal, by Silero VAD.

    Uses the Silero model that faster-whisper ships (onnxruntime, no download).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if samples.size == 0 or rms_db(samples) < -70:
        return []
    opts = VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms,
                      speech_pad_ms=pad_ms, min_speech_duration_ms=150)
    stamps = get_speech_timestamps(np.ascontiguousarray(samples, dtype=np.float32), opts)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def collect(samples: np.ndarray, regions: list[tuple[float, float]]) -> tuple[np.ndarray, TimeMap]:
    """Concatenate the regions of a mono signal; return the audio and a map back to file time."""
    pieces, starts = [], []
    pos = 0.0
    for a, b in regions:
        piece = samples[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)]
        if piece.size == 0:
            continue
        pieces.append(piece)
        starts.append((pos, a))
        pos += piece.size / SAMPLE_RATE
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return audio, TimeMap(starts)


@dataclass(frozen=True)
class TimeMap:
    """Maps a time in concatenated speech back to the original signal's time."""

    starts: list[tuple[float, float]]  # (position in the concatenation, original start)

    def piece(self, t: float) -> int:
        """Index of the piece (speech region) that holds time t of the concatenation."""
        return max(0, bisect.bisect_right([p for p, _ in self.starts], t) - 1)

    def span(self, start: float, end: float) -> tuple[float, float]:
        """Map (start, end) using the piece that holds `start`, so a span never covers a gap."""
        if not self.starts:
            return start, end
        pos, orig = self.starts[self.piece(start)]
        return orig + (start - pos), orig + (max(end, start) - pos)
