"""The HTTP API on every backend: tokens, a rep's book, uploads, external ids, participants' e-mails."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from pipeline import store
from pipeline.flow.worker import Worker

from web_helpers import auth, upload, wav_bytes


def _uploads(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "uploads").rglob("*") if p.is_file()] if (data_dir / "uploads").exists() else []


def _job_count(engine) -> int:
    with store.session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(store.Job))


def test_healthz_and_openapi_need_no_token_and_no_cdn(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert "/api/v1/calls" in spec["paths"]
    assert client.get("/docs").status_code == 404  # the CDN-backed pages are off


def test_every_api_route_needs_a_valid_token(client, book):
    for method, url in [("get", "/api/v1/jobs/1"), ("get", "/api/v1/jobs"), ("get", "/api/v1/calls/1"),
                        ("post", "/api/v1/calls")]:
        r = getattr(client, method)(url)
        assert r.status_code == 401, url
        assert r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["detail"]
        r = getattr(client, method)(url, headers=auth("cw_not-a-real-token"))
        assert r.status_code == 401
        assert "not valid" in r.json()["detail"]
        assert "Traceback" not in r.text
    r = client.get("/api/v1/jobs", headers={"Authorization": f"Basic {book.maya}"})
    assert r.status_code == 401


def test_a_rep_uploads_and_reads_only_their_own_book(client, book, engine):
    mine = upload(client, book.maya, account_id="ACC-1003", call_date="2026-10-06")
    assert mine.status_code == 202, mine.text
    body = mine.json()
    assert body["status"] == "queued" and isinstance(body["job_id"], int)

    theirs = upload(client, book.maya, account_id="ACC-1002", call_date="2026-10-06")
    assert theirs.status_code == 403
    assert "not in your book" in theirs.json()["detail"]
    assert upload(client, book.maya, account_id="ACC-1003", rep="Callum Reid").status_code == 403
    assert upload(client, book.coach, account_id="ACC-1003").status_code == 403  # coaches read, never upload

    url = f"/api/v1/jobs/{body['job_id']}"
    assert client.get(url, headers=auth(book.maya)).json()["status"] == "queued"
    other = client.get(url, headers=auth(book.callum))
    assert other.status_code == 404  # the same answer as for a job that does not exist
    assert client.get(url, headers=auth(book.manager)).status_code == 200
    assert client.get(url, headers=auth(book.coach)).status_code == 200
    assert client.get("/api/v1/jobs", headers=auth(book.callum)).json() == {"jobs": []}
    assert [j["job_id"] for j in client.get("/api/v1/jobs", headers=auth(book.maya)).json()["jobs"]] == [body["job_id"]]

    by_manager = upload(client, book.manager, data=wav_bytes(tone=3), account_id="ACC-1002")
    assert by_manager.status_code == 202
    with store.session_scope(engine) as session:
        job = session.get(store.Job, by_manager.json()["job_id"])
        assert job.rep == "Callum Reid"  # the account's rep when none is given
        assert session.get(store.Job, body["job_id"]).rep == "Maya Okafor"


def test_the_same_external_id_twice_gives_the_first_job(client, book, engine, data_dir):
    first = upload(client, book.maya, account_id="ACC-1003", external_id="dialer-42")
    assert first.status_code == 202
    again = upload(client, book.maya, data=wav_bytes(tone=5), account_id="ACC-1003", external_id="dialer-42")
    assert again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"] and again.json()["existing"] is True
    assert _job_count(engine) == 1
    assert len(_uploads(data_dir)) == 1  # the second copy is not kept
    # another rep cannot learn anything about a job through its external id
    assert upload(client, book.callum, account_id="ACC-1002", external_id="dialer-42").status_code == 409


def test_the_account_is_found_from_the_participants(client, book, engine):
    by_contact = upload(client, book.manager, participants="maya.okafor@churnwatch-seller.example.com, "
                                                          "MARTIN.SHAW@harrowgate-group.example.com")
    assert by_contact.status_code == 202, by_contact.text
    assert by_contact.json()["account_id"] == "ACC-1002" and by_contact.json()["matched_by"] == "contact"

    by_domain = upload(client, book.manager, data=wav_bytes(tone=1),
                       participants="new.cfo@harrowgate-group.example.com,boss@churnwatch-seller.example.com")
    assert by_domain.status_code == 202
    assert by_domain.json()["account_id"] == "ACC-1002" and by_domain.json()["matched_by"] == "domain"

    # a rep's participants lookup still only reaches their own book
    assert upload(client, book.maya, participants="olga.adams@harrowgate-group.example.com").status_code == 403

    for participants, words in [("someone@gmail.com,other@unknown-firm.example.com", "No CRM contact"),
                                ("maya.okafor@churnwatch-seller.example.com", "No CRM contact"),
                                ("x@shared-domain.example.com", "several accounts"),
                                (None, "give account_id"),
                                ("not-an-address", "not an e-mail address")]:
        r = upload(client, book.manager, participants=participants)
        assert r.status_code == 422, (participants, r.text)
        assert words in r.json()["detail"]
    assert _job_count(engine) == 2


def test_uploads_are_checked_and_stored_under_a_generated_name(client, book, data_dir):
    too_big = upload(client, book.maya, data=b"RIFF" + b"\0" * (2 << 20), account_id="ACC-1003")
    assert too_big.status_code == 413 and "limit of 1 MB" in too_big.json()["detail"]
    wrong_suffix = upload(client, book.maya, name="notes.txt", account_id="ACC-1003")
    assert wrong_suffix.status_code == 415 and "notes.txt" in wrong_suffix.json()["detail"]
    not_audio = upload(client, book.maya, data=b"#!/bin/sh\nrm -rf /\n", name="call.wav", account_id="ACC-1003")
    assert not_audio.status_code == 415 and "does not look like audio" in not_audio.json()["detail"]
    empty = upload(client, book.maya, data=b"", account_id="ACC-1003")
    assert empty.status_code == 400
    bad_date = upload(client, book.maya, account_id="ACC-1003", call_date="06/10/2026")
    assert bad_date.status_code == 422 and "YYYY-MM-DD" in bad_date.json()["detail"]
    no_file = client.post("/api/v1/calls", data={"account_id": "ACC-1003"}, headers=auth(book.maya))
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
    assert _uploads(data_dir) == []  # nothing rejected is kept

    ok = upload(client, book.maya, name="../../etc/Kestrel Dental - Jo Kim.WAV", account_id="ACC-1003")
    assert ok.status_code == 202
    [saved] = _uploads(data_dir)
    assert saved.suffix == ".wav" and "Kestrel" not in saved.name and len(saved.stem) == 32
    assert saved.read_bytes() == wav_bytes()


def test_an_unexpected_error_is_one_logged_line(engine, book, data_dir, monkeypatch, caplog):
    from fastapi.testclient import TestClient

    from pipeline.settings import load_settings
    from pipeline.web import WebConfig, create_app
    from pipeline.web import app as web_app

    def boom(*a, **k):
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr(web_app, "check_submission", boom)
    app = create_app(load_settings(db_url=str(engine.url)), engine, config=WebConfig(data_dir=data_dir))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = upload(c, book.maya, account_id="ACC-1003")
    assert r.status_code == 500
    assert r.json() == {"detail": "Something went wrong on the server; it was logged. Try again, or tell your admin."}
    assert "secret" not in r.text
    assert "internal detail" in caplog.text


def test_a_queued_upload_is_processed_by_a_worker(client, book, engine, fake_ingest):
    good = upload(client, book.maya, account_id="ACC-1003", call_date="2026-10-06").json()["job_id"]
    bad = upload(client, book.maya, data=wav_bytes()[:44] + b"BROKEN" * 10, account_id="ACC-1003").json()["job_id"]
    later = upload(client, book.maya, data=wav_bytes(tone=2), account_id="ACC-1003").json()["job_id"]
    worker = Worker(engine, None, kit=object(), name="test-worker", poll_seconds=0.01)
    assert worker.run(until_empty=True) == 3

    view = client.get(f"/api/v1/jobs/{good}", headers=auth(book.maya)).json()
    assert view["status"] == "done" and view["error"] is None and view["attempts"] == 1
    assert view["hints"] == [{"text": "Hint for ACC-1003"}] and view["score"] == 42.0
    failed = client.get(f"/api/v1/jobs/{bad}", headers=auth(book.maya)).json()
    assert failed["status"] == "failed"
    assert failed["error"] == "the recording: ffmpeg cannot decode this file (not audio)."  # no server path
    assert client.get(f"/api/v1/jobs/{later}", headers=auth(book.maya)).json()["status"] == "done"
    assert worker.run(until_empty=True) == 0  # nothing is retried behind anyone's back


def _api_caller(engine, token: str):
    """The caller of an API request with this token, as every /api route resolves it."""
    from starlette.requests import Request

    from pipeline.web import auth as web_auth

    request = Request({"type": "http", "method": "GET", "path": "/api/v1/jobs", "query_string": b"",
                       "headers": [(b"authorization", f"Bearer {token}".encode())]})
    return web_auth.caller_for(engine, request)


def test_a_coach_sees_money_figures_only_while_an_admin_grants_them(client, book, engine):
    from typer.testing import CliRunner

    from pipeline.cli import app as cli

    db = engine.url.render_as_string(hide_password=False)
    coach = "coach@churnwatch-seller.example.com"
    run = CliRunner().invoke
    assert not _api_caller(engine, book.coach).sees_money
    assert _api_caller(engine, book.maya).sees_money and _api_caller(engine, book.manager).sees_money

    granted = run(cli, ["users", "grant", coach.upper(), "money", "--db", db])
    assert granted.exit_code == 0, granted.output
    assert f"{coach} sees money figures now" in granted.output
    assert _api_caller(engine, book.coach).sees_money  # the same token, at its next request
    assert client.get("/api/v1/jobs", headers=auth(book.coach)).status_code == 200
    again = run(cli, ["users", "grant", coach, "money", "--db", db])
    assert again.exit_code == 0 and "already" in again.output
    listed = run(cli, ["users", "list", "--json", "--db", db])
    assert [u["money_granted"] for u in json.loads(listed.stdout) if u["email"] == coach] == [True]

    revoked = run(cli, ["users", "revoke", coach, "money", "--db", db])
    assert revoked.exit_code == 0 and "no longer sees money figures" in revoked.output
    assert not _api_caller(engine, book.coach).sees_money
    with store.session_scope(engine) as session:
        events = [(e.target, e.client, e.details) for e in store.audit_events(session, action="user_changed")]
    assert events == [(coach, "command line", {"change": "money revoked"}),
                      (coach, "command line", {"change": "money granted"})]  # newest first; "already" wrote none
