"""Two-speaker diarization: clustering and segment splitting by hand, and the real encoder on a clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.speech import audio
from pipeline.speech.diarize import (
    DiarizeOptions,
    Turn,
    Windows,
    cluster_turns,
    diarize,
    load_encoder,
    speaker_at,
    speech_pieces,
    split_segments,
)
from pipeline.types import Segment, Word

DATA = Path(__file__).parent / "data"
TRUTH = json.loads((DATA / "two_voices.truth.json").read_text())
QUICK = json.loads((DATA / "quick_turns.truth.json").read_text())


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


def test_speech_is_cut_at_pauses_not_at_stop_consonants():
    sr = audio.SAMPLE_RATE
    rng = np.random.default_rng(0)

    def voiced(seconds):
        return 0.3 * np.sin(2 * np.pi * 180 * np.arange(int(seconds * sr)) / sr) + 0.01 * rng.normal(size=int(seconds * sr))

    def quiet(seconds):
        return 0.001 * rng.normal(size=int(seconds * sr))

    # 1 s voiced, 0.05 s closure, 1 s voiced, 0.25 s pause, 1 s voiced
    x = np.concatenate([voiced(1), quiet(0.05), voiced(1), quiet(0.25), voiced(1)]).astype(np.float32)
    pieces = speech_pieces(x, [(0.0, x.size / sr)])
    assert len(pieces) == 2
    assert pieces[0][0] == pytest.approx(0.0, abs=0.03) and pieces[0][1] == pytest.approx(2.05, abs=0.04)
    assert pieces[1][0] == pytest.approx(2.30, abs=0.04) and pieces[1][1] == pytest.approx(3.30, abs=0.03)
    # a longer minimum pause keeps the 0.25 s pause inside one piece
    assert len(speech_pieces(x, [(0.0, x.size / sr)], DiarizeOptions(min_pause_s=0.3))) == 1
    # a click between pauses is no piece; a region that is quiet throughout is one piece
    y = np.concatenate([voiced(1), quiet(0.3), voiced(0.08), quiet(0.3), voiced(1), quiet(1)]).astype(np.float32)
    assert len(speech_pieces(y, [(0.0, 2.6)])) == 2
    assert speech_pieces(y, [(0.0, 2.6), (2.7, 3.6)])[-1] == (2.7, 3.6)


def test_pieces_win_over_windows_and_are_used_when_present():
    """Pieces between pauses decide the speaker; each piece takes the nearer voice."""
    labels = [0] * 6 + [1] * 6
    windows = _windows(labels)
    centers = np.stack([windows.embeddings[:6].mean(0), windows.embeddings[6:].mean(0)])
    # voice 0, a short reply in voice 1 where the windows heard only voice 0, voice 0, voice 1
    windows.piece_times = np.array([(0.0, 2.0), (2.2, 2.6), (2.8, 4.0), (4.6, 9.85)])
    windows.piece_embeddings = centers[[0, 1, 0, 1]].astype(np.float32)
    turns = cluster_turns(windows)
    assert [(t.start, t.end, t.speaker) for t in turns] == [
        (0.0, 2.0, "rep"), (2.2, 2.6, "customer"), (2.8, 4.0, "rep"), (4.6, 9.85, "customer")]


def test_real_encoder_finds_quick_turns_and_one_word_replies():
    """Turns 0.15-0.3 s apart and one-word replies ("Right.", "Okay."): the speaker is right
    0.1 s after each turn starts, in its middle and 0.1 s before it ends."""
    encoder = load_encoder("cpu")
    x = audio.decode(DATA / "quick_turns.mono.mp3")[0]
    turns = diarize(x, audio.speech_regions(x), encoder)
    wrong = [(truth["text"], round(t, 2)) for truth in QUICK["turns"]
             for t in (truth["start"] + 0.1, (truth["start"] + truth["end"]) / 2, truth["end"] - 0.1)
             if speaker_at(turns, t).speaker != truth["speaker"]]
    assert wrong == []


def test_a_piece_holding_both_voices_is_split_by_its_windows():
    """Real speakers sometimes take the turn with no pause: a piece whose own windows show both
    voices (at least min_run windows each) is split where its windows change."""
    labels = [0] * 6 + [1] * 6
    windows = _windows(labels)
    centers = np.stack([windows.embeddings[:6].mean(0), windows.embeddings[6:].mean(0)])
    windows.piece_times = np.array([(0.0, 9.85)])  # one piece: no pause anywhere
    windows.piece_embeddings = centers[[0]].astype(np.float32)
    turns = cluster_turns(windows)
    assert [t.speaker for t in turns] == ["rep", "customer"]
    assert turns[0].start == 0.0 and turns[-1].end == 9.85
    assert turns[1].start == pytest.approx(6 * 0.75 - 0.375 + 0.8, abs=0.01)
