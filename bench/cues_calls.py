"""Cues from audio, end to end: the dev calls transcribed and read by the default rule pack.

    python bench/cues_calls.py [--layouts stereo mono] [--out bench/results/cues_calls.json]
                               [--transcripts /tmp/cw_transcripts]

Each call of ../shared/data/calls_dev is transcribed as ingest does it (faster-whisper; channels
for the stereo file, diarization for the mono mix), then the pack (keyword + learned rules, as
ingest runs them) reads the transcript. A labelled customer turn of truth.json is found when a
cue of its label overlaps it in time; a cue is right when it overlaps a turn carrying its label.
Prints recall and precision per layout and writes every cue (right or wrong, with its rule and
confidence) and the misses to --out. --transcripts keeps each call's transcript in a folder
(pickled), so that a re-run after a rule change reads the rules again without the ASR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHURNWATCH_SHARED", ROOT.parent / "shared")) / "data" / "calls_dev"
SLACK_S = 1.0  # a cue may start or end this close to a labelled turn


def overlaps(a0, a1, b0, b1) -> bool:
    return a0 < b1 + SLACK_S and b0 < a1 + SLACK_S


def _transcript(audio: Path, asr, options, folder: Path | None):
    import pickle

    from pipeline.speech.transcribe import transcribe

    if folder is None:
        return transcribe(audio, asr, options)
    kept = folder / f"{audio.name}.{options.engine}.{options.model}.pickle"
    if kept.is_file():
        return pickle.loads(kept.read_bytes())
    transcript = transcribe(audio, asr, options)
    folder.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(pickle.dumps(transcript))
    return transcript


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", nargs="+", default=["stereo", "mono"], choices=["stereo", "mono"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cues_calls.json")
    ap.add_argument("--transcripts", type=Path, default=None, help="folder that keeps the transcripts between runs")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"no dev calls at {SHARED}")
    sys.path.insert(0, str(ROOT))
    from pipeline.cues.detect import detect
    from pipeline.cues.languages import load_nlp
    from pipeline.cues.learned import load_learned
    from pipeline.cues.rule_files import KeywordRule, LearnedRule, RulePack, load_pack
    from pipeline.settings import load_settings
    from pipeline.speech.transcribe import TranscribeOptions, load_asr

    settings = load_settings()
    pack = load_pack(ROOT / "rules")
    pack = RulePack([r for r in pack.rules if isinstance(r, (KeywordRule, LearnedRule))], pack.files, pack.folder)
    nlp = load_nlp(["en", "de", "ro", "ko"])
    learned = load_learned(pack, settings.models_dir / "cues")
    options = TranscribeOptions.from_settings(settings)
    asr = load_asr(options, settings.models_dir)
    report = {"command": "python bench/cues_calls.py " + " ".join(sys.argv[1:]), "layouts": {}}
    for layout in args.layouts:
        found = truth_n = right = cues_n = 0
        calls = []
        for truth_path in sorted(SHARED.glob("d_call_*.truth.json")):
            truth = json.loads(truth_path.read_text(encoding="utf-8"))
            audio = next(SHARED.glob(truth_path.name.replace(".truth.json", f".{layout}.*")))
            t0 = time.perf_counter()
            transcript = _transcript(audio, asr, options, args.transcripts)
            cues = [c for c in detect(transcript, pack, nlp, learned=learned) if c.speaker == "customer"]
            labelled = [t for t in truth["turns"] if t["speaker"] == "customer" and t["labels"]]
            misses = []
            for t in labelled:
                for label in t["labels"]:
                    truth_n += 1
                    if any(c.label == label and overlaps(c.start, c.end, t["start"], t["end"]) for c in cues):
                        found += 1
                    else:
                        misses.append({"label": label, "text": t["text"]})
            wrong = []
            for c in cues:
                cues_n += 1
                if any(label == c.label and overlaps(c.start, c.end, t["start"], t["end"])
                       for t in labelled for label in t["labels"]):
                    right += 1
                else:
                    wrong.append({"label": c.label, "quote": c.quote, "rule": c.rule, "score": round(c.score, 3)})
            calls.append({"call": truth_path.name.split(".")[0], "language": transcript.language,
                          "seconds": round(time.perf_counter() - t0, 1), "cues": len(cues),
                          "missed": misses, "wrong": wrong,
                          "all": [{"label": c.label, "quote": c.quote, "rule": c.rule, "score": round(c.score, 3)}
                                  for c in cues]})
            print(f"{layout} {calls[-1]['call']}: {len(cues)} cues, {len(misses)} missed, {len(wrong)} wrong "
                  f"({calls[-1]['seconds']} s)", flush=True)
        report["layouts"][layout] = {"labelled_cues": truth_n, "found": found, "cues": cues_n, "right": right,
                                     "recall": round(found / max(1, truth_n), 3),
                                     "precision": round(right / max(1, cues_n), 3), "calls": calls}
        r = report["layouts"][layout]
        print(f"{layout}: found {found} of {truth_n} labelled customer cues (recall {r['recall']:.0%}), "
              f"{right} of {cues_n} cues right (precision {r['precision']:.0%})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
