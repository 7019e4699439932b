"""Issue 19: a database that cannot be written is one clear error naming the cause, never wrong
counts, blamed rows or a traceback; and what can be checked is checked before models load.

A full disk is simulated with SQLite's `PRAGMA max_page_count` (set to 1 it caps the file at its
current size), a read-only database with a `mode=ro` SQLite URI or PostgreSQL's
`default_transaction_read_only`: tests run as root in CI, where chmod 0444 stops nobody.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import dbreset
import pytest
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from pipeline import store
from pipeline.crm import import_csv
from pipeline.errors import StorageError
from pipeline.flow import ingest
from pipeline.store import Account, Call, CrmEvent, session_scope
from pipeline.types import Segment, Transcript

SECRET = "Our contract number is 4471 and we are leaving for Vendorly. "  # must never be printed


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture
def runner():
    return CliRunner()


def cli(runner, *args):
    from pipeline.cli import app

    return runner.invoke(app, [str(a) for a in args])


def clean(out) -> None:
    """No traceback, no stray exception: an exit code and messages only."""
    assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
    assert "Traceback" not in out.output


def read_only(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"sqlite:///file:{url[len('sqlite:///'):]}?mode=ro&uri=true"
    return url + ("&" if "?" in url else "?") + "options=" + quote("-c default_transaction_read_only=on")


def fill_up(engine) -> None:
    """From now on the SQLite file cannot grow: what a full disk does to the next write."""
    @event.listens_for(engine, "checkout")
    def _full(dbapi_conn, *_):
        dbapi_conn.cursor().execute("PRAGMA max_page_count = 1")  # raised to the current size


def orders_csv(tmp_path: Path, n: int, accounts: int = 50) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text("account_id,date,amount,invoice_id\n" + "".join(
        f"A{i % accounts},2026-01-{1 + i % 28:02d},{i}.50,INV{i}\n" for i in range(n)))
    return path


# --- crm import -----------------------------------------------------------------------------------


def test_crm_import_onto_a_full_disk_stops_at_once_and_stores_nothing(tmp_path, monkeypatch):
    """Was: 'imported 4000', 0 stored, 46,000 rows blamed on 'FOREIGN KEY constraint failed'."""
    from pipeline.crm import importer

    url = f"sqlite:///{tmp_path / 'full.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    fill_up(engine)
    writes = []
    real_write = importer._write
    monkeypatch.setattr(importer, "_write", lambda *a: writes.append(1) or real_write(*a))
    with pytest.raises(StorageError) as e, session_scope(engine) as s:
        import_csv(s, orders_csv(tmp_path, 3000), "orders")
    assert "full" in str(e.value) and str(tmp_path / "full.db") in str(e.value)
    assert len(writes) <= 1  # stopped at the first refused batch: no retry row by row
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(CrmEvent)) == 0
        assert s.scalar(select(func.count()).select_from(Account)) == 0


def test_crm_import_cli_on_a_full_disk_is_one_line_naming_the_cause(tmp_path, monkeypatch, runner):
    real_make_engine = store.make_engine

    def full_engine(url):
        engine = real_make_engine(url)
        fill_up(engine)
        return engine

    url = f"sqlite:///{tmp_path / 'full.db'}"
    store.init_db(real_make_engine(url))
    monkeypatch.setattr(store, "make_engine", full_engine)
    out = cli(runner, "crm", "import", orders_csv(tmp_path, 3000), "--kind", "orders", "--db", url)
    clean(out)
    assert out.exit_code == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert "nothing was imported" in lines[0] and "full" in lines[0] and "FOREIGN KEY" not in lines[0]
    assert "imported" not in out.stdout


def test_crm_import_and_risk_score_on_a_read_only_database(db_url, tmp_path, runner):
    ro = read_only(db_url)
    out = cli(runner, "crm", "import", orders_csv(tmp_path, 10), "--kind", "orders", "--db", ro)
    clean(out)
    assert out.exit_code == 1 and "read-only" in out.stderr and "cannot be written" in out.stderr
    out = cli(runner, "crm", "import", orders_csv(tmp_path, 10), "--kind", "orders", "--db", db_url)
    assert out.exit_code == 0, out.output
    out = cli(runner, "risk", "score", "--db", ro)
    clean(out)
    assert out.exit_code == 1 and "read-only" in out.stderr


# --- ingest -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def light_kit():
    """The toolkit without any model: rules, risk model and policies are what storing needs."""
    from pipeline import reminders as remind
    from pipeline.cues import rule_files
    from pipeline.privacy import redact
    from pipeline.risk import score as risk
    from pipeline.settings import load_settings
    from pipeline.speech import transcribe

    settings = load_settings()
    return ingest.Toolkit(asr=None, transcribe_options=transcribe.TranscribeOptions.from_settings(settings),
                          pack=rule_files.load_pack(settings.rules_dir / "cues"), nlp={}, embedder=None,
                          example_vectors=None, redact_options=redact.RedactOptions(),
                          risk_model=risk.load_risk_model(settings.rules_dir, settings.models_dir),
                          policies=remind.load_policies(settings.rules_dir / "reminders.yaml"), settings=settings)


@pytest.fixture
def no_models(monkeypatch, light_kit):
    """Ingest with hand-built transcripts (one long segment of SECRET), no model loaded."""
    def analyse(path, kit, transcript=None, sha256=None, **_):
        segments = [Segment(0.0, 30.0, SECRET * 40, speaker="customer")]
        transcript = Transcript(language="en", duration=30.0, engine="test", model="test", segments=segments)
        return ingest.Analysis(str(path), sha256, transcript, [], {})

    monkeypatch.setattr(ingest, "load_toolkit", lambda settings, **options: light_kit)
    monkeypatch.setattr(ingest, "analyse_file", analyse)


@pytest.fixture
def models_must_not_load(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("models were loaded before the problem was reported")

    monkeypatch.setattr(ingest, "load_toolkit", refuse)


def recordings(tmp_path: Path, n: int) -> list[Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = tmp_path / f"call_{i + 1}.wav"
        path.write_bytes(f"not audio {path}".encode())  # analyse_file is replaced: only the hash is read
        paths.append(path)
    return paths


def test_ingest_stops_the_batch_when_the_disk_fills_and_reports_the_stored_call(tmp_path, monkeypatch, runner,
                                                                                  no_models):
    """Was: a raw SQLAlchemy traceback with ~15,000 characters of transcript, later files never
    tried, and --json printing nothing, not even the call that was stored."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    real_make_engine, real_store = store.make_engine, ingest.store_analysis
    state = {"full": False}

    def engine_that_fills(u):
        engine = real_make_engine(u)

        @event.listens_for(engine, "checkout")
        def _full(dbapi_conn, *_):
            if state["full"]:
                dbapi_conn.cursor().execute("PRAGMA max_page_count = 1")
        return engine

    def store_then_fill(*a, **k):
        result = real_store(*a, **k)
        state["full"] = True  # the disk fills up right after the first call
        return result

    monkeypatch.setattr(store, "make_engine", engine_that_fills)
    monkeypatch.setattr(ingest, "store_analysis", store_then_fill)
    files = recordings(tmp_path, 3)
    out = cli(runner, "ingest", *files, "--account", "ACC-9", "--create-account", "--db", url, "--json")
    clean(out)
    assert SECRET not in out.output and "4471" not in out.output
    results = json.loads(out.stdout)
    assert [r["status"] for r in results] == ["ok", "error", "skipped"]
    assert results[0]["call_id"] is not None
    assert "full" in results[1]["error"] and "call_2.wav" in results[2]["error"]
    assert out.exit_code == 2
    engine = real_make_engine(url)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 1

    # the same batch for people: the cause is named once, the skipped file is listed
    state["full"] = False
    files = recordings(tmp_path / "more", 3)
    out = cli(runner, "ingest", *files, "--account", "ACC-9", "--db", url)
    clean(out)
    assert SECRET not in out.output
    assert out.stderr.count("full") == 1, out.stderr
    assert "call_3.wav" in out.stderr and "not tried" in out.stderr and "stopped at call_2.wav" in out.stderr
    assert "the others were stored" not in out.stderr


