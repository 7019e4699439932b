"""Make the sample world for the demo and the tests: eight short sales calls and a CRM export.

    python samples/make_samples.py             # everything (needs flite, espeak-ng, sox, ffmpeg)
    python samples/make_samples.py --crm-only  # only samples/crm/ (numpy only)

Everything is deterministic (SEED below): the calls are text-to-speech from Debian's flite
(English) and espeak-ng (German); the CRM history is drawn from a fixed random generator.
Outputs: samples/audio/<call>.<ext> + <call>.truth.json, samples/calls.csv, samples/crm/*.csv
(opportunities.csv and leads.csv, the sales funnel, from samples/funnel_history.py).
The company selling is "Ridgeway" (a B2B supplier); its competitors are Northwind and Vendora.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from crm_history import make_crm
from funnel_history import make_funnel
from world import ACCOUNTS_FIXED, CALLS

SEED = 20261115
AS_OF = date(2026, 11, 15)
SR = 16000  # render rate; the 8 kHz telephone WAV is resampled on encoding
GAP_RANGE_S = (0.2, 0.7)
LEAD_IN_S, TAIL_S = 0.5, 0.6
FLITE_STRETCH = 1.1
ESPEAK_WPM = 140
TARGET_RMS_DBFS = -21.0
TOOLS = {"flite": "flite", "espeak-ng": "espeak-ng", "sox": "sox", "ffmpeg": "ffmpeg"}

# How each call is stored: (container, ffmpeg codec arguments, sample rate of the file).
FORMATS = {
    "flac": (["-c:a", "flac", "-compression_level", "8"], SR),
    "wav-ulaw8k": (["-c:a", "pcm_mulaw", "-ar", "8000"], 8000),
    "mp3": (["-c:a", "libmp3lame", "-b:a", "40k"], SR),
    "ogg": (["-c:a", "libvorbis", "-q:a", "1"], SR),
    "m4a": (["-c:a", "aac", "-b:a", "48k"], SR),
}


def check_tools(needed: list[str]) -> None:
    missing = [t for t in needed if shutil.which(TOOLS[t]) is None]
    if missing:
        # each tool's Debian package has the tool's name
        sys.exit(
            f"make_samples: {', '.join(missing)} not found on PATH. The calls need the Debian "
            f"packages flite, espeak-ng, sox and ffmpeg; install the missing ones with:\n"
            f"    sudo apt-get install {' '.join(missing)}\n"
            f"(or run with --crm-only to write only samples/crm/)"
        )


def tool_version(name: str) -> str:
    args = {
        "flite": ["flite", "--version"],
        "espeak-ng": ["espeak-ng", "--version"],
        "sox": ["sox", "--version"],
        "ffmpeg": ["ffmpeg", "-version"],
    }[name]
    out = (
        subprocess.run(args, capture_output=True, text=True, check=False)
        .stdout.strip()
        .splitlines()
    )
    return out[0] if out else "unknown"


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == SR
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def synth(text: str, voice: str, tmp: Path) -> np.ndarray:
    """Speak one turn with "flite:<voice>" or "espeak-ng:<voice>" into float32 mono at 16 kHz."""
    engine, name = voice.split(":", 1)
    raw, out = tmp / "raw.wav", tmp / "turn.wav"
    if engine == "flite":
        cmd = [
            "flite",
            "-voice",
            name,
            "--setf",
            f"duration_stretch={FLITE_STRETCH}",
            "-t",
            text,
            "-o",
            str(raw),
        ]
    else:
        cmd = ["espeak-ng", "-v", name, "-s", str(ESPEAK_WPM), "-g", "2", "-w", str(raw), text]
    subprocess.run(cmd, check=True, capture_output=True)
    subprocess.run(
        ["sox", "-V1", "-D", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out)],
        check=True,
        capture_output=True,
    )
    x = _read_wav(out)
    # trim the synthesiser's own leading/trailing silence so truth times mark speech
    frame = 160
    n = len(x) // frame
    env = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-12)
    active = np.nonzero(20 * np.log10(env) > -45)[0]
    x = x[max(active[0] - 1, 0) * frame : min(active[-1] + 2, n) * frame]
    rms = np.sqrt((x**2).mean())
    x = x * (10 ** (TARGET_RMS_DBFS / 20) / rms)
    peak = np.abs(x).max()
    return x * (0.89 / peak) if peak > 0.89 else x


def render_call(call: dict, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, list[dict]]:
    """Place the turns on a two-channel timeline: rep LEFT, customer RIGHT, gaps between."""
    pieces, turns, t = [], [], LEAD_IN_S
    for i, turn in enumerate(call["turns"]):
        speaker = turn["speaker"]
        audio = synth(turn["text"], call["voices"][speaker], tmp)
        if i:
            t += float(rng.uniform(*GAP_RANGE_S))
        start = round(t * SR)
        pieces.append((start, 0 if speaker == "rep" else 1, audio))
        turns.append(
            {
                "index": i,
                "speaker": speaker,
                "channel": "left" if speaker == "rep" else "right",
                "text": turn["text"],
                "labels": list(turn.get("labels", [])),
                "start_sample": start,
                "end_sample": start + len(audio),
            }
        )
        t = (start + len(audio)) / SR
    total = round((t + TAIL_S) * SR)
    stereo = np.zeros((total, 2), dtype=np.float32)
    for start, ch, audio in pieces:
        stereo[start : start + len(audio), ch] = audio
    return stereo, turns


def encode(stereo: np.ndarray, layout: str, fmt: str, dest: Path, tmp: Path) -> int:
    """Write 16-bit PCM, then let ffmpeg store it as `fmt`; returns the file's sample rate."""
    pcm = stereo if layout == "stereo" else stereo.sum(axis=1, keepdims=True)
    pcm16 = np.clip(np.round(pcm * 32767), -32768, 32767).astype("<i2")
    src = tmp / "call.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(pcm16.shape[1])
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm16.tobytes())
    codec, rate = FORMATS[fmt]
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        *codec,
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        str(dest),
    ]
    subprocess.run(cmd, check=True)
    return rate


