"""The whole pipeline on one 5-minute dual-channel English call: cold and warm, time and memory, per engine.

    python bench/pipeline.py                  # cold ingest per engine (3 runs each, interleaved), warm x5
    python bench/pipeline.py --runs 1 --warm 3
    python bench/pipeline.py --dev-wer        # WER of decoding settings on ../shared/data/calls_dev
    python bench/pipeline.py --clip           # cold ingest of the call's first 11 seconds

The call is built here from the project's own samples (samples/audio/call_01, 03, 05, 06: the
dual-channel English ones, one of them 8 kHz telephone audio), so the bench runs from a clean
clone; it is cut after the last whole turn before 300 s, and its reference text is those turns.

- cold: `churnwatch ingest CALL --json` in a fresh process and a fresh SQLite store, per engine;
  wall time, CPU time (user + system) and peak resident memory (ru_maxrss of that child alone,
  from os.wait4). Runs alternate between the engines (A, B, A, B, ...) so a busy machine slows
  both alike; medians are printed, and the default engine's throughput over the reference's.
- warm: one process loads the models once (`load_toolkit`), then ingests the same call `--warm`
  times (copies that differ only in a metadata tag, so each is a new recording to the store);
  the median per-call time and the process's peak memory.
- --dev-wer: per decoding setting (compute type, batch size, beam), `transcribe()` of each dev
  call's stereo file in a child process: WER (whisper's English normaliser, jiwer), CPU and wall
  time. Skipped, saying so, when ../shared/data is not there.

- --clip: the first 11 seconds of the call, ingested cold (fresh process and store) --runs times
  with the default engine: start-up (imports, model loads) is most of what such a call costs.

Goals (issue 17): cold <= 15 s and <= 1.0 GB; warm <= 10 s a call; default >= 4x the reference;
an 11-second clip cold in <= 6 s.
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "samples" / "audio"
SHARED = Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared")) / "data"
PARTS = ["call_01.flac", "call_03.wav", "call_05.flac", "call_06.m4a", "call_01.flac"]
LENGTH_S = 300.0
ENGINES = ("faster-whisper", "openai-whisper")
RESULTS = ROOT / "bench" / "results" / "pipeline.json"
# decoding settings for --dev-wer: (name, TranscribeOptions overrides); the first is the old default
SETTINGS = [
    ("float32, one window at a time, beam 5 (before)", {"compute_type": "float32", "batch_size": 0, "beam_size": 5}),
    ("int8, one window at a time, beam 5 (default)", {"compute_type": "int8", "batch_size": 0, "beam_size": 5}),
    ("int8, one window at a time, beam 4", {"compute_type": "int8", "batch_size": 0, "beam_size": 4}),
    ("int8, one window at a time, beam 3", {"compute_type": "int8", "batch_size": 0, "beam_size": 3}),
    ("int8, one window at a time, beam 2", {"compute_type": "int8", "batch_size": 0, "beam_size": 2}),
    ("int8, one window at a time, beam 1 (greedy)", {"compute_type": "int8", "batch_size": 0, "beam_size": 1}),
    ("int8, batched 8, beam 5", {"compute_type": "int8", "batch_size": 8, "beam_size": 5}),
    ("int8, batched 8, beam 1", {"compute_type": "int8", "batch_size": 8, "beam_size": 1}),
]


# ---------------------------------------------------------------- the call


def build_call(dest: Path) -> tuple[Path, str]:
    """Concatenate the sample calls (resampled to 16 kHz stereo) up to the last whole turn before
    LENGTH_S; returns the FLAC and the reference text of the turns it holds."""
    t, cut, words = 0.0, 0.0, []
    for name in PARTS:
        truth = json.loads((SAMPLES / name).with_suffix(".truth.json").read_text())
        for turn in sorted(truth["turns"], key=lambda u: u["start"]):
            if t + turn["end"] > LENGTH_S:
                break
            words.append(turn["text"])
            cut = t + turn["end"] + 0.5
        else:
            t += truth["audio"]["duration_s"]
            continue
        break
    inputs = [a for name in PARTS for a in ("-i", str(SAMPLES / name))]
    graph = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=stereo[a{i}];" for i in range(len(PARTS)))
    graph += "".join(f"[a{i}]" for i in range(len(PARTS))) + f"concat=n={len(PARTS)}:v=0:a=1[out]"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-t", f"{cut:.2f}", "-c:a", "flac", str(dest)], check=True)
    return dest, " ".join(words)


def tagged_copy(src: Path, dest: Path, tag: str) -> Path:
    """The same audio with another metadata comment: other bytes, so another recording to the store."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-c", "copy",
                    "-metadata", f"comment={tag}", str(dest)], check=True)
    return dest


