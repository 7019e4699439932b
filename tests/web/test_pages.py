"""The web pages over TestClient on SQLite and PostgreSQL: sign-in, CSRF, the rep's inbox, a call
with its cues and recording, an account's score and evidence, the rules editor with preview,
save, history and rollback, the review page, German pages, and nothing loaded from outside."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline import store
from pipeline.store.jobs import verify_password
from pipeline.web.i18n import catalog

from pages_world import EMAILS, PASSWORD, csrf_of, login, seed_pages

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "pipeline" / "web"
RULE = "pricing_request.en.keywords"


@pytest.fixture
def world(engine, tmp_path):
    return seed_pages(engine, tmp_path)


@pytest.fixture
def rules_dir(tmp_path) -> Path:
    """A copy of the project's rules: the tests edit it, never the project's own files."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("examples"))
    (tmp_path / "rules" / "examples").mkdir()
    (tmp_path / "rules" / "examples" / "pricing_request.en.txt").write_text(
        "can you send me a better price\nwhat would the renewal cost us\nthree months of quotes and still no price\n")
    (tmp_path / "rules" / "examples" / "none.en.txt").write_text(
        "the invoices were wrong three months in a row\nthanks, that works for us\n")
    return tmp_path / "rules"


@pytest.fixture
def web(engine, world, tmp_path, rules_dir):
    from fastapi.testclient import TestClient

    from pipeline.settings import load_settings
    from pipeline.web import WebConfig, create_app

    app = create_app(load_settings(db_url=str(engine.url), rules_dir=rules_dir), engine,
                     config=WebConfig(data_dir=tmp_path / "data"))
    with TestClient(app) as c:
        yield c


def signed_in(web, who: str):
    r = login(web, EMAILS[who])
    assert r.status_code == 303, r.text
    return web


def _status(engine, reminder_id: int) -> str:
    with store.session_scope(engine) as session:
        return session.get(store.Reminder, reminder_id).status


# --- signing in -------------------------------------------------------------------------------


