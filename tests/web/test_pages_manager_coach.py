"""The manager's risk board, the coach's page and the admin's user list, on every backend.

The world is pages_world's (two reps with a call each, cues, reminders, a score history) plus,
built here: a third account whose score fell, measured calls of lost and kept accounts spread
over a few weeks (so the coach page has medians, a trend and a comparison), and a risk.yaml of
the test's own, so that a change to the shipped weights does not change what is tested.
"""

from __future__ import annotations

import re
import shutil
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline import store
from pipeline.coach.metrics import METRICS_VERSION, call_metrics
from pipeline.types import Segment, Transcript

from pages_world import EMAILS, PASSWORD, csrf_of, login, seed_pages

RISK_YAML = """\
active: manual
threshold: 50
manual:
  intercept: -2.2
  factors:
    - feature: late_payments_365
      label: invoices paid late
      points: 0.4
      cap: 5
    - feature: cue_cancellation_intent
      label: the customer spoke of cancelling
      points: 1.5
    - feature: cue_pricing_request
      label: the customer asked about prices
      points: 0.3
segments: {}
"""
HX = {"HX-Request": "true"}
LOST_SAYS = "Another vendor called us. Another vendor is cheaper, frankly."
KEPT_SAYS = "The new dashboard helps. We love the new dashboard."


def _base_metrics() -> dict:
    segs = [Segment(0.0, 30.0, "Let me walk you through it.", "rep"),
            Segment(30.5, 60.0, "Sounds fine to us.", "customer")]
    return call_metrics(Transcript(language="en", duration=60.0, engine="truth", model="", segments=segs,
                                   channel_layout="stereo")).to_dict()


