"""Score points that add up to the score, one event counted once, explain/score CLI output."""

import json
import math
from datetime import UTC, date, datetime

import dbreset
import pytest

from pipeline.risk.explain import display_points, score_points
from pipeline.risk.score import load_risk_model, score_account, score_accounts
from pipeline.store import Account, Call, Contact, CrmEvent, Cue, Segment, session_scope

AS_OF = date(2026, 11, 12)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    return dbreset.fresh_url(request, tmp_path)


@pytest.fixture(scope="module")
def manual(root):
    return load_risk_model(root / "rules", root / "models")


@pytest.mark.parametrize("b,cs", [(-2.2, [1.5, 0.9, -0.4]), (0.0, [3.0, -3.0]), (-2.2, []), (1.0, [-5.0, 0.2]),
                                  (-2.2, [1e-12])])
def test_points_add_up_to_the_score(b, cs):
    contributions = {f"f{i}": c for i, c in enumerate(cs)}
    score, base, points = score_points(b, contributions)
    assert score == pytest.approx(100 / (1 + math.exp(-(b + sum(cs)))), abs=1e-12)
    assert base + math.fsum(points.values()) == pytest.approx(score, abs=1e-9)
    for k, c in contributions.items():  # same sign as the log-odds
        assert points[k] * c >= 0
    shown_base, shown = display_points(base, points, score)
    assert round(shown_base + sum(shown.values()), 1) == round(score, 1)


def _world(s, *, dispute_case=True, two_cue_sentence=True):
    s.add(Account(id="K", name="Kestrel", segment="SMB"))
    s.flush()
    for k, (d, amt, due, paid) in enumerate([
            (date(2026, 8, 3), 1500.0, date(2026, 9, 2), date(2026, 8, 20)),
            (date(2026, 9, 11), 1987.95, date(2026, 10, 11), None),  # the September invoice, unpaid
            (date(2026, 10, 2), 1840.0, date(2026, 11, 1), None)]):  # the October invoice, disputed, unpaid
        s.add(CrmEvent(account_id="K", kind="order", occurred_on=d, amount=amt, source_key=f"o{k}",
                       attributes={"invoice_id": f"INV-{k}", "due_date": due.isoformat(),
                                   "paid_date": paid.isoformat() if paid else None}))
    if dispute_case:
        s.add(CrmEvent(account_id="K", kind="support", occurred_on=date(2026, 10, 21), source_key="c1",
                       attributes={"case_id": "CS-1", "subject": "Invoice does not match delivery"}))
    s.add(Contact(account_id="K", name="Rachel Dunn", role="Office Manager", added_on=date(2026, 10, 28)))
    call = Call(audio_sha256="k" * 64, account_id="K", call_date=datetime(2026, 10, 27, tzinfo=UTC))
    s.add(call)
    s.flush()
    lines = [("The October invoice charges us for forty boxes, we only received twenty five.", ["invoice_dispute"]),
             ("To be honest, the September invoice will be late as well.", ["payment_delay"]),
             ("Vendora offered the same gloves for fifteen percent less.",
              ["competitor_mention", "pricing_request"] if two_cue_sentence else ["competitor_mention"]),
             ("Please send it to our new office manager, Rachel.", ["org_change"])]
    for i, (text, labels) in enumerate(lines):
        seg = Segment(call_id=call.id, idx=i, start=i * 10.0, end=i * 10.0 + 5, speaker="customer", text=text)
        s.add(seg)
        s.flush()
        for label in labels:
            s.add(Cue(call_id=call.id, segment_id=seg.id, rule_name=f"{label}_kw", rule_version=1, label=label,
                      start=seg.start, end=seg.end, quote=text, score=1.0))
    s.flush()


def test_explanation_points_sum_to_score_with_evidence(engine, manual):
    with session_scope(engine) as s:
        _world(s)
        r = score_account(s, "K", AS_OF, manual)
    assert r.base_score + math.fsum(r.points.values()) == pytest.approx(r.score, abs=1e-9)
    assert math.fsum(r.contributions.values()) == pytest.approx(r.log_odds, abs=1e-12)
    base, shown = r.shown_points()
    assert round(base + sum(shown.values()), 1) == round(r.score, 1)
    kinds = {e["kind"] for info in r.evidence.values() for e in info["evidence"]}
    assert {"order", "cue", "support", "invoice", "contact"} <= kinds