def test_ingest_on_a_read_only_database_fails_before_models_load(db_url, tmp_path, runner, models_must_not_load):
    out = cli(runner, "ingest", *recordings(tmp_path, 1), "--account", "ACC-9", "--create-account",
              "--db", read_only(db_url))
    clean(out)
    assert out.exit_code == 1 and "read-only" in out.stderr


def test_missing_recordings_are_reported_without_loading_models(tmp_path, runner, models_must_not_load):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    out = cli(runner, "ingest", tmp_path / "nope.wav", "--account", "ACC-9", "--create-account", "--db", url, "--json")
    clean(out)
    (result,) = json.loads(out.stdout)
    assert result["status"] == "error" and "nope.wav" in result["error"] and "no such file" in result["error"]
    assert out.exit_code == 1
    out = cli(runner, "ingest", tmp_path / "nope.wav", "--account", "ACC-9", "--create-account", "--db", url)
    assert "The file failed; nothing was stored." in out.stderr and "others" not in out.stderr
    out = cli(runner, "transcribe", tmp_path / "nope.wav")
    clean(out)
    assert out.exit_code == 1 and "nope.wav: no such file" in out.stderr


def test_batch_summary_is_true_for_any_mix(tmp_path):
    from pipeline.cli.calls import _ingest_summary

    ok, err = ingest.IngestResult("a.wav", call_id=1), ingest.IngestResult("b.wav", status="error", error="x")
    dup = ingest.IngestResult("c.wav", call_id=1, status="duplicate")
    assert _ingest_summary([err]) == "The file failed; nothing was stored."
    assert _ingest_summary([err, err]) == "All 2 files failed; nothing was stored."
    assert _ingest_summary([ok, err, dup]) == "1 of 3 files failed; 1 stored, 1 already stored."


