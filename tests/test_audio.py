"""Decoding, channel layout, VAD and the one-line errors for bad files (no Whisper model needed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.speech import audio
from pipeline.errors import AudioError

DATA = Path(__file__).parent / "data"
STEREO = DATA / "two_voices.stereo.ogg"
MONO = DATA / "two_voices.mono.mp3"
TRUTH = json.loads((DATA / "two_voices.truth.json").read_text())


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_sha256_streams_the_file(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1_000_000)
    assert audio.audio_sha256(f, block=4096) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


def test_decode_stereo_keeps_channels_at_16k():
    info = audio.probe(STEREO)
    samples = audio.decode(STEREO, info=info)
    assert info.channels == 2 and samples.shape[0] == 2 and samples.dtype == np.float32
    assert abs(samples.shape[1] / 16000 - TRUTH["duration_s"]) < 0.1
    # the rep speaks first on the left; the right channel is silent then
    first = TRUTH["turns"][0]
    a, b = int(first["start"] * 16000), int(first["end"] * 16000)
    assert audio.rms_db(samples[0, a:b]) > audio.rms_db(samples[1, a:b]) + 30


def test_resamples_any_rate_and_format(tmp_path):
    src = tmp_path / "tone44k.wav"
    sf.write(src, _tone(3.0, 44100), 44100)
    for ext in ("flac", "mp3", "m4a"):
        out = tmp_path / f"tone.{ext}"
        subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(src), str(out)], check=True)
        x = audio.decode(out)
        assert x.shape[0] == 1 and abs(x.shape[1] / 16000 - 3.0) < 0.1, ext


def test_chunks_cover_the_file_in_order():
    whole = audio.decode(STEREO)
    chunks = list(audio.iter_chunks(STEREO, chunk_s=10.0))
    assert [round(o) for o, _ in chunks] == [0, 10, 20]
    assert max(c.shape[1] for _, c in chunks) <= 10 * 16000
    joined = np.concatenate([c for _, c in chunks], axis=1)
    assert abs(joined.shape[1] - whole.shape[1]) < 160
    n = min(joined.shape[1], whole.shape[1])
    assert np.abs(joined[:, :n] - whole[:, :n]).mean() < 0.01


def test_dual_channel_detection():
    stereo = audio.decode(STEREO)
    assert audio.is_dual_channel(stereo)
    copies = np.stack([stereo[0], stereo[0]])
    assert not audio.is_dual_channel(copies)
    assert not audio.is_dual_channel(np.stack([stereo[0], 0.5 * stereo[0]]))
    assert not audio.is_dual_channel(stereo[:1])


def test_speech_regions_find_the_turns():
    left = audio.decode(STEREO)[0]
    regions = audio.speech_regions(left)
    rep_turns = [t for t in TRUTH["turns"] if t["speaker"] == "rep"]
    for turn in rep_turns:  # every rep turn's middle lies in a speech region
        mid = (turn["start"] + turn["end"]) / 2
        assert any(a <= mid <= b for a, b in regions)
    assert sum(b - a for a, b in regions) < 0.7 * left.size / 16000  # the customer's time is skipped
    assert audio.speech_regions(np.zeros(16000 * 5, np.float32)) == []


def test_collect_maps_times_back():
    x = np.arange(16000 * 10, dtype=np.float32)
    speech, tmap = audio.collect(x, [(1.0, 2.0), (5.0, 7.0)])
    assert speech.size == 3 * 16000
    assert tmap.span(0.5, 0.9) == pytest.approx((1.5, 1.9))
    assert tmap.span(1.5, 2.5) == pytest.approx((5.5, 6.5))
    assert tmap.piece(0.99) == 0 and tmap.piece(1.01) == 1


@pytest.mark.parametrize("kind", ["empty", "corrupt", "truncated", "unsupported", "missing"])
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.flac"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(50_000))
    elif kind == "truncated":
        full = tmp_path / "full.flac"
        sf.write(full, _tone(20.0), 16000)
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    elif kind == "unsupported":
        path = tmp_path / "notes.txt"
        path.write_text("this is not audio\n" * 100)
    with pytest.raises(AudioError) as err:
        info = audio.probe(path)
        for _ in audio.iter_chunks(path, info):
            pass
    message = str(err.value)
    assert str(path) in message and "\n" not in message