# ---------------------------------------------------------------- measuring a child process


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run cmd; its wall time, CPU time and peak RSS (this child alone), and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    return {"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout, "stderr": stderr}


def cold_ingest(call: Path, engine: str, folder: Path, run: int) -> dict:
    churnwatch = Path(sys.executable).parent / "churnwatch"
    db = folder / f"cold_{engine}_{run}.db"
    r = measure([str(churnwatch), "ingest", str(call), "--account", "BENCH-1", "--create-account",
                 "--db", f"sqlite:///{db}", "--engine", engine, "--json"])
    if r["rc"] != 0:
        raise SystemExit(f"ingest with {engine} failed (exit {r['rc']}): {r['stderr'][-1500:]}")
    result = json.loads(r["stdout"])[0]
    return {**{k: round(r[k], 2) for k in ("wall_s", "cpu_s", "peak_rss_mb")}, "status": result["status"],
            "cues": sorted(c["label"] for c in result["cues"])}


def warm_child(spec: dict) -> dict:
    """In this process: load the toolkit once, ingest each file; times per call and peak RSS."""
    import resource

    from pipeline import store
    from pipeline.flow import ingest
    from pipeline.settings import load_settings

    t0 = time.perf_counter()
    settings = load_settings(db_url=spec["db"], engine=spec["engine"])
    engine = store.make_engine(settings.db_url)
    store.init_db(engine)
    kit = ingest.load_toolkit(settings)
    load_s = time.perf_counter() - t0
    calls = []
    for path in spec["files"]:
        c0, t0 = time.process_time(), time.perf_counter()
        res = ingest.ingest_file(engine, Path(path), kit, ingest.IngestOptions(account_id="BENCH-1"))
        calls.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "status": res.status,
                      "cues": len(res.cues)})
    return {"load_s": load_s, "calls": calls,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def warm(call: Path, engine: str, n: int, folder: Path) -> dict:
    files = [str(tagged_copy(call, folder / f"warm_{engine}_{i}.flac", f"bench copy {i}")) for i in range(n)]
    spec = {"engine": engine, "db": f"sqlite:///{folder / f'warm_{engine}.db'}", "files": files}
    r = measure([sys.executable, __file__, "--child-warm", json.dumps(spec)])
    if r["rc"] != 0:
        raise SystemExit(f"warm run with {engine} failed: {r['stderr'][-1500:]}")
    out = json.loads(r["stdout"].strip().splitlines()[-1])
    bad = [c for c in out["calls"] if c["status"] != "ok"]
    if bad:
        raise SystemExit(f"warm run with {engine}: a call was not stored: {bad[0]}")
    return {"load_s": round(out["load_s"], 2),
            "per_call_wall_s": round(statistics.median(c["wall_s"] for c in out["calls"]), 2),
            "per_call_cpu_s": round(statistics.median(c["cpu_s"] for c in out["calls"]), 2),
            "calls": len(out["calls"]), "peak_rss_mb": round(r["peak_rss_mb"], 1)}


# ---------------------------------------------------------------- WER of decoding settings


def wer(reference: str, hypothesis: str, language: str = "en") -> float:
    import jiwer
    from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

    norm = EnglishTextNormalizer() if language == "en" else BasicTextNormalizer()
    return float(jiwer.wer(norm(reference), norm(hypothesis)))


def wer_child(spec: dict) -> dict:
    from pipeline.settings import load_settings
    from pipeline.speech.transcribe import TranscribeOptions, load_asr, transcribe

    settings = load_settings()
    asr = load_asr(TranscribeOptions.from_settings(settings, language=spec.get("language"), **spec["options"]),
                   settings.models_dir)
    c0, t0 = time.process_time(), time.perf_counter()
    t = transcribe(Path(spec["path"]), asr)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "duration_s": t.duration,
            "text": " ".join(s.text for s in t.segments), "language": t.language}