# --- ids and dates (issue 18) -------------------------------------------------------------------


@pytest.fixture
def crm_db(tmp_path, runner):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_id,name\nACC-1003,Cobalt Bakery\nACC-1017,Harrowgate Group\n")
    assert cli(runner, "crm", "import", accounts, "--kind", "accounts", "--db", url).exit_code == 0
    return url


@pytest.mark.parametrize("create", [False, True])
def test_an_id_with_a_letter_o_for_a_zero_is_refused_naming_the_real_one(tmp_path, runner, crm_db,
                                                                         models_must_not_load, create):
    out = cli(runner, "ingest", *recordings(tmp_path, 1), "--account", "ACC-1OO3", "--db", crm_db,
              *(["--create-account"] if create else []))
    clean(out)
    assert out.exit_code == 1 and "ACC-1003" in out.stderr and "letter O for a zero" in out.stderr
    with session_scope(store.make_engine(crm_db)) as s:
        assert s.get(Account, "ACC-1OO3") is None


@pytest.mark.parametrize("account", ["", "   "])
def test_an_empty_account_is_refused(tmp_path, runner, models_must_not_load, account):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    out = cli(runner, "ingest", *recordings(tmp_path, 1), "--account", account, "--db", url)
    clean(out)
    assert out.exit_code == 1 and "--account is empty" in out.stderr


def test_a_call_date_in_the_future_is_refused_naming_it(tmp_path, runner, crm_db, models_must_not_load):
    """Was: accepted, and the call scored risk 99 as of 2099."""
    out = cli(runner, "ingest", *recordings(tmp_path, 1), "--account", "ACC-1003", "--date", "2099-01-01",
              "--db", crm_db)
    clean(out)
    assert out.exit_code == 1 and "2099-01-01" in out.stderr and "future" in out.stderr
    tomorrow = date.today() + timedelta(days=1)  # a day's margin for time zones
    assert ingest.check_call_date(tomorrow) == tomorrow


# --- small ones ---------------------------------------------------------------------------------


def test_reminders_list_on_a_missing_database_creates_no_file(tmp_path, runner):
    path = tmp_path / "typo.db"
    out = cli(runner, "reminders", "list", "--db", f"sqlite:///{path}")
    clean(out)
    assert out.exit_code == 1 and str(path) in out.stderr and "churnwatch init" in out.stderr
    assert not path.exists()


def test_missing_driver_hint_keeps_the_extra_in_brackets(runner):
    out = cli(runner, "init", "--db", "postgresql+notadriver://u@localhost/db")
    clean(out)
    assert out.exit_code == 1 and "pip install 'churnwatch[postgres]'" in out.stderr


def test_errors_never_print_statement_values(tmp_path):
    """A database error in a statement names the statement, not the (transcript) values bound to it."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    store.init_db(engine)
    with pytest.raises(Exception) as e, session_scope(engine) as s:
        s.add(Account(id="A1", name=SECRET))
        s.flush()
        s.add(Account(id="A1", name=SECRET))
        s.flush()
    assert SECRET not in str(e.value)