def test_pages_need_a_session_and_login_goes_home_by_role(web):
    r = web.get("/inbox", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/inbox"
    r = web.get("/inbox", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login")
    page = web.get("/login")
    assert '<label for="email">' in page.text and '<label for="password">' in page.text
    assert login(web, EMAILS["maya"]).headers["location"] == "/inbox"
    assert web.get("/inbox").status_code == 200
    web.cookies.clear()
    assert login(web, EMAILS["coach"]).headers["location"] == "/coach"
    web.cookies.clear()
    assert login(web, EMAILS["maya"], next_path="//evil.example.com/x").headers["location"] == "/inbox"


def test_wrong_passwords_are_audited_and_rate_limited(web, engine):
    for _ in range(5):
        r = login(web, EMAILS["maya"], password="nope")
        assert r.status_code == 401 and "not right" in r.text
    r = login(web, EMAILS["maya"])  # the right password, but too many failures just before
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    with store.session_scope(engine) as session:
        actions = [e.action for e in store.audit_events(session)]
    assert actions.count("login_failed") == 5 and "login_refused" in actions and "login" not in actions


def test_login_form_needs_its_token_and_logout_its_csrf(web):
    r = web.post("/login", data={"email": EMAILS["maya"], "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    signed_in(web, "maya")
    assert web.post("/logout", data={"csrf": "forged"}).status_code == 403
    page = web.get("/inbox").text
    r = web.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert web.get("/inbox", follow_redirects=False).status_code == 303


def test_a_user_change_by_an_admin_ends_the_users_sessions(web, engine):
    import time

    signed_in(web, "maya")
    assert web.get("/inbox").status_code == 200
    time.sleep(1.1)  # the cookie's time is in whole seconds
    with store.session_scope(engine) as session:  # e.g. switched off and on again on /users
        store.audit(session, "user_changed", actor=EMAILS["admin"], target=EMAILS["maya"], active=True)
    assert web.get("/inbox", follow_redirects=False).status_code == 303
    signed_in(web, "maya")
    assert web.get("/inbox").status_code == 200


def test_passwords_are_argon2id_and_old_scrypt_hashes_are_replaced_at_login(web, engine):
    import base64

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    legacy = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with store.session_scope(engine) as session:
        user = session.scalar(select(store.User).where(store.User.email == EMAILS["callum"]))
        user.password_hash = legacy
    assert login(web, EMAILS["callum"]).status_code == 303
    with store.session_scope(engine) as session:
        stored = session.scalar(select(store.User.password_hash).where(store.User.email == EMAILS["callum"]))
    assert stored.startswith("$argon2id$") and verify_password(PASSWORD, stored) and not verify_password("x", stored)


# --- the rep's inbox --------------------------------------------------------------------------


def test_inbox_shows_only_my_reminders_newest_first(web, world):
    page = signed_in(web, "maya").get("/inbox").text
    ids = [int(x) for x in re.findall(r'id="reminder-(\d+)"', page)]
    assert ids == sorted(world.maya_reminders, reverse=True)  # the newer one first
    assert world.callum_reminder not in ids and "(callum)" not in page
    assert f'href="/calls/{world.maya_call}"' in page


def test_done_snooze_and_not_relevant_in_one_click(web, world, engine):
    page = signed_in(web, "maya").get("/inbox").text
    first, second = world.maya_reminders
    assert web.post(f"/inbox/{first}/done", headers={"HX-Request": "true"}).status_code == 403  # no CSRF token
    assert _status(engine, first) == "open"
    r = web.post(f"/inbox/{first}/done", data={"csrf": csrf_of(page)}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Marked done." in r.text and 'data-status="done"' in r.text
    assert "<html" not in r.text  # a fragment, swapped in place
    assert _status(engine, first) == "done"
    with store.session_scope(engine) as session:
        due_before = session.get(store.Reminder, second).due
    r = web.post(f"/inbox/{second}/snooze", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303  # without htmx: back to the page
    with store.session_scope(engine) as session:
        snoozed = session.get(store.Reminder, second)
        assert snoozed.status == "snoozed" and snoozed.due > due_before
    web.post(f"/inbox/{second}/dismiss", data={"csrf": csrf_of(page)})
    assert _status(engine, second) == "dropped"
    assert 'id="reminder-' not in web.get("/inbox").text
    with store.session_scope(engine) as session:
        assert {e.action for e in store.audit_events(session)} >= {"reminder_done", "reminder_snooze",
                                                                   "reminder_dismiss"}


def test_another_reps_reminder_cannot_be_changed(web, world, engine):
    page = signed_in(web, "maya").get("/inbox").text
    r = web.post(f"/inbox/{world.callum_reminder}/done", data={"csrf": csrf_of(page)})
    assert r.status_code == 404
    assert _status(engine, world.callum_reminder) == "open"


# --- a call and its recording -----------------------------------------------------------------


def test_call_page_highlights_every_cue_with_label_rule_and_confidence(web, world, engine):
    page = signed_in(web, "maya").get(f"/calls/{world.maya_call}").text
    with store.session_scope(engine) as session:
        cues = list(session.scalars(select(store.Cue).where(store.Cue.call_id == world.maya_call)))
    assert len(cues) == 3
    for cue in cues:
        tag = re.search(rf'<span class="cue-tag" data-cue="{cue.id}">(.*?)</span>\s*</span>', page, re.S).group(1)
        assert f'data-seek="{cue.start:.2f}"' in tag and cue.label in tag and cue.rule_name in tag
        assert "confidence 100%" in tag
    assert page.count('<mark class="cue">') == 3
    assert '<audio id="player"' in page and f'src="/calls/{world.maya_call}/audio"' in page


def test_call_page_says_when_the_language_was_a_close_call(web, world, engine):
    with store.session_scope(engine) as session:
        # in any key order: a store need not keep it
        session.get(store.Call, world.maya_call).language_scores = {"ro": 0.003, "de": 0.065, "en": 0.07}
    page = signed_in(web, "maya").get(f"/calls/{world.maya_call}").text
    assert 'data-language-unsure="de"' in page and "the call may be in German" in page  # names, not codes
    assert re.search(r'data-language="en">English<', page)
    web.post("/settings/language", data={"csrf": csrf_of(web.get("/inbox").text), "lang": "de", "next": "/inbox"})
    german = web.get(f"/calls/{world.maya_call}").text
    assert "das Gespräch kann auch auf Deutsch sein" in german and re.search(r'data-language="en">Englisch<', german)
    with store.session_scope(engine) as session:
        session.get(store.Call, world.maya_call).language_scores = {"en": 0.9, "de": 0.01}
    assert "data-language-unsure" not in web.get(f"/calls/{world.maya_call}").text


def test_recording_is_served_in_ranges_to_who_may_see_it(web, world):
    signed_in(web, "maya")
    whole = web.get(f"/calls/{world.maya_call}/audio")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    part = web.get(f"/calls/{world.maya_call}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert web.get(f"/calls/{world.callum_call}/audio").status_code == 404
    assert web.get(f"/calls/{world.callum_call}").status_code == 404


# --- accounts ---------------------------------------------------------------------------------


def test_account_page_points_add_up_to_the_score_and_history_is_drawn(web, world):
    page = signed_in(web, "maya").get("/accounts/ACC-1003").text
    score = float(re.search(r'data-score="([\d.]+)"', page).group(1))
    points = [float(x) for x in re.findall(r'data-points="(-?[\d.]+)"', page)]
    assert points and abs(sum(points) - score) < 0.15
    assert len(re.findall(r"<circle [^>]*data-value=", page)) == 4  # three stored scores and today's
    assert 'class="threshold"' in page
    assert web.get("/accounts/ACC-1002").status_code == 404  # Callum's account
    listing = web.get("/accounts").text
    assert "ACC-1003" in listing and "ACC-1002" not in listing


def test_coaches_have_no_account_pages_and_reps_no_manager_pages(web):
    signed_in(web, "coach")
    assert web.get("/accounts/ACC-1003").status_code == 403
    assert web.get("/inbox").status_code == 403
    web.cookies.clear()
    signed_in(web, "maya")
    for path in ("/rules", f"/rules/{RULE}", "/review"):
        r = web.get(path)
        assert r.status_code == 403 and "not part of your role" in r.text, path


# --- rules ------------------------------------------------------------------------------------


def _form(page: str) -> dict[str, str]:
    fields = {m.group(1): html.unescape(m.group(2)) for m in
              re.finditer(r'<textarea id="f-\w+" name="(\w+)"[^>]*>(.*?)</textarea>', page, re.S)}
    for m in re.finditer(r'<input id="f-\w+" name="(\w+)" type="text"[^>]*value="([^"]*)"', page):
        fields[m.group(1)] = html.unescape(m.group(2))
    fields["csrf"] = csrf_of(page)
    fields["negation"] = "on"
    return fields


def test_rules_list_shows_hits_and_measured_precision(web, world, engine):
    signed_in(web, "manager")
    page = web.get("/review").text
    cue_ids = [int(x) for x in re.findall(r'id="cue-(\d+)"', page)]
    assert len(cue_ids) == 6
    with store.session_scope(engine) as session:
        cue = session.scalar(select(store.Cue).where(store.Cue.call_id == world.maya_call,
                                                     store.Cue.label == "cancellation_intent"))
        cue_id, rule_name = cue.id, cue.rule_name
    r = web.post(f"/review/{cue_id}/right", data={"csrf": csrf_of(page)}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'data-verdict="right"' in r.text
    with store.session_scope(engine) as session:
        assert session.scalar(select(store.CueVerdict.verdict).where(store.CueVerdict.cue_id == cue_id)) == "right"
    rules = web.get("/rules").text
    row = re.search(rf'href="/rules/{re.escape(rule_name)}">.*?</tr>', rules, re.S).group(0)
    assert 'data-hits="2"' in row and "100%" in row and "(1/1)" in row
    assert str(cue_id) not in web.get("/review").text.split('id="cue-')[1:]  # reviewed ones leave the list


def test_rule_preview_shows_what_the_draft_would_flag_and_its_score(web, rules_dir):
    page = signed_in(web, "manager").get(f"/rules/{RULE}").text
    form = _form(page)
    assert "three months" not in form["phrases"]
    same = web.post(f"/rules/{RULE}/preview", data=form, headers={"HX-Request": "true"}).text
    assert 'id="now-count">0<' in same
    form["phrases"] += "\nthree months"
    r = web.post(f"/rules/{RULE}/preview", data=form, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert 'id="now-count">2<' in r.text  # the invoice line on each of the two calls
    assert "wrong <mark>three months</mark> in a row" in r.text
    saved, draft = re.findall(r"<tr><td>(?:saved|draft)</td>(.*?)</tr>", r.text, re.S)
    assert re.findall(r">(\d+)</td>", saved)[-1] == "0" and re.findall(r">(\d+)</td>", draft)[-1] == "1"
    form["weight"] = "eleven"
    bad = web.post(f"/rules/{RULE}/preview", data=form, headers={"HX-Request": "true"}).text
    assert 'data-field="weight"' in bad and "Enter a number" in bad


def test_save_writes_a_new_version_with_history_and_rollback_restores_it(web, rules_dir, engine):
    path = rules_dir / "cues" / "pricing_request.yaml"
    original = path.read_bytes()
    page = signed_in(web, "manager").get(f"/rules/{RULE}").text
    form = _form(page)
    form["phrases"] += "\nthree months"
    r = web.post(f"/rules/{RULE}", data=form)  # no message
    assert r.status_code == 422 and 'id="e-message"' in r.text and path.read_bytes() == original
    form["weight"] = "12"
    form["message"] = "too heavy"
    r = web.post(f"/rules/{RULE}", data=form)
    assert r.status_code == 422 and 'aria-invalid="true" aria-describedby="e-weight"' in r.text
    assert path.read_bytes() == original
    form["weight"], form["message"] = "1.0", "Catch complaints about three months of quotes"
    r = web.post(f"/rules/{RULE}", data=form, follow_redirects=False)
    assert r.status_code == 303
    text = path.read_text()
    assert "- three months" in text and text.count("version: 2") == 1
    assert text.splitlines()[0] == original.decode().splitlines()[0]  # the file's comments stay
    from pipeline.cues.rule_files import load_pack

    rule = load_pack(rules_dir).by_name(RULE)
    assert rule.version == 2 and "three months" in rule.phrases
    page = web.get(f"/rules/{RULE}").text
    assert re.findall(r'class="version" data-version="(\d+)"', page) == ["2", "1"]
    assert "Catch complaints about three months of quotes" in page and "+      - three months" in html.unescape(page)
    r = web.post(f"/rules/{RULE}/rollback/1", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303 and path.read_bytes() == original
    page = web.get(f"/rules/{RULE}").text
    assert re.findall(r'class="version" data-version="(\d+)"', page) == ["3", "2", "1"]
    assert "Rolled back to version 1." in page
    with store.session_scope(engine) as session:
        actions = [(e.action, e.actor) for e in store.audit_events(session)]
    assert ("rule_saved", EMAILS["manager"]) in actions and ("rule_rolled_back", EMAILS["manager"]) in actions


def test_a_rule_left_with_nothing_to_match_is_refused_and_not_written(web, rules_dir):
    name = "invoice_dispute.en.keywords"  # a keyword rule without token patterns
    path = rules_dir / "cues" / "invoice_dispute.yaml"
    original = path.read_bytes()
    page = signed_in(web, "manager").get(f"/rules/{name}").text
    form = _form(page)
    form["phrases"] = "   \n"
    form["message"] = "empty"
    r = web.post(f"/rules/{name}", data=form)
    assert r.status_code == 422 and "needs `phrases` or `patterns`" in html.unescape(r.text)
    assert path.read_bytes() == original


# --- the API from a signed-in page ------------------------------------------------------------


def test_the_api_takes_the_session_cookie_and_wants_csrf_for_changes(web, world):
    signed_in(web, "maya")
    r = web.get(f"/api/v1/calls/{world.maya_call}")
    assert r.status_code == 200 and len(r.json()["cues"]) == 3
    assert web.get(f"/api/v1/calls/{world.callum_call}").status_code == 404
    r = web.post("/api/v1/calls", files={"file": ("a.wav", b"RIFF", "audio/wav")}, data={"account_id": "ACC-1003"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]


# --- languages, accessibility, offline --------------------------------------------------------


def test_a_german_user_gets_german_pages(web, world, engine):
    page = signed_in(web, "maya").get("/inbox").text
    assert "<h1>Inbox</h1>" in page
    r = web.post("/settings/language", data={"csrf": csrf_of(page), "lang": "de", "next": "/inbox"},
                 follow_redirects=False)
    assert r.status_code == 303
    page = web.get("/inbox").text
    assert '<html lang="de">' in page and "<h1>Eingang</h1>" in page and "Erledigt" in page
    from pipeline.cues.cue_types import load_cue_types

    said = load_cue_types(ROOT / "rules").says("cancellation_intent", "de")
    assert said != load_cue_types(ROOT / "rules").says("cancellation_intent", "en")
    assert html.escape(said) in web.get(f"/calls/{world.maya_call}").text


def _messages() -> set[str]:
    """Every message the templates and page modules pass to the translator."""
    quoted = r'''(?:\b_|\bt)\(\s*(["'])((?:\\.|(?!\1).)*?)\1\s*[,)]'''
    found = set()
    for path in list((WEB / "templates").glob("*.html")) + list((WEB / "pages").glob("*.py")):
        for m in re.finditer(quoted, path.read_text(), re.S):
            found.add(m.group(2).replace("\\'", "'"))
    return {m for m in found if m}


def test_every_message_has_a_german_translation():
    missing = sorted(_messages() - set(catalog("de")))
    assert not missing, f"add these to pipeline/web/locale/de/LC_MESSAGES/*.po: {missing}"


def test_every_form_field_has_a_label(web, world):
    signed_in(web, "manager")
    for path in ("/inbox", f"/rules/{RULE}", "/review", "/accounts/ACC-1003", f"/calls/{world.maya_call}"):
        page = web.get(path).text
        ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page))
        labelled = set(re.findall(r'<label for="([^"]+)"', page))
        assert ids <= labelled, (path, ids - labelled)
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
            if 'type="hidden"' in tag or 'type="checkbox"' in tag:
                continue
            assert "id=" in tag, (path, tag)


def test_nothing_is_loaded_from_outside_the_server_and_htmx_is_the_pinned_copy():
    for path in (WEB / "templates").glob("*.html"):
        text = path.read_text()
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), path.name
    vendor = WEB / "static" / "vendor"
    want = dict(line.split()[::-1] for line in (vendor / "SHA256SUMS").read_text().splitlines())
    for name, digest in want.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "2.0.11" in (vendor / "update.sh").read_text()


def test_static_files_and_audit_count(web, engine):
    assert web.get("/static/vendor/htmx.min.js").status_code == 200
    signed_in(web, "maya")
    with store.session_scope(engine) as session:
        assert session.scalar(select(func.count(store.AuditEvent.id)).where(store.AuditEvent.action == "login")) == 1


# --- the funnel -------------------------------------------------------------------------------


def test_funnel_page_draws_the_sample_funnel_and_names_each_reps_worst_stage(web, engine, rules_dir):
    from pipeline import crm
    from pipeline import funnel as fn

    stages = fn.load_funnel(rules_dir / "funnel.yaml")
    with store.session_scope(engine) as session:
        for kind in ("opportunities", "leads"):
            crm.import_csv(session, ROOT / "samples" / "crm" / f"{kind}.csv", kind, funnel=stages)
    signed_in(web, "maya")
    assert web.get("/funnel").status_code == 403
    web.cookies.clear()
    page = signed_in(web, "manager").get("/funnel").text
    rows = re.findall(r'<tr><td data-label="Stage">([^<]+)</td><td class="num" data-label="Entered">(\d+)</td>', page)
    assert [name for name, _ in rows][:2] == ["Prospecting", "Qualification"]
    svg_entered = {}
    for stage, n in re.findall(r'<title>([^:<]+): (\d+) (?:moved on|lost here|stalled here|in progress)</title>', page):
        svg_entered[stage] = svg_entered.get(stage, 0) + int(n)
    assert all(svg_entered.get(name, 0) == int(n) for name, n in rows if int(n))  # the bars add up to the table
    owen = re.search(r'<td data-label="Rep">Owen Hale</td>.*?</tr>', page, re.S).group(0)
    assert "Proposal/Price Quote" in owen and "clearly below the team" in owen
    callum = re.search(r'<td data-label="Rep">Callum Reid</td>.*?</tr>', page, re.S).group(0)
    assert "within noise" in callum and "clearly below" not in callum  # his worst stage is within noise
