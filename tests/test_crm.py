"""CRM import: column maps and presets, dates, amounts, idempotence, bad rows."""

from datetime import date

import dbreset
import pytest
from sqlalchemy import func, select

from pipeline.crm import import_csv, parse_amount, parse_date, parse_map
from pipeline.errors import ChurnwatchError
from pipeline.store import Account, Contact, CrmEvent, Rep, session_scope


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """An empty database at head per test, on each backend, reused fast (tests/dbreset.py)."""
    return dbreset.fresh_url(request, tmp_path)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,order,expected", [
    ("2026-03-31", None, date(2026, 3, 31)),
    ("2026-03-31T23:30:00-02:00", None, date(2026, 4, 1)),
    ("2026-03-31T10:00:00Z", None, date(2026, 3, 31)),
    ("03/31/2026", None, date(2026, 3, 31)),
    ("31.03.2026", None, date(2026, 3, 31)),
    ("03/04/2026", "dmy", date(2026, 4, 3)),
    ("03/04/2026", "mdy", date(2026, 3, 4)),
    ("3/4/26 10:00 AM", "mdy", date(2026, 3, 4)),
    ("Mar 31, 2026", None, date(2026, 3, 31)),
])
def test_parse_date_forms(text, order, expected):
    assert parse_date(text, order) == expected


@pytest.mark.parametrize("text,expected", [
    ("$1,234.50", 1234.5), ("€1.234,50", 1234.5), ("(120.00)", -120.0), ("-45", -45.0),
    ("USD 1 200", 1200.0), ("1'234.5", 1234.5), ("12,5", 12.5), ("1,234,567", 1234567.0),
    ("-$50.25", -50.25),
])
def test_parse_amount_forms(text, expected):
    assert parse_amount(text) == pytest.approx(expected)


def test_parse_amount_rejects_text():
    with pytest.raises(ValueError):
        parse_amount("n/a")


def test_orders_import_is_idempotent_and_reports_bad_rows(tmp_path, engine):
    p = write(tmp_path, "orders.csv",
              "account_id,date,amount,invoice_id,due_date,paid_date\n"
              "A1,2026-01-05,\"$1,200.00\",INV-1,2026-02-04,2026-02-01\n"
              "A1,2026-02-05,-200,CN-1,,\n"
              "A2,not a date,50,INV-2,,\n"
              "A2,2026-02-10,oops,INV-3,,\n"
              "A2,2026-02-11,75.5,INV-4,2026-03-13,\n")
    with session_scope(engine) as s:
        r = import_csv(s, p, "orders")
    assert (r.imported, r.unchanged) == (3, 0)
    assert [e.line for e in r.bad_rows] == [4, 5]
    assert "date" in str(r.bad_rows[0]) and "amount" in str(r.bad_rows[1])
    with session_scope(engine) as s:
        r2 = import_csv(s, p, "orders")
        assert (r2.imported, r2.updated, r2.unchanged) == (0, 0, 3)
        assert s.scalar(select(func.count(CrmEvent.id))) == 3
        assert s.get(Account, "A2") is not None  # unknown account created bare
        credit = s.scalar(select(CrmEvent).where(CrmEvent.amount < 0))
        assert credit.amount == -200 and credit.occurred_on == date(2026, 2, 5)


def test_updated_invoice_updates_in_place(tmp_path, engine):
    head = "account_id,date,amount,invoice_id,due_date,paid_date\n"
    p = write(tmp_path, "o.csv", head + "A1,2026-01-05,100,INV-1,2026-02-04,\n")
    with session_scope(engine) as s:
        import_csv(s, p, "orders")
    p.write_text(head + "A1,2026-01-05,100,INV-1,2026-02-04,2026-02-20\n")
    with session_scope(engine) as s:
        r = import_csv(s, p, "orders")
        assert r.updated == 1 and r.imported == 0
        ev = s.scalar(select(CrmEvent))
        assert ev.attributes["paid_date"] == "2026-02-20"


def test_identical_activity_rows_are_kept_apart_but_reimport_changes_nothing(tmp_path, engine):
    p = write(tmp_path, "a.csv", "account_id,date,type,direction,outcome,rep\n"
              "A1,2026-01-05,call,outbound,unanswered,Maya\nA1,2026-01-05,call,outbound,unanswered,Maya\n")
    with session_scope(engine) as s:
        assert import_csv(s, p, "activities").imported == 2
    with session_scope(engine) as s:
        assert import_csv(s, p, "activities").unchanged == 2
        assert s.scalar(select(func.count(CrmEvent.id))) == 2


def test_accounts_upsert_with_rep(tmp_path, engine):
    p = write(tmp_path, "acc.csv", "account_id,name,segment,rep,created,status,lost_on\n"
              "A1,Acme,SMB,Maya Okafor,2024-03-06,active,\nA2,Beta,Enterprise,Maya Okafor,2023-01-01,lost,2025-06-30\n")
    with session_scope(engine) as s:
        assert import_csv(s, p, "accounts").imported == 2
    with session_scope(engine) as s:
        assert import_csv(s, p, "accounts").unchanged == 2
        a2 = s.get(Account, "A2")
        assert a2.status == "lost" and a2.lost_on == date(2025, 6, 30) and a2.rep.name == "Maya Okafor"
        assert s.scalar(select(func.count(Rep.id))) == 1


