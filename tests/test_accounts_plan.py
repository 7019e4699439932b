"""Account-plan KPIs and old customers to win back, on a small CRM worked out by hand, on SQLite
and PostgreSQL: response rates, two-way contact, stakeholders, single-threading, white space,
cross-sell, the rep's book, and nurture plans that never go past the follow-up policy."""

import json
from datetime import date

import dbreset
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.crm import import_csv
from pipeline.funnel import DormantOptions, NurtureRules, PlanOptions, account_plans, dormant_accounts, load_funnel, rep_summaries
from pipeline.funnel.account_plan import department_of, seniority_of
from pipeline.store import Reminder, session_scope
from pipeline.store import funnel_queries

AS_OF = date(2026, 6, 30)  # a Tuesday

FILES = {
    "accounts": """account_id,name,segment,rep,created,status,lost_on
A1,Alpha,SMB,Rita,2025-01-01,active,
A2,Beta,SMB,Rita,2025-01-01,active,
A3,Gamma,SMB,Sam,2025-01-01,active,
A4,Delta,SMB,Sam,2025-01-01,lost,2026-05-10
A5,Epsilon,SMB,Sam,2025-01-01,active,
""",
    "orders": """account_id,date,amount,invoice_id
A1,2026-06-01,100.00,I1
A2,2026-06-01,100.00,I2
A3,2026-06-01,100.00,I3
A4,2025-03-01,400.00,I8
A4,2025-06-01,1000.00,I4
A4,2026-04-01,2000.00,I5
A5,2025-07-01,500.00,I6
A5,2025-11-01,300.00,I7
""",
    "activities": """account_id,date,type,direction,outcome,rep
A1,2026-06-20,call,outbound,answered,Rita
A1,2026-06-10,email,outbound,no_reply,Rita
A1,2026-06-12,email,inbound,replied,Rita
A1,2026-05-01,call,outbound,unanswered,Rita
A1,2026-03-15,call,outbound,unanswered,Rita
A1,2026-02-01,email,outbound,replied,Rita
A1,2026-03-01,meeting,outbound,held,Rita
A1,2025-11-01,call,outbound,answered,Rita
A2,2026-03-01,call,outbound,answered,Rita
A2,2026-05-15,call,outbound,answered,Rita
A2,2026-06-15,call,outbound,unanswered,Rita
A2,2026-06-25,email,outbound,no_reply,Rita
A4,2026-05-20,email,outbound,no_reply,Sam
A4,2026-06-01,email,outbound,no_reply,Sam
A5,2025-12-01,email,outbound,no_reply,Sam
A5,2026-01-05,call,outbound,unanswered,Sam
A5,2026-02-02,email,outbound,no_reply,Sam
A5,2026-03-02,call,outbound,unanswered,Sam
A5,2026-04-06,email,outbound,no_reply,Sam
""",
    "contacts": """account_id,name,email,role,added
A1,Fiona Finch,fiona@a1.example,Finance Director,2026-06-01
A1,Oscar Olds,oscar@a1.example,Office Manager,2025-01-01
A2,Pat Price,pat@a2.example,Purchasing Lead,2025-01-01
A3,Quinn Quayle,quinn@a3.example,Head of Procurement,2025-01-01
A3,Olive Ortiz,olive@a3.example,Office Manager,2025-01-01
A5,Sue Stone,sue@a5.example,Shop Assistant,2025-01-01
""",
    "opportunities": """opportunity_id,account_id,stage,date,rep,amount,kind,product
OA1,A1,Prospecting,2026-01-05,Rita,100,new,
OA1,A1,Closed Won,2026-02-05,Rita,100,new,Consumables
OC1,A1,Prospecting,2026-01-05,Rita,100,upsell,
OC1,A1,Closed Lost,2026-02-05,Rita,100,upsell,Equipment
OA2,A2,Closed Won,2026-02-01,Rita,100,new,Consumables
OB2,A2,Closed Won,2026-03-01,Rita,100,upsell,Service Plan
OA3,A3,Closed Won,2026-02-01,Sam,100,new,Consumables
OB3,A3,Closed Won,2026-03-01,Sam,100,upsell,Service Plan
""",
}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


def _load(tmp_path, engine):
    funnel = load_funnel(__import__("pathlib").Path(__file__).resolve().parents[1] / "rules" / "funnel.yaml")
    with session_scope(engine) as s:
        for kind, text in FILES.items():
            p = tmp_path / f"{kind}.csv"
            p.write_text(text)
            r = import_csv(s, p, kind, funnel=funnel)
            assert r.bad_rows == [], (kind, r.bad_rows)
    with session_scope(engine) as s:
        return funnel_queries.account_book(s, AS_OF)


def test_titles_give_department_and_seniority():
    assert (department_of("Finance Director"), seniority_of("Finance Director")) == ("Finance", "executive")
    assert (department_of("Purchasing Lead"), seniority_of("Purchasing Lead")) == ("Procurement", "manager")
    assert (department_of("Head of Procurement, Halden Group"), seniority_of("Head of Procurement")) == ("Procurement", "executive")
    assert (department_of("Shop Assistant"), seniority_of("Shop Assistant")) == ("Shop Assistant", "staff")


