"""The shipped sample world (samples/) is complete, decodable and consistent with itself.

These check the files the demo and other tests rely on; they fail when the generator
(samples/make_samples.py) regresses or the shipped files drift from it.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pipeline.types

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
AS_OF = date(2026, 11, 15)
WINDOW_START = date(2024, 11, 1)
CUE_LABELS = set(pipeline.types.CUE_LABELS)
CRM_HEADERS = {
    "accounts": ["account_id", "name", "segment", "rep", "created", "status", "lost_on"],
    "orders": ["account_id", "date", "amount", "invoice_id", "due_date", "paid_date"],
    "activities": ["account_id", "date", "type", "direction", "outcome", "rep"],
    "contacts": ["account_id", "name", "email", "role", "added"],
    "support": ["account_id", "case_id", "opened", "closed", "priority", "subject"],
}
HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg/ffprobe not installed")


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _d(s: str) -> date:
    return date.fromisoformat(s)


def _calls() -> list[dict]:
    return _read_csv(SAMPLES / "calls.csv")[1]


def _truth(row: dict) -> dict:
    audio = SAMPLES / row["file"]
    return json.loads(audio.with_name(audio.stem + ".truth.json").read_text())


CALL_ROWS = _calls()
CALL_IDS = [Path(r["file"]).stem for r in CALL_ROWS]


@pytest.fixture(scope="module")
def crm() -> dict[str, list[dict]]:
    return {name: _read_csv(SAMPLES / "crm" / f"{name}.csv")[1] for name in CRM_HEADERS}


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """ffmpeg → float32 (frames, channels) at 16 kHz, channel count as stored."""
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=channels",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    channels = json.loads(probe.stdout)["streams"][0]["channels"]
    raw = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "f32le",
            "-acodec",
            "pcm_f32le",
            "-ar",
            "16000",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, channels), channels


@pytest.fixture(scope="module")
def decoded() -> dict[str, tuple[np.ndarray, dict]]:
    if not HAS_FFMPEG:
        pytest.skip("ffmpeg/ffprobe not installed")
    return {Path(r["file"]).stem: (_decode(SAMPLES / r["file"])[0], _truth(r)) for r in CALL_ROWS}


def _db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-9))


# ---- calls.csv and the truth files -------------------------------------------------------


def test_calls_csv_matches_truth_and_crm(crm):
    header, rows = _read_csv(SAMPLES / "calls.csv")
    assert header == ["file", "account_id", "rep", "date"]
    assert len(rows) >= 6
    accounts = {a["account_id"]: a for a in crm["accounts"]}
    for row in rows:
        assert (SAMPLES / row["file"]).is_file(), row["file"]
        truth = _truth(row)
        assert truth["account"]["id"] == row["account_id"]
        assert truth["rep"] == row["rep"] and truth["date"] == row["date"]
        acc = accounts[row["account_id"]]
        assert acc["rep"] == row["rep"] and acc["name"] == truth["account"]["name"]
        assert acc["status"] == "active", "calls happen with live accounts"
        assert AS_OF - timedelta(days=62) <= _d(row["date"]) < AS_OF
    assert len({r["account_id"] for r in rows}) == 4


def test_calls_mix_formats_layouts_and_languages():
    truths = [_truth(r) for r in CALL_ROWS]
    suffixes = {Path(r["file"]).suffix for r in CALL_ROWS}
    assert {".flac", ".wav", ".mp3", ".ogg"} <= suffixes
    assert {t["channel_layout"] for t in truths} == {"mono", "stereo"}
    assert {t["language"] for t in truths} >= {"en", "de"}
    for t in truths:  # rep and customer never share a voice
        assert t["render"]["voices"]["rep"] != t["render"]["voices"]["customer"]


@pytest.mark.parametrize("call_id", CALL_IDS)
def test_truth_turns_are_well_formed(call_id):
    truth = _truth(CALL_ROWS[CALL_IDS.index(call_id)])
    turns = truth["turns"]
    assert 8 <= len(turns) <= 16
    assert [t["index"] for t in turns] == list(range(len(turns)))
    assert {t["speaker"] for t in turns} == {"rep", "customer"}
    for t in turns:
        assert set(t["labels"]) <= CUE_LABELS
        assert t["speaker"] == "customer" or not t["labels"], "only customers carry cues"
        want = {"stereo": {"rep": "left", "customer": "right"}[t["speaker"]], "mono": None}
        assert t["channel"] == want[truth["channel_layout"]]
        assert 0 < t["start"] < t["end"] <= truth["audio"]["duration_s"]
    for a, b in itertools.pairwise(turns):
        assert 0.19 <= b["start"] - a["end"] <= 0.71  # natural gaps, no overlap
    for ref in truth["hard_negative_turns"] + truth["requests"]:
        assert turns[ref["index"]]["labels"] == []


def test_cues_cover_every_label_with_clean_calls_and_hard_negatives():
    truths = [_truth(r) for r in CALL_ROWS]
    labels = {lab for t in truths for turn in t["turns"] for lab in turn["labels"]}
    assert labels == CUE_LABELS
    clean = [t for t in truths if not any(turn["labels"] for turn in t["turns"])]
    assert len(clean) >= 2
    texts = [
        turn["text"].lower()
        for t in truths
        for turn in t["turns"]
        if turn["speaker"] == "customer" and not turn["labels"]
    ]
    assert any("not looking at other vendors" in x for x in texts)
    rep_price = [
        turn
        for t in truths
        for turn in t["turns"]
        if turn["speaker"] == "rep" and "price" in turn["text"].lower()
    ]
    assert rep_price
    callbacks = [(t, q) for t in truths for q in t["requests"] if q["type"] == "callback"]
    assert callbacks
    for t, q in callbacks:
        turn = t["turns"][q["index"]]
        assert turn["speaker"] == "customer" and "call me back" in turn["text"].lower()
        assert _d(q["due"]) == _d(t["date"]) + timedelta(days=q["in_days"])


# ---- the audio itself ----------------------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize("call_id", CALL_IDS)
def test_audio_decodes_with_expected_layout_and_length(decoded, call_id):
    audio, truth = decoded[call_id]
    assert audio.shape[1] == (2 if truth["channel_layout"] == "stereo" else 1)
    seconds = len(audio) / 16000
    assert 30 <= seconds <= 90
    assert abs(seconds - truth["audio"]["duration_s"]) < 0.15
    path = SAMPLES / "audio" / truth["audio"]["file"]
    if path.suffix != ".m4a":  # libsndfile reads everything but AAC
        info = sf.info(str(path))
        assert info.channels == audio.shape[1]
        assert info.samplerate == truth["audio"]["sample_rate"]
        assert abs(info.duration - truth["audio"]["duration_s"]) < 0.15


@needs_ffmpeg
@pytest.mark.parametrize("call_id", CALL_IDS)
def test_speech_sits_in_turns_and_one_channel_at_a_time(decoded, call_id):
    audio, truth = decoded[call_id]
    stereo = truth["channel_layout"] == "stereo"
    for turn in truth["turns"]:
        seg = audio[int(turn["start"] * 16000) : int(turn["end"] * 16000)]
        if stereo:
            own, other = (0, 1) if turn["channel"] == "left" else (1, 0)
            assert _db(seg[:, own]) > -35, f"turn {turn['index']} is too quiet"
            assert _db(seg[:, own]) - _db(seg[:, other]) > 25, f"turn {turn['index']} leaks"
        else:
            assert _db(seg) > -35
    for a, b in itertools.pairwise(truth["turns"]):
        mid = (a["end"] + b["start"]) / 2
        gap = audio[int((mid - 0.07) * 16000) : int((mid + 0.07) * 16000)]
        assert _db(gap) < -45, f"gap after turn {a['index']} is not silent"


# ---- the CRM export ------------------------------------------------------------------------


def test_crm_headers_and_enums(crm):
    for name, want in CRM_HEADERS.items():
        assert _read_csv(SAMPLES / "crm" / f"{name}.csv")[0] == want
    assert {a["segment"] for a in crm["accounts"]} == {"SMB", "Mid-Market", "Enterprise"}
    assert {a["status"] for a in crm["accounts"]} == {"active", "lost"}
    allowed = {
        ("call", "outbound"): {"answered", "unanswered"},
        ("call", "inbound"): {"answered"},
        ("email", "outbound"): {"replied", "no_reply"},
        ("email", "inbound"): {"replied"},
        ("meeting", "outbound"): {"held"},
    }
    for a in crm["activities"]:
        assert a["outcome"] in allowed[(a["type"], a["direction"])]
    assert {s["priority"] for s in crm["support"]} == {"low", "normal", "high", "urgent"}
    for c in crm["contacts"]:
        assert c["email"].endswith(".example.com") and "@" in c["email"]


def test_crm_keys_and_reps_are_consistent(crm):
    accounts = {a["account_id"]: a for a in crm["accounts"]}
    assert len(accounts) == len(crm["accounts"])
    reps = {a["rep"] for a in crm["accounts"]}
    assert len(reps) == 4 and {r["rep"] for r in CALL_ROWS} <= reps
    for name in ("orders", "activities", "contacts", "support"):
        assert {r["account_id"] for r in crm[name]} <= set(accounts), name
    for a in crm["activities"]:
        assert a["rep"] == accounts[a["account_id"]]["rep"]
    assert len({o["invoice_id"] for o in crm["orders"]}) == len(crm["orders"])
    assert len({s["case_id"] for s in crm["support"]}) == len(crm["support"])
    # every account has contacts and orders
    for name in ("orders", "contacts"):
        assert {r["account_id"] for r in crm[name]} == set(accounts), name


def test_crm_dates_and_money_make_sense(crm):
    created = {a["account_id"]: _d(a["created"]) for a in crm["accounts"]}
    for o in crm["orders"]:
        day, due = _d(o["date"]), _d(o["due_date"])
        assert max(WINDOW_START, created[o["account_id"]]) <= day <= AS_OF
        assert due >= day
        assert not o["paid_date"] or day <= _d(o["paid_date"]) <= AS_OF
        credit = float(o["amount"]) < 0
        assert credit == o["invoice_id"].startswith("CN-"), o
    for s in crm["support"]:
        assert WINDOW_START <= _d(s["opened"]) <= AS_OF
        assert not s["closed"] or _d(s["opened"]) <= _d(s["closed"]) <= AS_OF
    for c in crm["contacts"]:
        assert created[c["account_id"]] <= _d(c["added"]) <= AS_OF


def test_about_forty_accounts_with_a_fifth_lost(crm):
    accounts = crm["accounts"]
    assert 35 <= len(accounts) <= 45
    lost = [a for a in accounts if a["status"] == "lost"]
    assert 0.15 <= len(lost) / len(accounts) <= 0.30
    assert 500 <= len(crm["orders"]) <= 5000


def test_lost_accounts_stop_at_lost_on(crm):
    for a in crm["accounts"]:
        if a["status"] == "active":
            assert a["lost_on"] == ""
            continue
        lost_on = _d(a["lost_on"])
        assert _d(a["created"]) < lost_on <= AS_OF
        mine = [o for o in crm["orders"] if o["account_id"] == a["account_id"]]
        assert mine and all(_d(o["date"]) <= lost_on for o in mine)
        assert all(
            _d(s["opened"]) <= lost_on for s in crm["support"] if s["account_id"] == a["account_id"]
        )


def _trend(crm, account: dict) -> float:
    """Order value in the 180 days before the reference date over the 180 days before that."""
    ref = _d(account["lost_on"]) if account["lost_on"] else AS_OF
    recent = prior = 0.0
    for o in crm["orders"]:
        if o["account_id"] == account["account_id"] and float(o["amount"]) > 0:
            age = (ref - _d(o["date"])).days
            if 0 <= age < 180:
                recent += float(o["amount"])
            elif 180 <= age < 360:
                prior += float(o["amount"])
    return recent / max(prior, 1.0)


def _auc(scores_pos: list[float], scores_neg: list[float]) -> float:
    pairs = [(p > n) + 0.5 * (p == n) for p in scores_pos for n in scores_neg]
    return sum(pairs) / len(pairs)


def test_churn_leaves_a_signal_that_is_not_a_giveaway(crm):
    lost = [a for a in crm["accounts"] if a["status"] == "lost"]
    kept = [a for a in crm["accounts"] if a["status"] == "active"]
    auc = _auc([-_trend(crm, a) for a in lost], [-_trend(crm, a) for a in kept])
    assert 0.65 <= auc < 1.0, auc

    def missed(a):
        ref = _d(a["lost_on"]) if a["lost_on"] else AS_OF
        out = [
            x
            for x in crm["activities"]
            if x["account_id"] == a["account_id"]
            and x["direction"] == "outbound"
            and 0 <= (ref - _d(x["date"])).days < 180
        ]
        return sum(x["outcome"] in ("unanswered", "no_reply") for x in out) / max(len(out), 1)

    auc = _auc([missed(a) for a in lost], [missed(a) for a in kept])
    assert 0.6 <= auc < 1.0, auc


def test_call_accounts_history_fits_their_calls(crm):
    accounts = {a["account_id"]: a for a in crm["accounts"]}
    cues: dict[str, set[str]] = {}
    for row in CALL_ROWS:
        labels = {lab for turn in _truth(row)["turns"] for lab in turn["labels"]}
        cues.setdefault(row["account_id"], set()).update(labels)
    risky = [acc for acc, labs in cues.items() if len(labs) >= 4]
    calm = [acc for acc, labs in cues.items() if len(labs) <= 1]
    assert risky and calm
    for acc in risky:
        assert _trend(crm, accounts[acc]) < 0.9, acc
    for acc in calm:
        assert _trend(crm, accounts[acc]) > 0.9, acc
    names = {(c["account_id"], c["name"].split()[0]) for c in crm["contacts"]}
    for row in CALL_ROWS:  # the customer on the call is a known contact
        first = _truth(row)["customer"].split()[0]
        assert (row["account_id"], first) in names


# ---- the generator reproduces what is shipped --------------------------------------------


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_samples", module)
    spec.loader.exec_module(module)
    return module


def test_generator_reproduces_crm_byte_for_byte(tmp_path):
    gen = _load_generator()
    assert gen.main(["--out", str(tmp_path), "--crm-only"]) == 0
    for name in CRM_HEADERS:
        shipped = (SAMPLES / "crm" / f"{name}.csv").read_bytes()
        assert (tmp_path / "crm" / f"{name}.csv").read_bytes() == shipped, name


@pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("flite", "espeak-ng", "sox", "ffmpeg")),
    reason="needs flite, espeak-ng, sox, ffmpeg (apt-get install flite espeak-ng sox ffmpeg)",
)
def test_generator_reproduces_the_lossless_calls(tmp_path):
    gen = _load_generator()
    calls = [c for c in gen.CALLS if c["format"] == "flac"]
    assert len(calls) >= 2
    assert gen.main(["--out", str(tmp_path), "--calls", *(c["call_id"] for c in calls)]) == 0
    for call in calls:
        name = f"{call['call_id']}.truth.json"
        shipped = json.loads((SAMPLES / "audio" / name).read_text())
        fresh = json.loads((tmp_path / "audio" / name).read_text())
        assert fresh["turns"] == shipped["turns"], call["call_id"]
        a, _ = sf.read(str(SAMPLES / "audio" / call["file"]), dtype="int16")
        b, _ = sf.read(str(tmp_path / "audio" / call["file"]), dtype="int16")
        assert np.array_equal(a, b), call["call_id"]
