"""ASR benchmark: speed, peak memory, WER and speaker attribution for each engine and model.

    python bench/asr.py                 # everything found (project clips, ../shared/data)
    python bench/asr.py --quick         # project clips and JFK only
    python bench/asr.py --threads 2 --calls d_call_01 d_call_02

Each run is a fresh subprocess, so peak memory (ru_maxrss) belongs to that run alone.
Numbers per run:
- rtf: audio seconds per wall second of `transcribe()` (model loading excluded; load_s apart);
  cpu_rtf: audio seconds per CPU second of the process (robust when the machine is shared);
- peak_rss_mb: the subprocess's peak resident memory;
- wer: jiwer WER after whisper's EnglishTextNormalizer (lowercase, no punctuation, numbers
  spelled consistently; BasicTextNormalizer for other languages);
- speaker_acc: share of recognised words whose speaker matches the truth turn at the word's
  midpoint (truth.json turns; the pyannote sample's STM with its first speaker as the rep).
The speed comparison runs the default path (faster-whisper, dual-channel, VAD) on a stereo dev
call against openai-whisper on its mono mix (plain `whisper.transcribe`, same model) and plain
faster-whisper on both full channels. Prints a table; writes bench/results/asr.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared")) / "data"
JFK_REF = ("And so my fellow Americans, ask not what your country can do for you, "
           "ask what you can do for your country.")


# ---------------------------------------------------------------- one run (child process)


def _child(spec: dict) -> dict:
    import numpy as np

    from pipeline.speech import audio
    from pipeline.speech.transcribe import TranscribeOptions, load_asr, transcribe, transcript_json

    models_dir = Path(spec.get("models_dir", ROOT / "models"))
    t0 = time.perf_counter()
    options = TranscribeOptions(engine=spec["engine"], model=spec["model"], threads=spec["threads"],
                                language=spec.get("language"))
    asr = load_asr(options, models_dir)
    load_s = time.perf_counter() - t0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    mode = spec.get("mode", "pipeline")
    path = Path(spec["path"])
    if mode == "pipeline":
        result = transcript_json(transcribe(path, asr))
        duration = result["duration"]
    elif mode == "plain-openai":  # whisper.transcribe on the whole (mono) file, no VAD
        import torch
        import whisper

        torch.set_num_threads(spec["threads"])
        x = audio.decode(path, channels=1)[0]
        out = whisper.transcribe(asr.model(spec["model"]), x, language="en", beam_size=5,
                                 word_timestamps=True, fp16=False,
                                 condition_on_previous_text=False)
        duration = x.size / audio.SAMPLE_RATE
        result = {"segments": [{"text": s["text"], "speaker": None, "words": []}
                               for s in out["segments"]]}
    elif mode == "plain-faster-both":  # faster-whisper on each full channel, no VAD
        x = audio.decode(path)
        model = asr.model(spec["model"])
        segs = []
        for ch in range(x.shape[0]):
            s_iter, _ = model.transcribe(x[ch], language="en", beam_size=5, word_timestamps=True,
                                         condition_on_previous_text=False)
            segs += [{"text": s.text, "speaker": ["rep", "customer"][ch], "start": s.start,
                      "words": []} for s in s_iter]
        duration = x.shape[1] / audio.SAMPLE_RATE
        result = {"segments": sorted(segs, key=lambda s: s["start"])}
    else:
        raise SystemExit(f"unknown mode {mode}")
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    del np
    return {"wall_s": wall, "cpu_s": cpu, "load_s": load_s, "duration_s": duration,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "transcript": result}


def run(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          check=False, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- scoring


def normalizer(language: str):
    from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer() if language == "en" else BasicTextNormalizer()


def wer(reference: str, hypothesis: str, language: str = "en") -> float:
    import jiwer

    norm = normalizer(language)
    ref, hyp = norm(reference), norm(hypothesis)
    return float(jiwer.wer(ref, hyp)) if ref.strip() else float("nan")


def _plain(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def speaker_accuracy(transcript: dict, turns: list[dict]) -> float | None:
    """Share of recognised words given the right speaker.

    Hypothesis words (in time order) are aligned to the reference words (turns in time order,
    each word tagged with its turn's speaker) with jiwer; every aligned pair (hit or
    substitution) counts, so timing error at turn boundaries does not blur the measure.
    """
    import jiwer

    ref = [(_plain(w), u["speaker"]) for u in sorted(turns, key=lambda u: u["start"])
           for w in u["text"].split() if _plain(w)]
    hyp = sorted(((w["start"], _plain(w["word"]), s["speaker"]) for s in transcript["segments"]
                  for w in s.get("words", []) if _plain(w["word"])), key=lambda x: x[0])
    if not hyp or not ref:
        return None
    out = jiwer.process_words(" ".join(w for w, _ in ref), " ".join(w for _, w, _ in hyp))
    right = total = 0
    for chunk in out.alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for i, j in zip(range(chunk.ref_start_idx, chunk.ref_end_idx),
                            range(chunk.hyp_start_idx, chunk.hyp_end_idx)):
                total += 1
                right += ref[i][1] == hyp[j][2]
    return right / total if total else None


def _text(result: dict) -> str:
    return " ".join(s["text"] for s in result["transcript"]["segments"])


def pyannote_truth() -> tuple[str, list[dict]]:
    turns = []
    for line in (SHARED / "real" / "pyannote_sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and not line.startswith(";;"):
            turns.append({"speaker": parts[2], "start": float(parts[3]), "end": float(parts[4]),
                          "text": parts[5]})
    if not turns:  # tolerate a 4-column "speaker start end text" layout
        for line in (SHARED / "real" / "pyannote_sample.stm").read_text().splitlines():
            spk, a, b, text = line.split(maxsplit=3)
            turns.append({"speaker": spk, "start": float(a), "end": float(b), "text": text})
    first = min(turns, key=lambda u: u["start"])["speaker"]
    for u in turns:
        u["speaker"] = "rep" if u["speaker"] == first else "customer"
    return " ".join(u["text"] for u in turns), turns


# ---------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="project clips and JFK only")
    ap.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    ap.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    ap.add_argument("--engines", nargs="+", default=["faster-whisper", "openai-whisper"])
    ap.add_argument("--speed-models", nargs="+", default=["tiny.en"],
                    help="models for the speed comparison on a dev call")
    ap.add_argument("--calls", nargs="*", help="dev call ids (default: all found)")
    ap.add_argument("--skip-mono-other", action="store_true",
                    help="skip the mono mixes of non-English dev calls")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "asr.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    rows: list[dict] = []

    def record(name, spec, ref=None, turns=None, language="en"):
        r = run({**spec, "threads": args.threads})
        row = {"case": name, "engine": spec["engine"], "model": spec["model"],
               "mode": spec.get("mode", "pipeline")}
        if "error" in r:
            row["error"] = r["error"]
        else:
            row.update({k: round(r[k], 3) for k in ("wall_s", "cpu_s", "load_s", "duration_s",
                                                    "peak_rss_mb")})
            row["rtf"] = round(r["duration_s"] / r["wall_s"], 2)
            row["cpu_rtf"] = round(r["duration_s"] / max(r["cpu_s"], 1e-9), 2)
            row["language"] = r["transcript"].get("language")
            if ref is not None:
                row["wer"] = round(wer(ref, _text(r), language), 4)
            if turns is not None:
                acc = speaker_accuracy(r["transcript"], turns)
                row["speaker_acc"] = None if acc is None else round(acc, 4)
            row["text_head"] = _text(r)[:100]
            keep = args.out.parent / "transcripts"
            keep.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"[^\w.-]+", "_", f"{name}.{spec['engine']}.{spec['model']}")
            (keep / f"{slug}.json").write_text(json.dumps(r["transcript"], indent=1))
        rows.append(row)
        print(_fmt(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
        return row

    print(_fmt(None))
    clip = ROOT / "tests" / "data"
    clip_truth = json.loads((clip / "two_voices.truth.json").read_text())
    clip_ref = " ".join(t["text"] for t in clip_truth["turns"])
    calls_dir = SHARED / "calls_dev"
    if not args.quick and calls_dir.exists():
        ids = args.calls or sorted(p.name.split(".")[0] for p in calls_dir.glob("*.truth.json"))
        for cid in ids:
            truth = json.loads((calls_dir / f"{cid}.truth.json").read_text())
            ref = " ".join(t["text"] for t in truth["turns"])
            lang = truth.get("language", "en")
            spec = {"engine": "faster-whisper", "model": "tiny.en"}
            record(f"{cid}.stereo", {**spec, "path": str(calls_dir / f"{cid}.stereo.flac")},
                   ref, truth["turns"], lang)
            if lang == "en" or not args.skip_mono_other:
                record(f"{cid}.mono", {**spec, "path": str(calls_dir / f"{cid}.mono.mp3")},
                       ref, truth["turns"], lang)
        # the speed comparison on the first English call
        cid = next(c for c in ids if json.loads((calls_dir / f"{c}.truth.json").read_text())
                   .get("language", "en") == "en")
        truth = json.loads((calls_dir / f"{cid}.truth.json").read_text())
        ref = " ".join(t["text"] for t in truth["turns"])
        for model in args.speed_models:
            spec = {"model": model, "language": "en"}
            record(f"speed:{cid}.stereo default",
                   {**spec, "engine": "faster-whisper", "path": str(calls_dir / f"{cid}.stereo.flac")},
                   ref, truth["turns"])
            record(f"speed:{cid}.mono openai-plain",
                   {**spec, "engine": "openai-whisper", "mode": "plain-openai",
                    "path": str(calls_dir / f"{cid}.mono.mp3")}, ref)
            record(f"speed:{cid}.stereo faster-plain-both",
                   {**spec, "engine": "faster-whisper", "mode": "plain-faster-both",
                    "path": str(calls_dir / f"{cid}.stereo.flac")}, ref)
    real = SHARED / "real"
    for model in args.models:
        for engine in args.engines:
            spec = {"engine": engine, "model": model}
            if (real / "jfk.flac").exists():
                record("jfk", {**spec, "path": str(real / "jfk.flac")}, JFK_REF)
            record("clip.stereo", {**spec, "path": str(clip / "two_voices.stereo.ogg")},
                   clip_ref, clip_truth["turns"])
            record("clip.mono", {**spec, "path": str(clip / "two_voices.mono.mp3")},
                   clip_ref, clip_truth["turns"])
            if not args.quick and (real / "pyannote_sample.stm").exists():
                ref, turns = pyannote_truth()
                record("pyannote", {**spec, "path": str(real / "pyannote_sample.wav")}, ref, turns)
    print(f"\nwrote {args.out}")


def _fmt(row: dict | None) -> str:
    cols = [("case", 36), ("engine", 15), ("model", 8), ("lang", 4), ("rtf", 6), ("cpu_rtf", 7),
            ("load_s", 6), ("peak_rss_mb", 11), ("wer", 6), ("speaker_acc", 11)]
    if row is None:
        return " ".join(f"{c:<{w}}" for c, w in cols)
    if "error" in row:
        return f"{row['case']:<36} {row['engine']:<15} {row['model']:<8} ERROR {row['error']}"
    row = {**row, "lang": row.get("language") or "-"}
    return " ".join(f"{row.get(c, '-')!s:<{w}}" for c, w in cols)


if __name__ == "__main__":
    main()
