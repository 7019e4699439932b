"""The stage funnel: funnel.yaml, counts and conversions by hand, the import of stage histories
(our columns, Salesforce, HubSpot; bad stages, out-of-order rows, re-imports), the sample world's
known funnel, and the `churnwatch funnel` command."""

import csv
import importlib.util
import json
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

import dbreset
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.crm import import_csv
from pipeline.errors import ChurnwatchError, RuleError
from pipeline.funnel import (
    Funnel,
    FunnelOptions,
    LeadRow,
    OpportunityHistory,
    Touch,
    histories_from_rows,
    leads_from_rows,
    load_funnel,
    stage_funnel,
    touches_from_rows,
    wilson,
    working_days,
)
from pipeline.store import session_scope
from pipeline.store import funnel_queries
from pipeline.store.tables import Lead, Opportunity, OpportunityStage

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
FUNNEL_YAML = ROOT / "rules" / "funnel.yaml"
ABC = Funnel(("A", "B", "C"), ("W",), ("L",), stalled_after_days=10)
UNTIL = date(2026, 3, 31)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def d(s: str) -> date:
    return date.fromisoformat(s)


def opp(oid, *steps, rep=None, account="X1", kind=None):
    return OpportunityHistory(oid, account, tuple((s, d(day)) for s, day in steps), rep=rep, kind=kind)


# six deals whose counts are worked out by hand in the test below
SIX = [
    opp("o1", ("A", "2026-01-01"), ("B", "2026-01-05"), ("C", "2026-01-10"), ("W", "2026-01-20")),
    opp("o2", ("A", "2026-01-01"), ("B", "2026-01-03"), ("L", "2026-01-08")),
    opp("o3", ("A", "2026-01-02"), ("L", "2026-01-04")),
    opp("o4", ("A", "2026-01-02"), ("B", "2026-01-06")),  # open since Jan 6: stalled in B
    opp("o5", ("A", "2026-03-28")),  # open 3 days: in progress in A
    opp("o6", ("A", "2026-01-01"), ("C", "2026-01-03"), ("W", "2026-01-10")),  # skipped B
]


# --- funnel.yaml ----------------------------------------------------------------------------


def test_default_funnel_holds_salesforce_stages_and_matches_names_loosely():
    f = load_funnel(FUNNEL_YAML)
    assert f.stages[0] == "Prospecting" and f.stages[-1] == "Negotiation/Review" and len(f.stages) == 8
    assert f.won == ("Closed Won",) and f.lost == ("Closed Lost",)
    assert f.canonical("closed  WON") == f.canonical("ClosedWon") == f.canonical("closedwon") == "Closed Won"
    assert f.canonical("proposal/price quote") == "Proposal/Price Quote"
    assert f.canonical("Contract Sent") == "Proposal/Price Quote"  # a HubSpot alias
    assert f.canonical("Demo Booked") is None
    assert f.position("Closed Won") == 8 and f.position("Closed Lost") is None and f.position("Qualification") == 1


@pytest.mark.parametrize("text,words,line", [
    ("stages: [A, B]\nwon: [W]\nlost: [L]\nstaled_after_days: 3\n", "unknown field", 4),
    ("stages: [A, a]\nwon: [W]\nlost: [L]\n", "listed twice", 1),
    ("stages: [A]\nwon: [W]\nlost: [L]\nstalled_after_days: 0\n", "stalled_after_days", 4),
    ("stages: [A]\nwon: W\nlost: []\n", "lost:", 3),
    ("stages: [A]\nwon: [W]\nlost: [L]\naliases:\n  Z: [zz]\n", "not one of the stages", 5),
])
def test_bad_funnel_files_name_the_line(tmp_path, text, words, line):
    with pytest.raises(RuleError) as e:
        load_funnel(write(tmp_path, "funnel.yaml", text))
    assert words in str(e.value) and f"funnel.yaml:{line}:" in str(e.value)


# --- counts and conversions by hand -----------------------------------------------------------


