"""A very long recording end to end: wall time and peak memory of `churnwatch transcribe`.

    python bench/long_call.py                        # 180 min, dual-channel (samples/audio/call_01.flac looped)
    python bench/long_call.py --minutes 60 --mono    # 60 min, the mono mix (diarization path)

Builds the file with ffmpeg (a sample call looped to the length asked, FLAC, in a temp folder),
runs `churnwatch transcribe FILE --json` in a child process and reads the child's peak resident
memory (ru_maxrss). Decoding goes 10 minutes at a time (pipeline.speech.audio), so memory should not
grow with the length: the number to watch is peak RSS against the 20-minute run. Writes
bench/results/long_call.json (one entry per length and layout, newest run wins).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "long_call.json"


def build(source: Path, minutes: float, mono: bool, dest: Path) -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t", str(minutes * 60)]
    if mono:
        cmd += ["-ac", "1"]
    subprocess.run(cmd + ["-ar", "16000", "-c:a", "flac", str(dest)], check=True)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=180.0)
    ap.add_argument("--mono", action="store_true", help="downmix: one channel, diarized")
    ap.add_argument("--source", type=Path, default=ROOT / "samples" / "audio" / "call_01.flac")
    args = ap.parse_args()
    churnwatch = Path(sys.executable).parent / "churnwatch"
    layout = "mono" if args.mono else "stereo"
    with tempfile.TemporaryDirectory() as tmp:
        path = build(args.source, args.minutes, args.mono, Path(tmp) / f"long_{layout}.flac")
        size_mb = path.stat().st_size / 1e6
        print(f"{args.minutes:.0f} min {layout} file: {size_mb:.0f} MB; transcribing ...", flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([str(churnwatch), "transcribe", str(path), "--json"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return 1
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    transcript = json.loads(proc.stdout)
    row = {
        "minutes": args.minutes, "layout": layout, "file_mb": round(size_mb, 1), "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, 1),
        "audio_min_per_wall_min": round(args.minutes * 60 / wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB; ffmpeg's is far smaller
        "segments": len(transcript["segments"]), "duration_s": transcript["duration"],
    }
    print(json.dumps(row, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    old = [r for r in old if (r["minutes"], r["layout"]) != (row["minutes"], row["layout"])]
    RESULTS.write_text(json.dumps(sorted(old + [row], key=lambda r: (r["layout"], r["minutes"])), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