def dev_wer(call: Path, call_ref: str, settings: list[tuple[str, dict]]) -> list[dict]:
    cases = [("bench call", call, call_ref, "en")]
    calls_dir = SHARED / "calls_dev"
    if calls_dir.is_dir():
        for truth_file in sorted(calls_dir.glob("*.truth.json")):
            truth = json.loads(truth_file.read_text())
            ref = " ".join(u["text"] for u in sorted(truth["turns"], key=lambda u: u["start"]))
            cases.append((truth["call_id"], calls_dir / f"{truth['call_id']}.stereo.flac", ref,
                          truth.get("language", "en")))
    else:
        print(f"(no dev calls at {calls_dir}: WER on the bench call only)")
    rows = []
    for name, options in settings:
        per = []
        for case, path, ref, lang in cases:
            r = measure([sys.executable, __file__, "--child-wer",
                         json.dumps({"path": str(path), "options": options})])
            if r["rc"] != 0:
                raise SystemExit(f"{name} on {case} failed: {r['stderr'][-1500:]}")
            out = json.loads(r["stdout"].strip().splitlines()[-1])
            per.append({"case": case, "language": lang, "wer": round(wer(ref, out["text"], lang), 4),
                        "cpu_s": round(out["cpu_s"], 1), "wall_s": round(out["wall_s"], 1),
                        "duration_s": out["duration_s"]})
            print(f"  {name:<48} {case:<11} {lang}  WER {per[-1]['wer']:.3f}  cpu {per[-1]['cpu_s']:6.1f} s  "
                  f"wall {per[-1]['wall_s']:6.1f} s", flush=True)
        english = [p for p in per if p["language"] == "en" and p["case"] != "bench call"]
        rows.append({"setting": name, "options": options, "calls": per,
                     "mean_wer_dev_en": round(statistics.mean(p["wer"] for p in english), 4) if english else None,
                     "cpu_s_dev_en": round(sum(p["cpu_s"] for p in english), 1) if english else None})
    return rows


# ---------------------------------------------------------------- driver