def test_account_plan_kpis_by_hand(tmp_path, engine):
    book = _load(tmp_path, engine)
    plans = {p.account_id: p for p in account_plans(book.values(), PlanOptions(as_of=AS_OF))}
    assert set(plans) == {"A1", "A2", "A3", "A5"}  # current customers; A4 is lost
    a1, a2 = plans["A1"], plans["A2"]
    # A1: five outbound calls/e-mails since 2026-01-01 (the meeting and the 2025 call not counted);
    # answered: the call of 06-20, the e-mail of 06-10 (replied to on 06-12), the e-mail of 02-01
    assert (a1.outreach, a1.answered, a1.response_rate) == (5, 3, 0.6)
    assert a1.response_recent == pytest.approx(2 / 3, abs=1e-4) and a1.response_before == 0.5
    assert a1.response_falling is False
    assert a1.days_since_two_way == 10  # the answered call of 06-20
    assert a1.by_department == {"Finance": 1, "Office": 1} and a1.by_seniority == {"executive": 1, "manager": 1}
    assert a1.new_stakeholders == 1 and [s["name"] for s in a1.stakeholders if s["new"]] == ["Fiona Finch"]
    assert a1.single_threaded is False
    assert a1.white_space == ["Procurement"]  # at A2 and A3, two of its three peers with contacts
    assert a1.bought == ["Consumables"] and a1.cross_sell == ["Service Plan"]  # the lost Equipment deal is not bought
    # A2: 1 of 3 answered in the last 90 days, 1 of 1 before: falling
    assert (a2.outreach, a2.answered, a2.response_recent, a2.response_before) == (4, 2, pytest.approx(1 / 3, abs=1e-4), 1.0)
    assert a2.response_falling is True and a2.days_since_two_way == 46
    assert a2.single_threaded is True and a2.white_space == ["Office"] and a2.cross_sell == []
    assert plans["A5"].single_threaded and plans["A5"].days_since_two_way is None
    reps = rep_summaries(plans.values())
    rita = reps["Rita"]
    assert (rita["accounts"], rita["outreach"], rita["answered"]) == (2, 9, 5)
    assert rita["response_rate"] == pytest.approx(5 / 9, abs=1e-4)
    assert rita["single_threaded"] == ["A2"] and rita["response_falling"] == ["A2"]
    assert rita["median_days_since_two_way"] == 28 and rita["white_space_accounts"] == 2
    assert rita["cross_sell_accounts"] == 1 and rita["new_stakeholders"] == 1
    one = account_plans(book.values(), PlanOptions(as_of=AS_OF), only="A4")
    assert [p.account_id for p in one] == ["A4"]  # asked for by name: shown though lost


def test_dormant_customers_ranked_with_nurture_plans_within_the_policy(tmp_path, engine):
    book = _load(tmp_path, engine)
    found = dormant_accounts(book.values(), DormantOptions(as_of=AS_OF, days=180), NurtureRules())
    assert [(d.account_id, d.status) for d in found] == [("A4", "former"), ("A5", "lapsed")]
    a4, a5 = found
    assert a4.used_to_buy == 3000.0 and a4.lifetime_value == 3400.0  # the 2025-03 order is over a year before the last
    assert a4.quiet_since == date(2026, 5, 10) and a4.days_quiet == 51
    assert a4.score == pytest.approx(3000 * 0.5 ** (51 / 365), abs=0.01)
    # two unanswered tries since it left: the third is due 2 days after the last (06-03), so today
    assert (a4.attempts, a4.next_try, a4.try_number, a4.allowed) == (2, AS_OF, 3, 5)
    assert a5.used_to_buy == 800.0 and a5.quiet_since == date(2025, 11, 1)
    assert (a5.attempts, a5.next_try) == (5, None) and "stop" in a5.plan  # 3 + 2 nurture tries, all unanswered
    assert dormant_accounts(book.values(), DormantOptions(as_of=AS_OF, days=365), NurtureRules())[-1].account_id == "A4"
    weekend = dormant_accounts(book.values(), DormantOptions(as_of=date(2026, 6, 27)), NurtureRules())  # a Saturday
    assert weekend[0].next_try == date(2026, 6, 29)  # moved to the Monday


def test_accounts_commands(tmp_path, db_url):
    from pipeline.store import make_engine

    engine = make_engine(db_url)
    _load(tmp_path, engine)
    engine.dispose()
    runner = CliRunner()
    out = runner.invoke(app, ["accounts", "plan", "--as-of", AS_OF.isoformat(), "--json", "--db", db_url])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {a["account_id"] for a in data["accounts"]} == {"A1", "A2", "A3", "A5"}
    sam = data["reps"]["Sam"]["churn"][-1]  # the rep's book: A3, A4, A5 at the start of Q2, A4 lost in it
    assert (sam["period"], sam["base"], sam["lost"], sam["churn_rate"], sam["retention_rate"]) == \
        ("2026-Q2", 3, 1, 0.3333, 0.6667)
    out = runner.invoke(app, ["accounts", "plan", "A1", "--as-of", AS_OF.isoformat(), "--db", db_url])
    assert out.exit_code == 0 and "Procurement" in out.output and "Service Plan" in out.output
    out = runner.invoke(app, ["accounts", "plan", "A9", "--db", db_url])
    assert out.exit_code == 1 and "No account 'A9'" in out.output
    for made in (1, 0):  # A4 gets its try as a reminder, once; A5 none: the policy has stopped
        out = runner.invoke(app, ["accounts", "dormant", "--as-of", AS_OF.isoformat(), "--remind", "--json", "--db", db_url])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["reminders_made"] == made
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        reminders = s.query(Reminder).all()
        assert [(r.account_id, r.reason, r.due.date()) for r in reminders] == [("A4", "silence", AS_OF)]
        assert reminders[0].evidence[0]["type"] == "reactivation"
    engine.dispose()