def test_salesforce_preset_and_day_first_file(tmp_path, engine):
    p = write(tmp_path, "sf.csv", "Opportunity ID,Account ID,Close Date,Amount,Stage\n"
              "006A,001X,03/04/2026,\"€1.500,00\",Closed Won\n006B,001X,25/04/2026,99,Closed Won\n")
    with session_scope(engine) as s:
        r = import_csv(s, p, "orders", preset="salesforce")
        assert r.date_order == "dmy" and r.imported == 2
        days = sorted(s.scalars(select(CrmEvent.occurred_on)))
        assert days == [date(2026, 4, 3), date(2026, 4, 25)]


def test_hubspot_preset_contacts_and_map(tmp_path, engine):
    p = write(tmp_path, "hs.csv", "Company ID,First Name,Last Name,Email,Job Title,Create Date\n"
              "77,Ana,Pop,ANA@x.example,CFO,2026-01-02\n")
    with session_scope(engine) as s:
        assert import_csv(s, p, "contacts", preset="hubspot").imported == 1
        c = s.scalar(select(Contact))
        assert (c.account_id, c.name, c.email, c.role) == ("77", "Ana Pop", "ana@x.example", "CFO")
    q = write(tmp_path, "custom.csv", "AccountId,CloseDate,Value\nB1,2026-01-02,10\n")
    with session_scope(engine) as s:
        r = import_csv(s, q, "orders", parse_map("account_id=AccountId,date=CloseDate,amount=Value"))
        assert r.imported == 1


def test_ambiguous_dates_say_which_option(tmp_path, engine):
    p = write(tmp_path, "o.csv", "account_id,date,amount\nA1,03/04/2026,1\nA1,05/06/2026,2\n")
    with session_scope(engine) as s, pytest.raises(ChurnwatchError, match="--date-order"):
        import_csv(s, p, "orders")
    with session_scope(engine) as s:
        assert import_csv(s, p, "orders", date_order="mdy").imported == 2


def test_missing_column_names_file_and_fix(tmp_path, engine):
    p = write(tmp_path, "o.csv", "AccountId,When,amount\nA1,2026-01-01,1\n")
    with session_scope(engine) as s, pytest.raises(ChurnwatchError) as e:
        import_csv(s, p, "orders")
    msg = str(e.value)
    assert "o.csv" in msg and "account_id" in msg and "--map" in msg


def test_a_value_too_long_for_the_store_is_a_bad_row_with_its_line(tmp_path, engine):
    long_id = "A" * 150  # accounts.id holds 100 characters; PostgreSQL would refuse the whole batch
    p = write(tmp_path, "o.csv", "account_id,date,amount,invoice_id\n"
              f"A1,2026-01-05,10,INV-1\n{long_id},2026-01-06,20,INV-2\nA1,2026-01-07,30,INV-3\n")
    with session_scope(engine) as s:
        r = import_csv(s, p, "orders")
        assert r.imported == 2 and [e.line for e in r.bad_rows] == [3]
        assert "account_id" in str(r.bad_rows[0]) and "100" in str(r.bad_rows[0])
        assert s.scalar(select(func.count(Account.id))) == 1


def test_a_batch_the_database_refuses_is_retried_row_by_row(tmp_path, engine, monkeypatch):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores over-long strings; only PostgreSQL refuses them")
    from pipeline.crm import importer as crm

    monkeypatch.setattr(crm, "_LIMITED", {})  # let the database be the one that says no
    p = write(tmp_path, "acc.csv", "account_id,name\nA1,Acme\nA2," + "x" * 301 + "\nA3,Beta\n")
    with session_scope(engine) as s:
        r = import_csv(s, p, "accounts")
        assert r.imported == 2 and [e.line for e in r.bad_rows] == [3]
        assert "cannot store the row" in str(r.bad_rows[0])
        assert sorted(s.scalars(select(Account.id))) == ["A1", "A3"]


def test_two_imports_of_one_file_at_once_do_not_collide(tmp_path, engine):
    import threading
    import time

    from pipeline.store import get_or_create_account

    p = write(tmp_path, "o.csv", "account_id,date,amount,invoice_id\n"
              + "".join(f"A1,2026-01-{d:02d},{d},INV-{d}\n" for d in range(1, 29)))
    with session_scope(engine) as s:
        get_or_create_account(s, "A1")
    result: dict = {}

    def second():
        try:
            with session_scope(engine) as s2:
                result["report"] = import_csv(s2, p, "orders")
        except Exception as e:  # noqa: BLE001 - the assertion below shows it
            result["error"] = e

    with session_scope(engine) as s1:
        assert import_csv(s1, p, "orders").imported == 28
        thread = threading.Thread(target=second)
        thread.start()  # it waits on the rows s1 holds, until s1 commits
        time.sleep(0.5)
    thread.join(60)
    assert "error" not in result, result.get("error")
    r = result["report"]
    assert (r.imported, r.updated, r.unchanged, r.bad_rows) == (0, 0, 28, [])
    with session_scope(engine) as s:
        assert s.scalar(select(func.count(CrmEvent.id))) == 28