def test_stage_counts_conversions_and_days_by_hand():
    r = stage_funnel(SIX, ABC, FunnelOptions(until=UNTIL))
    a, b, c = r.stages
    assert (a.entered, a.advanced, a.lost, a.stalled, a.open) == (6, 4, 1, 0, 1)
    assert a.conversion == pytest.approx(4 / 5) and a.to_won == pytest.approx(2 / 5)
    assert a.median_days == 2  # days in A: 4, 2, 2, 4, 2 (o5 is still there)
    assert (b.entered, b.advanced, b.lost, b.stalled, b.open) == (3, 1, 1, 1, 0)
    assert b.conversion == pytest.approx(1 / 3, abs=1e-4) and b.median_days == 5
    assert (c.entered, c.advanced, c.conversion, c.median_days) == (2, 2, 1.0, 8.5)
    assert r.totals == {"opportunities": 6, "won": 2, "lost": 2, "open": 1, "stalled": 1}
    # Wilson's interval for 4 of 5 at 95%: 0.376 to 0.964 (published tables)
    assert a.conversion_ci == pytest.approx((0.3755, 0.9638), abs=2e-4)


def test_wilson_stays_inside_zero_and_one():
    lo, hi = wilson(0, 7)
    assert lo == 0 and 0 < hi < 0.5
    lo, hi = wilson(7, 7)
    assert hi == 1 and 0.5 < lo < 1


def test_since_and_until_choose_the_deals_and_what_is_seen():
    r = stage_funnel(SIX, ABC, FunnelOptions(since=d("2026-03-01"), until=UNTIL))
    assert r.totals["opportunities"] == 1 and r.stages[0].open == 1
    early = stage_funnel(SIX, ABC, FunnelOptions(until=d("2026-01-04")))  # o1's B, C and W not seen yet
    assert early.stages[2].entered == 1  # only o6 had reached C
    assert early.totals["won"] == 0 and early.totals["lost"] == 1


def test_worst_stage_per_rep_is_where_it_falls_below_the_rest():
    deals = [opp(f"r1-{i}", ("A", "2026-01-01"), ("B", "2026-01-02"), ("L", "2026-01-05"), rep="R1") for i in range(4)]
    deals += [opp(f"r2-{i}", ("A", "2026-01-01"), ("B", "2026-01-02"), ("C", "2026-01-04"), ("W", "2026-01-09"), rep="R2")
              for i in range(4)]
    deals += [opp("r2-x", ("A", "2026-01-01"), ("L", "2026-01-02"), rep="R2")]
    r = stage_funnel(deals, ABC, FunnelOptions(until=UNTIL, by="rep"))
    assert r.groups["R1"]["worst_stage"] == "B" and r.groups["R1"]["worst"]["clear"]
    assert r.groups["R1"]["worst"]["shortfall"] == pytest.approx(4.0)  # 0 of 4 moved on where the rest moved all
    assert r.groups["R2"]["worst_stage"] == "A"  # lost one at A where R1 lost none
    assert r.groups["R2"]["worst"]["clear"] is False


def test_a_deal_going_back_or_reopened_is_counted_and_named():
    back = opp("back", ("A", "2026-01-01"), ("B", "2026-01-05"), ("A", "2026-01-09"), ("B", "2026-01-12"),
               ("W", "2026-01-20"))
    reopened = opp("again", ("A", "2026-01-01"), ("L", "2026-01-03"), ("B", "2026-01-08"), ("W", "2026-01-15"))
    r = stage_funnel([back, reopened], ABC, FunnelOptions(until=UNTIL))
    assert [s.entered for s in r.stages] == [2, 2, 0] and r.totals["won"] == 2
    assert r.stages[0].median_days == 4.5  # back: 4 + 3 days in A; again: 2 days
    assert any("back: went back from B to A on 2026-01-09" in w for w in r.warnings)
    assert any("again: moved on after L" in w for w in r.warnings)
    shuffled = OpportunityHistory("back", "X1", tuple(reversed(back.steps)))
    assert stage_funnel([shuffled], ABC, FunnelOptions(until=UNTIL)).to_dict()["stages"] == \
        stage_funnel([back], ABC, FunnelOptions(until=UNTIL)).to_dict()["stages"]


