"""CRM import, values read strictly (issue 19): an amount or a date that could be read wrong is a
bad row naming the value, never a silently wrong number; odd but possible rows are warnings."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dbreset
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.crm import import_csv, parse_amount, parse_date
from pipeline.crm.presets import decide_decimal_mark, read_export
from pipeline.errors import ChurnwatchError
from pipeline.store import CrmEvent, session_scope

HEAD = "account_id,date,amount,invoice_id\n"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "1.234 €",  # 1234 in Germany, 1.234 in the US: stored 1.234 before
    "1,234",  # the same the other way round
    "1e3",  # scientific notation: stored 13 before
    "1e15",  # stored 115 before
    "1,234,56",  # a broken thousands group: stored 123456 before
    "1 2345",  # a space that does not group three digits
])
def test_amounts_that_cannot_be_read_for_sure_are_refused_naming_the_value(text):
    with pytest.raises(ValueError) as e:
        parse_amount(text)
    assert repr(text) in str(e.value)


@pytest.mark.parametrize("text,expected", [
    ("\u221245", -45.0),  # Unicode minus: stored +45 before
    ("\u2212 $1,200.00", -1200.0),
    ("0,001", 0.001),  # a group never starts with 0: a decimal comma (stored 1 before)
    ("1234,567", 1234.567),  # four digits before: a decimal comma
    ("1.234.567,89", 1234567.89),
    ("1 234,50 €", 1234.5),
    ("CHF 1'234.50", 1234.5),
    ("50-", -50.0),  # SAP's trailing minus
])
def test_amounts_whose_form_decides(text, expected):
    assert parse_amount(text) == pytest.approx(expected)


def test_the_files_other_amounts_decide_an_ambiguous_one(tmp_path):
    german = write(tmp_path, "de.csv", HEAD + 'A1,2026-01-05,"1.234 €",I1\nA1,2026-01-06,"12,50 €",I2\n')
    export = read_export(german, "orders")
    assert export.decimal_mark == "," and not export.bad
    assert [r["amount"] for _, r in export.rows] == [1234.0, 12.5]
    american = write(tmp_path, "us.csv", HEAD + 'A1,2026-01-05,"1,234",I1\nA1,2026-01-06,12.50,I2\n')
    assert [r["amount"] for _, r in read_export(american, "orders").rows] == [1234.0, 12.5]
    # nothing in the file says: the row is bad, naming the value and the option that decides
    alone = write(tmp_path, "alone.csv", HEAD + 'A1,2026-01-05,"1.234 €",I1\nA1,2026-01-06,7,I2\n')
    export = read_export(alone, "orders")
    assert [e.line for e in export.bad] == [2] and "'1.234 €'" in str(export.bad[0])
    assert "--locale" in str(export.bad[0])
    # files that disagree with themselves decide nothing
    assert decide_decimal_mark(["1.234,50", "1,234.50"]) is None


def test_locale_reads_amounts_as_written_there(tmp_path):
    path = write(tmp_path, "o.csv", HEAD + 'A1,2026-01-05,"1.234",I1\nA1,2026-01-06,"1.234,5",I2\n'
                                    'A1,2026-01-07,"1,234.5",I3\n')
    export = read_export(path, "orders", locale="de_DE")
    assert [(line, r["amount"]) for line, r in export.rows] == [(2, 1234.0), (3, 1234.5)]
    assert [e.line for e in export.bad] == [4]  # written the American way: not an amount in de_DE
    export = read_export(path, "orders", locale="en_US")  # the same file read the American way
    assert [(line, r["amount"]) for line, r in export.rows] == [(2, 1.234), (4, 1234.5)]
    assert [e.line for e in export.bad] == [3]
    with pytest.raises(ChurnwatchError, match="locale"):
        read_export(path, "orders", locale="xx_NOPE")


# --- dates --------------------------------------------------------------------------------------


def test_two_digit_year_is_not_put_in_the_far_future():
    assert parse_date("12/31/99", "mdy") == date(1999, 12, 31)  # stored 2099-12-31 before
    assert parse_date("3/4/26", "mdy") == date(2026, 3, 4)


@pytest.mark.parametrize("text", ["31.03.202", "31.03.20261", "2099-01-01", "0026-01-05", "1899-12-31"])
def test_impossible_years_are_refused_naming_the_value(text):
    with pytest.raises(ValueError) as e:
        parse_date(text)
    assert "202" in str(e.value) or repr(text) in str(e.value)


def test_a_date_a_year_after_today_is_a_bad_row_but_next_month_only_a_warning(tmp_path):
    today = date(2026, 6, 1)
    path = write(tmp_path, "o.csv", "account_id,date,amount,invoice_id,paid_date\n"
                 "A1,2026-05-01,10,I1,2026-05-03\n"
                 "A1,2026-07-01,10,I2,\n"  # a booked renewal: imported, with a warning
                 "A1,2028-01-01,10,I3,\n"  # a typo: bad row
                 "A1,2026-05-10,10,I4,2026-05-01\n")  # paid before it was ordered: a warning
    export = read_export(path, "orders", today=today)
    assert [line for line, _ in export.rows] == [2, 3, 5]
    assert [e.line for e in export.bad] == [4] and "2028-01-01" in str(export.bad[0])
    assert [w.line for w in export.warnings] == [3, 5]
    assert "future" in str(export.warnings[0]) and "before the order date" in str(export.warnings[1])


def test_import_reports_warnings_and_refuses_orders_before_the_account_existed(tmp_path, engine):
    accounts = write(tmp_path, "a.csv", "account_id,name,created\nA1,Acme,2025-01-10\n")
    soon = (date.today() + timedelta(days=20)).isoformat()
    orders = write(tmp_path, "o.csv", HEAD + f"A1,2024-12-01,10,I1\nA1,2025-02-01,10,I2\nA1,{soon},10,I3\n"
                                            "A2,2020-01-01,10,I4\n")  # A2: no created date known
    with session_scope(engine) as s:
        import_csv(s, accounts, "accounts")
        report = import_csv(s, orders, "orders")
        assert report.imported == 3
        assert [e.line for e in report.bad_rows] == [2]
        assert "2024-12-01" in str(report.bad_rows[0]) and "2025-01-10" in str(report.bad_rows[0])
        assert [w.line for w in report.warnings] == [4]
        assert {e.attributes["invoice_id"] for e in s.scalars(select(CrmEvent))} == {"I2", "I3", "I4"}
    d = report.to_dict()
    assert d["warnings"][0]["line"] == 4 and "future" in d["warnings"][0]["reason"]


def test_lost_before_created_is_a_bad_row(tmp_path, engine):
    path = write(tmp_path, "a.csv", "account_id,created,status,lost_on\nA1,2025-05-01,lost,2025-04-01\n"
                                    "A2,2025-01-01,lost,2025-04-01\n")
    with session_scope(engine) as s:
        report = import_csv(s, path, "accounts")
    assert report.imported == 1 and [e.line for e in report.bad_rows] == [2]


# --- the file as a whole ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_csv_is_read(tmp_path, engine, encoding):
    """Excel's 'Unicode text' export: was refused as 'binary data'."""
    path = write(tmp_path, "o.csv", HEAD + "Müller GmbH,2026-01-05,12.50,I1\n", encoding)
    with session_scope(engine) as s:
        report = import_csv(s, path, "orders")
        assert report.imported == 1 and not report.bad_rows
        assert s.scalar(select(CrmEvent.account_id)) == "Müller GmbH"


def test_cli_names_the_row_and_value_and_prints_warnings(tmp_path, db_url):
    from pipeline.cli import app

    soon = (date.today() + timedelta(days=10)).isoformat()
    path = write(tmp_path, "o.csv", HEAD + f'A1,2026-01-05,1e3,I1\nA1,{soon},"1,234.50",I2\n')
    runner = CliRunner()
    out = runner.invoke(app, ["crm", "import", str(path), "--kind", "orders", "--db", db_url])
    assert out.exit_code == 1, out.output
    assert "o.csv:2" in out.stderr and "'1e3'" in out.stderr and "scientific" in out.stderr
    assert "warning" in out.stderr and "o.csv:3" in out.stderr
    out = runner.invoke(app, ["crm", "import", str(path), "--kind", "orders", "--db", db_url, "--json"])
    d = json.loads(out.stdout)
    assert d["decimal_mark"] == "." and [w["line"] for w in d["warnings"]] == [3]
    out = runner.invoke(app, ["crm", "import", str(path), "--kind", "orders", "--db", db_url, "--locale", "klingon"])
    assert out.exit_code == 1 and "Unknown locale 'klingon'" in out.stderr and "Traceback" not in out.output
