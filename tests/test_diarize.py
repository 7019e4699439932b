"""Two-speaker diarization: clustering and segment splitting by hand, and the real encoder on a clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import audio
from pipeline.diarize import (
    DiarizeOptions,
    Turn,
    Windows,
    cluster_turns,
    diarize,
    load_encoder,
    speaker_at,
    split_segments,
)
from pipeline.types import Segment, Word

DATA = Path(__file__).parent / "data"
TRUTH = json.loads((DATA / "two_voices.truth.json").read_text())


def _windows(labels: list[int], seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(2, 256))
    emb = np.stack([centers[k] + 0.2 * rng.normal(size=256) for k in labels])
    times = np.array([(i * 0.75, i * 0.75 + 1.6) for i in range(len(labels))])
    return Windows(times, emb.astype(np.float32))


def test_clusters_two_voices_and_names_the_first_speaker_rep():
    labels = [1] * 6 + [0] * 6 + [1] * 4
    turns = cluster_turns(_windows(labels))
    assert [t.speaker for t in turns] == ["rep", "customer", "rep"]
    assert turns[0].start == 0.0 and turns[1].start == pytest.approx(6 * 0.75 - 0.375 + 0.8, abs=0.01)
    assert all(t.confidence > 0.9 for t in turns)
    inbound = cluster_turns(_windows(labels), DiarizeOptions(first_speaker="customer"))
    assert [t.speaker for t in inbound] == ["customer", "rep", "customer"]


def test_single_window_blips_are_smoothed():
    turns = cluster_turns(_windows([0] * 5 + [1] + [0] * 5 + [1] * 5))
    assert [t.speaker for t in turns] == ["rep", "customer"]


def test_split_segments_at_speaker_changes():
    turns = [Turn(0.0, 2.0, "rep", 0.9), Turn(2.0, 4.0, "customer", 0.8)]
    words = [Word("Okay", 0.2, 0.6), Word("thanks.", 0.7, 1.5), Word("Sure", 2.2, 2.6), Word("thing.", 2.7, 3.0)]
    out = split_segments([Segment(0.2, 3.0, "Okay thanks. Sure thing.", words=words)], turns)
    assert [(s.speaker, s.text, s.start, s.end) for s in out] == [
        ("rep", "Okay thanks.", 0.2, 1.5), ("customer", "Sure thing.", 2.2, 3.0)]
    assert [s.speaker_confidence for s in out] == [0.9, 0.8]
    assert speaker_at(turns, 10.0).speaker == "customer"  # nearest turn outside all turns
    assert speaker_at([], 1.0) is None


def test_real_encoder_splits_the_mono_clip():
    encoder = load_encoder("cpu")
    x = audio.decode(DATA / "two_voices.mono.mp3")[0]
    turns = diarize(x, audio.speech_regions(x), encoder)
    assert turns[0].speaker == "rep"
    for truth in TRUTH["turns"]:
        mid = (truth["start"] + truth["end"]) / 2
        assert speaker_at(turns, mid).speaker == truth["speaker"], truth["text"]