def test_daily_figures_per_rep_and_working_day():
    assert working_days(d("2026-03-02"), d("2026-03-08")) == 5  # Monday to Sunday
    deals = [opp("p1", ("A", "2026-03-02"), ("B", "2026-03-04"), ("W", "2026-03-06"), rep="R", account="X1"),
             opp("p2", ("A", "2026-03-03"), rep="R", account="X2")]
    leads = [LeadRow("l1", d("2026-03-02"), "R"), LeadRow("l2", d("2026-03-05"), "R"), LeadRow("l3", d("2026-03-05"), "S")]
    touches = [Touch("X2", d("2026-03-05"), "R"), Touch("X2", d("2026-03-05"), "R"),  # one prospect, one day
               Touch("X1", d("2026-03-04"), "R"),  # same day as p1's stage change: counted once
               Touch("X1", d("2026-03-07"), "R")]  # p1 is won by then: not a prospect
    r = stage_funnel(deals, ABC, FunnelOptions(since=d("2026-03-02"), until=d("2026-03-08")), leads, touches)
    daily = r.daily["R"]
    assert daily["working_days"] == 5 and daily["leads_total"] == 2 and daily["leads"] == pytest.approx(0.4)
    assert daily["followed_up_total"] == 3  # p1 on the 4th and the 6th, p2 on the 5th
    assert daily["won_total"] == 1 and daily["won"] == pytest.approx(0.2)
    assert r.daily["S"]["leads_total"] == 1 and r.daily["S"]["followed_up_total"] == 0


def test_options_are_checked():
    with pytest.raises(ChurnwatchError, match="--by"):
        FunnelOptions(by="region")
    with pytest.raises(ChurnwatchError, match="after"):
        FunnelOptions(since=d("2026-02-01"), until=d("2026-01-01"))


# --- importing stage histories ------------------------------------------------------------------

OURS = ("opportunity_id,account_id,stage,date,rep,amount,kind,lost_reason,product\n"
        "O1,A1,Prospecting,2026-01-01,Rita,\"$1,000.00\",New Business,,\n"
        "O1,A1,qualification,2026-01-05,Rita,1200,New Business,,\n"
        "O2,A2,Prospecting,2026-01-02,Sam,500,renewal,,\n"
        "O1,A1,Closed Won,2026-01-20,Rita,1200,new,,Service Plan\n"  # out of date order in the file
        "O2,A2,Demo Booked,2026-01-04,Sam,500,renewal,,\n"
        "O2,A2,closed lost,2026-01-09,Sam,500,renewal,Price,\n"
        "O3,A2,Prospecting,2026-01-03,Sam,50,side deal,,\n")


def test_import_opportunities_checks_stages_and_is_idempotent(tmp_path, engine):
    funnel = load_funnel(FUNNEL_YAML)
    p = write(tmp_path, "opps.csv", OURS)
    with session_scope(engine) as s:
        r = import_csv(s, p, "opportunities", funnel=funnel)
    assert r.imported == 5 and [e.line for e in r.bad_rows] == [6, 8]
    assert "'Demo Booked' is not in" in str(r.bad_rows[0]) and "funnel.yaml" in str(r.bad_rows[0])
    assert "kind 'side deal'" in str(r.bad_rows[1])
    with session_scope(engine) as s:
        again = import_csv(s, p, "opportunities", funnel=funnel)
        assert (again.imported, again.updated, again.unchanged) == (0, 0, 5)
        assert s.scalar(select(func.count(OpportunityStage.id))) == 5
        o1 = s.get(Opportunity, "O1")
        assert (o1.kind, o1.amount, o1.product) == ("new", 1200.0, "Service Plan")
        stages = s.scalars(select(OpportunityStage.stage).where(OpportunityStage.opportunity_id == "O1")
                           .order_by(OpportunityStage.entered_on)).all()
        assert stages == ["Prospecting", "Qualification", "Closed Won"]
        histories = histories_from_rows(funnel_queries.opportunity_histories(s))
    r = stage_funnel(histories, funnel, FunnelOptions(until=d("2026-03-01"), by="rep"))
    assert (r.stages[0].entered, r.stages[0].advanced, r.stages[0].lost) == (2, 1, 1)
    assert r.groups["Sam"]["stages"][0].lost == 1 and r.groups["Rita"]["won"] == 1