def _coach_calls(engine) -> list[dict]:
    """Lost and kept accounts (one more of each than `mine` needs to compare) with one measured
    call each, Maya and Callum taking turns, a call a week back from today. Returns what was
    stored per call."""
    from pipeline.coach.kept_vs_lost import MiningOptions

    per_side = MiningOptions().min_calls_per_side + 1
    base = _base_metrics()
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    out = []
    with store.session_scope(engine) as session:
        reps = {r.name: r for r in session.scalars(select(store.Rep))}
        for i in range(2 * per_side):
            lost = i < per_side
            account = store.Account(id=f"{'L' if lost else 'K'}-{i}", name=f"{'Lost' if lost else 'Kept'} Co {i}",
                                    status="lost" if lost else "active", rep_id=reps["Maya Okafor" if i % 2 else
                                                                                       "Callum Reid"].id)
            session.add(account)
            metrics = {**base, "talk_ratio_rep": (0.75 if lost else 0.40) + 0.01 * i,
                       "longest_monologue_s": 20.0 + 3 * i, "version": METRICS_VERSION}
            call = store.Call(audio_sha256=f"{i:064d}", account_id=account.id, rep_id=account.rep_id,
                              call_date=today - timedelta(days=7 * (i // 2) + 1), duration=60.0, language="en",
                              channel_layout="stereo", status="done", engine="truth", model="", metrics=metrics)
            call.segments = [store.Segment(idx=0, speaker="rep", start=0.0, end=30.0, text="Let me show you the plan."),
                             store.Segment(idx=1, speaker="customer", start=30.5, end=60.0,
                                           text=LOST_SAYS if lost else KEPT_SAYS)]
            session.add(call)
            session.flush()
            out.append({"rep": "Maya Okafor" if i % 2 else "Callum Reid", "date": call.call_date.date(),
                        **{k: metrics[k] for k in ("talk_ratio_rep", "longest_monologue_s")}})
    return out


def _measure_world_calls(engine) -> list[dict]:
    """pages_world stores its calls unmeasured; measure them as ingest would (no spaCy)."""
    from pipeline.coach.stored_metrics import store_call_metrics, transcript_from_call

    out = []
    with store.session_scope(engine) as session:
        for call in session.scalars(select(store.Call).order_by(store.Call.id)):
            if call.metrics:
                continue
            m = call_metrics(transcript_from_call(call))
            store_call_metrics(session, call.id, m)
            out.append({"rep": call.rep.name, "date": call.call_date.date(), "talk_ratio_rep": m.talk_ratio_rep,
                        "longest_monologue_s": m.longest_monologue_s})
    return out


@pytest.fixture
def world(engine, tmp_path):
    w = seed_pages(engine, tmp_path)
    with store.session_scope(engine) as session:
        for days, score in ((20, 70.0), (2, 40.0)):  # Both Domains Ltd: high a while ago, lower now
            session.add(store.RiskScore(account_id="ACC-1009", as_of=date.today() - timedelta(days=days),
                                        score=score, threshold=50.0, flagged=score >= 50, model_version="test",
                                        contributions={}))
    w.calls = _measure_world_calls(engine) + _coach_calls(engine)
    return w


@pytest.fixture
def rules_dir(tmp_path, root) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(root / "rules", rules)  # the other pages' rules as shipped ...
    (rules / "risk.yaml").write_text(RISK_YAML)  # ... and weights of the test's own
    return rules


@pytest.fixture
def app(engine, world, rules_dir, tmp_path):
    from pipeline.settings import load_settings
    from pipeline.web import WebConfig, create_app

    settings = load_settings(db_url=str(engine.url), rules_dir=rules_dir)
    return create_app(settings, engine, config=WebConfig(data_dir=tmp_path / "data", max_upload_bytes=1 << 20))


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def as_user(client, who: str, password: str = PASSWORD) -> str:
    """Sign in as one of the world's people (signing out whoever was in); returns the CSRF token."""
    client.cookies.clear()
    r = login(client, EMAILS.get(who, who), password)
    assert r.status_code == 303, r.text
    page = client.get("/")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def rows_of(html: str, table_id: str) -> list[str]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr data-[a-z]+=\"([^\"]+)\"", body)


def attr_values(svg: str, element: str, attr: str = "data-value") -> list[float]:
    return [float(v) for v in re.findall(rf'<{element}[^>]*?{attr}="([-0-9.]+)"', svg)]


def section(html: str, start: str, end: str = "</section>") -> str:
    return html.split(start, 1)[1].split(end, 1)[0]


# --- who may see what ---------------------------------------------------------------------------


def test_each_role_reaches_only_its_pages(client, world):
    expected = {"maya": {"/risk": 403, "/coach": 403, "/users": 403, "/coach/kept-vs-lost": 403},
                "coach": {"/risk": 403, "/coach": 200, "/users": 403, "/coach/kept-vs-lost": 200},
                "manager": {"/risk": 200, "/coach": 200, "/users": 403},
                "admin": {"/risk": 200, "/coach": 200, "/users": 200}}
    for who, pages in expected.items():
        as_user(client, who)
        for path, status in pages.items():
            r = client.get(path)
            assert r.status_code == status, (who, path, r.text[:300])
            if status == 403:
                assert "Not allowed" in r.text and "Traceback" not in r.text
    client.cookies.clear()
    r = client.get("/risk", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/risk")
    r = client.post("/risk/preview", headers=HX, data={})
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login")


def test_posts_need_the_csrf_token(client, world):
    as_user(client, "admin")
    for path, data in (("/risk/preview", {"threshold": "10"}), ("/users", {"email": "x@y.example.com"}),
                       ("/users/1/active", {"active": "off"}), ("/users/1/password", {"password": "x" * 12})):
        r = client.post(path, data=data)
        assert r.status_code == 403, path
        assert "expired" in r.text
    with store.session_scope(client.app.state.engine) as session:
        assert session.scalar(select(store.User).where(store.User.email == "x@y.example.com")) is None
        assert session.get(store.User, 1).active


# --- the risk board ---------------------------------------------------------------------------


def test_the_board_lists_the_riskiest_the_movers_and_each_rep(client, world):
    as_user(client, "manager")
    html = client.get("/risk").text
    # newest scores: ACC-1003 61 and ACC-1002 61 (flagged), ACC-1009 40
    assert rows_of(html, "riskiest") == ["ACC-1002", "ACC-1003", "ACC-1009"]
    riskiest = section(html, 'id="riskiest"', "</table>")
    assert riskiest.count('data-flagged="true"') == 2 and "Both Domains Ltd" in riskiest
    movers = section(html, 'id="movers"', "</table>")
    # 61 now against 35 two weeks ago; 40 now against 70 on day -20: the largest change first
    assert re.findall(r'data-account="([^"]+)" data-change="([-0-9.]+)"', movers) == [
        ("ACC-1009", "-30.0"), ("ACC-1002", "26.0"), ("ACC-1003", "26.0")]
    reps = section(html, 'id="by-rep"', "</table>")
    callum = reps.split('data-rep="Callum Reid"', 1)[1].split("</tr>", 1)[0]
    assert 'data-flagged="1"' in callum and 'data-mean="50.5"' in callum  # (61 + 40) / 2 of 2 scored
    maya = reps.split('data-rep="Maya Okafor"', 1)[1].split("</tr>", 1)[0]
    assert 'data-flagged="1"' in maya and 'data-mean="61.0"' in maya
    with store.session_scope(client.app.state.engine) as session:
        books = dict(session.execute(
            select(store.Rep.name, func.count(store.Account.id))
            .join(store.Account, store.Account.rep_id == store.Rep.id)
            .where(store.Account.status != "lost").group_by(store.Rep.name)).all())
    assert f'data-accounts="{books["Maya Okafor"]}"' in maya and f'data-accounts="{books["Callum Reid"]}"' in callum
    assert "Preview only; change rules/risk.yaml to keep it." in html
    for feature in ("late_payments_365", "cue_cancellation_intent", "cue_pricing_request"):
        assert f'<label for="w_{feature}">' in html and f'id="w_{feature}" name="w_{feature}"' in html
    assert '<label for="threshold">' in html


def test_the_riskiest_list_stops_at_twenty(client, world, engine):
    with store.session_scope(engine) as session:
        for i in range(25):
            session.add(store.Account(id=f"EXTRA-{i:02d}", name=f"Extra {i}"))
            session.flush()
            session.add(store.RiskScore(account_id=f"EXTRA-{i:02d}", as_of=date.today(), score=80.0 + i * 0.5,
                                        threshold=50.0, flagged=True, model_version="test", contributions={}))
        session.add(store.RiskScore(account_id="L-0", as_of=date.today(), score=99.0, threshold=50.0, flagged=True,
                                    model_version="test", contributions={}))  # lost since: nothing to act on
        for account_id, days, score in (("EXTRA-00", 10, 5.0), ("EXTRA-01", 60, 5.0)):
            session.add(store.RiskScore(account_id=account_id, as_of=date.today() - timedelta(days=days), score=score,
                                        threshold=50.0, flagged=False, model_version="test", contributions={}))
    as_user(client, "admin")
    html = client.get("/risk").text
    listed = rows_of(html, "riskiest")
    assert len(listed) == 20 and listed[0] == "EXTRA-24" and "ACC-1003" not in listed and "L-0" not in listed
    movers = rows_of(html, "movers")
    assert movers[0] == "EXTRA-00" and "L-0" not in movers
    assert "EXTRA-01" not in movers  # its earlier score is two months old: no news about this week
    assert "27 of 28 scored accounts" in html  # 25 + the world's three, one of them below the line
    with store.session_scope(client.app.state.engine) as session:  # a score left from long ago is no mover
        recent = (store.RiskScore.account_id == "ACC-1009") & (store.RiskScore.as_of > date.today() - timedelta(days=9))
        session.execute(store.RiskScore.__table__.delete().where(recent))
    assert "ACC-1009" not in rows_of(client.get("/risk").text, "movers")


def _preview(client, csrf, **fields):
    return client.post("/risk/preview", headers={**HX, "X-CSRF-Token": csrf}, data=fields)


def _listed(html: str, list_id: str) -> list[str]:
    return re.findall(r'<li data-account="([^"]+)"', html.split(f'id="{list_id}"', 1)[1].split("</ul>", 1)[0])


def test_the_preview_lists_who_would_cross_and_who_would_drop(client, world, rules_dir):
    csrf = as_user(client, "manager")
    before = (rules_dir / "risk.yaml").read_text()
    fields = re.findall(r'<input id="(w_[a-z0-9_]+)"', client.get("/risk").text)
    cues = [f for f in fields if f.startswith("w_cue_")]
    assert "w_late_payments_365" in fields and "w_cue_cancellation_intent" in cues
    same = _preview(client, csrf)
    assert same.status_code == 200 and "<html" not in same.text  # a fragment
    assert 'data-crossing="0" data-dropping="0"' in same.text
    # the two accounts with calls are above the line on their cues alone (Both Domains has none)
    no_cues = _preview(client, csrf, **{f: "0" for f in cues})
    assert sorted(_listed(no_cues.text, "dropping")) == ["ACC-1002", "ACC-1003"]
    assert _listed(no_cues.text, "crossing") == []
    # cancelling talk alone, weighed heavily, keeps them above it; weighed lightly, it does not
    heavy = _preview(client, csrf, **{**{f: "0" for f in cues}, "w_cue_cancellation_intent": "4"})
    assert _listed(heavy.text, "dropping") == [] and 'data-crossing="0" data-dropping="0"' in heavy.text
    light = _preview(client, csrf, **{**{f: "0" for f in cues}, "w_cue_cancellation_intent": "0.5"})
    assert sorted(_listed(light.text, "dropping")) == ["ACC-1002", "ACC-1003"]
    # a line lowered to 0,5 (a German decimal comma) flags every open account; lost ones are not scored
    low = _preview(client, csrf, threshold="0,5")
    crossing = _listed(low.text, "crossing")
    with store.session_scope(client.app.state.engine) as session:
        active = set(session.scalars(select(store.Account.id).where(store.Account.status == "active")))
    assert set(crossing) == active - {"ACC-1002", "ACC-1003"} and "ACC-1009" in crossing
    assert sorted(_listed(_preview(client, csrf, threshold="100").text, "dropping")) == ["ACC-1002", "ACC-1003"]
    assert (rules_dir / "risk.yaml").read_text() == before  # a preview writes nothing


def test_a_preview_with_a_wrong_number_says_so_at_the_field(client, world):
    csrf = as_user(client, "manager")
    r = _preview(client, csrf, w_cue_pricing_request="lots", threshold="150")
    assert r.status_code == 200  # htmx swaps only 2xx answers
    field = r.text.split('id="err-w_cue_pricing_request" hx-swap-oob="true">', 1)[1].split("</p>", 1)[0]
    assert "lots" in field and "number" in field
    line = r.text.split('id="err-threshold" hx-swap-oob="true">', 1)[1].split("</p>", 1)[0]
    assert "0 to 100" in line
    assert 'id="err-w_late_payments_365" hx-swap-oob="true"></p>' in r.text  # the others are cleared
    assert "data-crossing" not in r.text


def test_without_javascript_the_preview_is_part_of_the_whole_board(client, world):
    csrf = as_user(client, "manager")
    r = client.post("/risk/preview", data={"csrf": csrf, "w_cue_cancellation_intent": "6", "threshold": "x"})
    assert r.status_code == 200 and "<html" in r.text
    assert 'id="threshold" name="threshold" type="text" inputmode="decimal" value="x"' in r.text  # kept as typed
    assert 'aria-invalid="true"' in r.text and "hx-swap-oob" not in r.text
    r = client.post("/risk/preview", data={"csrf": csrf, "threshold": "100"})
    assert sorted(_listed(r.text, "dropping")) == ["ACC-1002", "ACC-1003"] and 'id="riskiest"' in r.text


def test_a_broken_risk_file_leaves_the_board_readable(client, world, rules_dir):
    (rules_dir / "risk.yaml").write_text(RISK_YAML.replace("threshold: 50", "threshold: high"))
    as_user(client, "manager")
    r = client.get("/risk")
    assert r.status_code == 200
    assert "The risk model cannot be read" in r.text and "risk.yaml" in r.text
    assert rows_of(r.text, "riskiest")[:2] == ["ACC-1002", "ACC-1003"]


def test_draft_weights_follow_into_segments_that_inherit_them():
    from pipeline.risk.score import Factor, RiskModel

    from pipeline.web.pages.risk_board import draft_model

    cue, late = Factor("cue_cancellation_intent", 1.5), Factor("late_payments_365", 0.4)
    model = RiskModel("m", -2.2, (cue, late), 50.0)
    own = RiskModel("m", -2.2, (cue, Factor("late_payments_365", 2.0)), 60.0, segment="Enterprise")
    same = RiskModel("m", -2.2, (cue, late), 50.0, segment="SMB")
    model = RiskModel("m", -2.2, (cue, late), 50.0, segments={"Enterprise": own, "SMB": same})
    draft = draft_model(model, {"cue_cancellation_intent": 3.0, "late_payments_365": 1.0}, 40.0)
    weights = lambda m: {f.feature: f.weight for f in m.factors}  # noqa: E731
    assert weights(draft) == {"cue_cancellation_intent": 3.0, "late_payments_365": 1.0} and draft.threshold == 40
    assert weights(draft.segments["Enterprise"]) == {"cue_cancellation_intent": 3.0, "late_payments_365": 2.0}
    assert draft.segments["Enterprise"].threshold == 60  # its own line stays
    assert weights(draft.segments["SMB"]) == weights(draft) and draft.segments["SMB"].threshold == 40
    assert weights(model) == {"cue_cancellation_intent": 1.5, "late_payments_365": 0.4}  # untouched


# --- the coach's page -------------------------------------------------------------------------


def _median(world, rep: str | None, key: str) -> float:
    return statistics.median(c[key] for c in world.calls if rep is None or c["rep"] == rep)


def test_the_coach_sees_each_rep_against_the_team_and_the_band(client, world):
    as_user(client, "coach")
    html = client.get("/coach").text
    talk = section(html, 'id="metric-talk_ratio_rep"', "</figure>")
    bars = attr_values(talk, "rect")
    assert bars == pytest.approx([100 * _median(world, "Callum Reid", "talk_ratio_rep"),
                                  100 * _median(world, "Maya Okafor", "talk_ratio_rep")], abs=0.01)
    team = attr_values(talk, "line class=\"reference\"")
    assert team == pytest.approx([100 * _median(world, None, "talk_ratio_rep")], abs=0.01)
    assert 'data-low="43"' in talk  # the published 43%, drawn where a band of no width would not show
    assert "rep talk ratio (%)" in talk and "team median" in talk
    mono = section(html, 'id="metric-longest_monologue_s"', "</figure>")
    assert "longest rep monologue (s)" in mono and 'data-low="0" data-high="150"' in mono
    table = section(html, 'id="rep-table"', "</table>")
    maya = table.split('data-rep="Maya Okafor"', 1)[1].split("</tr>", 1)[0]
    assert f"n = {sum(c['rep'] == 'Maya Okafor' for c in world.calls)}" in maya
    for header in ("rep talk ratio (%)", "longest rep monologue (s)", "rep questions per call (questions)",
                   "patience (pause before rep answers) (s)", "speaker switches per minute (switches/min)"):
        assert header in table
    assert 'hx-get="/coach/kept-vs-lost"' in html and 'href="/coach/kept-vs-lost"' in html


def test_the_trend_follows_the_chosen_rep_and_metric(client, world):
    as_user(client, "coach")
    r = client.get("/coach/trend", params={"rep": "Maya Okafor", "metric": "longest_monologue_s"}, headers=HX)
    assert r.status_code == 200 and "<html" not in r.text
    weeks: dict[date, list[float]] = {}
    for c in world.calls:
        if c["rep"] == "Maya Okafor":
            weeks.setdefault(c["date"] - timedelta(days=c["date"].weekday()), []).append(c["longest_monologue_s"])
    expected = [statistics.median(v) for _, v in sorted(weeks.items())]
    assert len(expected) >= 3
    assert attr_values(r.text, "circle") == pytest.approx(expected, abs=0.05)
    assert 'data-rep="Maya Okafor" data-metric="longest_monologue_s"' in r.text
    assert "longest rep monologue (s) of Maya Okafor" in r.text
    page = client.get("/coach", params={"rep": "Callum Reid", "metric": "talk_ratio_rep"}).text
    assert 'data-rep="Callum Reid" data-metric="talk_ratio_rep"' in page
    assert '<option value="Callum Reid" selected>' in page and '<label for="trend-metric">' in page
    # an unknown metric falls back to the talk ratio instead of failing
    r = client.get("/coach/trend", params={"rep": "Maya Okafor", "metric": "bogus"}, headers=HX)
    assert 'data-metric="talk_ratio_rep"' in r.text
    r = client.get("/coach/trend", params={"rep": "Maya Okafor", "metric": "patience_s"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/coach?rep=Maya+Okafor&metric=patience_s")


def test_kept_versus_lost_shows_intervals_and_phrases(client, world):
    as_user(client, "coach")
    r = client.get("/coach/kept-vs-lost", headers=HX)
    assert r.status_code == 200 and "<html" not in r.text and 'data-enough="true"' in r.text
    talk = section(r.text, '<figure class="card difference', "</figure>")
    assert 'data-metric="talk_ratio_rep" data-clear="true"' in talk  # 75% vs 40%: clear, listed first
    figures = re.findall(r'<figure class="card difference[^"]*" data-metric="[^"]+" data-clear="(\w+)"', r.text)
    assert figures.count("true") == 1 and figures.count("false") >= 1  # the others are grey, not red
    est = attr_values(talk, "circle")
    assert len(est) == 1 and est[0] > 25  # points of talk ratio, lost minus kept
    assert 'data-significant="true"' in talk and "lost minus kept" in talk
    lost_customer = section(r.text, 'data-side="customer" data-group="lost"', "</ul>")
    kept_customer = section(r.text, 'data-side="customer" data-group="kept"', "</ul>")
    assert 'data-phrase="another vendor"' in lost_customer and 'data-phrase="new dashboard"' in kept_customer
    assert "another vendor" not in kept_customer
    page = client.get("/coach/kept-vs-lost")
    assert "<html" in page.text and 'data-enough="true"' in page.text


def test_too_few_calls_to_compare_is_said_plainly(client, world, engine):
    with store.session_scope(engine) as session:
        for account in session.scalars(select(store.Account).where(store.Account.status == "lost")):
            account.status = "active"
    as_user(client, "manager")
    r = client.get("/coach/kept-vs-lost", headers=HX)
    assert 'data-enough="false"' in r.text and "Too few calls to compare: 0 of lost accounts" in r.text


def test_an_unmeasured_call_is_measured_for_the_page(client, world, engine):
    with store.session_scope(engine) as session:
        call = session.get(store.Call, world.maya_call)
        call.metrics = None
    client.app.state.coach_nlp = False  # as without the spaCy model: questions by punctuation
    as_user(client, "coach")
    assert client.get("/coach").status_code == 200
    with store.session_scope(engine) as session:
        stored = session.get(store.Call, world.maya_call).metrics
    assert stored and stored["version"] == METRICS_VERSION and stored["question_method"] == "punctuation"


def test_the_coach_page_shows_no_money(client, world, engine):
    with store.session_scope(engine) as session:
        kept = session.scalar(select(store.Account.id).where(store.Account.id.like("K-%")))
        session.add(store.CrmEvent(account_id=kept, kind="order", occurred_on=date.today() - timedelta(days=3),
                                   amount=987654.32, attributes={}, source_key="test:order:1"))
    as_user(client, "coach")
    for path in ("/coach", "/coach/kept-vs-lost"):
        text = client.get(path).text
        # the amount in any grouping (987654.32, 987,654, 987.654,32, 987 654), not as part of a
        # random token on the page (a CSRF token once held "9872")
        assert not re.search(r"(?<![A-Za-z0-9])987[\s,.\u202f]?654", text), path
        assert "€" not in text and "order value" not in text.lower()


# --- users, for admins --------------------------------------------------------------------------


def _audit(engine, action: str) -> list[tuple[str, str, dict]]:
    with store.session_scope(engine) as session:
        return [(e.actor, e.target, e.details) for e in store.audit_events(session, action=action)]


def test_admins_see_every_user_with_their_last_login(client, world):
    as_user(client, "maya")
    as_user(client, "admin")
    html = client.get("/users").text
    emails = re.findall(r'<li class="card user-row" id="user-\d+" data-email="([^"]+)"', html)
    assert sorted(emails) == sorted(EMAILS.values())
    maya = html.split(f'data-email="{EMAILS["maya"]}"', 1)[1].split("</li>", 1)[0]
    assert "Maya Okafor" in maya and "never" not in maya
    callum = html.split(f'data-email="{EMAILS["callum"]}"', 1)[1].split("</li>", 1)[0]
    assert "Last login: never" in callum and "/active" in callum
    admin = html.split(f'data-email="{EMAILS["admin"]}"', 1)[1].split("</li>", 1)[0]
    assert "/active" not in admin  # no button to lock oneself out
    for field in ("new-email", "new-role", "new-rep", "new-password"):
        assert f'<label for="{field}">' in html


def test_an_admin_adds_a_user_who_can_then_sign_in(client, world, engine):
    csrf = as_user(client, "admin")
    r = client.post("/users", data={"csrf": csrf, "email": " Nora.Park@Churnwatch-Seller.example.com ", "role": "rep",
                                    "rep": "Maya Okafor", "password": "a long enough secret"})
    assert r.status_code == 200, r.text
    assert "nora.park@churnwatch-seller.example.com was added" in r.text and 'id="new-token"' in r.text
    assert [(a, t) for a, t, _ in _audit(engine, "user_added")] == [
        (EMAILS["admin"], "nora.park@churnwatch-seller.example.com")]
    as_user(client, "nora.park@churnwatch-seller.example.com", "a long enough secret")
    assert client.get("/accounts").status_code == 200 and client.get("/risk").status_code == 403
    assert "Kestrel Dental Group" in client.get("/accounts").text  # Maya's book
    assert "Harrowgate Group" not in client.get("/accounts").text


WRONG_FIELDS = [
    ({"email": "not-an-address"}, "email", "not an e-mail address"),
    ({"email": EMAILS["callum"].upper()}, "email", "exists already"),
    ({"role": "rep", "rep": ""}, "rep", "name as in the CRM"),
    ({"rep": "Mya Okafor"}, "rep", "Maya Okafor"),  # the closest name is offered
    ({"password": "short"}, "password", "at least 10"),
    ({"role": "boss"}, "role", "Choose a role"),
]


def test_a_wrong_field_is_named_at_the_field(client, world, engine):
    csrf = as_user(client, "admin")
    for fields, field, words in WRONG_FIELDS:
        data = {"csrf": csrf, "email": "new.person@churnwatch-seller.example.com", "role": "rep",
                "rep": "Callum Reid", "password": "a long enough secret", **fields}
        r = client.post("/users", data=data)
        assert r.status_code == 400, fields
        message = r.text.split(f'id="err-{field}">', 1)[1].split("</p>", 1)[0]
        assert words in message, (fields, message)
        others = re.findall(r'<p class="field-error" id="err-(\w+)">([^<]+)</p>', r.text)
        assert [f for f, _ in others] == [field], others  # the message is at its field only
        assert "a long enough secret" not in r.text  # a password is never sent back
        if field != "email":
            assert 'value="new.person@churnwatch-seller.example.com"' in r.text  # what was typed stays
    with store.session_scope(engine) as session:
        new = session.scalar(select(store.User).where(store.User.email == "new.person@churnwatch-seller.example.com"))
    assert new is None
    assert _audit(engine, "user_added") == []


def _user_id(engine, email: str) -> int:
    with store.session_scope(engine) as session:
        return session.scalar(select(store.User.id).where(store.User.email == email))


def test_switching_a_user_off_signs_them_out_and_on_lets_them_back(client, world, engine, app):
    from fastapi.testclient import TestClient

    callum_id = _user_id(engine, EMAILS["callum"])
    with TestClient(app) as callum:
        as_user(callum, "callum")
        assert callum.get("/inbox").status_code == 200
        csrf = as_user(client, "admin")
        r = client.post(f"/users/{callum_id}/active", data={"active": "off"}, headers={**HX, "X-CSRF-Token": csrf})
        assert r.status_code == 200 and "<html" not in r.text
        assert 'data-active="false"' in r.text and "switched off" in r.text
        assert callum.get("/inbox", follow_redirects=False).status_code == 303  # out at the next click
        assert login(callum, EMAILS["callum"]).status_code == 401
        r = client.post(f"/users/{callum_id}/active", data={"active": "on", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        callum.cookies.clear()
        assert login(callum, EMAILS["callum"]).status_code == 303
    changes = [(t, d["change"]) for _, t, d in _audit(engine, "user_changed")]
    assert changes == [(EMAILS["callum"], "switched on"), (EMAILS["callum"], "switched off")]  # newest first
    admin_id = _user_id(engine, EMAILS["admin"])
    r = client.post(f"/users/{admin_id}/active", data={"active": "off"}, headers={**HX, "X-CSRF-Token": csrf})
    assert "cannot switch yourself off" in r.text and 'data-active="true"' in r.text
    assert client.get("/users").status_code == 200
    assert client.post("/users/9999/active", data={"active": "off", "csrf": csrf}).status_code == 404


def test_an_admin_sets_a_new_password(client, world, engine):
    csrf = as_user(client, "admin")
    maya_id = _user_id(engine, EMAILS["maya"])
    r = client.post(f"/users/{maya_id}/password", data={"password": "short"}, headers={**HX, "X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert "at least 10" in r.text.split(f'id="pw-err-{maya_id}">', 1)[1].split("</p>", 1)[0]
    assert _audit(engine, "user_changed") == []
    r = client.post(f"/users/{maya_id}/password", data={"password": "short", "csrf": csrf})
    assert r.status_code == 400 and "<html" in r.text and "<details open>" in r.text
    r = client.post(f"/users/{maya_id}/password", data={"password": "a brand new secret"},
                    headers={**HX, "X-CSRF-Token": csrf})
    assert "New password set" in r.text
    assert [(t, d["change"]) for _, t, d in _audit(engine, "user_changed")] == [(EMAILS["maya"], "password reset")]
    client.cookies.clear()
    assert login(client, EMAILS["maya"]).status_code == 401
    assert login(client, EMAILS["maya"], "a brand new secret").status_code == 303


def _sees_money(app, browser) -> bool:
    """Whether the page user signed in on this browser may see money figures, as every page asks."""
    from starlette.requests import Request

    from pipeline.web import auth, sessions

    cookie = f"{sessions.COOKIE}={browser.cookies.get(sessions.COOKIE)}".encode()
    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"", "app": app,
                       "headers": [(b"cookie", cookie)]})
    who = auth.session_caller(app.state.engine, request)
    assert who is not None, "signed out"
    return who.sees_money


def _next_second() -> None:
    """Sessions carry their signing time in whole seconds: a change must fall in a later second
    than the login to end that session."""
    import time

    time.sleep(1.01 - time.time() % 1)


def test_an_admin_grants_a_coach_the_money_figures_and_takes_them_away(client, world, engine, app):
    from fastapi.testclient import TestClient

    coach_id, maya_id = _user_id(engine, EMAILS["coach"]), _user_id(engine, EMAILS["maya"])
    csrf = as_user(client, "admin")
    html = client.get("/users").text
    coach_row = html.split(f'data-email="{EMAILS["coach"]}"', 1)[1].split("</li>", 1)[0]
    assert 'data-money="false"' in coach_row and "no money figures" in coach_row
    assert f'action="/users/{coach_id}/money"' in coach_row and 'name="money" value="on"' in coach_row
    manager_row = html.split(f'data-email="{EMAILS["manager"]}"', 1)[1].split("</li>", 1)[0]
    assert "/money" not in manager_row and "money figures" not in manager_row  # managers see them anyway
    with TestClient(app) as coach:
        as_user(coach, "coach")
        assert not _sees_money(app, coach)
        assert client.post(f"/users/{coach_id}/money", data={"money": "on"}).status_code == 403  # no CSRF token
        assert not _sees_money(app, coach)
        _next_second()
        r = client.post(f"/users/{coach_id}/money", data={"money": "on"}, headers={**HX, "X-CSRF-Token": csrf})
        assert r.status_code == 200 and "<html" not in r.text
        assert 'data-money="true"' in r.text and "sees money figures now" in r.text and 'value="off"' in r.text
        assert coach.get("/coach", follow_redirects=False).status_code == 303  # signed out by the change
        as_user(coach, "coach")
        assert _sees_money(app, coach)
        _next_second()
        r = client.post(f"/users/{coach_id}/money", data={"money": "off", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert coach.get("/coach", follow_redirects=False).status_code == 303
        as_user(coach, "coach")
        assert not _sees_money(app, coach)
    changes = [(a, t, d["change"]) for a, t, d in _audit(engine, "user_changed")]
    assert changes == [(EMAILS["admin"], EMAILS["coach"], "money revoked"),
                       (EMAILS["admin"], EMAILS["coach"], "money granted")]  # newest first
    r = client.post(f"/users/{maya_id}/money", data={"money": "on"}, headers={**HX, "X-CSRF-Token": csrf})
    assert "Only a coach needs this grant" in r.text and "data-money" not in r.text
    r = client.post(f"/users/{maya_id}/money", data={"money": "on", "csrf": csrf})
    assert r.status_code == 400 and "Only a coach needs this grant" in r.text
    assert len(_audit(engine, "user_changed")) == 2
    assert client.post(f"/users/{coach_id}/money", data={"money": "yes", "csrf": csrf}).status_code == 400
    assert client.post("/users/9999/money", data={"money": "on", "csrf": csrf}).status_code == 404


# --- German, phones and keyboards ---------------------------------------------------------------


def _set_german(engine, who: str) -> None:
    with store.session_scope(engine) as session:
        session.scalar(select(store.User).where(store.User.email == EMAILS[who])).lang = "de"


def test_the_pages_speak_german_to_a_german_user(client, world, engine):
    for who in ("manager", "coach", "admin"):
        _set_german(engine, who)
    as_user(client, "manager")
    risk = client.get("/risk").text
    assert "Risikoübersicht" in risk and "Größte Veränderungen" in risk and "Nur eine Vorschau" in risk
    assert "Riskiest accounts" not in risk
    as_user(client, "coach")
    coach = client.get("/coach").text
    assert "Redeanteil des Vertrieblers (%)" in coach and "Median des Teams" in coach
    assert "rep talk ratio" not in coach
    mining = client.get("/coach/kept-vs-lost", headers=HX).text
    assert "verlorener Kunden" in mining and "lost minus kept" not in mining
    as_user(client, "admin")
    users = client.get("/users").text
    assert "Benutzer hinzufügen" in users and "Add a user" not in users
    assert "Geldbeträge freigeben" in users and "keine Geldbeträge" in users  # the coach's row


def _messages(path: Path) -> set[str]:
    text = path.read_text()
    found = set()
    for m in re.finditer(r"""\b(?:_|t)\(\s*(?P<q>["'])((?:(?!(?P=q)).)*)(?P=q)""", text):
        found.add(m.group(2))
    return found


def test_every_message_of_these_pages_has_a_german_translation(root):
    from babel.messages.pofile import read_po

    web = root / "pipeline" / "web"
    po = web / "locale" / "de" / "LC_MESSAGES" / "manager_coach.po"
    with po.open("rb") as f:
        catalog = {m.id: m.string for m in read_po(f, locale="de") if m.id}
    from pipeline.web.i18n import catalog as all_catalogs

    german = all_catalogs("de")
    files = [web / "pages" / n for n in ("risk_board.py", "coach.py", "users.py")] + [
        web / "templates" / n for n in ("risk.html", "risk_preview.html", "coach.html", "coach_trend.html",
                                        "coach_mining.html", "users.html", "users_row.html")]
    used = set().union(*(_messages(p) for p in files))
    from pipeline.web.pages.coach import LABELS

    used |= {s for label, unit in LABELS.values() for s in (label, unit) if s not in ("%", "s")}
    used = {m for m in used if m and not m.startswith("{")}
    missing = sorted(m for m in used if not german.get(m))
    assert not missing, missing
    assert [m for m in used if catalog.get(m) == m] == ["n = {n}"] or \
        sorted(m for m in used if catalog.get(m) == m) == ["Coaching", "n = {n}"]  # the same word in German
    for m, s in catalog.items():  # the same placeholders on both sides
        assert set(re.findall(r"{\w+}", m)) == set(re.findall(r"{\w+}", s)), m


def test_every_field_has_a_label_and_the_pages_fit_a_phone(client, world):
    as_user(client, "admin")
    for path in ("/risk", "/coach", "/users"):
        html = client.get(path).text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        ids = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html)
        assert ids, path
        for field_id in ids:
            if field_id == "lang-select":
                continue
            assert f'<label for="{field_id}"' in html, (path, field_id)
        assert not re.search(r'<(?:input|select)(?![^>]*type="hidden")(?![^>]*\bid=)[^>]*>', html), path


def test_a_granted_coach_sees_the_order_values_on_the_account_page(client, world, engine):
    from typer.testing import CliRunner

    from pipeline.cli import app as cli

    with store.session_scope(engine) as session:
        session.add(store.CrmEvent(account_id="ACC-1003", kind="order", occurred_on=date.today() - timedelta(days=60),
                                   amount=4321.5, source_key="test:late:1",
                                   attributes={"invoice_id": "INV-77", "due_date": (date.today() - timedelta(days=40)).isoformat()}))
    db = engine.url.render_as_string(hide_password=False)
    as_user(client, "manager")
    assert "4,321.50" in client.get("/accounts/ACC-1003").text
    as_user(client, "coach")
    assert client.get("/accounts/ACC-1003").status_code == 403
    assert CliRunner().invoke(cli, ["users", "grant", EMAILS["coach"], "money", "--db", db]).exit_code == 0
    as_user(client, "coach")
    page = client.get("/accounts/ACC-1003")
    assert page.status_code == 200 and "4,321.50" in page.text and "INV-77" in page.text
    assert 'href="/accounts"' in client.get("/coach").text  # the menu offers the account pages
    assert CliRunner().invoke(cli, ["users", "revoke", EMAILS["coach"], "money", "--db", db]).exit_code == 0
    as_user(client, "coach")
    assert client.get("/accounts/ACC-1003").status_code == 403