def _median(rows: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child-warm", help=argparse.SUPPRESS)
    ap.add_argument("--child-wer", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=3, help="cold runs per engine (default 3)")
    ap.add_argument("--warm", type=int, default=5, help="calls in the warm process (default 5)")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--dev-wer", action="store_true", help="WER of the decoding settings on the dev calls")
    ap.add_argument("--clip", action="store_true", help="cold ingest of an 11-second clip of the call")
    ap.add_argument("--only", action="append", default=None,
                    help="with --dev-wer: only the settings whose name contains this (repeatable)")
    args = ap.parse_args()
    if args.child_warm:
        print(json.dumps(warm_child(json.loads(args.child_warm))))
        return 0
    if args.child_wer:
        print(json.dumps(wer_child(json.loads(args.child_wer))))
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        call, ref = build_call(tmp / "call_5min.flac")
        duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                         "csv=p=0", str(call)], capture_output=True, text=True).stdout)
        print(f"call: {duration:.1f} s, dual-channel, {len(ref.split())} reference words "
              f"(samples/audio {', '.join(PARTS)})", flush=True)
        report: dict = {"call_s": round(duration, 1), "load_before": os.getloadavg()}
        if args.dev_wer:
            chosen = [st for st in SETTINGS if not args.only or any(o in st[0] for o in args.only)]
            report["dev_wer"] = dev_wer(call, ref, chosen)
        elif args.clip:
            clip = tmp / "clip_11s.flac"
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(call), "-t", "11", str(clip)],
                           check=True)
            rows = []
            for run in range(args.runs):
                rows.append(cold_ingest(clip, args.engines[0], tmp, run))
                print(f"clip  {args.engines[0]:<15} run {run + 1}: {rows[-1]['wall_s']:6.1f} s wall, "
                      f"{rows[-1]['cpu_s']:6.1f} s CPU, {rows[-1]['peak_rss_mb']:6.0f} MB peak", flush=True)
            report["clip"] = {"engine": args.engines[0], "runs": rows, "wall_s": _median(rows, "wall_s"),
                              "cpu_s": _median(rows, "cpu_s"), "peak_rss_mb": _median(rows, "peak_rss_mb")}
        else:
            cold: dict[str, list[dict]] = {e: [] for e in args.engines}
            for run in range(args.runs):
                for engine in args.engines:  # interleaved: A, B, A, B, ...
                    cold[engine].append(cold_ingest(call, engine, tmp, run))
                    r = cold[engine][-1]
                    print(f"cold {engine:<15} run {run + 1}: {r['wall_s']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU, "
                          f"{r['peak_rss_mb']:6.0f} MB peak, {len(r['cues'])} cues", flush=True)
            report["cold"] = {e: {"runs": rows, "wall_s": _median(rows, "wall_s"), "cpu_s": _median(rows, "cpu_s"),
                                  "peak_rss_mb": _median(rows, "peak_rss_mb")} for e, rows in cold.items()}
            report["warm"] = {}
            for engine in args.engines:
                report["warm"][engine] = w = warm(call, engine, args.warm, tmp)
                print(f"warm {engine:<15} load {w['load_s']:5.1f} s, then {w['per_call_wall_s']:5.1f} s wall / "
                      f"{w['per_call_cpu_s']:5.1f} s CPU per call (median of {w['calls']}), "
                      f"{w['peak_rss_mb']:.0f} MB peak", flush=True)
        report["load_after"] = os.getloadavg()
    _summary(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**old, **report}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def _summary(report: dict) -> None:
    print(f"\nload average before {report['load_before'][0]:.1f}, after {report['load_after'][0]:.1f} (2 cores)")
    cold = report.get("cold", {})
    for engine, c in cold.items():
        print(f"cold  {engine:<15} median {c['wall_s']:6.1f} s wall  {c['cpu_s']:6.1f} s CPU  "
              f"{c['peak_rss_mb']:6.0f} MB peak RSS")
    for engine, w in report.get("warm", {}).items():
        print(f"warm  {engine:<15} {w['per_call_wall_s']:6.1f} s wall per call  {w['per_call_cpu_s']:6.1f} s CPU  "
              f"{w['peak_rss_mb']:6.0f} MB peak RSS")
    if all(e in cold for e in ENGINES):
        fw, ow = cold["faster-whisper"], cold["openai-whisper"]
        print(f"faster-whisper / openai-whisper throughput, whole process: {ow['wall_s'] / fw['wall_s']:.1f}x wall, "
              f"{ow['cpu_s'] / fw['cpu_s']:.1f}x CPU")
    if "clip" in report:
        c = report["clip"]
        print(f"clip  {c['engine']:<15} median {c['wall_s']:6.1f} s wall  {c['cpu_s']:6.1f} s CPU  "
              f"{c['peak_rss_mb']:6.0f} MB peak RSS (11 s of audio, cold)")
    for row in report.get("dev_wer", []):
        if row["mean_wer_dev_en"] is not None:
            print(f"{row['setting']:<48} mean WER (English dev calls) {100 * row['mean_wer_dev_en']:.2f}%  "
                  f"CPU {row['cpu_s_dev_en']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
