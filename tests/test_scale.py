"""Executors and crash safety: Ray workers, a killed ingest run again, two runs at once.

Each test starts real processes that load the models (tens of seconds each on a small
machine), so all are marked slow. Clips are short cuts of tests/data/two_voices.stereo.ogg
(see tests/test_ingest.py), each with its own audio hash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from test_ingest import ACCOUNT, load_kit, make_clips

from pipeline.flow import ingest
from pipeline import store
from pipeline.speech.audio import audio_sha256

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "pipeline.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "CHURNWATCH_THREADS": "1"}


def ingest_cmd(files, db_url: str) -> list[str]:
    return CLI + ["ingest", *map(str, files), "--account", ACCOUNT, "--date", "2026-10-06",
                  "--db", db_url, "--json"]


def calls_count(db_url: str) -> int:
    eng = create_engine(db_url)
    try:
        with eng.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM calls")).scalar_one()
    except DBAPIError:  # the table does not exist yet
        return 0
    finally:
        eng.dispose()


def assert_each_stored_once(db_url: str, files: list[Path]) -> None:
    """Every file stored exactly once, whole: status done, its segments, no duplicate cues."""
    engine = store.make_engine(db_url)
    with store.session_scope(engine) as s:
        calls = s.scalars(select(store.Call)).all()
        assert sorted(c.audio_sha256 for c in calls) == sorted(audio_sha256(f) for f in files)
        for c in calls:
            assert c.status == "done" and c.segments, (c.id, c.source)
            assert [seg.idx for seg in c.segments] == list(range(len(c.segments)))
        keys = s.execute(select(store.Cue.call_id, store.Cue.segment_id, store.Cue.rule_name,
                                store.Cue.rule_version)).all()
        assert len(keys) == len(set(keys)) and keys
        orphans = s.scalar(select(func.count()).select_from(store.Segment)
                           .where(store.Segment.call_id.not_in(select(store.Call.id))))
        assert orphans == 0
    engine.dispose()


@pytest.fixture(scope="module")
def four_clips(tmp_path_factory) -> list[Path]:
    load_kit()  # skips when Whisper tiny.en is not installed
    # from 8.75 s on, the customer's "cancelling" is whole; shorter cuts end in "cancer" and carry no cue
    return make_clips(tmp_path_factory.mktemp("four"), 4, base=9.0)


# --- Ray ----------------------------------------------------------------------------------------


def test_ray_two_workers_store_each_file_once_in_job_order(tmp_path, four_clips):
    pytest.importorskip("ray")
    from pipeline.flow import executors as scale
    from pipeline.settings import load_settings

    url = f"sqlite:///{tmp_path / 'ray.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    files = four_clips[:3]
    jobs = [(f, ingest.IngestOptions(account_id=ACCOUNT)) for f in files] + [
        (files[0], ingest.IngestOptions(account_id=ACCOUNT))]  # the same file again: a duplicate

    results = scale.run_jobs(jobs, load_settings(db_url=url), executor="ray", workers=2,
                             progress=False, threads_per_worker=1)

    assert [r.file for r in results] == [str(f) for f, _ in jobs]
    assert [r.status for r in results[:3]] == ["ok"] * 3, [r.error for r in results]
    assert results[3].status == "duplicate" and results[3].call_id == results[0].call_id
    assert len({r.call_id for r in results}) == 3
    assert_each_stored_once(url, files)
    engine.dispose()


# --- a killed run, run again --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_ingest_rerun_stores_each_file_once(tmp_path, four_clips, backend, request):
    db_url = (f"sqlite:///{tmp_path / 'kill.db'}" if backend == "sqlite"
              else request.getfixturevalue("postgres_url"))
    proc = subprocess.Popen(ingest_cmd(four_clips, db_url), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 400
        while calls_count(db_url) < 1:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no call committed in time"
            time.sleep(0.1)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert running, "the first run finished before it could be killed"
    stored = calls_count(db_url)
    assert 1 <= stored < len(four_clips)

    rerun = subprocess.run(ingest_cmd(four_clips, db_url), cwd=ROOT, env=_env(), capture_output=True,
                           text=True, timeout=600, check=False)

    assert rerun.returncode == 0, rerun.stderr
    statuses = [r["status"] for r in json.loads(rerun.stdout)]
    assert statuses.count("duplicate") == stored and statuses.count("ok") == len(four_clips) - stored
    assert_each_stored_once(db_url, four_clips)


# --- two runs at once on PostgreSQL ------------------------------------------------------------


def test_two_concurrent_runs_on_postgres_store_each_file_once(four_clips, postgres_url):
    engine = store.make_engine(postgres_url)
    store.init_db(engine)  # both runs would race to create the schema otherwise
    engine.dispose()
    a_files = four_clips[0:3]  # 1, 2, 3
    b_files = [four_clips[2], four_clips[1], four_clips[3]]  # 3, 2, 4: both reach 2 at about the same time
    procs = [subprocess.Popen(ingest_cmd(files, postgres_url), cwd=ROOT, env=_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for files in (a_files, b_files)]
    outs = [p.communicate(timeout=600) for p in procs]

    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    results = [r for out, _ in outs for r in json.loads(out)]
    by_file: dict[str, list[dict]] = {}
    for r in results:
        by_file.setdefault(r["file"], []).append(r)
    for f in four_clips:
        rs = by_file[str(f)]
        assert sorted(r["status"] for r in rs) == (["duplicate", "ok"] if len(rs) == 2 else ["ok"]), rs
        assert len({r["call_id"] for r in rs}) == 1
    assert_each_stored_once(postgres_url, four_clips)