def test_import_opportunities_needs_the_funnel(tmp_path, engine):
    p = write(tmp_path, "opps.csv", OURS)
    with session_scope(engine) as s, pytest.raises(ChurnwatchError, match="stage order"):
        import_csv(s, p, "opportunities")


def test_salesforce_and_hubspot_presets(tmp_path, engine):
    funnel = load_funnel(FUNNEL_YAML)
    sf = write(tmp_path, "sf.csv",
               "Opportunity ID,Account ID,To Stage,Last Modified,Opportunity Owner,Amount,Type,Loss Reason\n"
               "006A,001A,Prospecting,03/02/2026,Rita,\"$2,500.00\",New Business,\n"
               "006A,001A,Closed Lost,03/15/2026,Rita,\"$2,500.00\",New Business,No budget\n")
    hs = write(tmp_path, "hs.csv",
               "Deal ID,Associated Company ID,Deal Stage,Date entered stage,Deal owner,Amount,Deal Type\n"
               "9001,77,appointmentscheduled,2026-03-01T10:00:00Z,Sam,900,existingbusiness\n"
               "9001,77,contractsent,2026-03-10T10:00:00Z,Sam,900,existingbusiness\n"
               "9001,77,closedwon,2026-03-12T10:00:00Z,Sam,900,existingbusiness\n")
    with session_scope(engine) as s:
        a = import_csv(s, sf, "opportunities", preset="salesforce", funnel=funnel)
        b = import_csv(s, hs, "opportunities", preset="hubspot", funnel=funnel)
    assert (a.imported, a.bad_rows, b.imported, b.bad_rows) == (2, [], 3, [])
    with session_scope(engine) as s:
        assert s.get(Opportunity, "006A").lost_reason == "No budget" and s.get(Opportunity, "006A").amount == 2500
        assert s.get(Opportunity, "9001").kind == "renewal"
        stages = s.scalars(select(OpportunityStage.stage).where(OpportunityStage.opportunity_id == "9001")
                           .order_by(OpportunityStage.entered_on)).all()
        assert stages == ["Prospecting", "Proposal/Price Quote", "Closed Won"]


def test_import_leads_is_idempotent(tmp_path, engine):
    p = write(tmp_path, "leads.csv", "Lead ID,Created Date,Lead Owner,Lead Source,Converted Opportunity ID\n"
                                     "L1,2026-03-02,Rita,Web,006A\nL2,2026-03-03,Rita,Referral,\nL3,,Rita,Web,\n")
    with session_scope(engine) as s:
        r = import_csv(s, p, "leads", preset="salesforce")
    assert r.imported == 2 and [e.line for e in r.bad_rows] == [4] and "created is empty" in str(r.bad_rows[0])
    with session_scope(engine) as s:
        assert import_csv(s, p, "leads", preset="salesforce").unchanged == 2
        assert s.scalar(select(func.count(Lead.id))) == 2
        rows = leads_from_rows(funnel_queries.leads(s))
    assert [(x.lead_id, x.rep, x.converted_opportunity_id) for x in rows] == [("L1", "Rita", "006A"), ("L2", "Rita", None)]


# --- the sample world's funnel --------------------------------------------------------------------


