"""End to end: a real recording through the API and a worker with the real models, and the real
`churnwatch serve` as a subprocess on a free port, spoken to over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline.flow.worker import Worker
from pipeline.settings import load_settings

from web_helpers import TWO_VOICES, auth, real_kit, upload, wav_bytes

CLI = Path(sys.executable).with_name("churnwatch")


@pytest.mark.slow
def test_an_upload_becomes_a_stored_call_with_cues_and_a_hint(client, book, engine):
    data = TWO_VOICES.read_bytes()
    r = upload(client, book.maya, data=data, name="two_voices.ogg", account_id="ACC-1003", call_date="2026-10-06")
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    worker = Worker(engine, load_settings(db_url=str(engine.url)), kit=real_kit(), name="e2e", poll_seconds=0.01)
    assert worker.run(until_empty=True) == 1

    job = client.get(f"/api/v1/jobs/{job_id}", headers=auth(book.maya)).json()
    assert job["status"] == "done", job
    assert job["call_id"] and job["cues"], job
    assert any(c["label"] == "cancellation_intent" for c in job["cues"])
    assert job["hints"] and "Kestrel Dental Group" in job["hints"][0]["text"]

    call = client.get(f"/api/v1/calls/{job['call_id']}", headers=auth(book.maya)).json()
    assert call["account_id"] == "ACC-1003" and call["rep"] == "Maya Okafor"
    assert call["segments"] and {s["speaker"] for s in call["segments"]} <= {"rep", "customer"}
    assert call["cues"][0]["rule"] and call["cues"][0]["rule_version"] >= 1
    assert call["risk"]["score"] >= 0 and call["hints"] == job["hints"]
    assert job["warnings"] == call["warnings"] == []  # English, clearly
    assert client.get(f"/api/v1/calls/{job['call_id']}", headers=auth(book.callum)).status_code == 404

    again = upload(client, book.maya, data=data, name="copy.ogg", account_id="ACC-1003", external_id="other-id")
    assert again.status_code == 202
    worker.run(until_empty=True)
    dup = client.get(f"/api/v1/jobs/{again.json()['job_id']}", headers=auth(book.maya)).json()
    assert dup["status"] == "duplicate" and dup["call_id"] == job["call_id"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=120)


def _serve(tmp_path: Path, db: str, workers: int, extra: tuple[str, ...] = ()):
    env = {**os.environ, "CHURNWATCH_DB": db, "CHURNWATCH_CONFIG": str(tmp_path / "none.toml")}
    assert _run_cli("init", env=env).returncode == 0
    added = _run_cli("users", "add", "boss@example.com", "--role", "manager", "--json", env=env)
    assert added.returncode == 0, added.stderr
    import json

    token = json.loads(added.stdout)["token"]
    listed = _run_cli("users", "list", "--json", env=env)
    assert json.loads(listed.stdout)[0]["email"] == "boss@example.com" and token not in listed.stdout
    port = _free_port()
    proc = subprocess.Popen([str(CLI), "serve", "--port", str(port), "--workers", str(workers), "--grace", "20",
                             "--data-dir", str(tmp_path / "data"), *extra], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("serve did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.2)
    return proc, base, token


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail("serve did not stop on SIGTERM:\n" + out)
    assert proc.returncode == 0, out
    return out


def test_serve_answers_uploads_over_http_and_stops_on_sigterm(tmp_path, db_url):
    proc, base, token = _serve(tmp_path, db_url, workers=0)
    try:
        assert httpx.get(f"{base}/api/v1/jobs").status_code == 401
        r = httpx.post(f"{base}/api/v1/calls", headers=auth(token), timeout=30,
                       files={"file": ("call.wav", wav_bytes(), "audio/wav")},
                       data={"account_id": "ACC-1003", "rep": "Maya Okafor", "call_date": "2026-10-06"})
        assert r.status_code == 202, r.text
        job = httpx.get(f"{base}/api/v1/jobs/{r.json()['job_id']}", headers=auth(token)).json()
        assert job["status"] == "queued" and job["account_id"] == "ACC-1003"
    finally:
        out = _stop(proc) if proc.poll() is None else proc.stdout.read()
    assert "stopped." in out and "Traceback" not in out


@pytest.mark.slow
def test_serve_with_a_worker_and_a_watch_folder_turns_recordings_into_calls(tmp_path, db_url):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    proc, base, token = _serve(tmp_path, db_url, workers=1, extra=("--watch", str(inbox)))
    try:
        r = httpx.post(f"{base}/api/v1/calls", headers=auth(token), timeout=30,
                       files={"file": ("two_voices.ogg", TWO_VOICES.read_bytes(), "audio/ogg")},
                       data={"account_id": "ACC-1003", "call_date": "2026-10-06", "external_id": "ext-1"})
        assert r.status_code == 202, r.text
        (inbox / "dropped.wav").write_bytes(wav_bytes())  # no fields: fails with the reason
        deadline = time.monotonic() + 240
        while True:
            job = httpx.get(f"{base}/api/v1/jobs/{r.json()['job_id']}", headers=auth(token)).json()
            if job["status"] not in ("queued", "running") and (inbox / "failed" / "dropped.error.txt").exists():
                break
            assert time.monotonic() < deadline, job
            time.sleep(1)
        assert job["status"] == "done" and job["call_id"] and job["hints"], job
        assert "account_id" in (inbox / "failed" / "dropped.error.txt").read_text()
    finally:
        out = _stop(proc) if proc.poll() is None else proc.stdout.read()
    assert "stopped." in out
