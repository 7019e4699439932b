"""Ingest throughput: the local executor against Ray with 1 and 2 single-threaded workers.

    python bench/scale.py                       # samples/audio/call_*.* , local + ray x1 + ray x2
    python bench/scale.py --copies 2            # each sample twice (distinct bytes), a longer batch
    python bench/scale.py --modes ray2 --address auto             # a running cluster (ray start --head)
    python bench/scale.py --modes ray1,ray2 --address ray://head:10001 --db postgresql+psycopg://...

Prints, per mode, wall seconds (model loading included: that is the start-up the batch has to
amortise), audio minutes per wall minute and files per minute, then the ratio of 2 workers to
1 worker (the target is >= 1.6x on a machine with at least 2 free cores). Writes the numbers
to bench/results/scale.json.

An existing Ray cluster: pass `--address auto` on a node of the cluster (after `ray start
--head` there), or `--address ray://HOST:10001` for Ray Client from elsewhere. Every node needs
this project installed with its models (`churnwatch models install`) at the same paths, and the
database must be one all nodes reach: use a PostgreSQL URL with `--db`, not SQLite, when the
workers run on other machines. Each mode gets a fresh database (a SQLite file in a temp folder
by default; with `--db`, the URL is used as given, so point each run at an empty database).

Every worker runs one ASR thread (threads_per_worker=1), and so does the local executor, so
the ratio measures parallel workers, not threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODES = {"local": ("local", 1), "ray1": ("ray", 1), "ray2": ("ray", 2)}


def sample_files(copies: int, folder: Path) -> list[Path]:
    """The sample calls, each `copies` times as distinct files (same audio, other bytes)."""
    src = sorted(p for p in (ROOT / "samples" / "audio").glob("call_*.*") if not p.name.endswith(".json"))
    out = []
    for k in range(copies):
        for p in src:
            if k == 0:
                out.append(p)
                continue
            dst = folder / f"{p.stem}.copy{k}{p.suffix}"
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(p), "-map", "0",
                            "-c", "copy", "-metadata", f"comment=copy {k}", str(dst)], check=True)
            out.append(dst)
    return out


def run_mode(mode: str, files: list[Path], db_url: str, address: str | None) -> dict:
    from pipeline.flow import ingest
    from pipeline.flow import executors as scale
    from pipeline import store
    from pipeline.settings import load_settings

    executor, workers = MODES[mode]
    settings = load_settings(db_url=db_url, threads=1)
    engine = store.make_engine(db_url)
    store.init_db(engine)
    engine.dispose()
    jobs = [(f, ingest.IngestOptions(account_id="ACC-BENCH")) for f in files]
    t0 = time.perf_counter()
    results = scale.run_jobs(jobs, settings, executor=executor, workers=workers, address=address,
                             progress=False, threads_per_worker=1)
    wall = time.perf_counter() - t0
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"{mode}: {len(bad)} file(s) not stored: {bad[0].file}: {bad[0].status} {bad[0].error}")
    return {"mode": mode, "executor": executor, "workers": workers, "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="local,ray1,ray2", help="comma list of local, ray1, ray2")
    ap.add_argument("--copies", type=int, default=1, help="ingest each sample call this many times")
    ap.add_argument("--address", default=None, help="Ray cluster: auto or ray://host:10001")
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file per mode)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = ap.parse_args()

    import torch

    from pipeline.speech import audio

    torch.set_num_threads(1)  # the local executor runs single-threaded too
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = sample_files(args.copies, tmp)
        audio_s = sum(audio.probe(f).duration for f in files)
        rows = []
        for mode in args.modes.split(","):
            db_url = args.db or f"sqlite:///{tmp / (mode + '.db')}"
            row = run_mode(mode, files, db_url, args.address)
            row["audio_min_per_wall_min"] = round(audio_s / row["wall_s"], 2)
            row["files_per_min"] = round(len(files) / (row["wall_s"] / 60), 2)
            rows.append(row)
            print(f"{mode:6s} {row['wall_s']:8.1f} s  {row['audio_min_per_wall_min']:6.2f} audio-min/min"
                  f"  {row['files_per_min']:6.2f} files/min", flush=True)

    by_mode = {r["mode"]: r for r in rows}
    ratio = (round(by_mode["ray1"]["wall_s"] / by_mode["ray2"]["wall_s"], 2)
             if {"ray1", "ray2"} <= set(by_mode) else None)
    print(f"\n{len(files)} files, {audio_s / 60:.1f} audio minutes, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'mode':6s} {'workers':>7s} {'wall s':>8s} {'audio min/min':>14s} {'files/min':>10s}")
    for r in rows:
        print(f"{r['mode']:6s} {r['workers']:7d} {r['wall_s']:8.1f} {r['audio_min_per_wall_min']:14.2f} "
              f"{r['files_per_min']:10.2f}")
    if ratio is not None:
        print(f"ray 2 workers / 1 worker: {ratio:.2f}x (target >= 1.6x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "files": len(files), "audio_minutes": round(audio_s / 60, 2), "cpus": os.cpu_count(),
        "load_average_after": round(os.getloadavg()[0], 2), "machine": platform.platform(),
        "address": args.address, "rows": rows, "ray2_over_ray1": ratio,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