def make_call(call: dict, out_dir: Path, versions: dict[str, str]) -> dict:
    """Render, encode and describe one call; returns its truth record (also written as JSON)."""
    rng = np.random.default_rng([SEED, call["seed_offset"]])
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        stereo, turns = render_call(call, rng, tmp)
        dest = out_dir / call["file"]
        rate = encode(stereo, call["layout"], call["format"], dest, tmp)
    scale = rate / SR
    for turn in turns:
        s, e = turn.pop("start_sample"), turn.pop("end_sample")
        turn.update(
            start=round(s / SR, 3),
            end=round(e / SR, 3),
            start_sample=round(s * scale),
            end_sample=round(e * scale),
        )
        if call["layout"] == "mono":
            turn["channel"] = None
    acc = ACCOUNTS_FIXED[call["account_id"]]
    channels = (
        {"left": "rep", "right": "customer"} if call["layout"] == "stereo" else {"mono": "both"}
    )
    truth = {
        "call_id": call["call_id"],
        "account": {"id": call["account_id"], "name": acc["name"]},
        "date": call["date"],
        "language": call["language"],
        "rep": acc["rep"],
        "customer": call["customer"],
        "call_type": call["call_type"],
        "channel_layout": call["layout"],
        "audio": {
            "file": call["file"],
            "format": call["format"],
            "sample_rate": rate,
            "channels": channels,
            "duration_s": round(len(stereo) / SR, 3),
        },
        "requests": call.get("requests", []),
        "hard_negative_turns": call.get("hard_negatives", []),
        "render": {
            "seed": SEED,
            "seed_offset": call["seed_offset"],
            "gap_range_s": list(GAP_RANGE_S),
            "lead_in_s": LEAD_IN_S,
            "tail_s": TAIL_S,
            "voices": call["voices"],
            "flite_duration_stretch": FLITE_STRETCH,
            "espeak_wpm": ESPEAK_WPM,
            "tools": versions,
        },
        "turns": turns,
    }
    (out_dir / f"{call['call_id']}.truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def write_calls_csv(path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "account_id", "rep", "date"])
        for call in CALLS:
            acc = ACCOUNTS_FIXED[call["account_id"]]
            w.writerow([f"audio/{call['file']}", call["account_id"], acc["rep"], call["date"]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="where audio/, crm/, calls.csv go")
    ap.add_argument("--crm-only", action="store_true", help="only write crm/ (no TTS tools)")
    ap.add_argument("--calls", nargs="*", help="only these call ids (default: all)")
    args = ap.parse_args(argv)
    unknown = set(args.calls or []) - {c["call_id"] for c in CALLS}
    if unknown:
        ap.error(f"unknown call ids {sorted(unknown)}; known: {[c['call_id'] for c in CALLS]}")
    if not args.crm_only:
        check_tools(["flite", "espeak-ng", "sox", "ffmpeg"])
    out: Path = args.out
    (out / "crm").mkdir(parents=True, exist_ok=True)
    make_crm(out / "crm", SEED, AS_OF)
    make_funnel(out / "crm", SEED, AS_OF)  # opportunities.csv, leads.csv: after the others, its own stream
    print(f"wrote {out / 'crm'}")
    if args.crm_only:
        return 0
    versions = {name: tool_version(name) for name in TOOLS}
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for call in CALLS:
        if args.calls and call["call_id"] not in args.calls:
            continue
        truth = make_call(call, out / "audio", versions)
        size = (out / "audio" / call["file"]).stat().st_size
        print(f"{call['file']:<28} {truth['audio']['duration_s']:6.1f} s  {size / 1024:6.0f} KiB")
    write_calls_csv(out / "calls.csv")
    print(f"wrote {out / 'calls.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