def test_one_event_counted_once(engine, manual):
    with session_scope(engine) as s:
        _world(s)
        r = score_account(s, "K", AS_OF, manual)
    by_kept = {m["kept"]: m for m in r.merged}
    # the October invoice disputed on the call, the billing case and the support case: one event
    dispute = next(m for m in r.merged if "case:CS-1" in m["keys"])
    assert "invoice:INV-2" in dispute["keys"]
    involved = {dispute["kept"], *dispute["dropped"]}
    assert {"cue_invoice_dispute", "disputes_180", "support_cases_90", "late_payments_365"} <= involved
    counted = [f for f in ("cue_invoice_dispute", "disputes_180", "support_cases_90") if r.points[f] > 0]
    assert len(counted) == 1, counted
    # "the September invoice will be late" and the unpaid September invoice: one event
    sept = next(m for m in r.merged if "invoice:INV-1" in m["keys"])
    assert {sept["kept"], *sept["dropped"]} == {"cue_payment_delay", "late_payments_365"}
    # both unpaid invoices are merged away from late payments: nothing is left there
    assert r.evidence["late_payments_365"]["value"] == 0
    assert r.evidence["late_payments_365"]["value_before_merge"] == 2
    # one sentence firing two cues counts once (under the heavier cue)
    sentence = next(m for m in r.merged if any(k.startswith("sentence:") for k in m["keys"])
                    and m["kept"] == "cue_competitor_mention")
    assert sentence["dropped"] == ["cue_pricing_request"]
    assert r.points["cue_pricing_request"] == 0
    # the new office manager named on the call is the new contact
    assert any("contact:rachel dunn" in m["keys"] for m in r.merged)
    assert by_kept  # every merge names where the event was counted


def test_merging_lowers_the_score_against_counting_twice(engine, manual):
    from pipeline.risk.features import compute_features
    from pipeline.risk.score import score_features

    with session_scope(engine) as s:
        _world(s)
        feats = compute_features(s, "K", AS_OF, manual.features)
        merged = score_features("K", AS_OF, feats, manual)
        for fv in feats.values():  # the same features with every link removed
            for e in fv.evidence:
                e.pop("refs", None)
                if e.get("kind") == "cue":
                    e["segment_id"] = id(e)
                if e.get("kind") in ("support", "invoice", "contact"):
                    e["units"] = 0
        twice = score_features("K", AS_OF, feats, manual)
    assert twice.merged == [] and merged.score < twice.score


def test_no_links_no_merge(engine, manual):
    with session_scope(engine) as s:
        _world(s, dispute_case=False, two_cue_sentence=False)
        r = score_account(s, "K", AS_OF, manual)
    assert not any("case:" in k for m in r.merged for k in m["keys"])
    assert not any(m["kept"].startswith("cue_") and all(d.startswith("cue_") for d in m["dropped"])
                   for m in r.merged)  # no two cues of one sentence
    assert r.points["cue_invoice_dispute"] > 0


def test_batch_scoring_equals_one_by_one(engine, manual):
    with session_scope(engine) as s:
        _world(s)
        s.add(Account(id="Z"))
        s.add(CrmEvent(account_id="Z", kind="order", occurred_on=date(2026, 1, 5), amount=10.0, source_key="z"))
        s.flush()
        batch = {r.account_id: r for r in score_accounts(s, AS_OF, manual)}
        for acc in ("K", "Z"):
            one = score_account(s, acc, AS_OF, manual)
            assert batch[acc].score == pytest.approx(one.score, abs=1e-12)
            assert batch[acc].points == pytest.approx(one.points, abs=1e-12)


def test_explain_and_score_cli_show_points(tmp_path, root, monkeypatch):
    from typer.testing import CliRunner

    from pipeline import store
    from pipeline.cli import app

    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = store.make_engine(url)
    store.init_db(engine)
    with session_scope(engine) as s:
        _world(s)
    monkeypatch.chdir(root)
    runner = CliRunner()
    out = runner.invoke(app, ["risk", "explain", "K", "--as-of", AS_OF.isoformat(), "--db", url, "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert round(d["shown"]["base_score"] + sum(d["shown"]["points"].values()), 1) == d["shown"]["score"]
    out = runner.invoke(app, ["risk", "explain", "K", "--as-of", AS_OF.isoformat(), "--db", url],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "points" in out.output and "Counted once" in out.output and '"The October invoice' in out.output
    out = runner.invoke(app, ["risk", "score", "--as-of", AS_OF.isoformat(), "--db", url, "--json"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)["scores"][0]
    assert round(row["base_score"] + sum(row["points"].values()), 2) == row["score"]
