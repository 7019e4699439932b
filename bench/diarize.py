"""Mono diarization alone: the share of speech time given to the right speaker.

    python bench/diarize.py [--data ../shared/data]

No ASR: `pipeline.speech.diarize` runs on each recording's speech regions and every 10 ms where exactly
one reference speaker talks is checked against the turn there (overlaps are left out, as
diarization error rate does with a collar of 0). Recordings: the dev calls' mono mixes
(calls_dev/*.mono.mp3, reference turns from truth.json) and the real clips (real/*.wav with
their RTTM; the speaker heard first is taken as the rep, like the pipeline's default). One
torch thread, so the CPU seconds are comparable on a shared machine. Prints a table and writes
bench/results/diarize.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.speech import audio
from pipeline.speech import diarize as diarize_mod


def dev_references(data: Path) -> list[tuple[str, Path, list[tuple[float, float, str]]]]:
    out = []
    for truth_path in sorted((data / "calls_dev").glob("*.truth.json")):
        truth = json.loads(truth_path.read_text())
        turns = [(t["start"], t["end"], t["speaker"]) for t in truth["turns"]]
        out.append((truth["call_id"], data / "calls_dev" / f"{truth['call_id']}.mono.mp3", turns))
    return out


def rttm_references(data: Path) -> list[tuple[str, Path, list[tuple[float, float, str]]]]:
    out = []
    for rttm in sorted((data / "real").glob("*.rttm")):
        rows = [line.split() for line in rttm.read_text().splitlines() if line.startswith("SPEAKER")]
        turns = sorted((float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows)
        first = turns[0][2]
        turns = [(s, e, "rep" if k == first else "customer") for s, e, k in turns]
        out.append((rttm.stem, rttm.with_suffix(".wav"), turns))
    return out


def time_accuracy(turns: list, reference: list[tuple[float, float, str]], duration: float) -> tuple[float, float]:
    """(share of single-speaker reference time with the right speaker, seconds checked)."""
    right = checked = 0
    for t in np.arange(0.0, duration, 0.01):
        active = {k for s, e, k in reference if s <= t < e}
        if len(active) != 1:
            continue
        checked += 1
        turn = diarize_mod.speaker_at(turns, t)
        right += turn is not None and turn.speaker == active.pop()
    return (right / checked if checked else float("nan")), checked / 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared")) / "data")
    args = ap.parse_args()
    recordings = dev_references(args.data) + rttm_references(args.data)
    if not recordings:
        print(f"no dev calls or RTTM clips under {args.data}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    encoder = diarize_mod.load_encoder("cpu")
    rows = []
    print(f"{'recording':24} {'speech s':>9} {'right':>7} {'turns':>6} {'cpu s':>6}")
    for name, path, reference in recordings:
        x = audio.decode(path)
        x = x.mean(0) if x.shape[0] > 1 else x[0]
        c0 = time.process_time()
        turns = diarize_mod.diarize(x, audio.speech_regions(x), encoder)
        cpu = time.process_time() - c0
        acc, seconds = time_accuracy(turns, reference, x.size / audio.SAMPLE_RATE)
        rows.append({"recording": name, "speech_s": round(seconds, 1), "right": round(acc, 4),
                     "turns": len(turns), "reference_turns": len(reference), "cpu_s": round(cpu, 1)})
        print(f"{name:24} {seconds:9.1f} {acc:7.1%} {len(turns):6d} {cpu:6.1f}", flush=True)
    out = ROOT / "bench" / "results" / "diarize.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
