"""From upload to the rep's hint: `churnwatch serve` on this machine, measured end to end.

    python bench/service.py [--workers 2] [--sequential 5] [--parallel 10] [--out bench/results/service.json]

Starts `churnwatch serve` (a real process, uvicorn and N worker processes, SQLite in a temporary
folder, the sample CRM imported) with its webhook pointed at a local receiver, builds a 5-minute
dual-channel call from the sample calls (each upload gets a few ms more silence, so each is a new
recording, not a duplicate), then:
1. uploads one short call and waits for its hint (the workers have loaded their models);
2. uploads the 5-minute call --sequential times, one after the other, and measures the seconds
   from the POST to the hint's arrival at the webhook (goal: 60 s or less), median and each;
3. uploads --parallel calls at once and measures the time until the last hint: calls per minute
   with --workers workers.
Prints the numbers and writes them to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
STEREO = ["call_01.flac", "call_03.wav", "call_05.flac", "call_07.flac", "call_08.flac"]
ACCOUNT = "ACC-1003"


class Hook:
    """A Slack-like webhook on 127.0.0.1 that notes when each message arrives."""

    def __init__(self):
        self.arrivals: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.cond:
                    outer.arrivals.append((time.monotonic(), body))
                    outer.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hints(self) -> list[float]:
        return [t for t, body in self.arrivals if body.get("text", "").startswith("After your call")]

    def wait_for_hints(self, n: int, timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.hints()) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(self.hints())} of {n} hints arrived in {timeout:.0f} s")
                self.cond.wait(left)
            return self.hints()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_call(work: Path, variants: int) -> list[Path]:
    """A 5-minute stereo call from the sample calls, in `variants` copies that differ by silence."""
    inputs = [ROOT / "samples" / "audio" / name for name in STEREO]
    base = work / "five_minutes.wav"
    args = ["ffmpeg", "-v", "error", "-y"]
    for p in inputs:
        args += ["-i", str(p)]
    chain = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=stereo[a{i}];" for i in range(len(inputs)))
    chain += "".join(f"[a{i}]" for i in range(len(inputs))) + f"concat=n={len(inputs)}:v=0:a=1,atrim=0:300[out]"
    subprocess.run(args + ["-filter_complex", chain, "-map", "[out]", "-ar", "16000", str(base)], check=True)
    out = []
    for k in range(variants):
        path = work / f"call_{k:02d}.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-af", f"apad=pad_dur={0.01 * (k + 1):.2f}",
                        str(path)], check=True)
        out.append(path)
    return out


def prepare_db(db_url: str) -> str:
    from pipeline import crm, store

    engine = store.make_engine(db_url)
    store.init_db(engine)
    with store.session_scope(engine) as session:
        for kind in ("accounts", "orders", "activities", "contacts", "support"):
            crm.import_csv(session, ROOT / "samples" / "crm" / f"{kind}.csv", kind)
        _, token = store.add_user(session, "bench@churnwatch.example.com", "manager")
    engine.dispose()
    return token


def upload(base: str, token: str, path: Path, day: str = "2026-10-06") -> float:
    import httpx

    start = time.monotonic()
    with path.open("rb") as f:
        r = httpx.post(f"{base}/api/v1/calls", headers={"Authorization": f"Bearer {token}"},
                       files={"file": (path.name, f, "audio/wav")},
                       data={"account_id": ACCOUNT, "call_date": day}, timeout=120)
    r.raise_for_status()
    return start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sequential", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "service.json")
    args = ap.parse_args()
    import httpx

    work = Path(tempfile.mkdtemp(prefix="churnwatch-service-"))
    calls = build_call(work, args.sequential + args.parallel)
    short = work / "short.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(ROOT / "samples" / "audio" / "call_03.wav"), "-t", "20",
                    "-ar", "16000", str(short)], check=True)
    db_url = f"sqlite:///{work / 'churnwatch.db'}"
    token = prepare_db(db_url)
    hook = Hook()
    port = _free_port()
    env = {**os.environ, "CHURNWATCH_WEBHOOK_URL": hook.url, "CHURNWATCH_DB": db_url}
    serve = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port), "--workers",
                              str(args.workers), "--db", db_url, "--data-dir", str(work / "data")],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"))
    base = f"http://127.0.0.1:{port}"
    result: dict = {"machine": platform.platform(), "cpus": os.cpu_count(), "workers": args.workers,
                    "call_seconds": 300}
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        t0 = upload(base, token, short)
        hook.wait_for_hints(1, 600)
        result["first_short_call_s"] = round(hook.hints()[0] - t0, 1)  # includes the workers' model loading
        print(f"warm-up: short call's hint after {result['first_short_call_s']} s (models loading)", flush=True)
        latencies = []
        for k in range(args.sequential):
            done = len(hook.hints())
            t0 = upload(base, token, calls[k])
            arrived = hook.wait_for_hints(done + 1, 900)[done]
            latencies.append(round(arrived - t0, 1))
            print(f"5-minute call {k + 1}: hint after {latencies[-1]} s", flush=True)
        result["upload_to_hint_s"] = latencies
        result["upload_to_hint_median_s"] = statistics.median(latencies)
        done = len(hook.hints())
        t0 = time.monotonic()
        for path in calls[args.sequential:]:
            upload(base, token, path)
        last = hook.wait_for_hints(done + args.parallel, 3600)[-1]
        span = last - t0
        result["parallel_calls"] = args.parallel
        result["parallel_wall_s"] = round(span, 1)
        result["calls_per_minute"] = round(args.parallel / span * 60, 2)
        print(f"{args.parallel} calls at once with {args.workers} workers: last hint after {span:.0f} s "
              f"({result['calls_per_minute']} calls/min, {span / args.parallel:.1f} s per call)", flush=True)
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        hook.server.shutdown()
    print(f"median upload -> hint: {result.get('upload_to_hint_median_s')} s (goal: 60 s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