def _load_sample_generator():
    spec = importlib.util.spec_from_file_location("funnel_history", SAMPLES / "funnel_history.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("funnel_history", module)
    spec.loader.exec_module(module)
    return module


def _expected_from_csv(funnel: Funnel, until: date):
    """Per rep and stage, entered and lost-there counted straight from the CSV (the sample moves
    only forward, so a deal's rows in date order are its path)."""
    rows = defaultdict(list)
    with (SAMPLES / "crm" / "opportunities.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if date.fromisoformat(row["date"]) <= until:
                rows[(row["opportunity_id"], row["rep"])].append((row["date"], row["stage"]))
    entered, lost = defaultdict(int), defaultdict(int)
    for (_, rep), steps in rows.items():
        path = [s for _, s in sorted(steps, key=lambda x: (x[0], funnel.position(x[1]) if funnel.position(x[1]) is not None else 99))]
        for stage in path:
            if stage in funnel.stages:
                entered[(rep, stage)] += 1
                entered[(None, stage)] += 1
        if path[-1] in funnel.lost:
            lost[(rep, path[-2])] += 1
            lost[(None, path[-2])] += 1
    return entered, lost


def test_sample_funnel_is_recovered(tmp_path):
    gen = _load_sample_generator()
    funnel = load_funnel(FUNNEL_YAML)
    until = date(2026, 11, 15)
    from pipeline.store import init_db, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'sample.db'}")
    init_db(engine)
    with session_scope(engine) as s:
        for kind in ("accounts", "activities", "opportunities", "leads"):
            r = import_csv(s, SAMPLES / "crm" / f"{kind}.csv", kind, funnel=funnel)
            assert r.bad_rows == [], kind
        histories = histories_from_rows(funnel_queries.opportunity_histories(s))
        leads = leads_from_rows(funnel_queries.leads(s))
        touches = touches_from_rows(funnel_queries.outbound_touches(s, until))
    engine.dispose()
    report = stage_funnel(histories, funnel, FunnelOptions(until=until, by="rep"), leads, touches)
    entered, lost = _expected_from_csv(funnel, until)
    for s in report.stages:
        assert (s.entered, s.lost) == (entered[(None, s.stage)], lost[(None, s.stage)]), s.stage
        assert s.entered == s.advanced + s.lost + s.stalled + s.open  # the sample never moves back
    for rep, g in report.groups.items():
        for s in g["stages"]:
            assert (s.entered, s.lost) == (entered[(rep, s.stage)], lost[(rep, s.stage)]), (rep, s.stage)
    weak = report.groups[gen.WEAK_REP]
    assert weak["worst_stage"] == gen.WEAK_STAGE and weak["worst"]["clear"]
    proposal = {rep: next(s for s in g["stages"] if s.stage == gen.WEAK_STAGE) for rep, g in report.groups.items()}
    team = next(s for s in report.stages if s.stage == gen.WEAK_STAGE)
    assert proposal[gen.WEAK_REP].conversion_ci[1] < team.conversion_ci[0]  # clearly below the team
    assert all(proposal[gen.WEAK_REP].conversion < p.conversion for rep, p in proposal.items() if rep != gen.WEAK_REP)
    busy = report.daily[gen.BUSY_REP]
    assert busy["leads"] > 2 * max(v["leads"] for rep, v in report.daily.items() if rep != gen.BUSY_REP)
    assert "too busy" in busy["reading"]
    assert report.groups[gen.BUSY_REP]["worst_stage"] == "Prospecting"
    assert report.warnings == []


def test_sample_funnel_files_are_reproduced(tmp_path):
    gen = _load_sample_generator()
    import shutil

    shutil.copy(SAMPLES / "crm" / "accounts.csv", tmp_path / "accounts.csv")
    gen.make_funnel(tmp_path, 20261115, date(2026, 11, 15))
    for name in ("opportunities", "leads"):
        assert (tmp_path / f"{name}.csv").read_bytes() == (SAMPLES / "crm" / f"{name}.csv").read_bytes(), name


# --- the command ------------------------------------------------------------------------------


def test_funnel_command_json_and_png(tmp_path, db_url):
    runner = CliRunner()
    p = write(tmp_path, "opps.csv", OURS)
    out = runner.invoke(app, ["crm", "import", str(p), "--kind", "opportunities", "--db", db_url])
    assert out.exit_code == 2 and "Demo Booked" in out.output  # two bad rows, the rest stored
    out = runner.invoke(app, ["funnel", "--until", "2026-03-01", "--by", "rep", "--json", "--plot", str(tmp_path / "png"),
                              "--db", db_url])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    first = data["stages"][0]
    assert {"stage", "entered", "advanced", "lost", "stalled", "conversion", "conversion_ci", "median_days"} <= set(first)
    assert (first["stage"], first["entered"], first["conversion"]) == ("Prospecting", 2, 0.5)
    assert set(data["groups"]) == {"Rita", "Sam"} and "worst_stage" in data["groups"]["Sam"]
    assert set(data["daily"]["Rita"]) >= {"leads", "followed_up", "won"}
    png = Path(data["charts"][0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = runner.invoke(app, ["funnel", "--by", "region", "--db", db_url])
    assert out.exit_code == 1 and "--by 'region'" in out.output
